"""CPU sampling throughput: ddpm_utils vs diffusers at the same architecture.

    python benchmarks/sample_throughput.py [--batch 1000]

Measures network evaluations per second in eval mode (the cost of one sampler step per image),
and end-to-end DDIM sampling (50 steps) of a batch with each library's own sampler:
`ddpm_utils.ddim_sample` and diffusers' `DDIMScheduler` loop. 1000-step DDPM time is 20x the
50-step figure (same network cost per step). Outputs are checked to be finite.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import alternate, call, diffusers_digits, ours_digits, record, timed

import ddpm_utils as du


@torch.no_grad()
def diffusers_ddim(model, batch, steps, g):
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(num_train_timesteps=1000)
    sched.set_timesteps(steps)
    x = torch.randn(batch, 1, 8, 8, generator=g)
    for t in sched.timesteps:
        x = sched.step(model(x, t).sample, t, x).prev_sample
    return x


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    ours, theirs = ours_digits(dropout=0.0).eval(), diffusers_digits().eval()
    x = torch.randn(args.batch, 1, 8, 8)
    t = torch.randint(0, 1000, (args.batch,))

    def evals(model):
        with torch.no_grad():
            return args.batch * 5 / timed(lambda: call(model, x, t), 5)

    evals(ours), evals(theirs)  # warm-up
    rates = alternate(
        {"diffusers UNet2DModel": lambda: evals(theirs), "ddpm_utils UNet": lambda: evals(ours)}, args.rounds
    )
    schedule = du.make_schedule("linear", 1000)
    start = time.perf_counter()
    a = du.ddim_sample(ours, schedule, (args.batch, 1, 8, 8), 50, generator=torch.Generator().manual_seed(0))
    ours_ddim = time.perf_counter() - start
    start = time.perf_counter()
    b = diffusers_ddim(theirs, args.batch, 50, torch.Generator().manual_seed(0))
    their_ddim = time.perf_counter() - start
    assert torch.isfinite(a).all() and torch.isfinite(b).all()
    base = rates["diffusers UNet2DModel"]
    print(f"sampling, batch {args.batch}, {torch.get_num_threads()} threads")
    for name, r in rates.items():
        print(f"  network evaluations  {name:<24} {r:8.1f} images/s   {r / base:5.2f}x diffusers")
    print(
        f"  DDIM 50 steps, {args.batch} digits: ddpm_utils {ours_ddim:.1f} s, diffusers {their_ddim:.1f} s "
        f"({their_ddim / ours_ddim:.2f}x)"
    )
    print(f"  DDPM 1000 steps (20x): ddpm_utils {20 * ours_ddim:.0f} s, diffusers {20 * their_ddim:.0f} s")
    record(
        "sample_throughput",
        {"batch": args.batch, "evals_per_s": rates, "ddim50_s": {"ddpm_utils": ours_ddim, "diffusers": their_ddim}},
    )


if __name__ == "__main__":
    main()
