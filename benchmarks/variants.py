"""The shipped variants against their targets:

* digits-cond: with classifier-free guidance at each w, 1,000 samples (100 per class): the share the shipped digits
  classifier assigns to the requested label; at w = 0, with labels drawn from the training digits' class mix,
  FD_digits against the test split beside the unconditional shipped model's, over seeds.
* digits-hybrid (learned variances, a mean that knows the pixel levels) and digits-hybrid-eps (learned variances, ε̂ as
  in Improved DDPM): the test-set bound in bits/dim (every test digit, one x_t per t) beside the L_simple model's with
  σ² = β̃, and FD_digits of the three with ancestral sampling on 1,000 and on 50 respaced steps.

    python benchmarks/variants.py [--seeds 3] [--n 1000] [--skip-bound] [--skip-1000]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
from common import record

import ddpm_utils as du
from ddpm_utils.conditional import ClassifierFreeGuidance
from ddpm_utils.learned_variance import FixedVariance, ddpm_sample_learned, nll_bound_learned


def stats(values):
    v = torch.tensor(values, dtype=torch.float64)
    return {"mean": v.mean().item(), "sd": v.std().item() if len(v) > 1 else math.nan, "each": v.tolist()}


def conditional(args) -> dict:
    model, schedule = du.load_pretrained("digits-cond")
    plain, _ = du.load_pretrained("digits")
    classifier = du.metrics.digits_classifier()
    out = {"sampler": "ddim, 50 steps", "n": args.n}
    requested = torch.arange(10).repeat_interleave(args.n // 10)
    for w in args.weights:
        agree = []
        for seed in range(args.seeds):
            g = torch.Generator().manual_seed(seed)
            xs = du.ddim_sample(
                ClassifierFreeGuidance(model, requested, w), schedule, (len(requested), 1, 8, 8), 50, generator=g
            )
            agree.append((classifier(xs.clamp(-1, 1)).argmax(1) == requested).double().mean().item())
        out[f"agree_w{w:g}"] = stats(agree)
        print(f"w = {w:g}: label agreement {out[f'agree_w{w:g}']}", flush=True)
    _, train_y = du.load_digits("train", return_labels=True)
    fd_cond, fd_plain = [], []
    for seed in range(args.seeds):
        g = torch.Generator().manual_seed(1000 + seed)
        labels = train_y[torch.randint(0, len(train_y), (args.n,), generator=g)]
        xs = du.ddim_sample(ClassifierFreeGuidance(model, labels, 0.0), schedule, (args.n, 1, 8, 8), 50, generator=g)
        fd_cond.append(du.metrics.evaluate_samples(xs)["fd"])
        g = torch.Generator().manual_seed(1000 + seed)
        xs = du.ddim_sample(plain, schedule, (args.n, 1, 8, 8), 50, generator=g)
        fd_plain.append(du.metrics.evaluate_samples(xs)["fd"])
    out["fd_cond_w0"], out["fd_unconditional"] = stats(fd_cond), stats(fd_plain)
    out["fd_sampling_sd"] = du.metrics.reference_scores(args.n)["sampling_sd"]
    print({k: out[k] for k in ("fd_cond_w0", "fd_unconditional", "fd_sampling_sd")}, flush=True)
    return out


def hybrid(args) -> dict:
    model, schedule = du.load_pretrained("digits-hybrid")
    eps_model, _ = du.load_pretrained("digits-hybrid-eps")
    plain, _ = du.load_pretrained("digits")
    test = du.load_digits("test")
    out = {}
    nets = (("hybrid", model), ("hybrid_eps", eps_model), ("simple_beta_tilde", FixedVariance(plain, 0.0)))
    if not args.skip_bound:
        for name, net in nets:
            with torch.no_grad():
                b = nll_bound_learned(net, schedule, test, du.DIGITS_LEVELS, torch.Generator().manual_seed(0))
            out[f"bpd_{name}"] = du.bits_per_dim(b["total"], test).mean().item()
            print(f"bound, {name}: {out[f'bpd_{name}']:.3f} bits/dim", flush=True)
    for steps in [50] if args.skip_1000 else [50, None]:
        for name, net in nets:
            fds = []
            for seed in range(args.seeds):
                g = torch.Generator().manual_seed(2000 + seed)
                xs = ddpm_sample_learned(net, schedule, (args.n, 1, 8, 8), steps, generator=g)
                fds.append(du.metrics.evaluate_samples(xs)["fd"])
            out[f"fd_{name}_{steps or 1000}"] = stats(fds)
            print(f"FD, {name}, {steps or 1000} steps: {out[f'fd_{name}_{steps or 1000}']}", flush=True)
    out["fd_sampling_sd"] = du.metrics.reference_scores(args.n)["sampling_sd"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("which", choices=["cond", "hybrid", "both"], nargs="?", default="both")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--weights", type=float, nargs="+", default=[2.0], help="cond: guidance weights for the label share")
    p.add_argument("--skip-bound", action="store_true")
    p.add_argument("--skip-1000", action="store_true", help="hybrid: FD at 50 respaced steps only")
    args = p.parse_args()
    torch.set_grad_enabled(False)
    start = time.perf_counter()
    report = {}
    if args.which in ("cond", "both"):
        report["cond"] = conditional(args)
    if args.which in ("hybrid", "both"):
        report["hybrid"] = hybrid(args)
    report["seconds"] = time.perf_counter() - start
    print(json.dumps(report, indent=1))
    record("variants", {"args": vars(args), **report})


if __name__ == "__main__":
    main()
