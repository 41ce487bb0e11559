"""CPU training throughput: ddpm_utils' UNet vs diffusers' UNet2DModel, same architecture and loop.

    python benchmarks/train_throughput.py [--batch 128] [--rounds 5]

One training step = draw (x0, t, eps), q_sample, forward, MSE to eps, backward, AdamW step, on the 8x8
digits with the 0.70M-parameter matched architecture. Both run the same hand-written loop; ours also
runs through `ddpm_utils.Trainer` (which adds EMA, clipping, logging). Correctness: both losses on the
same batches are printed, before and after the timed steps.
"""

from __future__ import annotations

import argparse

import torch
from common import alternate, call, diffusers_digits, ours_digits, record, timed

import ddpm_utils as du


def make_step(model, data, schedule, batch, g, channels_last):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    losses = []

    def step():
        x0, t, eps = du.training.draw_batch(data, batch, 1000, g)
        if channels_last:
            x0, eps = (v.contiguous(memory_format=torch.channels_last) for v in (x0, eps))
        loss = ((call(model, du.q_sample(schedule, x0, t, noise=eps), t) - eps) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())

    return step, losses


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    data, schedule = du.load_digits("train"), du.make_schedule("linear", 1000)
    contenders = {
        "diffusers UNet2DModel": make_step(
            diffusers_digits(), data, schedule, args.batch, torch.Generator().manual_seed(0), False
        ),
        "ddpm_utils UNet": make_step(ours_digits(), data, schedule, args.batch, torch.Generator().manual_seed(0), True),
    }
    trainer = du.Trainer(du.UNet(du.DIGITS), data, du.TrainConfig(max_steps=10**6))
    fns = {name: (lambda s=s: args.batch * args.steps / timed(s, args.steps)) for name, (s, _) in contenders.items()}
    fns["ddpm_utils Trainer (EMA, clip, logs)"] = lambda: (
        args.batch * args.steps / timed(trainer.train_step, args.steps)
    )
    for s, _ in contenders.values():  # warm-up
        timed(s, 3)
    timed(trainer.train_step, 3)
    rates = alternate(fns, args.rounds)
    base = rates["diffusers UNet2DModel"]
    print(
        f"training throughput, batch {args.batch}, {torch.get_num_threads()} threads (median of {args.rounds} rounds)"
    )
    for name, r in rates.items():
        print(f"  {name:<38} {r:8.1f} images/s   {r / base:5.2f}x diffusers")
    for name, (_, losses) in contenders.items():
        print(f"  {name:<38} loss first/last: {losses[0]:.3f} / {sum(losses[-20:]) / 20:.3f}")
    record(
        "train_throughput",
        {"batch": args.batch, "images_per_s": rates, "ratio_vs_diffusers": {k: v / base for k, v in rates.items()}},
    )


if __name__ == "__main__":
    main()
