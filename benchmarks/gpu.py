"""GPU throughput at the DDPM CIFAR-10 configuration (35.7M parameters), ddpm_utils vs diffusers.

    python benchmarks/gpu.py [--batch 128]

Random data (throughput only). bf16 autocast, channels-last; eager and torch.compile for both.
Reports training images/s, achieved TFLOP/s (37.3 GFLOP per training image, forward + backward,
from PyTorch's FLOP counter, measured here; the issue's 36.3 leaves out the 1.0 GFLOP of attention
matmuls the counter misses inside fused attention kernels — tests/test_unet.py shows both networks do
exactly 37.3 when counted in full), and one network evaluation on a batch of 1,024.
Needs CUDA for real figures; `--device cpu` with tiny counts only checks that the script runs
(tests/test_benchmarks.py does that, without recording anything).
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from common import call, diffusers_cifar, flops_per_training_image, record

import ddpm_utils as du


def bench(model, batch, compile_, device, steps=30, warmup=5, eval_batch=1024, eval_reps=10):
    """(training images/s, seconds per network evaluation on `eval_batch` images)."""
    model = model.to(device).to(memory_format=torch.channels_last)
    net = torch.compile(model) if compile_ else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    t = torch.randint(0, 1000, (batch,), device=device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = (call(net, x, t).float() - x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    train_rate = batch * steps / (time.perf_counter() - start)
    xe = torch.randn(eval_batch, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    te = torch.randint(0, 1000, (eval_batch,), device=device)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
        for _ in range(min(3, warmup)):
            net(xe, te)
        sync()
        start = time.perf_counter()
        for _ in range(eval_reps):
            out = call(net, xe, te)
        sync()
    if not torch.isfinite(out).all():
        raise FloatingPointError("the network produced non-finite outputs under bf16 autocast")
    return train_rate, (time.perf_counter() - start) / eval_reps


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation happens here)")
    parser.add_argument("--eval-batch", type=int, default=1024)
    parser.add_argument("--eval-reps", type=int, default=10)
    parser.add_argument("--no-compile", action="store_true", help="eager only")
    parser.add_argument("--device", default="cuda", help="'cpu' only checks that the script runs; nothing is recorded")
    args = parser.parse_args()
    if min(args.batch, args.steps, args.eval_batch, args.eval_reps) < 1 or args.warmup < 0:
        parser.error("--batch, --steps, --eval-batch and --eval-reps must be positive, --warmup non-negative")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("benchmarks/gpu.py needs a CUDA GPU; none is available here (--device cpu only checks the script)")
    gflop = flops_per_training_image(du.UNet(du.DDPM_CIFAR10).to(device), 3, 32, device) / 1e9
    rows = {}
    for name, build in (("ddpm_utils", lambda: du.UNet(du.DDPM_CIFAR10)), ("diffusers", diffusers_cifar)):
        for compile_ in (False,) if args.no_compile else (False, True):
            torch.manual_seed(0)
            rows[f"{name} {'compiled' if compile_ else 'eager'}"] = bench(
                build(), args.batch, compile_, device, args.steps, args.warmup, args.eval_batch, args.eval_reps
            )
    where = torch.cuda.get_device_name() if device.type == "cuda" else "CPU (script check only)"
    print(f"DDPM CIFAR-10 config on {where}, batch {args.batch}, bf16, channels-last;", end=" ")
    print(f"{gflop:.1f} GFLOP per training image")
    for name, (rate, eval_s) in rows.items():
        print(
            f"  {name:<22} {rate:8.0f} images/s  {rate * gflop / 1e3:6.1f} TFLOP/s   "
            f"eval({args.eval_batch}) {1e3 * eval_s:6.1f} ms"
        )
    base = rows["diffusers eager"]
    for name, (rate, eval_s) in rows.items():
        if name.startswith("ddpm_utils"):
            print(f"  {name} vs diffusers eager: training {rate / base[0]:.2f}x, evaluation {base[1] / eval_s:.2f}x")
            peer = rows.get(name.replace("ddpm_utils", "diffusers"))
            if peer is not None and peer is not base:
                ratios = f"training {rate / peer[0]:.2f}x, evaluation {peer[1] / eval_s:.2f}x"
                print(f"  {name} vs diffusers compiled: {ratios}")
    if device.type != "cuda":
        return
    record(
        "gpu",
        {
            "batch": args.batch,
            "gflop_per_image": gflop,
            "eval_batch": args.eval_batch,
            "rows": {k: {"images_per_s": r, "eval_s": e} for k, (r, e) in rows.items()},
        },
    )


if __name__ == "__main__":
    main()
