"""Samplers: DDPM ancestral sampling [DDPM Alg. 2], DDIM [DDIM Eq. 12] with inversion, and
DPM-Solver++(2M) [Lu et al. 2022, "DPM-Solver++", Alg. 2], DDIM's second-order multistep extension.

Samplers are pure functions of (model, schedule, shape or start, generator) sharing one signature
style; `callback(i, t, xt, x0_pred)` sees every step, so a caller can record the trajectory or the
x̂_0 predictions. `model(xt, t)` is any network or callable; t is a (B,) LongTensor, 0-based.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch

from ._checks import check_float_tensor, non_finite_rows
from .forward import eps_from_x0, randn
from .reverse import eps_and_x0_from_output, model_log_variance
from .schedules import Schedule, gather

__all__ = ["ddpm_sample", "ddim_sample", "ddim_invert", "dpm_solver_sample", "ddim_timesteps", "logsnr_timesteps"]

Callback = Callable[[int, int, torch.Tensor, torch.Tensor], None]


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
    3:     z ~ N(0, I) if t > 1, else z = 0
    4:     x_{t-1} = μ_θ(x_t, t) + σ_t z,   μ_θ = 1/√α_t (x_t - β_t/√(1-ᾱ_t) ε_θ(x_t, t))      [DDPM Eq. 11]
    5: return x_0
    μ_θ is computed in its posterior form μ̃_t(x_t, x̂_0) = coef1 x̂_0 + coef2 x_t [DDPM Eq. 7], x̂_0 from ε̂: the
    same number, and the form that x0- and v-prediction networks and clip_x0 (x̂_0 clamped to [-1, 1]) need.
    σ_t² = β̃_t ('beta_tilde') or β_t ('beta'). Args: shape (B, ...) of the samples, or x_T to start from.
    """
    alpha_bar_next = schedule.alpha_bars_prev[-1].item()  # ᾱ at the step after the first (1 when T = 1)
    _check_first_step(schedule.alpha_bars, schedule.num_steps - 1, alpha_bar_next, 1.0, prediction, clip_x0)
    xt = _start(shape, x_T, generator, device, dtype)  # 1: x_T ~ N(0, I)
    for i, step in enumerate(reversed(range(schedule.num_steps))):  # 2: t = T, ..., 1 (0-based: T-1, ..., 0)
        t = torch.full((xt.shape[0],), step, dtype=torch.long, device=xt.device)
        _, x0_pred = _predict(model, schedule, xt, t, prediction, clip_x0)  # x̂_0 from ε_θ(x_t, t)
        if callback is not None:
            callback(i, step, xt, x0_pred)
        model_mean = (
            gather(schedule.posterior_mean_coef1, t, xt) * x0_pred + gather(schedule.posterior_mean_coef2, t, xt) * xt
        )  # μ_θ(x_t, t) = μ̃_t(x_t, x̂_0)
        sigma = (0.5 * model_log_variance(schedule, t, xt, variance)).exp()  # σ_t
        z = randn(xt.shape, generator, xt.device, xt.dtype) if step > 0 else torch.zeros_like(xt)  # 3
        xt = model_mean + sigma * z  # 4: x_{t-1} = μ_θ(x_t, t) + σ_t z
    return _finish(xt, "ddpm_sample")  # 5: x_0


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
    """DDIM sampling on a respaced subsequence of timesteps τ. [DDIM Eq. 12, §4.2]

    x_{τ_{i-1}} = √ᾱ_{τ_{i-1}} x̂_0 + sqrt(1 - ᾱ_{τ_{i-1}} - σ²) ε̂ + σ z
    σ = η sqrt((1 - ᾱ_{τ_{i-1}}) / (1 - ᾱ_{τ_i})) sqrt(1 - ᾱ_{τ_i} / ᾱ_{τ_{i-1}})
    η = 0 is deterministic; η = 1 on the full schedule is DDPM with σ_t² = β̃_t; η lies in [0, 1], since
    above 1 σ² can exceed 1 - ᾱ_{τ_{i-1}}. After the last timestep τ_1 the sampler jumps to x_0 = x̂_0 (ᾱ := 1).
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1] (0: deterministic, 1: DDPM-like), got {eta}")
    xt = _start(shape, x_T, generator, device, dtype)
    taus = ddim_timesteps(schedule.num_steps, num_inference_steps).tolist()
    alpha_bars = schedule.alpha_bars
    _check_first_step(
        alpha_bars, taus[-1], alpha_bars[taus[-2]].item() if len(taus) > 1 else 1.0, eta, prediction, clip_x0
    )
    for i in reversed(range(len(taus))):
        step = taus[i]
        alpha_bar, alpha_bar_prev = alpha_bars[step].item(), alpha_bars[taus[i - 1]].item() if i > 0 else 1.0
        t = torch.full((xt.shape[0],), step, dtype=torch.long, device=xt.device)
        eps_pred, x0_pred = _predict(model, schedule, xt, t, prediction, clip_x0)
        if callback is not None:
            callback(len(taus) - 1 - i, step, xt, x0_pred)
        sigma, eps_weight = _ddim_coefficients(alpha_bar, alpha_bar_prev, eta)
        xt = alpha_bar_prev**0.5 * x0_pred + eps_weight * eps_pred
        if sigma > 0:
            xt = xt + sigma * randn(xt.shape, generator, xt.device, xt.dtype)
    return _finish(xt, "ddim_sample")


@torch.no_grad()
def ddim_invert(
    model, schedule: Schedule, x0: torch.Tensor, num_inference_steps: int = 50, prediction: str = "eps"
) -> torch.Tensor:
    """Run deterministic DDIM (η = 0) backwards, x_0 → x_T, approximating ε̂ at each step by its
    value at the lower timestep. [DDIM §4.3 / Eq. 14]  `ddim_sample(x_T=...)` maps the result back."""
    _check_start(x0, "x0")
    xt = x0.clone()
    taus = ddim_timesteps(schedule.num_steps, num_inference_steps).tolist()
    alpha_bar_prev = 1.0
    for i, step in enumerate(taus):
        # ε̂ is evaluated at the current point; at the first step (still x_0) at the lowest timestep
        t = torch.full((xt.shape[0],), taus[i - 1] if i > 0 else step, dtype=torch.long, device=xt.device)
        eps_pred, _ = eps_and_x0_from_output(schedule, xt, t, model(xt, t), prediction)
        alpha_bar = schedule.alpha_bars[step].item()
        x0_pred = (xt - (1 - alpha_bar_prev) ** 0.5 * eps_pred) / alpha_bar_prev**0.5
        xt = alpha_bar**0.5 * x0_pred + (1 - alpha_bar) ** 0.5 * eps_pred
        alpha_bar_prev = alpha_bar
    return _finish(xt, "ddim_invert")


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

    With λ_t = log(√ᾱ_t / √(1-ᾱ_t)), half the log-SNR, the ODE's exact step from timestep t to t' (λ_t' > λ_t) is
        x_t' = (√(1-ᾱ_t') / √(1-ᾱ_t)) x_t + √(1-ᾱ_t') ∫ e^λ x̂_0(x_λ) dλ over [λ_t, λ_t'].
    Holding x̂_0 at its value at t gives
        x_t' = (√(1-ᾱ_t') / √(1-ᾱ_t)) x_t + √ᾱ_t' (1 - e^{-h}) D,   h = λ_t' - λ_t,   D = x̂_0(x_t),
    which is exactly DDIM with η = 0 (order=1). Order 2 reuses the previous step's x̂_0 to take x̂_0
    as linear in λ: D = (1 + 1/(2r)) x̂_0(x_t) - 1/(2r) x̂_0(x_prev), r = h_prev / h; the first step,
    with no previous x̂_0, is DDIM's. One network call per step; after the last timestep, τ_1 = 0, the
    sampler returns x̂_0, as `ddim_sample` does. Deterministic: only x_T is drawn from `generator`.
    spacing: 'logsnr' (default) puts the timesteps evenly in λ, so every h is equal; 'uniform' uses
    `ddim_sample`'s evenly spaced t, where the last steps are long in λ and the extrapolation overshoots.
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 (DDIM) or 2 (DPM-Solver++(2M)), got {order}")
    if spacing not in ("logsnr", "uniform"):
        raise ValueError(f"spacing must be 'logsnr' or 'uniform', got {spacing!r}")
    if spacing == "logsnr":
        taus = logsnr_timesteps(schedule, num_inference_steps)
    else:
        taus = ddim_timesteps(schedule.num_steps, num_inference_steps)
    taus = taus.flip(0).tolist()  # τ_S, ..., τ_1
    xt = _start(shape, x_T, generator, device, dtype)
    lambdas = 0.5 * schedule.log_snr  # λ_t = log(√ᾱ_t / √(1-ᾱ_t))
    alpha_bar_next = schedule.alpha_bars[taus[1]].item() if len(taus) > 1 else 1.0
    _check_first_step(schedule.alpha_bars, taus[0], alpha_bar_next, 0.0, prediction, clip_x0)  # DDIM's, η = 0
    x0_prev = h_prev = None
    for i, step in enumerate(taus):
        t = torch.full((xt.shape[0],), step, dtype=torch.long, device=xt.device)
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
        ratio = (schedule.sqrt_one_minus_alpha_bars[nxt] / schedule.sqrt_one_minus_alpha_bars[step]).item()
        xt = ratio * xt - schedule.sqrt_alpha_bars[nxt].item() * math.expm1(-h) * d  # + √ᾱ_t' (1 - e^{-h}) D
        x0_prev, h_prev = x0_pred, h
    return _finish(x0_pred, "dpm_solver_sample")


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
    neg_lambda = -0.5 * schedule.log_snr  # -λ_t, increasing in t
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


# ---- shared by the samplers ----------------------------------------------------------------------
def _predict(model, schedule: Schedule, xt, t, prediction: str, clip_x0: bool):
    """(ε̂, x̂_0) from the network at (x_t, t); with clip_x0, x̂_0 is clamped to [-1, 1] and ε̂ recomputed from it."""
    eps_pred, x0_pred = eps_and_x0_from_output(schedule, xt, t, model(xt, t), prediction)
    if clip_x0:
        x0_pred = x0_pred.clamp(-1, 1)
        eps_pred = eps_from_x0(schedule, xt, t, x0_pred)
    return eps_pred, x0_pred


def _ddim_coefficients(alpha_bar: float, alpha_bar_prev: float, eta: float) -> tuple[float, float]:
    """(σ, weight of ε̂) for one DDIM step from ᾱ to ᾱ_prev. [DDIM Eq. 12, 16]"""
    sigma = eta * ((1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev)) ** 0.5
    return sigma, max(1 - alpha_bar_prev - sigma**2, 0.0) ** 0.5


def _check_first_step(alpha_bars, step: int, alpha_bar_prev: float, eta: float, prediction, clip_x0) -> None:
    """Warn when the first step, from timestep `step` to ᾱ_prev with DDIM's η, multiplies the error in ε̂ by > 100.

    x̂_0 = (x_t - √(1-ᾱ) ε̂) / √ᾱ: where ᾱ_T ≈ 0 (the cosine schedule: 2.4e-9 at T = 1000), a step
    that leaves t = T with a large jump in ᾱ (DDIM with few steps) carries that error into every later
    step. DDPM's step has the mean of DDIM's with η = 1 to the next timestep, so one formula serves all.
    """
    if prediction != "eps" or clip_x0:
        return
    alpha_bar = alpha_bars[step].item()
    # ε̂'s total weight in the step, once x̂_0 = (x_t - √(1-ᾱ) ε̂) / √ᾱ is substituted
    gain = abs(
        _ddim_coefficients(alpha_bar, alpha_bar_prev, eta)[1] - (alpha_bar_prev / alpha_bar * (1 - alpha_bar)) ** 0.5
    )
    if gain > 100:
        warnings.warn(
            f"the first sampling step multiplies the network's error in ε̂ by {gain:,.0f} (ᾱ = {alpha_bar:.1e} at "
            "its timestep), which ruins the samples. Pass clip_x0=True (data in [-1, 1]), use more steps, or train "
            "with prediction='v' or a schedule whose last ᾱ is further from 0 (at T = 1000 the cosine schedule's is "
            "2.4e-9, the linear one's 4.0e-5).",
            stacklevel=4,  # the caller of the sampler (past torch.no_grad's wrapper)
        )


def _start(shape, x_T, generator, device, dtype) -> torch.Tensor:
    if x_T is not None:
        _check_start(x_T, "x_T")
        if shape is not None and tuple(shape) != tuple(x_T.shape):
            raise ValueError(f"shape {tuple(shape)} and x_T's shape {tuple(x_T.shape)} differ: give one of them")
        return x_T.clone()
    if shape is None:
        raise ValueError("give either shape or x_T")
    return randn(tuple(shape), generator, device, dtype)


def _check_start(x, name: str) -> None:
    """What a sampler starts from (x_T, or ddim_invert's x0): a floating-point batch without NaN or infinity."""
    check_float_tensor(x, name)
    bad = non_finite_rows(x)
    if bad:
        raise ValueError(f"{name} holds NaN or infinite values in {bad} of its {len(x)} rows")


def _finish(x: torch.Tensor, sampler: str) -> torch.Tensor:
    """Return the samples, warning (not silently) when some are NaN or infinite: the network's output diverged."""
    bad = non_finite_rows(x)
    if bad:
        warnings.warn(
            f"{sampler}: {bad} of {len(x)} samples hold NaN or infinite values: the network's output diverged "
            "(a training loss gone to NaN, weights in another dtype than trained, or a checkpoint made for another "
            "schedule or prediction)",
            stacklevel=4,  # the caller of the sampler (past torch.no_grad's wrapper)
        )
    return x
