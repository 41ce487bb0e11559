"""The variational bound on -log p(x_0) and its terms, in nats or bits per dimension.

[DDPM Eq. 5]:  L = L_T + Σ_{t>1} L_{t-1} + L_0
    L_T     = KL(q(x_T | x_0) ‖ p(x_T))                       -> `prior_kl`
    L_{t-1} = KL(q(x_{t-1} | x_t, x_0) ‖ p_θ(x_{t-1} | x_t))  -> `kl_term`
    L_0     = -log p_θ(x_0 | x_1)  (discretised Gaussian)     -> `decoder_nll`
and the simplified objective L_simple = ‖ε - ε_θ(x_t, t)‖² [DDPM Eq. 14] -> `loss_simple`.
Every loss is returned per example, shape (B,); only the training loop reduces over the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ._checks import check_float_tensor, check_same_shape
from .forward import q_mean_variance, q_posterior_mean_variance, q_sample
from .reverse import model_log_variance, p_mean_variance
from .schedules import Schedule

__all__ = [
    "normal_kl",
    "discretized_gaussian_log_likelihood",
    "prior_kl",
    "kl_term",
    "decoder_nll",
    "vb_term",
    "nll_bound",
    "bits_per_dim",
    "loss_simple",
    "eps_mse_weights",
]


def _sum_except_batch(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).sum(dim=1)


def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    """Elementwise KL(N(mean1, exp(logvar1)) ‖ N(mean2, exp(logvar2))) in nats. [Luo22 Eq. 87]

    KL = 0.5 * (logvar2 - logvar1 + (exp(logvar1) + (mean1 - mean2)^2) / exp(logvar2) - 1)
    Arguments broadcast against each other.
    """
    tensor = next(x for x in (mean1, logvar1, mean2, logvar2) if isinstance(x, torch.Tensor))
    logvar1, logvar2 = (torch.as_tensor(v, dtype=tensor.dtype, device=tensor.device) for v in (logvar1, logvar2))
    return 0.5 * (logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2) - 1.0)


def _log_bin_mass(upper: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
    """log(Φ(upper) - Φ(lower)) for upper > lower, accurate in both tails (float64)."""
    # Reflect bins that lie right of 0 so both ends sit in the lower tail, where log_ndtr is exact.
    flip = (upper + lower) > 0
    a = torch.where(flip, -lower, upper)
    b = torch.where(flip, -upper, lower)
    log_a, log_b = torch.special.log_ndtr(a), torch.special.log_ndtr(b)
    return log_a + torch.log(-torch.expm1((log_b - log_a).clamp(max=-1e-300)))


def discretized_gaussian_log_likelihood(
    x: torch.Tensor, mean: torch.Tensor, log_variance: torch.Tensor, num_levels: int = 256
) -> torch.Tensor:
    """Elementwise log-probability of data on K levels under a discretised Gaussian. [DDPM Eq. 13]

    The levels are -1, -1 + δ, ..., 1 with δ = 2 / (K - 1); level x gets the Gaussian's mass on
    [x - δ/2, x + δ/2], with the outermost bins extended to ±∞, so the K masses sum to 1.
    Args: x (B, ...) on the grid; mean (B, ...); log_variance broadcastable to x.
    """
    check_float_tensor(x, "x")
    check_same_shape(x, mean, "x", "mean")
    if not isinstance(num_levels, int) or num_levels < 2:
        raise ValueError(f"num_levels must be an int >= 2, got {num_levels!r}")
    half_bin = 1.0 / (num_levels - 1)
    x64 = x.double()
    if (x64.abs() > 1 + 1e-6).any():
        raise ValueError(f"x must lie in [-1, 1], got values in [{x64.min().item():.4g}, {x64.max().item():.4g}]")
    levels = (x64 + 1) / (2 * half_bin)
    if (levels - levels.round()).abs().max() > 1e-3:
        raise ValueError(f"x is not quantised to {num_levels} levels in [-1, 1]; pass the right num_levels")
    inv_std = torch.exp(-0.5 * torch.as_tensor(log_variance, device=x.device).double())
    centered = x64 - mean.double()
    upper = (centered + half_bin) * inv_std
    lower = (centered - half_bin) * inv_std
    upper = torch.where(x64 > 1 - half_bin, torch.full_like(upper, math.inf), upper)
    lower = torch.where(x64 < -1 + half_bin, torch.full_like(lower, -math.inf), lower)
    log_probs = torch.where(
        torch.isinf(lower),
        torch.special.log_ndtr(upper),
        torch.where(torch.isinf(upper), torch.special.log_ndtr(-lower), _log_bin_mass(upper, lower)),
    )
    return log_probs.to(x.dtype)


def prior_kl(schedule: Schedule, x0: torch.Tensor) -> torch.Tensor:
    """L_T = KL(q(x_T | x_0) ‖ N(0, I)) per example, in nats. [DDPM Eq. 5]  Returns (B,)."""
    t = torch.full((x0.shape[0],), schedule.num_steps - 1, dtype=torch.long, device=x0.device)
    mean, variance = q_mean_variance(schedule, x0, t)
    return _sum_except_batch(normal_kl(mean, torch.log(variance), 0.0, 0.0))


def kl_term(
    schedule: Schedule,
    x0: torch.Tensor,
    xt: torch.Tensor,
    t: torch.Tensor,
    model_mean: torch.Tensor,
    model_log_variance: torch.Tensor,
) -> torch.Tensor:
    """L_{t-1} = KL(q(x_{t-1} | x_t, x_0) ‖ p_θ(x_{t-1} | x_t)) per example, in nats. [DDPM Eq. 5]

    Defined for t >= 1 (0-based; the paper's t >= 2). Returns (B,).
    """
    if (t < 1).any():
        raise ValueError("kl_term needs t >= 1 (0-based); at t == 0 use decoder_nll")
    true_mean, _, true_log_variance = q_posterior_mean_variance(schedule, x0, xt, t)
    return _sum_except_batch(normal_kl(true_mean, true_log_variance, model_mean, model_log_variance))


def decoder_nll(
    x0: torch.Tensor, model_mean: torch.Tensor, model_log_variance: torch.Tensor, num_levels: int = 256
) -> torch.Tensor:
    """L_0 = -log p_θ(x_0 | x_1) per example, in nats, with the discretised decoder. [DDPM Eq. 13]"""
    return -_sum_except_batch(discretized_gaussian_log_likelihood(x0, model_mean, model_log_variance, num_levels))


def vb_term(
    schedule: Schedule,
    x0: torch.Tensor,
    xt: torch.Tensor,
    t: torch.Tensor,
    model_mean: torch.Tensor,
    model_log_variance: torch.Tensor,
    num_levels: int = 256,
) -> torch.Tensor:
    """The bound's term at each example's t: L_0 where t == 0, else L_{t-1}. Returns (B,) nats."""
    true_mean, _, true_log_variance = q_posterior_mean_variance(schedule, x0, xt, t)
    kl = _sum_except_batch(normal_kl(true_mean, true_log_variance, model_mean, model_log_variance))
    first = t == 0
    if not first.any():
        return kl
    nll = decoder_nll(x0[first], model_mean[first], model_log_variance.expand_as(x0)[first], num_levels)
    return kl.masked_scatter(first, nll.to(kl.dtype))


def nll_bound(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    schedule: Schedule,
    x0: torch.Tensor,
    num_levels: int = 256,
    variance: str = "beta_tilde",
    prediction: str = "eps",
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Every term of the bound L ≥ -log p(x_0), one x_t sample per t. [DDPM Eq. 5], [iDDPM §3]

    Runs the model at all T timesteps (T forward passes on the batch).
    Returns a dict of nats: 'prior' (B,), 'terms' (B, T) with terms[:, 0] = L_0 and
    terms[:, t] = L_t for t >= 1, and 'total' (B,) = prior + terms.sum(1).
    """
    check_float_tensor(x0, "x0", min_rank=2)
    batch = x0.shape[0]
    terms = []
    with torch.no_grad():
        for step in range(schedule.num_steps):
            t = torch.full((batch,), step, dtype=torch.long, device=x0.device)
            xt = q_sample(schedule, x0, t, generator=generator)
            out = p_mean_variance(schedule, xt, t, model(xt, t), prediction=prediction, variance=variance)
            terms.append(vb_term(schedule, x0, xt, t, out.model_mean, out.model_log_variance, num_levels))
    terms = torch.stack(terms, dim=1)
    prior = prior_kl(schedule, x0)
    return {"prior": prior, "terms": terms, "total": prior + terms.sum(dim=1)}


def bits_per_dim(nats: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Convert a per-example value in nats to bits per dimension: nats / (D log 2), D = x0[0].numel().

    `nats` is (B,), one value per example of x0 (B, ...), or a single number (0-d) for any of them."""
    nats = torch.as_tensor(nats)
    if x0.dim() < 1 or (nats.dim() > 0 and tuple(nats.shape) != (len(x0),)):
        raise ValueError(
            f"nats must hold one value per example of x0 (B, ...) or be a single number; got nats of shape "
            f"{tuple(nats.shape)} for x0 of shape {tuple(x0.shape)}"
        )
    return nats / (x0[0].numel() * math.log(2.0))


def loss_simple(model_output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_simple: the mean squared error per example. [DDPM Eq. 14]  Returns (B,).

    With ε-prediction the target is ε; with x0- or v-prediction it is x_0 or v.
    """
    check_float_tensor(model_output, "model_output")
    check_same_shape(target, model_output, "target", "model_output")
    return ((model_output - target) ** 2).reshape(model_output.shape[0], -1).mean(dim=1)


def eps_mse_weights(schedule: Schedule, variance: str = "beta_tilde") -> torch.Tensor:
    """The weight λ_t with L_{t-1} = λ_t ‖ε - ε_θ‖² for a fixed σ_t². [DDPM Eq. 12]

    λ_t = β_t² / (2 σ_t² α_t (1 - ᾱ_t)),  returned for every 0-based t as a (T,) float64 tensor
    (the entry at t = 0 belongs to L_0, which is not of this form, and is set to NaN).
    """
    t = torch.arange(schedule.num_steps)
    sigma2 = model_log_variance(schedule, t, schedule.betas, variance).exp().reshape(-1)
    weights = schedule.betas**2 / (2 * sigma2 * schedule.alphas * (1 - schedule.alpha_bars))
    weights[0] = math.nan
    return weights
