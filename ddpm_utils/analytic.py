"""Data distributions whose diffused marginals and optimal denoisers are known in closed form.

A mixture of isotropic Gaussians (any dimension D) stays a mixture of Gaussians under the forward
process, q(x_t) = Σ_k w_k N(√ᾱ_t μ_k, (ᾱ_t s_k² + 1 - ᾱ_t) I), so its score and the optimal noise
prediction ε*(x_t, t) = E[ε | x_t] = -sqrt(1 - ᾱ_t) ∇ log q(x_t) [Luo22 Eq. 151] are exact. With
s_k = 0 the mixture is a set of atoms: discrete data, such as pixels quantised to K levels.
These are the oracles for the ELBO and the samplers.

`GaussianData` is the other closed form: one Gaussian with a full covariance, N(μ, Σ), fitted to a
data set. It is the best model of the data that knows only its first two moments, and the "bad"
model that `sampling.Guided` steers a network away from.

A training set of N images is itself such a mixture (N atoms of weight 1/N), so the denoiser that
L_simple's minimum describes on it is exact too: `empirical_x0_mean`, which the trainer can use as a
lower-variance regression target.
"""

from __future__ import annotations

import math

import torch

from ._checks import check_float_tensor
from .forward import eps_from_x0
from .reverse import PREDICTIONS, output_from_eps_and_x0
from .schedules import Schedule, gather

__all__ = ["GaussianMixture", "GaussianData", "empirical_x0_mean"]


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

    def ode_sample(self, schedule: Schedule, x_T: torch.Tensor) -> torch.Tensor:
        """The exact end point of the deterministic samplers' ODE for a single Gaussian (K = 1).

        q_t = N(√ᾱ_t μ, (ᾱ_t s² + 1 - ᾱ_t) I) for every t, and the probability-flow ODE, being linear
        here, keeps each coordinate's standard score z = (x_t - √ᾱ_t μ) / sqrt(ᾱ_t s² + 1 - ᾱ_t)
        fixed. So x_T at t = T-1 flows to x at t = 0 in closed form; like `ddim_sample`, the result is
        then x̂_0 = E[x_0 | x at t = 0]. The oracle for DDIM's and DPM-Solver's discretisation error.
        x_T (B, D) -> (B, D) float64.
        """
        if len(self.weights) != 1:
            raise ValueError(
                f"ode_sample needs a single Gaussian (a mixture's flow has no closed form), got {len(self.weights)}"
            )
        check_float_tensor(x_T, "x_T")
        if x_T.dim() != 2 or x_T.shape[1] != self.dim:
            raise ValueError(f"x_T must have shape (B, {self.dim}), got {tuple(x_T.shape)}")
        mu, var = self.means[0], self.stds[0] ** 2
        a_T, a_0 = schedule.alpha_bars[-1].double(), schedule.alpha_bars[0].double()
        z = (x_T.double() - a_T.sqrt() * mu) / (a_T * var + 1 - a_T).sqrt()
        x = a_0.sqrt() * mu + (a_0 * var + 1 - a_0).sqrt() * z
        return mu + a_0.sqrt() * var / (a_0 * var + 1 - a_0) * (x - a_0.sqrt() * mu)


