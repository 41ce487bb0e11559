"""The forward (noising) process q and its posterior, and conversions between parameterisations.

[DDPM Eqs. 2, 4, 6, 7], [Luo22 Eqs. 70, 84, 133, 151]. Timesteps `t` are 0-based LongTensors of
shape (B,); `t` holds the paper's step t + 1. Data `x0` is (B, ...) of any rank >= 1.
"""

from __future__ import annotations

import torch

from ._checks import check_float_tensor, check_same_shape
from .schedules import Schedule, gather

__all__ = [
    "randn",
    "q_step_sample",
    "q_mean_variance",
    "q_sample",
    "q_posterior_mean_variance",
    "x0_from_eps",
    "eps_from_x0",
    "v_from_eps",
    "x0_from_v",
    "eps_from_v",
    "score_from_eps",
    "eps_from_score",
]


def randn(
    shape: tuple[int, ...],
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Standard normal noise of `shape` on `device`, drawn from `generator` on the generator's own device.

    So a CPU generator serves a GPU tensor too (torch.randn refuses it): one seed, the same noise on any device.
    """
    device = None if device is None else torch.device(device)
    if generator is None or device is None or generator.device.type == device.type:
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)
    return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)


def _eps_like(x: torch.Tensor, eps: torch.Tensor | None, generator: torch.Generator | None) -> torch.Tensor:
    if eps is None:
        return randn(x.shape, generator, x.device, x.dtype)
    check_float_tensor(eps, "eps")
    check_same_shape(x, eps, "x", "eps")
    return eps


def q_step_sample(
    schedule: Schedule,
    x_prev: torch.Tensor,
    t: torch.Tensor,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    *,
    noise: torch.Tensor | None = None,  # eps's former name, still accepted
) -> torch.Tensor:
    """Sample x_t ~ q(x_t | x_{t-1}), one step of the chain. [DDPM Eq. 2]

    x_t = sqrt(1 - β_t) * x_{t-1} + sqrt(β_t) * ε

    Args: x_prev (B, ...) the previous state (x_0 when t == 0); t (B,) 0-based step index.
    Returns: x_t (B, ...).
    """
    check_float_tensor(x_prev, "x_prev")
    eps = _eps_like(x_prev, eps if noise is None else noise, generator)
    return gather(schedule.alphas.sqrt(), t, x_prev) * x_prev + gather(schedule.betas.sqrt(), t, x_prev) * eps


def q_mean_variance(schedule: Schedule, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of q(x_t | x_0). [DDPM Eq. 4]

    mean = sqrt(ᾱ_t) * x_0,  variance = 1 - ᾱ_t

    Returns: mean (B, ...), variance (B, 1, ..., 1).
    """
    check_float_tensor(x0, "x0")
    mean = gather(schedule.sqrt_alpha_bars, t, x0) * x0
    variance = gather(1.0 - schedule.alpha_bars, t, x0)
    return mean, variance


def q_sample(
    schedule: Schedule,
    x0: torch.Tensor,
    t: torch.Tensor,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    *,
    noise: torch.Tensor | None = None,  # eps's former name, still accepted
) -> torch.Tensor:
    """Sample x_t ~ q(x_t | x_0) in closed form. [DDPM Eq. 4]

    x_t = sqrt(ᾱ_t) * x_0 + sqrt(1 - ᾱ_t) * ε,  ε ~ N(0, I)

    Args: x0 (B, ...); t (B,) 0-based; eps ε (B, ...), or None to draw it from `generator`.
    Returns: x_t (B, ...).
    """
    check_float_tensor(x0, "x0")
    eps = _eps_like(x0, eps if noise is None else noise, generator)
    return gather(schedule.sqrt_alpha_bars, t, x0) * x0 + gather(schedule.sqrt_one_minus_alpha_bars, t, x0) * eps


def q_posterior_mean_variance(
    schedule: Schedule, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, variance and clipped log-variance of the posterior q(x_{t-1} | x_t, x_0). [DDPM Eqs. 6, 7]

    μ̃_t = √ᾱ_{t-1} β_t / (1 - ᾱ_t) * x_0 + √α_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t) * x_t
    β̃_t = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) * β_t

    At t == 0 (the paper's t = 1) the posterior is a point mass at x_0: β̃ = 0, and the
    log-variance returned is clipped to log β̃ of the next step so it stays finite.
    Returns: mean (B, ...), variance (B, 1, ...), log_variance (B, 1, ...).
    """
    check_float_tensor(x0, "x0")
    check_same_shape(x0, xt, "x0", "xt")
    mean = gather(schedule.posterior_mean_coef1, t, xt) * x0 + gather(schedule.posterior_mean_coef2, t, xt) * xt
    variance = gather(schedule.posterior_variance, t, xt)
    log_variance = gather(schedule.posterior_log_variance_clipped, t, xt)
    return mean, variance, log_variance


def x0_from_eps(schedule: Schedule, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x_0 from (x_t, ε) by inverting Eq. 4. [DDPM Eq. 4], [Luo22 Eq. 115]

    x_0 = (x_t - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t) = sqrt(1/ᾱ_t) x_t - sqrt(1/ᾱ_t - 1) ε
    """
    check_float_tensor(xt, "xt")
    check_same_shape(xt, eps, "xt", "eps")
    return gather(schedule.sqrt_recip_alpha_bars, t, xt) * xt - gather(schedule.sqrt_recipm1_alpha_bars, t, xt) * eps


def eps_from_x0(schedule: Schedule, xt: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """ε from (x_t, x_0). [DDPM Eq. 4]

    ε = (x_t - sqrt(ᾱ_t) x_0) / sqrt(1 - ᾱ_t)
    """
    check_float_tensor(xt, "xt")
    check_same_shape(xt, x0, "xt", "x0")
    return (xt - gather(schedule.sqrt_alpha_bars, t, xt) * x0) / gather(schedule.sqrt_one_minus_alpha_bars, t, xt)


def v_from_eps(schedule: Schedule, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The velocity target v. [Salimans & Ho 2022, §4]

    v = sqrt(ᾱ_t) ε - sqrt(1 - ᾱ_t) x_0
    """
    check_float_tensor(x0, "x0")
    check_same_shape(x0, eps, "x0", "eps")
    return gather(schedule.sqrt_alpha_bars, t, x0) * eps - gather(schedule.sqrt_one_minus_alpha_bars, t, x0) * x0


def x0_from_v(schedule: Schedule, xt: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """x_0 from (x_t, v): x_0 = sqrt(ᾱ_t) x_t - sqrt(1 - ᾱ_t) v."""
    check_float_tensor(xt, "xt")
    check_same_shape(xt, v, "xt", "v")
    return gather(schedule.sqrt_alpha_bars, t, xt) * xt - gather(schedule.sqrt_one_minus_alpha_bars, t, xt) * v


def eps_from_v(schedule: Schedule, xt: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """ε from (x_t, v): ε = sqrt(1 - ᾱ_t) x_t + sqrt(ᾱ_t) v."""
    check_float_tensor(xt, "xt")
    check_same_shape(xt, v, "xt", "v")
    return gather(schedule.sqrt_one_minus_alpha_bars, t, xt) * xt + gather(schedule.sqrt_alpha_bars, t, xt) * v


def score_from_eps(schedule: Schedule, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The score ∇ log q(x_t) from the noise prediction (Tweedie's formula). [Luo22 Eq. 151]

    ∇_{x_t} log q(x_t) = -ε / sqrt(1 - ᾱ_t)
    """
    check_float_tensor(eps, "eps")
    return -eps / gather(schedule.sqrt_one_minus_alpha_bars, t, eps)


def eps_from_score(schedule: Schedule, score: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """ε from the score: ε = -sqrt(1 - ᾱ_t) ∇ log q(x_t)."""
    check_float_tensor(score, "score")
    return -gather(schedule.sqrt_one_minus_alpha_bars, t, score) * score
