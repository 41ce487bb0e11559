"""Samplers: DDPM ancestral sampling [DDPM Alg. 2], DDIM [DDIM Eq. 12] with inversion, and
DPM-Solver++(2M) [Lu et al. 2022, "DPM-Solver++", Alg. 2], DDIM's second-order multistep extension.

Samplers are pure functions of (model, schedule, shape or start, generator) sharing one signature
style; `callback(i, t, xt, x0_pred)` sees every step, so a caller can record the trajectory or the
x̂_0 predictions. `model(xt, t)` is any network or callable; t is a (B,) LongTensor, 0-based.
"""

from __future__ import annotations

import copy
import math
import platform
import warnings
from collections.abc import Callable

import torch

from ._checks import check_float_tensor, non_finite_rows
from .forward import randn
from .reverse import eps_and_x0_from_output, p_mean_variance
from .schedules import Schedule, gather

__all__ = [
    "ddpm_sample",
    "ddim_timesteps",
    "ddim_sample",
    "dpm_solver_sample",
    "logsnr_timesteps",
    "ddim_invert",
    "Guided",
    "LowPrecision",
    "SAMPLERS",
]

Callback = Callable[[int, int, torch.Tensor, torch.Tensor], None]


class Guided(torch.nn.Module):
    """`guide(x_t, t) + w · (model(x_t, t) - guide(x_t, t))`: a network steered away from a worse model.

    Autoguidance [Karras et al. 2024, "Guiding a diffusion model with a bad version of itself"]: where
    the network and a weaker model of the same data disagree, the disagreement points to what the
    weaker one misses, and w > 1 moves further that way. In scores, the result is
    ∇log p_θ + (w - 1) ∇log(p_θ / p_guide); classifier-free guidance is the case where the weaker
    model is the unconditional one. Here the weaker model is usually `GaussianData.fit(train)`'s
    optimal denoiser: what the network has learned beyond the data's mean and covariance is amplified.
    w = 1 is the network alone, w = 0 the guide alone. Both outputs must use the same
    parameterisation ('eps', 'x0' or 'v'); the combination then means the same in all three, because
    the conversions between them are affine in the output at fixed (x_t, t) and the weights sum to 1.
    Costs one guide evaluation per network evaluation.

    `interval=(lo, hi)` guides only at timesteps lo <= t <= hi (0-based) and returns the network
    alone elsewhere, without calling the guide: guidance in a limited interval [Kynkäänniemi et al.
    2024]. On the digits, guiding at low and middle noise does most of the good, guiding only at
    high noise little (benchmarks/README.md).
    """

    def __init__(self, model, guide, weight: float, interval: tuple[int, int] | None = None):
        super().__init__()
        weight = float(weight)
        if not math.isfinite(weight):
            raise ValueError(f"guidance weight must be a finite number, got {weight}")
        if interval is not None:
            try:
                ok = len(interval) == 2 and not any(isinstance(v, bool) or int(v) != v for v in interval)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"interval must be two integer timesteps (lo, hi), got {interval!r}")
            interval = (int(interval[0]), int(interval[1]))
            if not 0 <= interval[0] <= interval[1]:
                raise ValueError(f"interval must satisfy 0 <= lo <= hi, got {interval}")
        self.model, self.guide, self.weight, self.interval = model, guide, weight, interval

    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = self.model(xt, t)
        if self.weight == 1.0:
            return out
        inside = None
        if self.interval is not None:
            inside = (t >= self.interval[0]) & (t <= self.interval[1])
            if not inside.any():
                return out
        ref = self.guide(xt, t)
        if ref.shape != out.shape:
            raise ValueError(f"the guide returned shape {tuple(ref.shape)} but the network {tuple(out.shape)}")
        guided = torch.lerp(ref.to(out.dtype), out, self.weight)
        if inside is None or inside.all():
            return guided
        return torch.where(inside.reshape(-1, *[1] * (out.dim() - 1)), guided, out)