class GaussianData:
    """N(μ, Σ) in D dimensions with a full covariance Σ (may be singular), e.g. fitted to images.

    Under the forward process q(x_t) = N(√ᾱ μ, ᾱ Σ + (1-ᾱ) I), and the optimal denoiser is linear:
        E[x_0 | x_t] = μ + √ᾱ Σ (ᾱ Σ + (1-ᾱ) I)⁻¹ (x_t - √ᾱ μ).
    With Σ = U diag(λ) Uᵀ this is a gain √ᾱ λ_i / (ᾱ λ_i + 1 - ᾱ) along each eigenvector: B·D²
    multiply-adds per call, in float64. Args: mean (D,), covariance (D, D) symmetric PSD.
    """

    def __init__(self, mean, covariance):
        mean = torch.as_tensor(mean, dtype=torch.float64)
        cov = torch.as_tensor(covariance, dtype=torch.float64)
        if mean.dim() != 1 or cov.shape != (mean.shape[0], mean.shape[0]):
            raise ValueError(f"mean must be (D,) and covariance (D, D), got {tuple(mean.shape)} and {tuple(cov.shape)}")
        if not torch.isfinite(cov).all() or not torch.isfinite(mean).all():
            raise ValueError("mean and covariance must be finite")
        if not torch.allclose(cov, cov.T, atol=1e-10 * max(1.0, cov.abs().max().item())):
            raise ValueError("covariance must be symmetric")
        eigenvalues, self.eigenvectors = torch.linalg.eigh(cov)
        if eigenvalues.min() < -1e-8 * max(1.0, eigenvalues.max().item()):
            raise ValueError(f"covariance must be positive semi-definite (smallest eigenvalue {eigenvalues.min():.3g})")
        self.eigenvalues = eigenvalues.clamp(min=0)
        self.mean, self.covariance = mean, cov

    @classmethod
    def fit(cls, data: torch.Tensor) -> GaussianData:
        """The Gaussian of `data` (N, ...) flattened to (N, D): its sample mean and (unbiased) covariance."""
        check_float_tensor(data, "data", min_rank=2)
        flat = data.reshape(len(data), -1).double()
        if len(flat) < 2:
            raise ValueError(f"fitting a covariance needs at least 2 data points, got {len(flat)}")
        return cls(flat.mean(0), torch.cov(flat.T).reshape(flat.shape[1], flat.shape[1]))

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    def optimal_x0(self, schedule: Schedule, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """E[x_0 | x_t] for xt (B, ...) whose trailing dims flatten to D; returns xt's shape and dtype."""
        check_float_tensor(xt, "xt")
        flat = xt.reshape(xt.shape[0], -1)
        if flat.shape[1] != self.dim:
            raise ValueError(f"xt has {flat.shape[1]} dimensions per example but the Gaussian has {self.dim}")
        u, lam = self.eigenvectors.to(xt.device), self.eigenvalues.to(xt.device)
        a = gather(schedule.alpha_bars, t, flat.double())  # (B, 1)
        centred = (flat.double() - a.sqrt() * self.mean.to(xt.device)) @ u  # coordinates along the eigenvectors
        x0 = self.mean.to(xt.device) + (centred * (a.sqrt() * lam / (a * lam + 1 - a))) @ u.T
        return x0.reshape(xt.shape).to(xt.dtype)

    def optimal_eps(self, schedule: Schedule, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """E[ε | x_t] = (x_t - √ᾱ E[x_0 | x_t]) / √(1-ᾱ); same shape and dtype as xt."""
        x0 = self.optimal_x0(schedule, xt.double(), t)
        return eps_from_x0(schedule, xt.double(), t, x0).to(xt.dtype)

    def denoiser(self, schedule: Schedule, prediction: str = "eps"):
        """A `model(xt, t)` callable returning the optimal output for `prediction` ('eps', 'x0' or 'v')."""
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")

        def model(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            x0 = self.optimal_x0(schedule, xt.double(), t)
            eps = eps_from_x0(schedule, xt.double(), t, x0)
            return output_from_eps_and_x0(schedule, t, eps, x0, prediction).to(xt.dtype)

        return model


def empirical_x0_mean(schedule: Schedule, xt: torch.Tensor, t: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """E[x_0 | x_t] when x_0 is one of the N points of `data`, each with probability 1/N.

    q(x_0 = d_i | x_t) ∝ exp(-‖x_t - √ᾱ_t d_i‖² / (2 (1 - ᾱ_t))), so E[x_0 | x_t] = Σ_i softmax_i d_i:
    the optimal denoiser of the empirical distribution, the function that L_simple's minimum describes
    on a finite training set. (A network that matched it exactly would only ever reproduce training
    images; a trained network does not get there.) Two products of B·N·D multiply-adds in float64:
    negligible for the digits, heavy for large sets of large images.
    xt (B, ...), t (B,) 0-based, data (N, ...) with the same trailing shape; returns xt's shape and dtype.
    """
    check_float_tensor(xt, "xt")
    check_float_tensor(data, "data")
    if data.shape[1:] != xt.shape[1:]:
        raise ValueError(f"data points have shape {tuple(data.shape[1:])} but xt has {tuple(xt.shape[1:])}")
    if len(data) == 0:
        raise ValueError("data is empty: the posterior mean needs at least one training point")
    ref = data.reshape(len(data), -1).to(xt.device, torch.float64)
    x = xt.reshape(len(xt), -1).double()
    a = gather(schedule.alpha_bars, t, x)  # (B, 1)
    # ‖x - √a d‖² = ‖x‖² - 2√a x·d + a‖d‖²; exact enough in float64 even where 1 - a is 1e-4
    sq = (x**2).sum(1, keepdim=True) - 2 * a.sqrt() * (x @ ref.T) + a * (ref**2).sum(1)[None]
    weights = torch.softmax(-sq / (2 * (1 - a)), dim=1)  # (B, N)
    return (weights @ ref).reshape(xt.shape).to(xt.dtype)
