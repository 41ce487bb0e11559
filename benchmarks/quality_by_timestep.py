"""Where a 3-minute training run falls short, by timestep (why the 3-minute quality aim is missed).

    python benchmarks/quality_by_timestep.py [--minutes 3] [--n 1000] [--ks 100 250 400 600 800] [--powers 1.5 2]

1. Trains the default digits recipe (`Trainer`, default `TrainConfig`, `DIGITS`) for `--minutes`.
2. Samples with *hybrid* networks that answer with the shipped checkpoint (the same architecture and
   schedule, trained 3,500 steps) for t < k and with the short run for t >= k, and the reverse, and
   scores each by FD_digits (50 DDIM steps, η = 0, `--n` samples, the same sampling seed in every row,
   so rows differ only in the network). If "long run below k" recovers the long run's score, the short
   run is already as good as the long one at every t >= k, and its shortfall lies below k.
3. Retrains with t drawn as ⌊T u^p⌋, u ~ U(0, 1), for each p in `--powers` (p > 1 puts more of every
   batch at low t), to tell "too few low-t examples" from "too few optimiser steps".

Runs serially on purpose (two cores). About 13 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import floor_text, ours_digits, record
from quality_per_minute import SAMPLERS, score, train_for

import ddpm_utils as du
from ddpm_utils import training


class Hybrid(torch.nn.Module):
    """`low(x, t)` where t < k, else `high(x, t)`."""

    def __init__(self, low: torch.nn.Module, high: torch.nn.Module, k: int):
        super().__init__()
        self.low, self.high, self.k = low, high, k

    def forward(self, x, t):
        below = t < self.k
        if below.all():
            return self.low(x, t)
        out = self.high(x, t)
        return torch.where(below[:, None, None, None], self.low(x, t), out) if below.any() else out


def power_draw_batch(power: float):
    """`training.draw_batch` with t = ⌊T u^power⌋ instead of uniform t (power = 1 is uniform)."""

    def draw_batch(data, batch_size, num_steps, generator):
        index = torch.randint(0, len(data), (batch_size,), generator=generator)
        u = torch.rand(batch_size, generator=generator)
        t = (num_steps * u.pow(power)).long().clamp(max=num_steps - 1)
        noise = torch.randn((batch_size, *data.shape[1:]), generator=generator, dtype=data.dtype)
        return data[index], t, noise

    return draw_batch


def train(minutes: float, power: float = 1.0) -> du.Trainer:
    uniform = training.draw_batch
    training.draw_batch = power_draw_batch(power) if power != 1.0 else uniform
    try:
        return train_for(ours_digits, minutes, du.load_digits("train"))
    finally:
        training.draw_batch = uniform


def fd(model, schedule, n: int) -> float:
    return score(model, schedule, SAMPLERS["ddim50_eta0"][1], n)  # sampling seed 7 in every row


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--ks", type=int, nargs="+", default=[100, 250, 400, 600, 800])
    parser.add_argument("--powers", type=float, nargs="*", default=[1.5, 2.0])
    args = parser.parse_args()

    start = time.perf_counter()
    short = train(args.minutes)
    train_s = time.perf_counter() - start
    long, schedule = du.load_pretrained("digits")
    short_net = short.ema.eval()
    ref = du.metrics.reference_scores(args.n)
    rows = {"short run alone": fd(short_net, schedule, args.n), "long run alone": fd(long, schedule, args.n)}
    for k in args.ks:
        rows[f"long for t < {k}, short above"] = fd(Hybrid(long, short_net, k), schedule, args.n)
        rows[f"short for t < {k}, long above"] = fd(Hybrid(short_net, long, k), schedule, args.n)
    powers = {}
    for p in args.powers:
        trainer = train(args.minutes, p)
        powers[p] = {"steps": trainer.step, "fd": fd(trainer.ema.eval(), trainer.schedule, args.n)}

    print(f"short run: default recipe, {args.minutes:g} min, {short.step} steps; long run: shipped checkpoint")
    print(f"FD_digits, DDIM-50 η=0, {args.n} samples ({floor_text(ref)})")
    for name, value in rows.items():
        print(f"  {name:<34} {value:6.1f}")
    for p, r in powers.items():
        print(f"  t = ⌊T u^{p:g}⌋, {args.minutes:g} min, {r['steps']} steps{'':<8} {r['fd']:6.1f}")
    record(
        "quality_by_timestep",
        {
            "minutes": args.minutes,
            "steps": short.step,
            "train_s": train_s,
            "n": args.n,
            "floor": ref,
            "rows": rows,
            "powers": {str(p): r for p, r in powers.items()},
        },
    )


if __name__ == "__main__":
    main()