def cpu_computes_bfloat16() -> bool | None:
    """Whether this CPU has the bfloat16 instructions PyTorch's kernels use (AVX-512 BF16 or AMX); None on
    non-x86 CPUs, where this is not checked. Without them bfloat16 is emulated: on the project's CPU with oneDNN
    held to AVX-512 without BF16 the digits UNet ran at 0.54-0.62x its float32 speed, held to AVX2 at 0.05x
    (benchmarks/README.md, session 19)."""
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
    Worth it where the hardware computes in bfloat16: on the project's CPU (AVX-512 BF16) the digits UNet
    evaluates 1.6-1.9x as fast (benchmarks/sample_throughput.py --bf16); GPUs compute in it natively (not
    measured here); on a CPU without such instructions bfloat16 is emulated and slower than float32
    (float16, emulated on every CPU, is refused there).
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
            raise ValueError(
                "float16 is emulated on CPUs (the digits UNet ran 22x slower than in float32 here); "
                "use torch.bfloat16 on a CPU"
            )
        if on_cpu and cpu_computes_bfloat16() is False:
            warnings.warn(
                "this CPU has no bfloat16 instructions (AVX-512 BF16 or AMX), so PyTorch emulates bfloat16 here: "
                "expect the network to run 2-20x slower than in float32 (leave out --bf16 / bf16=True)",
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


def _start(shape, x_T, generator, device, dtype) -> torch.Tensor:
    if x_T is not None:
        _check_start(x_T, "x_T")
        if shape is not None and tuple(shape) != tuple(x_T.shape):  # which one was meant? say so, not pick one
            raise ValueError(f"shape {tuple(shape)} and x_T's shape {tuple(x_T.shape)} differ: give one of them")
        return x_T.clone()
    if shape is None:
        raise ValueError("give either shape or x_T")
    return randn(tuple(shape), generator, device, dtype)


def _check_start(x, name: str) -> None:
    """What a sampler starts from (x_T, or ddim_invert's x0): a floating-point batch without NaN or infinity."""
    check_float_tensor(x, name)  # a batch dimension first
    bad = non_finite_rows(x)
    if bad:
        raise ValueError(f"{name} holds NaN or infinite values in {bad} of its {len(x)} rows")


def _finish(x: torch.Tensor, sampler: str) -> torch.Tensor:
    """Return the samples, warning (not silently) when some are NaN or infinite: the network's output diverged."""
    bad = non_finite_rows(x)
    if bad:
        warnings.warn(
            f"{sampler}: {bad} of {len(x)} samples hold NaN or infinite values. The network's output diverged "
            "somewhere along the way: a network whose training loss went to NaN, weights in another dtype or "
            "scale than trained, or a checkpoint made for another schedule or prediction",
            stacklevel=4,  # the caller of the sampler (past torch.no_grad's wrapper)
        )
    return x


def _check_first_step(gain: float, alpha_bar: float, prediction: str, clip_x0: bool) -> None:
    """Warn when the first step multiplies the network's error in ε̂ by `gain` > 100.

    x̂_0 = (x_t - √(1-ᾱ) ε̂) / √ᾱ: where ᾱ_T ≈ 0 (the cosine schedule: 2.4e-9 at T = 1000), a step
    that leaves t = T with a large jump in ᾱ (DDIM with few steps: ×630 at 50 steps) carries that
    error into every later step. Clipping x̂_0 or a v-prediction network avoids it.
    """
    if prediction == "eps" and not clip_x0 and gain > 100:
        warnings.warn(
            f"the first sampling step multiplies the network's error in ε̂ by {gain:,.0f} (ᾱ = {alpha_bar:.1e} at "
            "its timestep), which ruins the samples. Pass clip_x0=True (data in [-1, 1]), use more steps, or train "
            "with prediction='v' or a schedule whose last ᾱ is further from 0 (at T = 1000 the cosine schedule's is "
            "2.4e-9, the linear one's 4.0e-5).",
            stacklevel=3,
        )


@torch.no_grad()
def ddpm_sample(
    model,
    schedule: Schedule,
    shape=None,
    generator: torch.Generator | None = None,
    variance: str = "beta_tilde",
    clip_x0: bool = False,
    prediction: str = "eps",
    callback: Callback | None = None,
    x_T: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Ancestral sampling from p_θ(x_{0:T}). [DDPM Alg. 2]

    1: x_T ~ N(0, I)
    2: for t = T, ..., 1:
    3:     z ~ N(0, I) if t > 1, else z = 0            (no noise is added at the last step)
    4:     x_{t-1} = μ_θ(x_t, t) + σ_t z,  σ_t² = β_t ('beta') or β̃_t ('beta_tilde')
    5: return x_0
    Args: shape (B, ...) of the samples, or x_T to start from; clip_x0 clamps x̂_0 to [-1, 1].
    """
    beta, alpha_bar = schedule.betas[-1].item(), schedule.alpha_bars[-1].item()
    _check_first_step(beta / ((1 - beta) * (1 - alpha_bar)) ** 0.5, alpha_bar, prediction, clip_x0)  # ε̂'s weight
    xt = _start(shape, x_T, generator, device, dtype)
    batch = xt.shape[0]
    for i, step in enumerate(reversed(range(schedule.num_steps))):
        t = torch.full((batch,), step, dtype=torch.long, device=xt.device)
        out = p_mean_variance(schedule, xt, t, model(xt, t), prediction, variance, clip_x0)
        if callback is not None:
            callback(i, step, xt, out.x0_pred)
        if step > 0:
            z = randn(xt.shape, generator, xt.device, xt.dtype)
            xt = out.model_mean + (0.5 * out.model_log_variance).exp() * z
        else:
            xt = out.model_mean
    return _finish(xt, "ddpm_sample")


def ddim_timesteps(num_steps: int, num_inference_steps: int) -> torch.Tensor:
    """Evenly spaced 0-based timesteps τ_1 < ... < τ_S from 0 to T-1 (both included). [DDIM §4.2]"""
    if not 1 <= num_inference_steps <= num_steps:
        raise ValueError(f"num_inference_steps must lie in [1, {num_steps}], got {num_inference_steps}")
    if num_inference_steps == 1:
        return torch.tensor([num_steps - 1])
    return torch.linspace(0, num_steps - 1, num_inference_steps, dtype=torch.float64).round().long()


def logsnr_timesteps(schedule: Schedule, num_inference_steps: int) -> torch.Tensor:
    """Timesteps 0 = τ_1 < ... < τ_S = T-1, evenly spaced in log-SNR λ_t = log(√ᾱ_t / √(1-ᾱ_t)). [DPM-Solver §3.3]

    Each target λ is rounded to the timestep nearest to it; where the grid is finer than the
    schedule's own steps (many steps, near t = 0) neighbours are pushed apart so that all S are distinct.
    """
    num_steps = schedule.num_steps
    if not 1 <= num_inference_steps <= num_steps:
        raise ValueError(f"num_inference_steps must lie in [1, {num_steps}], got {num_inference_steps}")
    if num_inference_steps == 1:
        return torch.tensor([num_steps - 1])
    neg_lambda = -0.5 * schedule.log_snr.double()  # -λ_t, increasing in t
    targets = torch.linspace(neg_lambda[0].item(), neg_lambda[-1].item(), num_inference_steps, dtype=torch.float64)
    upper = torch.searchsorted(neg_lambda, targets).clamp(1, num_steps - 1)
    nearer_lower = (targets - neg_lambda[upper - 1]) < (neg_lambda[upper] - targets)
    taus = (upper - nearer_lower.long()).tolist()
    taus[0] = 0
    for i in range(1, len(taus)):  # distinct from below ...
        taus[i] = max(taus[i], taus[i - 1] + 1)
    taus[-1] = num_steps - 1
    for i in reversed(range(len(taus) - 1)):  # ... and from above, keeping τ_S = T - 1
        taus[i] = min(taus[i], taus[i + 1] - 1)
    return torch.tensor(taus)


def _predict(model, schedule: Schedule, xt, t, prediction: str, clip_x0: bool):
    """(ε̂, x̂_0) from the network at (x_t, t); with clip_x0, x̂_0 is clamped to [-1, 1] and ε̂ recomputed from it."""
    eps_pred, x0_pred = eps_and_x0_from_output(schedule, xt, t, model(xt, t), prediction)
    if clip_x0:
        x0_pred = x0_pred.clamp(-1, 1)
        eps_pred = (xt - gather(schedule.sqrt_alpha_bars, t, xt) * x0_pred) / gather(
            schedule.sqrt_one_minus_alpha_bars, t, xt
        )
    return eps_pred, x0_pred


def _ddim_coefficients(ab: float, ab_prev: float, eta: float) -> tuple[float, float]:
    """(σ, weight of ε̂) for one DDIM step from ᾱ = ab to ᾱ_prev = ab_prev. [DDIM Eq. 12, 16]"""
    sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)) ** 0.5
    return sigma, max(1 - ab_prev - sigma**2, 0.0) ** 0.5


def _check_ddim_first_step(alpha_bars, first: int, second: int | None, eta: float, prediction, clip_x0) -> None:
    """`_check_first_step` for a DDIM step from timestep `first` to `second` (None: straight to x_0)."""
    ab = alpha_bars[first].item()
    ab_prev = alpha_bars[second].item() if second is not None else 1.0
    # ε̂'s total weight in the step, once x̂_0 = (x_t - √(1-ᾱ) ε̂) / √ᾱ is substituted
    gain = abs(_ddim_coefficients(ab, ab_prev, eta)[1] - (ab_prev / ab * (1 - ab)) ** 0.5)
    _check_first_step(gain, ab, prediction, clip_x0)


@torch.no_grad()
def ddim_sample(
    model,
    schedule: Schedule,
    shape=None,
    num_inference_steps: int = 50,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    clip_x0: bool = False,
    prediction: str = "eps",
    callback: Callback | None = None,
    x_T: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """DDIM sampling on a respaced subsequence of timesteps. [DDIM Eq. 12, §4.2]

    x_{τ_{i-1}} = √ᾱ_{τ_{i-1}} x̂_0 + sqrt(1 - ᾱ_{τ_{i-1}} - σ²) ε̂ + σ z
    σ = η sqrt((1 - ᾱ_{τ_{i-1}}) / (1 - ᾱ_{τ_i})) sqrt(1 - ᾱ_{τ_i} / ᾱ_{τ_{i-1}})
    η = 0 is deterministic; η = 1 on the full schedule is DDPM with σ_t² = β̃_t; η lies in [0, 1], since
    above 1 σ² can exceed 1 - ᾱ_{τ_{i-1}}. After the last timestep τ_1 the sampler jumps to x_0 = x̂_0 (ᾱ := 1).
    """
    if not 0.0 <= eta <= 1.0:  # above 1, σ² would exceed 1 - ᾱ_{t-1}: x_{t-1} no longer has q(x_{t-1} | x_0)'s variance
        raise ValueError(f"eta must lie in [0, 1] (0: deterministic, 1: DDPM-like), got {eta}")
    xt = _start(shape, x_T, generator, device, dtype)
    batch = xt.shape[0]
    taus = ddim_timesteps(schedule.num_steps, num_inference_steps).tolist()
    alpha_bars = schedule.alpha_bars
    _check_ddim_first_step(alpha_bars, taus[-1], taus[-2] if len(taus) > 1 else None, eta, prediction, clip_x0)
    for i in reversed(range(len(taus))):
        step = taus[i]
        t = torch.full((batch,), step, dtype=torch.long, device=xt.device)
        eps_pred, x0_pred = _predict(model, schedule, xt, t, prediction, clip_x0)
        if callback is not None:
            callback(len(taus) - 1 - i, step, xt, x0_pred)
        ab = alpha_bars[step].item()
        ab_prev = alpha_bars[taus[i - 1]].item() if i > 0 else 1.0
        sigma, eps_weight = _ddim_coefficients(ab, ab_prev, eta)
        xt = ab_prev**0.5 * x0_pred + eps_weight * eps_pred
        if sigma > 0:
            xt = xt + sigma * randn(xt.shape, generator, xt.device, xt.dtype)
    return _finish(xt, "ddim_sample")


@torch.no_grad()
def dpm_solver_sample(
    model,
    schedule: Schedule,
    shape=None,
    num_inference_steps: int = 20,
    order: int = 2,
    spacing: str = "logsnr",
    generator: torch.Generator | None = None,
    clip_x0: bool = False,
    prediction: str = "eps",
    callback: Callback | None = None,
    x_T: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """DPM-Solver++(2M): the probability-flow ODE solved with x̂_0 extrapolated linearly in log-SNR.
    [Lu et al. 2022, "DPM-Solver++", Alg. 2]

    With α = √ᾱ, σ = √(1-ᾱ) and λ = log(α/σ), the ODE's exact step from s to u (λ_u > λ_s) is
    x_u = (σ_u/σ_s) x_s + σ_u ∫ e^λ x̂_0(x_λ) dλ over [λ_s, λ_u]. Holding x̂_0 at its value at s gives
        x_u = (σ_u/σ_s) x_s + α_u (1 - e^{-h}) D,   h = λ_u - λ_s,   D = x̂_0(x_s),
    which is exactly DDIM with η = 0 (order=1). Order 2 reuses the previous step's x̂_0 to take x̂_0
    as linear in λ: D = (1 + 1/(2r)) x̂_0(x_s) - 1/(2r) x̂_0(x_prev), r = h_prev / h; the first step,
    with no previous x̂_0, is DDIM's. One network call per step; after the last timestep, τ_1 = 0, the
    sampler returns x̂_0, as `ddim_sample` does. Deterministic: only x_T is drawn from `generator`.
    spacing: 'logsnr' (default) puts the timesteps evenly in λ, so every h is equal and D never
    extrapolates far; 'uniform' uses `ddim_sample`'s evenly spaced t, where the last steps are long in
    λ (r ≈ 0.2) and the extrapolation overshoots (benchmarks/sampler_steps.py measures both).
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 (DDIM) or 2 (DPM-Solver++(2M)), got {order}")
    if spacing not in TIMESTEP_SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}; expected one of {tuple(TIMESTEP_SPACINGS)}")
    taus = TIMESTEP_SPACINGS[spacing](schedule, num_inference_steps).flip(0).tolist()  # τ_S, ..., τ_1
    xt = _start(shape, x_T, generator, device, dtype)
    batch = xt.shape[0]
    alpha_bars = schedule.alpha_bars
    alphas, sigmas = schedule.sqrt_alpha_bars.double(), schedule.sqrt_one_minus_alpha_bars.double()
    lambdas = 0.5 * schedule.log_snr.double()  # λ = log(α/σ)
    # the first step is DDIM's (η = 0) at either order
    _check_ddim_first_step(alpha_bars, taus[0], taus[1] if len(taus) > 1 else None, 0.0, prediction, clip_x0)
    x0_prev = h_prev = None
    for i, step in enumerate(taus):
        t = torch.full((batch,), step, dtype=torch.long, device=xt.device)
        _, x0_pred = _predict(model, schedule, xt, t, prediction, clip_x0)
        if callback is not None:
            callback(i, step, xt, x0_pred)
        if i == len(taus) - 1:
            break
        nxt = taus[i + 1]
        h = (lambdas[nxt] - lambdas[step]).item()
        d = x0_pred
        if order == 2 and x0_prev is not None:
            w = h / (2 * h_prev)  # 1 / (2r)
            d = (1 + w) * x0_pred - w * x0_prev
        xt = (sigmas[nxt] / sigmas[step]).item() * xt - alphas[nxt].item() * math.expm1(-h) * d
        x0_prev, h_prev = x0_pred, h
    return _finish(x0_pred, "dpm_solver_sample")


@torch.no_grad()
def ddim_invert(
    model, schedule: Schedule, x0: torch.Tensor, num_inference_steps: int = 50, prediction: str = "eps"
) -> torch.Tensor:
    """Run deterministic DDIM (η = 0) backwards, x_0 → x_T, approximating ε̂ at each step by its
    value at the lower timestep. [DDIM §4.3 / Eq. 14]  `ddim_sample(x_T=...)` maps the result back."""
    _check_start(x0, "x0")
    xt = x0.clone()
    batch = xt.shape[0]
    taus = ddim_timesteps(schedule.num_steps, num_inference_steps).tolist()
    ab_prev = 1.0
    for i, step in enumerate(taus):
        # ε̂ is evaluated at the current point; at the first step (still x_0) use the lowest timestep.
        t = torch.full((batch,), taus[i - 1] if i > 0 else step, dtype=torch.long, device=xt.device)
        eps_pred, _ = eps_and_x0_from_output(schedule, xt, t, model(xt, t), prediction)
        ab = schedule.alpha_bars[step].item()
        x0_pred = (xt - (1 - ab_prev) ** 0.5 * eps_pred) / ab_prev**0.5
        xt = ab**0.5 * x0_pred + (1 - ab) ** 0.5 * eps_pred
        ab_prev = ab
    return _finish(xt, "ddim_invert")


SAMPLERS = ("ddpm", "ddim", "dpm-solver")
# how dpm_solver_sample picks its timesteps: even in log-SNR (default), or in t as ddim_sample does
TIMESTEP_SPACINGS = {"logsnr": logsnr_timesteps, "uniform": lambda s, n: ddim_timesteps(s.num_steps, n)}
