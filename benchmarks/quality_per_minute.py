"""Quality per CPU-minute: the default digits recipe with ddpm_utils' UNet vs diffusers' UNet2DModel.

    python benchmarks/quality_per_minute.py [--minutes 3 10] [--n 1000] [--ddpm-n 300]

Both networks (the same 0.70M architecture) are trained by the same loop, `ddpm_utils.Trainer`
with its default `TrainConfig`, for the same wall-clock minutes, one after the other on this
machine (not concurrently: two cores). Each EMA network is then scored by FD_digits at 50 DDIM
steps (η = 0 and η = 1, `--n` samples) and at 1,000 DDPM steps (`--ddpm-n` samples), next to the
real-vs-real floor (mean ± spread over subsets) for the same number of images. So the difference
between the two rows is the networks' speed and architecture details, not the recipe.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import call, diffusers_digits, floor_text, ours_digits, record

import ddpm_utils as du


class Unwrap(torch.nn.Module):
    """diffusers returns an output object; the trainer and samplers want the tensor."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, t):
        return call(self.model, x, t)


def train_for(build, minutes: float, data: torch.Tensor, **config) -> du.Trainer:
    """The default recipe (`Trainer`, `TrainConfig` with `config`'s changes) on `build()`'s network for `minutes`."""
    torch.manual_seed(0)
    trainer = du.Trainer(build(), data, du.TrainConfig(max_steps=10**6, **config))
    return trainer.train(max_minutes=minutes, progress=False)


def score(model, schedule, sampler, n, seed=7):
    g = torch.Generator().manual_seed(seed)
    x = sampler(model, schedule, (n, 1, 8, 8), g)
    return du.metrics.evaluate_samples(x)["fd"]


SAMPLERS = {
    "ddim50_eta0": lambda m, s, shape, g: du.ddim_sample(m, s, shape, 50, eta=0.0, generator=g),
    "ddim50_eta1": lambda m, s, shape, g: du.ddim_sample(m, s, shape, 50, eta=1.0, generator=g),
    "ddpm1000": lambda m, s, shape, g: du.ddpm_sample(m, s, shape, generator=g),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, nargs="+", default=[3.0])
    parser.add_argument("--n", type=int, default=1000, help="samples for the DDIM scores")
    parser.add_argument("--ddpm-n", type=int, default=300, help="samples for the DDPM-1000 score (0: skip)")
    args = parser.parse_args()
    data = du.load_digits("train")
    rows = []
    for minutes in args.minutes:
        for name, build in (("ddpm_utils", ours_digits), ("diffusers", lambda: Unwrap(diffusers_digits()))):
            start = time.perf_counter()
            trainer = train_for(build, minutes, data)
            row = {"minutes": minutes, "network": name, "steps": trainer.step, "train_s": time.perf_counter() - start}
            ema = trainer.ema.eval()
            for key, sampler in SAMPLERS.items():
                n = args.ddpm_n if key == "ddpm1000" else args.n
                if n:
                    row[key] = score(ema, trainer.schedule, sampler, n)
            rows.append(row)
            print(row, flush=True)
    floors = {n: du.metrics.reference_scores(n) for n in {args.n, args.ddpm_n} if n}
    print("\nFD_digits (lower is better)")
    for n, ref in sorted(floors.items()):
        print(f"  at {n} images: {floor_text(ref)}")
    print(f"{'minutes':>7} {'network':<11} {'steps':>6} {'DDIM-50 η=0':>12} {'DDIM-50 η=1':>12} {'DDPM-1000':>10}")
    for r in rows:
        print(
            f"{r['minutes']:7.1f} {r['network']:<11} {r['steps']:6d} {r.get('ddim50_eta0', float('nan')):12.1f} "
            f"{r.get('ddim50_eta1', float('nan')):12.1f} {r.get('ddpm1000', float('nan')):10.1f}"
        )
    record("quality_per_minute", {"rows": rows, "n": args.n, "ddpm_n": args.ddpm_n, "floors": floors})


if __name__ == "__main__":
    main()
