"""Quality per CPU-minute of training recipes on the default digits network: Algorithm 1 as the course
teaches it, the Rao-Blackwellised target E[ε | x_t] (`TrainConfig(posterior_target=True)`), and that
target with the Muon optimiser on the hidden weights (`optimizer="muon"`).

    python benchmarks/training_recipes.py [--minutes 3] [--repeats 2] [--n 1000] [--recipes ...]
                                          [--guidance 1 1.5:100-700] [--seeds 7 8 9]

The default digits network (`Trainer`, `DIGITS`) is trained for `--minutes` with each recipe in turn,
`--repeats` times, alternating (on this VM, runs minutes apart differ in speed by up to ±10%, so
alternating keeps the comparison fair). Each EMA network is scored by FD_digits at 50 DDIM steps (η = 0 and η = 1, `--n`
samples, sampling seed 7) and by the nearest-neighbour copying check (fraction of samples closer to a
training digit than the 5% quantile of held-out digits: about 0.05 is normal, far more means copying).
About 4.3 minutes per 3-minute run: 26 minutes with the defaults (three recipes, two runs each).
`--guidance` and `--seeds` work as in `quality_per_minute.py` (guidance by the training digits' Gaussian
fit, `w` or `w:LO-HI`; scores averaged over the seeds, the copying check from the first seed).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import floor_text, ours_digits, record
from quality_per_minute import SAMPLERS, guidance_setting, parse_guidance, suffix, train_for

import ddpm_utils as du

RECIPES = {  # name -> TrainConfig changes
    "alg1": {},
    "posterior": {"posterior_target": True},
    "posterior+muon": {"posterior_target": True, "optimizer": "muon"},
}
KEYS = ("ddim50_eta0", "ddim50_eta1")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, nargs="+", default=[3.0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--n", type=int, default=1000, help="samples per score")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--guidance", type=guidance_setting, nargs="+", default=["1"], help="w or w:LO-HI")
    parser.add_argument("--seeds", type=int, nargs="+", default=[7], help="sampling seeds; scores are means")
    args = parser.parse_args()
    if args.repeats < 1 or args.n < 2 or min(args.minutes) <= 0:
        parser.error("--repeats must be >= 1, --n >= 2 and every --minutes positive")
    data = du.load_digits("train")
    gaussian = du.GaussianData.fit(data)
    rows = []
    for minutes in args.minutes:
        for repeat in range(args.repeats):
            for name in args.recipes:
                start = time.perf_counter()
                trainer = train_for(ours_digits, minutes, data, **RECIPES[name])
                row = {"minutes": minutes, "recipe": name, "repeat": repeat, "steps": trainer.step}
                row["train_s"] = time.perf_counter() - start
                ema = trainer.ema.eval()
                for setting in args.guidance:
                    w, interval = parse_guidance(setting)
                    model = du.Guided(ema, gaussian.denoiser(trainer.schedule), w, interval=interval)
                    for key in KEYS:
                        reports = [  # FD and the nearest-neighbour check, one sample set per seed
                            du.metrics.evaluate_samples(
                                SAMPLERS[key][1](
                                    model, trainer.schedule, (args.n, 1, 8, 8), torch.Generator().manual_seed(s)
                                )
                            )
                            for s in args.seeds
                        ]
                        name_w = key + suffix(setting)
                        row[name_w] = statistics.mean(r["fd"] for r in reports)
                        row[f"too_close_{name_w}"] = reports[0]["too_close"]
                rows.append(row)
                print(row, flush=True)
    floor = du.metrics.reference_scores(args.n)
    print(f"\nFD_digits at {args.n} samples (lower is better); {floor_text(floor)}")
    print(f"sampling seeds {args.seeds}; w: guidance weight (1: the network alone), :LO-HI only at those t")
    header = ("minutes", "recipe", "runs", "steps", "w", "DDIM-50 η=0", "DDIM-50 η=1", "too close")
    print("{:>7} {:<20} {:>4} {:>6} {:>12} {:>12} {:>12} {:>10}".format(*header))
    for minutes in args.minutes:
        for name in args.recipes:
            mine = [r for r in rows if r["minutes"] == minutes and r["recipe"] == name]
            for setting in args.guidance:
                tail = suffix(setting)
                keys = ("steps", *(k + tail for k in KEYS), f"too_close_ddim50_eta0{tail}")
                steps, fd0, fd1, close = (statistics.mean(r[k] for r in mine) for k in keys)
                print(
                    f"{minutes:7g} {name:<20} {len(mine):4d} {steps:6.0f} {setting:>12} "
                    f"{fd0:12.1f} {fd1:12.1f} {close:10.3f}"
                )
    record(
        "training_recipes",
        {"rows": rows, "n": args.n, "floor": floor, "guidance": args.guidance, "seeds": args.seeds},
    )


if __name__ == "__main__":
    main()
