"""Data distributions whose diffused marginals and optimal denoisers are known in closed form.

A mixture of isotropic Gaussians (any dimension D) stays a mixture of Gaussians under the forward
process, q(x_t) = Σ_k w_k N(√ᾱ_t μ_k, (ᾱ_t s_k² + 1 - ᾱ_t) I), so its score and the optimal noise
prediction ε*(x_t, t) = E[ε | x_t] = -sqrt(1 - ᾱ_t) ∇ log q(x_t) [Luo22 Eq. 151] are exact. With
s_k = 0 the mixture is a set of atoms: discrete data, such as pixels quantised to K levels.
These are the oracles for the ELBO and the samplers.
"""

from __future__ import annotations

import math

import torch

from ._checks import check_float_tensor
from .schedules import Schedule, gather

__all__ = ["GaussianMixture"]


class GaussianMixture:
    """Σ_k w_k N(μ_k, s_k² I) in D dimensions; s_k may be 0 (an atom).

    Args: weights (K,) positive, normalised here; means (K, D); stds (K,) non-negative.
    Computations run in float64.
    """

    def __init__(self, weights, means, stds):
        weights = torch.as_tensor(weights, dtype=torch.float64)
        means = torch.as_tensor(means, dtype=torch.float64)
        stds = torch.as_tensor(stds, dtype=torch.float64)
        if means.dim() == 1:
            means = means[:, None]
        k = means.shape[0]
        if weights.shape != (k,) or stds.shape != (k,):
            raise ValueError(
                f"weights and stds must have shape ({k},) to match means {tuple(means.shape)}, "
                f"got {tuple(weights.shape)} and {tuple(stds.shape)}"
            )
        if (weights <= 0).any() or (stds < 0).any():
            raise ValueError("weights must be positive and stds non-negative")
        self.weights = weights / weights.sum()
        self.means = means
        self.stds = stds

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples, shape (n, D), float64."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.means[k] + self.stds[k, None] * noise

    def _diffused(self, alpha_bar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Component means (B, K, D) and variances (B, K, 1) of q(x_t) for per-example ᾱ (B,)."""
        a = alpha_bar.reshape(-1, 1, 1)
        means = a.sqrt() * self.means[None]
        variances = a * self.stds[None, :, None] ** 2 + (1 - a)
        return means, variances

    def log_prob(self, x: torch.Tensor, alpha_bar: torch.Tensor | float = 1.0) -> torch.Tensor:
        """log q(x) of the mixture diffused to ᾱ (1.0: the data itself). x (B, D) -> (B,).

        Needs every s_k > 0 when ᾱ = 1 (atoms have no density).
        """
        x = x.double()
        alpha_bar = torch.as_tensor(alpha_bar, dtype=torch.float64).expand(x.shape[0])
        means, variances = self._diffused(alpha_bar)
        if (variances == 0).any():
            raise ValueError("an atom (std 0) has no density at alpha_bar = 1")
        sq = ((x[:, None, :] - means) ** 2).sum(-1)  # (B, K)
        var = variances[..., 0]
        log_comp = -0.5 * (sq / var + self.dim * torch.log(2 * math.pi * var))
        return torch.logsumexp(log_comp + self.weights.log(), dim=1)

    def _responsibilities(self, xt: torch.Tensor, alpha_bar: torch.Tensor):
        means, variances = self._diffused(alpha_bar)
        sq = ((xt[:, None, :] - means) ** 2).sum(-1)
        var = variances[..., 0]
        log_comp = -0.5 * (sq / var + self.dim * torch.log(var)) + self.weights.log()
        return torch.softmax(log_comp, dim=1), means, variances

    def score(self, xt: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
        """∇_x log q_t(x) at ᾱ (B,) for xt (B, D), float64."""
        resp, means, variances = self._responsibilities(xt.double(), alpha_bar.double())
        return (resp[..., None] * (means - xt.double()[:, None, :]) / variances).sum(1)

    def optimal_eps(self, schedule: Schedule, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The minimum-MSE noise prediction E[ε | x_t] = -sqrt(1 - ᾱ_t) ∇ log q(x_t). [Luo22 Eq. 151]

        xt (B, ...) whose trailing dims flatten to D; returns the same shape and dtype as xt.
        """
        check_float_tensor(xt, "xt")
        flat = xt.reshape(xt.shape[0], -1)
        if flat.shape[1] != self.dim:
            raise ValueError(f"xt has {flat.shape[1]} dimensions per example but the mixture has {self.dim}")
        alpha_bar = gather(schedule.alpha_bars, t, flat.double()).reshape(-1)
        eps = -(1 - alpha_bar).sqrt()[:, None] * self.score(flat, alpha_bar)
        return eps.reshape(xt.shape).to(xt.dtype)

    def denoiser(self, schedule: Schedule):
        """A `model(xt, t)` callable returning the optimal ε, usable wherever a network is."""
        return lambda xt, t: self.optimal_eps(schedule, xt, t)
