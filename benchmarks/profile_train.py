"""Where a CPU training step spends its time, for both libraries (the bound behind the training ratio).

    python benchmarks/profile_train.py

Profiles 10 training steps of each matched model with torch.profiler and reports the share of
self CPU time in convolution kernels (forward and backward, the same oneDNN kernels in both), and
the resulting Amdahl bound: even with every other op free, ours could be at most
diffusers_step_time / our_convolution_time faster. A FLOP count (torch.utils.flop_counter) of the
step and the fastest float32 rate measured on the machine (torch.mm, a 1x1 convolution through oneDNN,
or the step's own convolutions) say how close those kernels already run to what this CPU can do.
"""

from __future__ import annotations

import time

import torch
from common import counting_flops, diffusers_digits, ours_digits, record
from torch.profiler import profile
from train_throughput import make_step

import ddpm_utils as du

CONV = ("aten::convolution_backward", "aten::mkldnn_convolution", "aten::_convolution", "aten::convolution")


def matmul_gflops(n: int = 2048, reps: int = 10) -> float:
    """The machine's float32 GEMM rate on large square matrices (torch.mm: MKL or OpenBLAS)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def conv1x1_gflops(batch: int = 16, channels: int = 512, size: int = 32, reps: int = 10) -> float:
    """The same GEMM through oneDNN, as a large 1x1 convolution (channels-last). On some CPUs oneDNN's
    kernels beat torch.mm's library by far (seen on an AMD Zen 5 VM: 1.5x), so the peak is the faster."""
    conv = torch.nn.Conv2d(channels, channels, 1, bias=False).to(memory_format=torch.channels_last)
    x = torch.randn(batch, channels, size, size).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        conv(x)
        start = time.perf_counter()
        for _ in range(reps):
            conv(x)
    return 2 * batch * size * size * channels**2 * reps / (time.perf_counter() - start) / 1e9


def main():
    torch.manual_seed(0)
    data, schedule = du.load_digits("train"), du.make_schedule("linear", 1000)
    out = {}
    for name, model, cl in (("diffusers", diffusers_digits(), False), ("ddpm_utils", ours_digits(dropout=0.0), True)):
        step, _ = make_step(model, data, schedule, 128, torch.Generator().manual_seed(0), cl)
        with counting_flops() as counter:
            step()
        conv_flops = sum(v for k, v in counter.get_flop_counts()["Global"].items() if "convolution" in str(k))
        for _ in range(3):
            step()
        with profile() as prof:
            for _ in range(10):
                step()
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        conv = sum(e.self_cpu_time_total for e in events if e.key in CONV)
        out[name] = {
            "step_ms": total / 10 / 1e3,
            "conv_ms": conv / 10 / 1e3,
            "conv_share": conv / total,
            "gflop_per_step": counter.get_total_flops() / 1e9,
            "conv_gflops_per_s": conv_flops / (conv / 10 / 1e6) / 1e9,
        }
    mm, conv1x1 = matmul_gflops(), conv1x1_gflops()
    # the fastest dense rate seen: if the step's own convolutions beat both GEMMs, they are the best estimate
    peak = max(mm, conv1x1, *(r["conv_gflops_per_s"] for r in out.values()))
    for name, r in out.items():
        share = 100 * r["conv_share"]
        print(
            f"{name:<11} step {r['step_ms']:7.1f} ms   convolutions {r['conv_ms']:7.1f} ms ({share:.0f}%)   "
            f"{r['gflop_per_step']:.2f} GFLOP/step, convolutions at {r['conv_gflops_per_s']:.0f} GFLOP/s"
        )
    print(f"this CPU's float32 matmul rate: torch.mm 2048x2048 {mm:.0f}, oneDNN 1x1 convolution {conv1x1:.0f} GFLOP/s")
    bound = out["diffusers"]["step_ms"] / out["ddpm_utils"]["conv_ms"]
    print(f"Amdahl bound on ddpm_utils' training speed-up with these convolution kernels: {bound:.2f}x")
    ideal = out["diffusers"]["step_ms"] / (out["ddpm_utils"]["gflop_per_step"] / peak * 1e3)
    print(f"with every FLOP at {peak:.0f} GFLOP/s (the fastest rate seen) the speed-up could be at most {ideal:.2f}x")
    rates = {"matmul_gflops": mm, "conv1x1_gflops": conv1x1, "peak_gflops": peak}
    record("profile_train", {**out, **rates, "amdahl_bound": bound, "flop_bound": ideal})


if __name__ == "__main__":
    main()
