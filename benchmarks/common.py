"""Shared helpers for the benchmark scripts: the matched models, timing, and result files.

Every script prints a table and appends one JSON line per run to benchmarks/results/<name>.jsonl.
Ratios are measured side by side in one process, alternating between the contenders.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from ddpm_utils.unet import DIGITS, UNet

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_name() -> str:
    """The CPU as /proc/cpuinfo names it, with its family and model: VMs named alike can differ 3x in speed."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines()[:30] if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        return f"{fields['model name']} (family {fields['cpu family']}, model {fields['model']})"
    except (OSError, KeyError, ValueError):
        return platform.processor() or platform.machine()


def machine() -> dict:
    return {
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": cpu_name(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def record(name: str, payload: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / f"{name}.jsonl", "a") as f:
        f.write(json.dumps({**machine(), **payload}) + "\n")


def floor_text(ref: dict) -> str:
    """How to read FD_digits at one n: `metrics.reference_scores`' floor and one score's own noise."""
    return (
        f"floor {ref['real_vs_real']:.1f} ± {ref['real_vs_real_sd']:.1f} (real digits, over subsets); "
        f"one score's sampling sd {ref['sampling_sd']:.1f}"
    )


def ours_digits(channels_last: bool = True) -> torch.nn.Module:
    model = UNet(DIGITS)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def diffusers_digits() -> torch.nn.Module:
    """diffusers' UNet2DModel with the same architecture as ddpm_utils' DIGITS (0.70M parameters)."""
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=(32, 64),
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    )


def diffusers_cifar(dropout: float = 0.1) -> torch.nn.Module:
    """diffusers' UNet2DModel with the DDPM CIFAR-10 architecture of ddpm_utils' DDPM_CIFAR10 (35.7M parameters)."""
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        block_out_channels=(128, 256, 256, 256),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=None,
        dropout=dropout,
    )


def call(model, x, t):
    out = model(x, t)
    return out.sample if hasattr(out, "sample") else out


@contextlib.contextmanager
def counting_flops():
    """A FlopCounterMode with the math attention kernel: the counter cannot see inside fused attention
    kernels (diffusers' attention reaches one on CPU and misses 1.0 GFLOP per CIFAR-10 training image)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        yield counter


def flops_per_training_image(model, channels: int, size: int, device="cpu") -> int:
    """FLOPs of one forward and backward pass on one (channels, size, size) image, attention included."""
    x, t = torch.randn(1, channels, size, size, device=device), torch.zeros(1, dtype=torch.long, device=device)
    with counting_flops() as counter:
        call(model, x, t).sum().backward()
    return counter.get_total_flops()


def alternate(fns: dict, rounds: int = 5) -> dict:
    """Run each zero-argument timing function `rounds` times, interleaved; return the median rate per name."""
    rates = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            rates[name].append(fn())
    return {name: statistics.median(v) for name, v in rates.items()}


def timed(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - start
