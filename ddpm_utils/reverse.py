"""The reverse model p_θ(x_{t-1} | x_t) built from a network's output. [DDPM Eqs. 1, 11, 12]

The network predicts ε by default; x_0- and v-prediction are converted to (ε̂, x̂_0) by
`eps_and_x0_from_output`, so everything downstream (ELBO, samplers) sees one interface.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._checks import check_float_tensor, check_same_shape
from .forward import eps_from_v, eps_from_x0, q_posterior_mean_variance, v_from_eps, x0_from_eps, x0_from_v
from .schedules import Schedule, gather

__all__ = [
    "PREDICTIONS",
    "VARIANCES",
    "ReverseStep",
    "eps_and_x0_from_output",
    "output_from_eps_and_x0",
    "model_log_variance",
    "p_mean_variance",
]

PREDICTIONS = ("eps", "x0", "v")
VARIANCES = ("beta", "beta_tilde")


@dataclass
class ReverseStep:
    """Parameters of p_θ(x_{t-1} | x_t) = N(model_mean, model_variance), plus the predictions behind them."""

    model_mean: torch.Tensor  # (B, ...)
    model_variance: torch.Tensor  # (B, 1, ...)
    model_log_variance: torch.Tensor  # (B, 1, ...)
    x0_pred: torch.Tensor  # (B, ...)
    eps_pred: torch.Tensor  # (B, ...)


def eps_and_x0_from_output(
    schedule: Schedule, xt: torch.Tensor, t: torch.Tensor, model_output: torch.Tensor, prediction: str = "eps"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn a network output into (ε̂, x̂_0) for prediction type 'eps', 'x0' or 'v'."""
    check_float_tensor(xt, "xt")
    check_same_shape(xt, model_output, "xt", "model_output")
    if prediction == "eps":
        return model_output, x0_from_eps(schedule, xt, t, model_output)
    if prediction == "x0":
        return eps_from_x0(schedule, xt, t, model_output), model_output
    if prediction == "v":
        return eps_from_v(schedule, xt, t, model_output), x0_from_v(schedule, xt, t, model_output)
    raise ValueError(f"unknown prediction {prediction!r}; expected one of {PREDICTIONS}")


def output_from_eps_and_x0(
    schedule: Schedule, t: torch.Tensor, eps: torch.Tensor, x0: torch.Tensor, prediction: str = "eps"
) -> torch.Tensor:
    """The inverse of `eps_and_x0_from_output`: what a network of type `prediction` should output
    for (ε, x_0) — ε, x_0, or v = √ᾱ ε - √(1-ᾱ) x_0. The training target, and an exact denoiser's output."""
    if prediction == "eps":
        return eps
    if prediction == "x0":
        return x0
    if prediction == "v":
        return v_from_eps(schedule, x0, t, eps)
    raise ValueError(f"unknown prediction {prediction!r}; expected one of {PREDICTIONS}")


def model_log_variance(schedule: Schedule, t: torch.Tensor, x: torch.Tensor, variance: str) -> torch.Tensor:
    """log σ_t² for the fixed reverse variances of [DDPM §3.2]: σ_t² = β_t ('beta') or β̃_t ('beta_tilde').

    For 'beta' the first step uses β̃_2 instead of β_1, as in the reference code, so that the
    decoder's variance is not tiny; for 'beta_tilde' the first step is clipped likewise.
    Returns (B, 1, ..., 1) broadcast like x.
    """
    if variance == "beta":
        log_var = torch.log(torch.cat([schedule.posterior_variance[1:2], schedule.betas[1:]]))
        if schedule.num_steps == 1:
            log_var = torch.log(schedule.betas)
    elif variance == "beta_tilde":
        log_var = schedule.posterior_log_variance_clipped
    else:
        raise ValueError(f"unknown variance {variance!r}; expected one of {VARIANCES}")
    return gather(log_var, t, x)


def p_mean_variance(
    schedule: Schedule,
    xt: torch.Tensor,
    t: torch.Tensor,
    model_output: torch.Tensor,
    prediction: str = "eps",
    variance: str = "beta_tilde",
    clip_x0: bool = False,
) -> ReverseStep:
    """Mean and variance of p_θ(x_{t-1} | x_t). [DDPM Eq. 11]

    μ_θ(x_t, t) = μ̃_t(x_t, x̂_0)  with  x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε̂) / sqrt(ᾱ_t)
               = (x_t - β_t / sqrt(1 - ᾱ_t) ε̂) / sqrt(α_t)

    Args: xt (B, ...); t (B,) 0-based; model_output (B, ...) the network's prediction;
    clip_x0 clamps x̂_0 to [-1, 1] before forming the mean (and re-derives ε̂ from it).
    """
    eps_pred, x0_pred = eps_and_x0_from_output(schedule, xt, t, model_output, prediction)
    if clip_x0:
        x0_pred = x0_pred.clamp(-1.0, 1.0)
        eps_pred = eps_from_x0(schedule, xt, t, x0_pred)
    model_mean, _, _ = q_posterior_mean_variance(schedule, x0_pred, xt, t)
    log_var = model_log_variance(schedule, t, xt, variance)
    return ReverseStep(model_mean, log_var.exp(), log_var, x0_pred, eps_pred)
