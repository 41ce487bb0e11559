"""Quality per CPU-minute with the Rao-Blackwellised target (`TrainConfig(posterior_target=True)`) vs plain L_simple.

    python benchmarks/posterior_target.py [--minutes 3] [--repeats 2] [--n 1000]

The default digits recipe (`Trainer`, `DIGITS`) is trained for `--minutes`, once with Algorithm 1's
sampled ε as the target and once with E[ε | x_t] over the training set, alternating, `--repeats`
times each (on this VM, runs minutes apart differ in speed by up to ±10%, so alternating keeps the
comparison fair). Each EMA network is scored by FD_digits at 50 DDIM steps (η = 0 and η = 1, `--n`
samples, sampling seed 7) and by the nearest-neighbour copying check (fraction of samples closer to a
training digit than the 5% quantile of held-out digits: about 0.05 is normal, far more means copying).
About 4.3 minutes per 3-minute run with the defaults.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import ours_digits, record
from quality_per_minute import SAMPLERS, train_for

import ddpm_utils as du

TARGETS = {"sampled ε (Alg. 1)": False, "E[ε | x_t]": True}
KEYS = ("ddim50_eta0", "ddim50_eta1")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, nargs="+", default=[3.0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--n", type=int, default=1000, help="samples per score")
    args = parser.parse_args()
    if args.repeats < 1 or args.n < 2 or min(args.minutes) <= 0:
        parser.error("--repeats must be >= 1, --n >= 2 and every --minutes positive")
    data = du.load_digits("train")
    rows = []
    for minutes in args.minutes:
        for repeat in range(args.repeats):
            for name, posterior in TARGETS.items():
                start = time.perf_counter()
                trainer = train_for(ours_digits, minutes, data, posterior_target=posterior)
                row = {"minutes": minutes, "target": name, "repeat": repeat, "steps": trainer.step}
                row["train_s"] = time.perf_counter() - start
                ema = trainer.ema.eval()
                for key in KEYS:
                    x = SAMPLERS[key](ema, trainer.schedule, (args.n, 1, 8, 8), torch.Generator().manual_seed(7))
                    report = du.metrics.evaluate_samples(x)  # FD and the nearest-neighbour check
                    row[key], row[f"too_close_{key}"] = report["fd"], report["too_close"]
                rows.append(row)
                print(row, flush=True)
    floor = du.metrics.reference_scores(args.n)
    print(f"\nFD_digits at {args.n} samples (lower is better); floor {floor['real_vs_real']:.1f}", end="")
    print(f" ± {floor['real_vs_real_sd']:.1f}")
    header = ("minutes", "target", "runs", "steps", "DDIM-50 η=0", "DDIM-50 η=1", "too close")
    print("{:>7} {:<20} {:>4} {:>6} {:>12} {:>12} {:>10}".format(*header))
    for minutes in args.minutes:
        for name in TARGETS:
            mine = [r for r in rows if r["minutes"] == minutes and r["target"] == name]
            steps, fd0, fd1, close = (
                statistics.mean(r[k] for r in mine) for k in ("steps", *KEYS, "too_close_ddim50_eta0")
            )
            print(f"{minutes:7g} {name:<20} {len(mine):4d} {steps:6.0f} {fd0:12.1f} {fd1:12.1f} {close:10.3f}")
    record("posterior_target", {"rows": rows, "n": args.n, "floor": floor})


if __name__ == "__main__":
    main()
