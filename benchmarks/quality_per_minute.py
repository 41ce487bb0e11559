"""Quality per CPU-minute: the default digits recipe with ddpm_utils' UNet vs diffusers' UNet2DModel.

    python benchmarks/quality_per_minute.py [--minutes 3 10] [--n 1000] [--ddpm-n 300]
                                            [--guidance 1 1.25] [--guidance-interval 0 500]
                                            [--seeds 7 8 9]

Both networks (the same 0.70M architecture) are trained by the same loop, `ddpm_utils.Trainer`
with its default `TrainConfig`, for the same wall-clock minutes, one after the other on this
machine (not concurrently: two cores). Each EMA network is then scored by FD_digits at 50 DDIM
steps (η = 0 and η = 1, `--n` samples) and at 1,000 DDPM steps (`--ddpm-n` samples), next to the
real-vs-real floor (mean ± spread over subsets) for the same number of images. So the difference
between the two rows is the networks' speed and architecture details, not the recipe.

With `--guidance w ...`, each sampler also runs on `du.Guided(ema, gaussian, w)`: the network steered
away from the optimal denoiser of the training digits' Gaussian fit (w = 1: the network alone), for
both networks alike; `--guidance-interval LO HI` guides only at timesteps LO..HI.
With several `--seeds` each score is the mean over that many sample sets.
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


def score(model, schedule, sampler, n, seeds=(7,)):
    """FD_digits of `n` samples, mean over one sample set per seed."""
    fds = [
        du.metrics.evaluate_samples(sampler(model, schedule, (n, 1, 8, 8), torch.Generator().manual_seed(s)))["fd"]
        for s in seeds
    ]
    return sum(fds) / len(fds)


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
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0], help="guidance weights (1: none)")
    parser.add_argument("--guidance-interval", type=int, nargs=2, default=None, help="guide only at these t")
    parser.add_argument("--seeds", type=int, nargs="+", default=[7], help="sampling seeds; scores are means")
    args = parser.parse_args()
    data = du.load_digits("train")
    gaussian = du.GaussianData.fit(data)
    rows = []
    for minutes in args.minutes:
        for name, build in (("ddpm_utils", ours_digits), ("diffusers", lambda: Unwrap(diffusers_digits()))):
            start = time.perf_counter()
            trainer = train_for(build, minutes, data)
            row = {"minutes": minutes, "network": name, "steps": trainer.step, "train_s": time.perf_counter() - start}
            ema = trainer.ema.eval()
            for w in args.guidance:
                model = du.Guided(ema, gaussian.denoiser(trainer.schedule), w, interval=args.guidance_interval)
                for key, sampler in SAMPLERS.items():
                    n = args.ddpm_n if key == "ddpm1000" else args.n
                    if n:
                        row[key if w == 1 else f"{key}_w{w:g}"] = score(model, trainer.schedule, sampler, n, args.seeds)
            rows.append(row)
            print(row, flush=True)
    floors = {n: du.metrics.reference_scores(n) for n in {args.n, args.ddpm_n} if n}
    print("\nFD_digits (lower is better)")
    for n, ref in sorted(floors.items()):
        print(f"  at {n} images: {floor_text(ref)}")
    where = "" if args.guidance_interval is None else f", at t in {args.guidance_interval}"
    print(f"sampling seeds {args.seeds}; w: guidance weight (1: the network alone){where}")
    head = f"{'DDIM-50 η=0':>12} {'DDIM-50 η=1':>12} {'DDPM-1000':>10}"
    print(f"{'minutes':>7} {'network':<11} {'steps':>6} {'w':>5} {head}")
    for r in rows:
        for w in args.guidance:
            tail = "" if w == 1 else f"_w{w:g}"
            cells = (r.get(key + tail, float("nan")) for key in SAMPLERS)
            print(
                f"{r['minutes']:7.1f} {r['network']:<11} {r['steps']:6d} {w:5.2f} "
                + "".join(f"{c:{width}.1f}" for c, width in zip(cells, (13, 13, 11)))
            )
    record(
        "quality_per_minute",
        {
            "rows": rows,
            "n": args.n,
            "ddpm_n": args.ddpm_n,
            "floors": floors,
            "guidance": args.guidance,
            "guidance_interval": args.guidance_interval,
            "seeds": args.seeds,
        },
    )


if __name__ == "__main__":
    main()
