"""GPU throughput at the DDPM CIFAR-10 configuration (35.7M parameters), ddpm_utils vs diffusers.

    python benchmarks/gpu.py [--batch 128]

Random data (throughput only). bf16 autocast, channels-last; eager and torch.compile for both.
Reports training images/s, achieved TFLOP/s (36.3 GFLOP per training image, forward + backward,
from PyTorch's FLOP counter; measured here too), and one network evaluation on a batch of 1,024.
Needs CUDA; exits with a message otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from common import diffusers_cifar, record

import ddpm_utils as du


def bench(model, batch, compile_, steps=30):
    model = model.cuda().to(memory_format=torch.channels_last)
    net = torch.compile(model) if compile_ else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    x = torch.randn(batch, 3, 32, 32, device="cuda").contiguous(memory_format=torch.channels_last)
    t = torch.randint(0, 1000, (batch,), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = net(x, t)
            out = out.sample if hasattr(out, "sample") else out
            loss = (out.float() - x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    train_rate = batch * steps / (time.perf_counter() - start)
    xe = torch.randn(1024, 3, 32, 32, device="cuda").contiguous(memory_format=torch.channels_last)
    te = torch.randint(0, 1000, (1024,), device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        for _ in range(3):
            net(xe, te)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(10):
            net(xe, te)
        torch.cuda.synchronize()
    return train_rate, (time.perf_counter() - start) / 10


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("benchmarks/gpu.py needs a CUDA GPU; none is available here")
    from torch.utils.flop_counter import FlopCounterMode

    m = du.UNet(du.DDPM_CIFAR10).cuda()
    x = torch.randn(1, 3, 32, 32, device="cuda")
    with FlopCounterMode(display=False) as fc:
        m(x, torch.zeros(1, dtype=torch.long, device="cuda")).sum().backward()
    gflop = fc.get_total_flops() / 1e9
    rows = {}
    for name, build in (("ddpm_utils", lambda: du.UNet(du.DDPM_CIFAR10)), ("diffusers", diffusers_cifar)):
        for compile_ in (False, True):
            torch.manual_seed(0)
            rows[f"{name} {'compiled' if compile_ else 'eager'}"] = bench(build(), args.batch, compile_)
    print(f"DDPM CIFAR-10 config, batch {args.batch}, bf16, channels-last; {gflop:.1f} GFLOP per training image")
    for name, (rate, eval_s) in rows.items():
        print(
            f"  {name:<22} {rate:8.0f} images/s  {rate * gflop / 1e3:6.1f} TFLOP/s   eval(1024) {1e3 * eval_s:6.1f} ms"
        )
    record(
        "gpu",
        {"gflop_per_image": gflop, "rows": {k: {"images_per_s": r, "eval_1024_s": e} for k, (r, e) in rows.items()}},
    )


if __name__ == "__main__":
    main()
