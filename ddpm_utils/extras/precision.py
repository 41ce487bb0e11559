"""Networks in bfloat16: `LowPrecision` for sampling, and the CPU check behind its warning.

`extras.Trainer` with `bf16=True` trains through the same wrapper: forward and backward on the bfloat16
copy, its gradients applied in float32 to the float32 weights (mixed precision with master weights, as
improved-diffusion's fp16_util does for float16).
"""

from __future__ import annotations

import copy
import platform
import warnings

import torch

__all__ = ["LowPrecision", "cpu_computes_bfloat16", "cpu_flags"]


def cpu_computes_bfloat16() -> bool | None:
    """Whether this CPU has the bfloat16 instructions PyTorch's kernels use (AVX-512 BF16 or AMX); None on
    non-x86 CPUs, where this is not checked. Without them bfloat16 is emulated, and slower than float32."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return None
    avx512_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx_tile = getattr(torch.cpu, "_is_amx_tile_supported", None)
    if avx512_bf16 is not None and amx_tile is not None:
        return bool(avx512_bf16() or amx_tile())
    flags = cpu_flags()  # PyTorch 2.4 has neither helper: ask the kernel
    return None if flags is None else bool(flags & {"avx512_bf16", "amx_tile"})


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str] | None:
    """The instruction-set flags Linux reports for the first CPU, or None where there is no such file."""
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.strip() == "flags":
                    return set(value.split())
    except OSError:
        return None
    return None


class LowPrecision(torch.nn.Module):
    """A copy of a network that runs in bfloat16 (or float16) for a sampler that keeps float32.

    `LowPrecision(model)(x_t, t)` casts x_t to the low precision, evaluates the copy and returns ε̂ in
    x_t's dtype, so the sampler's own arithmetic — the update of x_t, the noise it adds, x̂_0 — stays in
    float32: only the network, where nearly all the time goes, is rounded. bfloat16 keeps float32's
    range with 8 significant bits, so ε̂ carries a relative error of about 0.5-1% (tests/test_sampling.py
    measures it against float64 on the shipped model: 6e-3, float32's 3e-7). Rounding x_t as well would
    lose the small late updates of a 1,000-step sampler (notebook 06 §8 shows it).
    Worth it where the hardware computes in bfloat16 (CPUs with AVX-512 BF16 or AMX, GPUs;
    benchmarks/sample_throughput.py --bf16 measures it); on a CPU without such instructions bfloat16 is
    emulated and slower than float32 (float16, emulated on every CPU, is refused there).
    On a CPU the copy uses the contiguous memory layout, faster than channels-last in bfloat16 there.
    The model passed in is not changed, and the copy keeps its mode (eval or train); wrap the network
    before `Guided` so that a guide keeps its own precision.
    """

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        if dtype not in (torch.bfloat16, torch.float16):
            raise ValueError(f"dtype must be torch.bfloat16 or torch.float16, got {dtype}")
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module (its weights are cast), got {type(model).__name__}")
        on_cpu = all(p.device.type == "cpu" for p in model.parameters())
        if dtype == torch.float16 and on_cpu:
            raise ValueError("float16 is emulated on CPUs, and far slower than float32: use torch.bfloat16 on a CPU")
        if on_cpu and cpu_computes_bfloat16() is False:
            warnings.warn(
                "this CPU has no bfloat16 instructions (AVX-512 BF16 or AMX): bfloat16 is emulated, and slower "
                "than float32 (leave out --bf16 / bf16=True)",
                stacklevel=2,
            )
        self.dtype = dtype
        self.model = copy.deepcopy(model).to(dtype)
        if on_cpu:
            self.model.to(memory_format=torch.contiguous_format)

    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if not isinstance(xt, torch.Tensor) or not xt.is_floating_point():
            raise TypeError(f"x_t must be a floating-point tensor, got {getattr(xt, 'dtype', type(xt).__name__)}")
        return self.model(xt.to(self.dtype), t).to(xt.dtype)
