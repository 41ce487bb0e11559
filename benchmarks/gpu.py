"""GPU throughput at the DDPM CIFAR-10 configuration (35.7M parameters), ddpm_utils vs diffusers.

    python benchmarks/gpu.py [--batch 128] [--results DIR]

Random data (throughput only). bf16 autocast, channels-last; eager and torch.compile for both.
Reports training images/s, achieved TFLOP/s (37.3 GFLOP per training image, forward + backward,
from PyTorch's FLOP counter, measured here; the issue's 36.3 leaves out the 1.0 GFLOP of attention
matmuls the counter misses inside fused attention kernels — tests/test_unet.py shows both networks do
exactly 37.3 when counted in full) as a share of the chip's own bf16 matrix-product rate (measured first),
and one network evaluation on a batch of 1,024 (the cost of one sampling step for 1,024 images).
Each row is printed as soon as it is measured, eager rows first, with its warm-up time (compilation happens
there); a compiled row that fails is reported and skipped, so that the other rows are still recorded.
Needs CUDA for real figures; `--device cpu` with tiny counts only checks that the script runs
(tests/test_benchmarks.py does that, without recording anything).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from common import RESULTS, call, diffusers_cifar, flops_per_training_image, record

import ddpm_utils as du


def bench(model, batch, compile_, device, steps=30, warmup=5, eval_batch=1024, eval_reps=10) -> dict:
    """Training images/s, seconds per network evaluation on `eval_batch` images, and each part's warm-up seconds."""
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

    start = time.perf_counter()
    for _ in range(warmup):
        step()
    sync()
    warmup_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    train_rate = batch * steps / (time.perf_counter() - start)
    xe = torch.randn(eval_batch, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    te = torch.randint(0, 1000, (eval_batch,), device=device)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
        start = time.perf_counter()
        for _ in range(min(3, warmup)):  # compiles again: no gradients, another batch size
            net(xe, te)
        sync()
        eval_warmup_s = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(eval_reps):
            out = call(net, xe, te)
        sync()
        eval_s = (time.perf_counter() - start) / eval_reps
    if not torch.isfinite(out).all():
        raise FloatingPointError("the network produced non-finite outputs under bf16 autocast")
    return {"images_per_s": train_rate, "eval_s": eval_s, "warmup_s": warmup_s, "eval_warmup_s": eval_warmup_s}


def matmul_tflops(device, n: int, reps: int = 10) -> float:
    """The chip's bf16 matrix-product rate: an n×n by n×n product (8192 on a GPU), the mean of `reps` after 3."""
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e12


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation happens here)")
    parser.add_argument("--eval-batch", type=int, default=1024)
    parser.add_argument("--eval-reps", type=int, default=10)
    parser.add_argument("--no-compile", action="store_true", help="eager only")
    parser.add_argument("--device", default="cuda", help="'cpu' only checks that the script runs; nothing is recorded")
    parser.add_argument("--results", type=Path, default=None, help=f"folder of gpu.jsonl (default: {RESULTS})")
    args = parser.parse_args()
    if min(args.batch, args.steps, args.eval_batch, args.eval_reps) < 1 or args.warmup < 0:
        parser.error("--batch, --steps, --eval-batch and --eval-reps must be positive, --warmup non-negative")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("benchmarks/gpu.py needs a CUDA GPU; none is available here (--device cpu only checks the script)")
    where = torch.cuda.get_device_name() if device.type == "cuda" else "CPU (script check only)"
    gflop = flops_per_training_image(du.UNet(du.DDPM_CIFAR10).to(device), 3, 32, device) / 1e9
    peak = matmul_tflops(device, 8192 if device.type == "cuda" else 256)
    print(f"DDPM CIFAR-10 config on {where}, batch {args.batch}, bf16, channels-last; torch {torch.__version__}")
    print(f"{gflop:.1f} GFLOP per training image; bf16 matrix product: {peak:.0f} TFLOP/s", flush=True)
    rows, failed = {}, {}
    libraries = (("ddpm_utils", lambda: du.UNet(du.DDPM_CIFAR10)), ("diffusers", diffusers_cifar))
    for compile_ in (False,) if args.no_compile else (False, True):  # every eager row before the first compilation
        for name, build in libraries:
            key = f"{name} {'compiled' if compile_ else 'eager'}"
            torch.manual_seed(0)
            try:
                row = bench(
                    build(), args.batch, compile_, device, args.steps, args.warmup, args.eval_batch, args.eval_reps
                )
            except Exception as err:  # a failed compilation must not cost the rows measured (and not yet recorded)
                if not compile_:
                    raise
                failed[key] = f"{type(err).__name__}: {err}"[:500]
                print(f"  {key:<22} failed: {failed[key]}", flush=True)
                continue
            finally:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            rows[key] = row
            tflops = row["images_per_s"] * gflop / 1e3
            print(
                f"  {key:<22} {row['images_per_s']:8.0f} images/s  {tflops:6.1f} TFLOP/s "
                f"({100 * tflops / peak:4.1f}% of the matrix rate)   "
                f"eval({args.eval_batch}) {1e3 * row['eval_s']:6.1f} ms "
                f"({args.eval_batch / row['eval_s']:,.0f} images/s)   warm-up {row['warmup_s']:.1f} s + "
                f"{row['eval_warmup_s']:.1f} s",
                flush=True,
            )
    for key, row in rows.items():  # ours against diffusers eager (the 2x) and against its own mode (1.3x)
        if not key.startswith("ddpm_utils"):
            continue
        for peer_key in dict.fromkeys(("diffusers eager", key.replace("ddpm_utils", "diffusers"))):
            if peer_key in rows:
                peer = rows[peer_key]
                print(
                    f"  {key} vs {peer_key}: training {row['images_per_s'] / peer['images_per_s']:.2f}x, "
                    f"evaluation {peer['eval_s'] / row['eval_s']:.2f}x"
                )
    if device.type != "cuda":
        return
    payload = {"batch": args.batch, "gflop_per_image": gflop, "matmul_tflops": peak, "eval_batch": args.eval_batch}
    record("gpu", {**payload, "rows": rows, "failed": failed}, args.results)


if __name__ == "__main__":
    main()
