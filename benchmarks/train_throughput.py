"""CPU training throughput: ddpm_utils' UNet vs diffusers' UNet2DModel, same architecture and loop.

    python benchmarks/train_throughput.py [--batch 128] [--rounds 5] [--bf16]

One training step = draw (x0, t, eps), q_sample, forward, MSE to eps, backward, AdamW step, on the 8x8
digits with the 0.70M-parameter matched architecture. Both run the same hand-written loop; ours also
runs through `ddpm_utils.extras.Trainer` (which adds EMA, clipping, logging). Correctness: both losses on the
same batches are printed, before and after the timed steps. `--bf16` adds both networks with bfloat16
weights and activations (float32 master weights for AdamW, float32 loss): bf16 convolutions run about twice as
fast on CPUs with AVX-512 bf16 instructions, but the rest of the step does not. It also times the Trainer with
`extras.TrainConfig(bf16=True)` (`train --bf16`), which does the same with EMA, clipping and logs.
"""

from __future__ import annotations

import argparse
import copy

import torch
from common import alternate, call, diffusers_digits, ours_digits, record, timed

import ddpm_utils as du


def make_step(model, data, schedule, batch, g, channels_last, bf16=False):
    params = list(model.parameters())
    master = [p.detach().clone() for p in params] if bf16 else params  # what AdamW updates, in float32
    if bf16:
        model.to(torch.bfloat16)
    opt = torch.optim.AdamW(master, lr=1e-3, fused=True)
    losses = []

    def step():
        x0 = data[torch.randint(0, len(data), (batch,), generator=g)]  # the Trainer's draws, in its order
        t = torch.randint(0, 1000, (batch,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        if channels_last:
            x0, eps = (v.contiguous(memory_format=torch.channels_last) for v in (x0, eps))
        xt = du.q_sample(schedule, x0, t, eps)
        loss = ((call(model, xt.to(torch.bfloat16) if bf16 else xt, t).float() - eps) ** 2).mean()
        for p in params:
            p.grad = None
        loss.backward()
        if bf16:
            for m, p in zip(master, params):
                m.grad = p.grad.float()
        opt.step()
        if bf16:
            with torch.no_grad():
                torch._foreach_copy_(params, master)
        losses.append(loss.item())

    return step, losses


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bf16", action="store_true", help="also time both networks in bfloat16")
    args = parser.parse_args()
    torch.manual_seed(0)
    data, schedule = du.load_digits("train"), du.make_schedule("linear", 1000)
    nets = {
        "diffusers UNet2DModel": diffusers_digits(),
        "ddpm_utils UNet": ours_digits(channels_last=False, dropout=0.0),
    }
    # bf16 copies start from the same weights, so their losses can be compared with the float32 ones
    bf16_nets = {f"{name}, bf16": copy.deepcopy(net) for name, net in nets.items()} if args.bf16 else {}
    nets["ddpm_utils UNet"] = nets["ddpm_utils UNet"].to(memory_format=torch.channels_last)
    contenders = {
        name: make_step(net, data, schedule, args.batch, torch.Generator().manual_seed(0), name == "ddpm_utils UNet")
        for name, net in nets.items()
    }
    for name, net in bf16_nets.items():  # both faster contiguous than channels-last in bf16 (measured)
        contenders[name] = make_step(net, data, schedule, args.batch, torch.Generator().manual_seed(0), False, True)
    precisions = {
        "ddpm_utils Trainer (EMA, clip, logs)": False,
        **({"ddpm_utils Trainer, bf16": True} if args.bf16 else {}),
    }
    trainers = {
        name: du.extras.Trainer(
            ours_digits(channels_last=False, dropout=0.0),
            schedule,
            du.extras.TrainConfig(max_steps=10**6, bf16=bf16),
            data,
        )
        for name, bf16 in precisions.items()
    }
    fns = {name: (lambda s=s: args.batch * args.steps / timed(s, args.steps)) for name, (s, _) in contenders.items()}
    for name, trainer in trainers.items():
        fns[name] = lambda s=trainer.train_step: args.batch * args.steps / timed(s, args.steps)
    for s, _ in contenders.values():  # warm-up
        timed(s, 3)
    for trainer in trainers.values():
        timed(trainer.train_step, 3)
    rates = alternate(fns, args.rounds)
    base = rates["diffusers UNet2DModel"]
    print(
        f"training throughput, batch {args.batch}, {torch.get_num_threads()} threads (median of {args.rounds} rounds)"
    )
    for name, r in rates.items():
        print(f"  {name:<38} {r:8.1f} images/s   {r / base:5.2f}x diffusers")
    if args.bf16:
        same = rates["ddpm_utils UNet, bf16"] / rates["diffusers UNet2DModel, bf16"]
        print(f"  both in bf16: ddpm_utils {same:.2f}x diffusers")
    for name, (_, losses) in contenders.items():
        print(f"  {name:<38} loss first/last: {losses[0]:.3f} / {sum(losses[-20:]) / 20:.3f}")
    record(
        "train_throughput",
        {"batch": args.batch, "images_per_s": rates, "ratio_vs_diffusers": {k: v / base for k, v in rates.items()}},
    )


if __name__ == "__main__":
    main()
