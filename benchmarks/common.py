"""Shared helpers for the benchmark scripts: the matched models, timing, and result files.

Every script prints a table and appends one JSON line per run to benchmarks/results/<name>.jsonl.
Ratios are measured side by side in one process, alternating between the contenders.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
import platform
import statistics
import time
from pathlib import Path

import torch

from ddpm_utils.data import load_digits
from ddpm_utils.extras.cli import json_numbers
from ddpm_utils.training import training_losses
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


def record(name: str, payload: dict, results: Path | None = None) -> None:
    """Append one JSON line (this machine's facts, then `payload`) to `results`/<name>.jsonl (default RESULTS)."""
    results = RESULTS if results is None else results  # read at the call: tests point RESULTS elsewhere
    results.mkdir(parents=True, exist_ok=True)
    with open(results / f"{name}.jsonl", "a") as f:
        f.write(json.dumps(json_numbers({**machine(), **payload}), allow_nan=False) + "\n")


def floor_text(ref: dict) -> str:
    """How to read FD_digits at one n: `metrics.reference_scores`' floor and one score's own noise."""
    return (
        f"floor {ref['real_vs_real']:.1f} ± {ref['real_vs_real_sd']:.1f} (real digits, over subsets); "
        f"one score's sampling sd {ref['sampling_sd']:.1f}"
    )


def ours_digits(channels_last: bool = True, dropout: float | None = None) -> torch.nn.Module:
    """ddpm_utils' UNet at DIGITS (0.70M parameters); `dropout` replaces DIGITS' rate (0.1) in the residual blocks.
    The speed comparisons pass dropout=0.0: the diffusers anchor (`diffusers_digits`) has none."""
    model = UNet(DIGITS if dropout is None else dataclasses.replace(DIGITS, dropout=dropout))
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


class DiffusersEmbeddingUNet(UNet):
    """ddpm_utils' UNet with diffusers' timestep embedding: [cos, sin] (flip_sin_to_cos=True) and frequencies
    10000^(-i / half) (freq_shift=0), against ours [sin, cos] and 10000^(-i / (half - 1)). With weights from
    `ours_from_diffusers` it computes the same function as the diffusers network they came from."""

    def embedding(self, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        half = self.config.base_channels // 2
        args = t.float()[:, None] * torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / half)
        return self.time_mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=1).to(dtype))


def _diffusers_layers(net) -> tuple[list, list, list]:
    """diffusers UNet2DModel's modules in ddpm_utils.UNet's order: one list per entry of its down, mid and up."""

    def blocks(block_list, resample):
        out = []
        for block in block_list:
            attentions = getattr(block, "attentions", None) or [None] * len(block.resnets)
            out += [[r] + ([a] if a is not None else []) for r, a in zip(block.resnets, attentions)]
            if getattr(block, resample, None):
                out.append([getattr(block, resample)[0]])
        return out

    mid = net.mid_block
    return (
        blocks(net.down_blocks, "downsamplers"),
        [mid.resnets[0], mid.attentions[0], mid.resnets[1]],
        blocks(net.up_blocks, "upsamplers"),
    )


@torch.no_grad()
def ours_from_diffusers(net, ours: UNet) -> UNet:
    """Copy the weights of diffusers' `net` (a UNet2DModel of the same architecture) into `ours`, module by module
    (q, k and v stacked into one 1×1 convolution). Returns `ours`; raises if the two layouts do not line up."""
    from ddpm_utils.unet import Attention, ResBlock

    def copy(dst: torch.nn.Module, src: torch.nn.Module) -> None:
        for name, p in dst.named_parameters(recurse=False):
            q = getattr(src, name)
            if q.shape != p.shape and q.numel() == p.numel():  # a Linear's weight into a 1×1 convolution's
                q = q.reshape(p.shape)
            p.copy_(q)

    def layer(dst: torch.nn.Module, src: torch.nn.Module) -> None:
        if isinstance(dst, ResBlock):
            pairs = [("norm1", "norm1"), ("conv1", "conv1"), ("emb", "time_emb_proj"), ("norm2", "norm2")]
            pairs += [("conv2", "conv2")] + ([("skip", "conv_shortcut")] if src.conv_shortcut is not None else [])
            for a, b in pairs:
                copy(getattr(dst, a), getattr(src, b))
        elif isinstance(dst, Attention):
            copy(dst.norm, src.group_norm)
            dst.qkv.weight.copy_(torch.cat([src.to_q.weight, src.to_k.weight, src.to_v.weight])[:, :, None, None])
            dst.qkv.bias.copy_(torch.cat([src.to_q.bias, src.to_k.bias, src.to_v.bias]))
            copy(dst.proj, src.to_out[0])
        else:  # Downsample / Upsample
            copy(dst.conv, src.conv)

    down, mid, up = _diffusers_layers(net)
    ours_down, ours_up = [list(m) for m in ours.down], [list(m) for m in ours.up]
    if [len(m) for m in ours_down] != [len(m) for m in down] or [len(m) for m in ours_up] != [len(m) for m in up]:
        raise ValueError("the two networks' layouts differ")
    for dst, src in zip([*sum(ours_down, []), *ours.mid, *sum(ours_up, [])], [*sum(down, []), *mid, *sum(up, [])]):
        layer(dst, src)
    copy(ours.time_mlp[0], net.time_embedding.linear_1)
    copy(ours.time_mlp[2], net.time_embedding.linear_2)
    for a, b in (("conv_in", "conv_in"), ("norm_out", "conv_norm_out"), ("conv_out", "conv_out")):
        copy(getattr(ours, a), getattr(net, b))
    return ours


def held_out_set(schedule, draws: int = 2, timesteps: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x0, t, ε) for the held-out loss: every test digit at `timesteps` stratified t, `draws` noises each."""
    test = load_digits("test")
    t_grid = ((torch.arange(timesteps) + 0.5) * schedule.num_steps / timesteps).long()
    x0 = test.repeat(timesteps * draws, 1, 1, 1)
    t = t_grid.repeat_interleave(len(test)).repeat(draws)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1234))
    return x0, t, noise


@torch.no_grad()
def held_out_loss(model, schedule, batch) -> float:
    """Mean L_simple (ε-prediction) of `model` over `held_out_set`'s examples: FD_digits' spread between training
    runs hides differences of a percent or two here (benchmarks/per_step.py)."""
    if getattr(model, "training", False):  # dropout on: the score would be noisy and lower the network's apparent fit
        raise ValueError("held_out_loss wants the network in eval mode (call model.eval() first)")
    x0, t, noise = batch
    losses = [
        training_losses(model, schedule, a, b, c).sum()
        for a, b, c in zip(x0.split(1024), t.split(1024), noise.split(1024))
    ]
    return float(sum(losses) / len(x0))
