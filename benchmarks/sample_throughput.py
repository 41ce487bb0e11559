"""CPU sampling throughput: ddpm_utils vs diffusers at the same architecture.

    python benchmarks/sample_throughput.py [--batch 1000] [--bf16]

Measures network evaluations per second in eval mode (the cost of one sampler step per image) — for ours also
the shipped model exactly as `load_pretrained` gives it, i.e. what `sample` runs —
and end-to-end DDIM sampling (50 steps) of a batch with each library's own sampler:
`ddpm_utils.ddim_sample` and diffusers' `DDIMScheduler` loop. 1000-step DDPM time is 20x the
50-step figure (same network cost per step). Outputs are checked to be finite.

--bf16 adds both networks in bfloat16 (ours through `extras.LowPrecision`, the sampler in float32;
diffusers' cast with `.to(torch.bfloat16)` in its faster, contiguous layout, its scheduler fed float32)
and two checks that bfloat16 is equally correct: the relative error of ε̂ against float64 for the two
networks holding the same weights (diffusers' initialisation copied into ours, with its embedding),
and FD_digits of 1,000 DDIM-50 samples from the shipped model in float32 and in bfloat16.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time

import torch
from common import alternate, call, diffusers_digits, ours_digits, record, timed

import ddpm_utils as du


@torch.no_grad()
def diffusers_ddim(model, batch, steps, g, dtype=torch.float32):
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(num_train_timesteps=1000)
    sched.set_timesteps(steps)
    x = torch.randn(batch, 1, 8, 8, generator=g)
    for t in sched.timesteps:
        x = sched.step(model(x.to(dtype), t).sample.float(), t, x).prev_sample
    return x


@torch.no_grad()
def bf16_checks() -> dict:
    """Is bfloat16 equally correct? ε̂'s error against float64, both networks on the same weights and inputs; and
    FD_digits (plain, class-matched) of the shipped model's DDIM-50 samples in float32 and in bfloat16."""
    from common import DiffusersEmbeddingUNet, ours_from_diffusers

    from ddpm_utils.metrics import evaluate_samples

    torch.manual_seed(0)
    theirs = diffusers_digits().eval()
    ours = ours_from_diffusers(theirs, DiffusersEmbeddingUNet(dataclasses.replace(du.DIGITS, dropout=0.0))).eval()
    x, t = torch.randn(256, 1, 8, 8), torch.randint(0, 1000, (256,))
    ref = call(copy.deepcopy(theirs).double(), x.double(), t)
    low = {
        "diffusers": call(copy.deepcopy(theirs).to(torch.bfloat16), x.bfloat16(), t).double(),
        "ddpm_utils": du.extras.LowPrecision(ours)(x, t).double(),
    }
    errors = {name: ((out - ref).norm() / ref.norm()).item() for name, out in low.items()}
    model, schedule = du.load_pretrained("digits")
    scores = {}
    for name, net in (("float32", model), ("bfloat16", du.extras.LowPrecision(model))):
        samples = du.ddim_sample(net, schedule, (1000, 1, 8, 8), 50, generator=torch.Generator().manual_seed(7))
        report = evaluate_samples(samples)
        scores[name] = {"fd": report["fd"], "fd_class_matched": report["fd_class_matched"]}
    return {"eps_relative_error_bf16": errors, "shipped_ddim50_seed7": scores}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bf16", action="store_true", help="also both networks in bfloat16, with correctness checks")
    args = parser.parse_args()
    torch.manual_seed(0)
    ours, theirs = ours_digits(dropout=0.0).eval(), diffusers_digits().eval()
    shipped = du.load_pretrained("digits")[0].to(memory_format=torch.channels_last)  # as `sample` runs it
    x = torch.randn(args.batch, 1, 8, 8)
    t = torch.randint(0, 1000, (args.batch,))
    bf16 = torch.bfloat16
    nets = {
        "diffusers UNet2DModel": (theirs, torch.float32),
        "ddpm_utils UNet": (ours, torch.float32),
        "ddpm_utils, shipped as loaded": (shipped, torch.float32),  # what `sample digits` runs
    }
    if args.bf16:
        nets["diffusers UNet2DModel, bf16"] = (copy.deepcopy(theirs).to(bf16), bf16)
        nets["ddpm_utils UNet, bf16"] = (du.extras.LowPrecision(ours), torch.float32)  # casts x itself

    def evals(model, dtype):
        with torch.no_grad():
            xd = x.to(dtype)
            return args.batch * 5 / timed(lambda: call(model, xd, t), 5)

    for model, dtype in nets.values():  # warm-up
        evals(model, dtype)
    rates = alternate({name: (lambda m=m, d=d: evals(m, d)) for name, (m, d) in nets.items()}, args.rounds)
    schedule = du.make_schedule("linear", 1000)
    ddim = {}
    for name, (model, dtype) in nets.items():
        g = torch.Generator().manual_seed(0)
        start = time.perf_counter()
        if name.startswith("diffusers"):
            out = diffusers_ddim(model, args.batch, 50, g, dtype)
        else:
            out = du.ddim_sample(model, schedule, (args.batch, 1, 8, 8), 50, generator=g)
        ddim[name] = time.perf_counter() - start
        assert torch.isfinite(out).all() and out.dtype == torch.float32, name
    base = rates["diffusers UNet2DModel"]
    print(f"sampling, batch {args.batch}, {torch.get_num_threads()} threads")
    for name, r in rates.items():
        print(f"  network evaluations  {name:<28} {r:8.1f} images/s   {r / base:5.2f}x diffusers float32")
    for name, seconds in ddim.items():
        print(
            f"  DDIM 50 steps, {args.batch} digits, {name:<28} {seconds:5.1f} s "
            f"({ddim['diffusers UNet2DModel'] / seconds:.2f}x); DDPM 1000 steps (20x) {20 * seconds:.0f} s"
        )
    payload = {"batch": args.batch, "evals_per_s": rates, "ddim50_s": ddim}
    if args.bf16:
        ours_bf16, their_bf16 = "ddpm_utils UNet, bf16", "diffusers UNet2DModel, bf16"
        print(
            f"  bf16 vs bf16: evaluations {rates[ours_bf16] / rates[their_bf16]:.2f}x, "
            f"DDIM-50 {ddim[their_bf16] / ddim[ours_bf16]:.2f}x"
        )
        payload["checks"] = checks = bf16_checks()
        err = checks["eps_relative_error_bf16"]
        print(
            f"  ε̂ error against float64, same weights, in bfloat16: diffusers {err['diffusers']:.4f}, "
            f"ddpm_utils {err['ddpm_utils']:.4f}"
        )
        for name, score in checks["shipped_ddim50_seed7"].items():
            print(
                f"  shipped model, 1,000 DDIM-50 samples (seed 7), network in {name:<8}: FD_digits {score['fd']:.1f}, "
                f"class-matched {score['fd_class_matched']:.1f}"
            )
    record("sample_throughput", payload)


if __name__ == "__main__":
    main()
