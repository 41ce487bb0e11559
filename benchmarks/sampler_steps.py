"""Quality against sampling steps: DDIM (η = 0) and DPM-Solver++(2M), on an exact oracle and on the digits.

    python benchmarks/sampler_steps.py [--minutes 3] [--recipes default posterior+muon] [--n 1000] [--seeds 7 8 9]

1. Oracle: one 2-D Gaussian with its optimal denoiser, whose probability-flow ODE has a closed-form end
   point (`GaussianMixture.ode_sample`). For each sampler and number of steps: the RMS distance to that
   exact end point (discretisation error alone) and the samples' spread (true value 0.40).
2. Digits: the shipped checkpoint and networks trained for `--minutes` (0: skip) by the default recipe
   and by the fastest one of benchmarks/training_recipes.py (E[ε | x_t] target + Muon), each sampled
   from the same starting noise by every sampler; FD_digits of `--n` samples as mean ± sd over
   `--seeds` (a sampling seed moves FD by about 2 at n = 1,000, so one seed cannot rank samplers).
   DDIM at 250 steps stands for the exact ODE; "dpm-solver (t-even)" is the same solver on DDIM's
   evenly spaced timesteps instead of log-SNR-even ones.

Runs serially on purpose (two cores). About 17 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import floor_text, ours_digits, record
from quality_per_minute import train_for

import ddpm_utils as du

SAMPLERS = {  # name -> (steps, sampler(model, schedule, x_T))
    **{
        f"ddim-{k}": (k, lambda m, s, x, k=k: du.ddim_sample(m, s, num_inference_steps=k, x_T=x))
        for k in (10, 20, 50, 250)
    },
    **{
        f"dpm-solver-{k}": (k, lambda m, s, x, k=k: du.dpm_solver_sample(m, s, num_inference_steps=k, x_T=x))
        for k in (10, 20)
    },
    "dpm-solver-20 (t-even)": (
        20,
        lambda m, s, x: du.dpm_solver_sample(m, s, num_inference_steps=20, spacing="uniform", x_T=x),
    ),
}


RECIPES = {"default": {}, "posterior+muon": {"posterior_target": True, "optimizer": "muon"}}


def oracle_rows() -> list[dict]:
    gauss = du.GaussianMixture([1.0], [[0.5, -0.3]], [0.4])
    schedule = du.make_schedule("linear", 1000)
    x_T = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = gauss.ode_sample(schedule, x_T)
    rows = []
    for name, (steps, sampler) in SAMPLERS.items():
        x = sampler(gauss.denoiser(schedule), schedule, x_T)
        rms = (x - exact).pow(2).mean().sqrt().item()
        rows.append({"sampler": name, "steps": steps, "rms_error": rms, "std": x.std(0).mean().item()})
    return rows


def digits_rows(model, schedule, label: str, n: int, seeds) -> list[dict]:
    rows = []
    for name, (steps, sampler) in SAMPLERS.items():
        start = time.perf_counter()
        reports = []
        for seed in seeds:
            x_T = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
            reports.append(du.metrics.evaluate_samples(sampler(model, schedule, x_T)))
        fd = du.metrics.summarise_reports(reports)
        row = {"model": label, "sampler": name, "steps": steps, "fd": fd["fd_each"], "fd_mean": fd["fd"]}
        rows.append({**row, "fd_sd": fd["fd_sd"], "seconds": time.perf_counter() - start})
        print(rows[-1], flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=3.0, help="train each recipe this long (0: skip)")
    parser.add_argument("--recipes", nargs="*", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    args = parser.parse_args()

    oracle = oracle_rows()
    print("Oracle: one Gaussian, exact ODE end point; RMS error and spread (true spread 0.40)")
    print(f"{'sampler':<24} {'steps':>5} {'RMS error':>10} {'spread':>7}")
    for r in oracle:
        print(f"{r['sampler']:<24} {r['steps']:5d} {r['rms_error']:10.2e} {r['std']:7.3f}")

    models = []
    for recipe in args.recipes if args.minutes > 0 else []:
        trainer = train_for(ours_digits, args.minutes, du.load_digits("train"), **RECIPES[recipe])
        label = f"{recipe}, {args.minutes:g} min ({trainer.step} steps)"
        models.append((label, trainer.ema.eval(), trainer.schedule))
    shipped, schedule = du.load_pretrained("digits")
    models.append(("shipped checkpoint", shipped, schedule))
    rows = [row for label, model, sched in models for row in digits_rows(model, sched, label, args.n, args.seeds)]

    ref = du.metrics.reference_scores(args.n)
    print(f"\nFD_digits at {args.n} images, mean ± sd over seeds {args.seeds}; {floor_text(ref)}")
    print(f"{'model':<40} {'sampler':<24} {'steps':>5} {'FD':>12}")
    for r in rows:
        print(f"{r['model']:<40} {r['sampler']:<24} {r['steps']:5d} {r['fd_mean']:6.1f} ± {r['fd_sd']:3.1f}")
    record("sampler_steps", {"oracle": oracle, "rows": rows, "n": args.n, "seeds": args.seeds, "floor": ref})


if __name__ == "__main__":
    main()
