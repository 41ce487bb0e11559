"""Variants of L_simple as parts the caller composes: a per-example weight, a lower-variance target, a flip.

    losses = extended_losses(model, schedule, x0, t, eps, prediction="eps", min_snr_gamma=5.0, reference=data)

is what `extras.Trainer` uses; each piece is also usable alone: `min_snr_weights` returns weights the caller
multiplies in, `posterior_mean_targets` returns the targets to regress on.
"""

from __future__ import annotations

import torch

from ..analytic import empirical_x0_mean
from ..forward import eps_from_x0, q_sample
from ..schedules import Schedule
from ..training import training_losses

__all__ = ["min_snr_weights", "posterior_mean_targets", "extended_losses", "random_hflip"]


def min_snr_weights(schedule: Schedule, t: torch.Tensor, gamma: float, prediction: str = "eps") -> torch.Tensor:
    """Per-example weights (B,) that turn L_simple into min(SNR_t, γ) times the x_0 error. [Hang et al. 2023]

    ‖ε̂ - ε‖² = SNR ‖x̂_0 - x_0‖² and ‖v̂ - v‖² = (1 + SNR) ‖x̂_0 - x_0‖², so those factors are divided out and
    min(SNR, γ) multiplied in: the low-noise steps, which L_simple over-weights, stop dominating.
    """
    if not gamma > 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    snr = schedule.snr.to(t.device)[t]
    clipped = snr.clamp(max=gamma)
    return {"eps": clipped / snr, "x0": clipped, "v": clipped / (snr + 1)}[prediction].float()


def posterior_mean_targets(
    schedule: Schedule, xt: torch.Tensor, t: torch.Tensor, reference: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(E[x_0 | x_t], E[ε | x_t]) when x_0 is drawn from the N points of `reference`: the Rao-Blackwellised target.

    Since E_ε‖ε_θ - ε‖² = ‖ε_θ - E[ε | x_t]‖² + Var(ε | x_t), regressing on E[ε | x_t] has L_simple's minimum and
    expected gradient, with less noise per step [Stable Target Field, Xu et al. 2023]. (`analytic.empirical_x0_mean`)
    """
    x0 = empirical_x0_mean(schedule, xt, t, reference)
    return x0, eps_from_x0(schedule, xt, t, x0)


def extended_losses(
    model,
    schedule: Schedule,
    x0: torch.Tensor,
    t: torch.Tensor,
    eps: torch.Tensor,
    y: torch.Tensor | None = None,
    prediction: str = "eps",
    min_snr_gamma: float | None = None,
    reference: torch.Tensor | None = None,
) -> torch.Tensor:
    """`training_losses` with the posterior-mean target (given `reference`) and Min-SNR weights (given γ). (B,)"""
    if reference is not None:  # the same x_t = √ᾱ x_0 + √(1-ᾱ) ε, its (x_0, ε) replaced by their posterior means
        x0, eps = posterior_mean_targets(schedule, q_sample(schedule, x0, t, eps), t, reference)
    losses = training_losses(model, schedule, x0, t, eps, y, prediction)
    return losses if min_snr_gamma is None else losses * min_snr_weights(schedule, t, min_snr_gamma, prediction)


def random_hflip(x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image (B, C, H, W) mirrored left to right with probability 1/2, the choices drawn from `generator`."""
    if x0.dim() != 4:
        raise ValueError(f"hflip needs images (B, C, H, W), got shape {tuple(x0.shape)}")
    flip = torch.rand(len(x0), generator=generator) < 0.5
    return torch.where(flip[:, None, None, None].to(x0.device), x0.flip(-1), x0)
