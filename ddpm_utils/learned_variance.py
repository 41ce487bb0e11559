"""Learned reverse variances and the hybrid objective. [Nichol & Dhariwal 2021, "Improved DDPM" (iDDPM)]

The network outputs 2·C channels: ε̂ (the first C) and a raw value r (the last C), turned into the interpolation
weight v = (r + 1) / 2 (as in iDDPM's code, so a network whose output starts at zero starts halfway) and the
reverse variance

    Σ_θ(x_t, t) = exp(v log β_t + (1 - v) log β̃_t)                                      [iDDPM Eq. 15]

v = 1 gives σ_t² = β_t, v = 0 gives β̃_t: DDPM's two fixed choices are the end points, and v is left free
(it is not clamped to [0, 1]). At t = 0 (the paper's t = 1) β̃ is 0 and log β̃ is clipped to its value at t = 1,
as `Schedule.posterior_log_variance_clipped` does.

L_simple does not depend on Σ_θ, so the variance is trained by the bound's terms:

    L_hybrid = L_simple + λ L_vlb,   λ = 0.001                                            [iDDPM §3.1]

where L_vlb = L_0 + L_1 + ... + L_{T-1} (in bits per dimension) is estimated from each example's one timestep as
T · L_t, and the mean that L_t sees is built from a stop-gradient copy of ε̂, so that L_vlb trains only Σ_θ and
L_simple stays in charge of the mean. `ImportanceSampler` draws t with p_t ∝ sqrt(E[L_t²]) for training on
L_vlb alone [iDDPM §3.3].

Samplers: `EpsChannels(model)` hands DDIM and DPM-Solver (which use ε̂ only) the first C channels;
`ddpm_sample_learned` is ancestral sampling with the learned variance, on all T steps or on a respaced
subsequence [iDDPM §4].
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .elbo import prior_kl, vb_term
from .forward import eps_from_x0, q_posterior_mean_variance, q_sample, randn, x0_from_eps
from .reverse import ReverseStep
from .sampling import _finish, _start, ddim_timesteps
from .schedules import Schedule, gather

__all__ = [
    "LAMBDA_VLB",
    "split_output",
    "interpolate_log_variance",
    "p_mean_variance_learned",
    "vlb_term_learned",
    "HybridLoss",
    "VlbLoss",
    "ImportanceSampler",
    "EpsChannels",
    "FixedVariance",
    "respace",
    "ddpm_sample_learned",
    "nll_bound_learned",
]

LAMBDA_VLB = 0.001  # [iDDPM §3.1]


def split_output(model_output: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ε̂, v) from a learned-variance network's output (B, 2·C, ...): ε̂ the first C channels, v = (r + 1) / 2 from
    the last C."""
    if model_output.dim() < 2 or model_output.shape[1] != 2 * channels:
        raise ValueError(
            f"a learned-variance network outputs 2·C = {2 * channels} channels (ε̂, then v), got shape "
            f"{tuple(model_output.shape)}"
        )
    eps_pred, raw = model_output[:, :channels], model_output[:, channels:]
    return eps_pred, (raw + 1) / 2


def interpolate_log_variance(schedule: Schedule, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """log Σ_θ = v log β_t + (1 - v) log β̃_t, elementwise. [iDDPM Eq. 15]

    Args: t (B,) 0-based; v (B, ...). At t = 0, log β̃ is clipped to its value at t = 1. Returns v's shape.
    """
    log_beta = gather(torch.log(schedule.betas), t, v)  # (B, 1, ...)
    log_beta_tilde = gather(schedule.posterior_log_variance_clipped, t, v)
    return v * log_beta + (1 - v) * log_beta_tilde


def p_mean_variance_learned(
    schedule: Schedule, xt: torch.Tensor, t: torch.Tensor, model_output: torch.Tensor, clip_x0: bool = False
) -> ReverseStep:
    """Mean and learned variance of p_θ(x_{t-1} | x_t) for an ε-prediction network with 2·C outputs.
    [DDPM Eq. 11; iDDPM Eq. 15]

    μ_θ = μ̃_t(x_t, x̂_0(ε̂)) as for fixed variances; Σ_θ per pixel by `interpolate_log_variance`.
    Returns a ReverseStep whose variances have x_t's shape (B, C, ...).
    """
    eps_pred, v = split_output(model_output, xt.shape[1])
    x0_pred = x0_from_eps(schedule, xt, t, eps_pred)
    if clip_x0:
        x0_pred = x0_pred.clamp(-1.0, 1.0)
        eps_pred = eps_from_x0(schedule, xt, t, x0_pred)
    model_mean, _, _ = q_posterior_mean_variance(schedule, x0_pred, xt, t)
    log_var = interpolate_log_variance(schedule, t, v)
    return ReverseStep(model_mean, log_var.exp(), log_var, x0_pred, eps_pred)


def vlb_term_learned(
    schedule: Schedule,
    x0: torch.Tensor,
    xt: torch.Tensor,
    t: torch.Tensor,
    model_output: torch.Tensor,
    num_levels: int = 256,
    stop_gradient_mean: bool = True,
) -> torch.Tensor:
    """The bound's term at each example's t, in nats: L_0 = -log p_θ(x_0 | x_1) where t == 0, else
    L_t = KL(q(x_{t-1} | x_t, x_0) ‖ p_θ(x_{t-1} | x_t)). [DDPM Eq. 5; iDDPM §3.1]

    With `stop_gradient_mean` the mean is built from ε̂.detach(), so the gradient reaches only the variance.
    Returns (B,).
    """
    eps_pred, raw = model_output[:, : xt.shape[1]], model_output[:, xt.shape[1] :]
    if stop_gradient_mean:
        eps_pred = eps_pred.detach()
    out = p_mean_variance_learned(schedule, xt, t, torch.cat([eps_pred, raw], dim=1))
    return vb_term(schedule, x0, xt, t, out.model_mean, out.model_log_variance, num_levels)


def _bits_per_dim(nats: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    return nats / (x0[0].numel() * math.log(2.0))


class HybridLoss:
    """L_hybrid = L_simple + λ L_vlb per example, as a `loss_fn(model, schedule, x0, t, eps, y) -> (B,)`.
    [iDDPM §3.1]

    L_simple = mean over pixels of (ε - ε̂)²; L_vlb = T · L_t in bits per dimension (one sampled t per example
    estimates the sum over all T terms), with the stop-gradient on the mean. With T = 1000 and λ = 0.001 the
    weight on L_t (bits/dim) is 1. `num_levels`: the data's levels for the decoder term L_0 (17 for the digits).
    y is passed to a class-conditional network (model(x_t, t, y)); None calls model(x_t, t).
    """

    def __init__(self, lambda_vlb: float = LAMBDA_VLB, num_levels: int = 256):
        if not 0.0 <= lambda_vlb < math.inf:
            raise ValueError(f"lambda_vlb must be a non-negative number, got {lambda_vlb}")
        self.lambda_vlb, self.num_levels = float(lambda_vlb), num_levels

    def __call__(self, model, schedule: Schedule, x0, t, eps, y=None) -> torch.Tensor:
        xt = q_sample(schedule, x0, t, noise=eps)
        output = (model(xt, t) if y is None else model(xt, t, y)).float()
        c = x0.shape[1]
        simple = ((output[:, :c] - eps.float()) ** 2).reshape(len(x0), -1).mean(dim=1)
        vlb = vlb_term_learned(schedule, x0.float(), xt.float(), t, output, self.num_levels)
        return simple + self.lambda_vlb * schedule.num_steps * _bits_per_dim(vlb, x0).float()


class ImportanceSampler:
    """Draw t with p_t ∝ sqrt(E[L_t²]), from the last `history` values of L_t seen at each t. [iDDPM §3.3]

    Uniform until every t has `history` values; a floor of `uniform_share` / T keeps every t reachable (iDDPM's
    code mixes in 0.001 of the uniform distribution). `sample` returns t and the weights 1 / (T p_t) that make
    T · w_t · L_t an unbiased estimate of Σ_t L_t.
    """

    def __init__(self, num_steps: int, history: int = 10, uniform_share: float = 0.001):
        self.num_steps, self.history, self.uniform_share = num_steps, history, uniform_share
        self._values = torch.zeros(num_steps, history, dtype=torch.float64)
        self._count = torch.zeros(num_steps, dtype=torch.long)

    def ready(self) -> bool:
        return bool((self._count >= self.history).all())

    def probabilities(self) -> torch.Tensor:
        """(T,) float64, summing to 1."""
        if not self.ready():
            return torch.full((self.num_steps,), 1.0 / self.num_steps, dtype=torch.float64)
        p = (self._values**2).mean(dim=1).sqrt()
        p = p / p.sum()
        return p * (1 - self.uniform_share) + self.uniform_share / self.num_steps

    def sample(self, batch: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(t (B,) long, weights (B,) float64 = 1 / (T p_t))."""
        p = self.probabilities()
        t = torch.multinomial(p, batch, replacement=True, generator=generator)
        return t, 1.0 / (self.num_steps * p[t])

    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Record the L_t values (B,) seen at timesteps t (B,), keeping the last `history` per t."""
        for step, loss in zip(t.tolist(), losses.detach().double().cpu().tolist()):
            slot = self._count[step] % self.history
            self._values[step, slot] = loss
            self._count[step] += 1


class VlbLoss:
    """L_vlb alone, T · w_t · L_t in bits per dimension, as a `loss_fn` (mean and variance both trained). [iDDPM §3.3]

    With an `ImportanceSampler` the Trainer's uniform t is replaced by t ~ p_t (ε is kept) and each term weighted
    by w_t = 1 / (T p_t); the sampler is updated with the new values of L_t.
    """

    def __init__(self, num_levels: int = 256, sampler: ImportanceSampler | None = None, seed: int = 0):
        self.num_levels, self.sampler = num_levels, sampler
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, model, schedule: Schedule, x0, t, eps, y=None) -> torch.Tensor:
        weights = torch.ones(len(x0), dtype=torch.float64)
        if self.sampler is not None:
            t, weights = self.sampler.sample(len(x0), self.generator)
            t = t.to(x0.device)
        xt = q_sample(schedule, x0, t, noise=eps)
        output = (model(xt, t) if y is None else model(xt, t, y)).float()
        terms = vlb_term_learned(schedule, x0.float(), xt.float(), t, output, self.num_levels, False)
        if self.sampler is not None:
            self.sampler.update(t.cpu(), terms)
        return schedule.num_steps * _bits_per_dim(terms, x0).float() * weights.to(terms)


class EpsChannels(nn.Module):
    """The ε̂ channels (the first C) of a learned-variance network, as a `model(x_t, t)` for samplers that use ε̂
    only (`ddim_sample`, `dpm_solver_sample`)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, xt: torch.Tensor, t: torch.Tensor, *args) -> torch.Tensor:
        return self.model(xt, t, *args)[:, : xt.shape[1]]


class FixedVariance(nn.Module):
    """A fixed-variance ε-prediction network dressed as a learned-variance one: its ε̂ and a constant v (0: β̃_t,
    1: β_t), so that `ddpm_sample_learned` and `nll_bound_learned` serve it too (on a respaced chain, the
    respaced β̃ or β)."""

    def __init__(self, model: nn.Module, v: float = 0.0):
        super().__init__()
        self.model, self.v = model, float(v)

    def forward(self, xt: torch.Tensor, t: torch.Tensor, *args) -> torch.Tensor:
        eps_pred = self.model(xt, t, *args)
        return torch.cat([eps_pred, torch.full_like(eps_pred, 2 * self.v - 1)], dim=1)  # raw r = 2v - 1


def respace(schedule: Schedule, timesteps) -> Schedule:
    """The schedule of the subsequence τ_1 < ... < τ_S of timesteps (0-based). [iDDPM §4]

    Keeps ᾱ at the kept timesteps: β_i = 1 - ᾱ_{τ_i} / ᾱ_{τ_{i-1}} (ᾱ_{τ_0} := 1), so that q(x_{τ_i} | x_0) is
    unchanged and β_i, β̃_i are the right end points for Eq. 15 on the shorter chain.
    """
    taus = torch.as_tensor(timesteps, dtype=torch.long)
    if taus.dim() != 1 or len(taus) == 0 or (taus[1:] <= taus[:-1]).any():
        raise ValueError(f"timesteps must be a non-empty increasing sequence, got {taus.tolist()}")
    kept = schedule.alpha_bars[taus]
    prev = torch.cat([kept.new_ones(1), kept[:-1]])
    return Schedule(1 - kept / prev)


@torch.no_grad()
def ddpm_sample_learned(
    model,
    schedule: Schedule,
    shape=None,
    num_inference_steps: int | None = None,
    generator: torch.Generator | None = None,
    clip_x0: bool = False,
    callback=None,
    x_T: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Ancestral sampling with the learned variance Σ_θ. [DDPM Alg. 2; iDDPM Eq. 15, §4]

    x_{t-1} = μ_θ(x_t, t) + Σ_θ(x_t, t)^{1/2} z,  z ~ N(0, I) (z = 0 at the last step).
    With `num_inference_steps` S < T the chain runs on S evenly spaced timesteps (`ddim_timesteps`), with the
    respaced schedule's β and β̃ as the end points of the interpolation; the network is still called with the
    original timesteps. `callback(i, t, x_t, x0_pred)` sees every step.
    """
    taus = (
        list(range(schedule.num_steps))
        if num_inference_steps is None
        else ddim_timesteps(schedule.num_steps, num_inference_steps).tolist()
    )
    short = respace(schedule, taus)
    xt = _start(shape, x_T, generator, device, dtype)
    batch = xt.shape[0]
    for i in reversed(range(len(taus))):
        t_model = torch.full((batch,), taus[i], dtype=torch.long, device=xt.device)
        t_short = torch.full((batch,), i, dtype=torch.long, device=xt.device)
        out = p_mean_variance_learned(short, xt, t_short, model(xt, t_model), clip_x0)
        if callback is not None:
            callback(len(taus) - 1 - i, taus[i], xt, out.x0_pred)
        if i > 0:
            xt = out.model_mean + (0.5 * out.model_log_variance).exp() * randn(xt.shape, generator, xt.device, xt.dtype)
        else:
            xt = out.model_mean
    return _finish(xt, "ddpm_sample_learned")


@torch.no_grad()
def nll_bound_learned(
    model, schedule: Schedule, x0: torch.Tensor, num_levels: int = 256, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """Every term of the bound L ≥ -log p(x_0) for a learned-variance network, one x_t per t. [DDPM Eq. 5]

    As `elbo.nll_bound`: 'prior' (B,), 'terms' (B, T) with terms[:, 0] = L_0, and 'total' (B,), in nats.
    """
    batch = x0.shape[0]
    terms = []
    for step in range(schedule.num_steps):
        t = torch.full((batch,), step, dtype=torch.long, device=x0.device)
        xt = q_sample(schedule, x0, t, generator=generator)
        terms.append(vlb_term_learned(schedule, x0, xt, t, model(xt, t), num_levels))
    terms = torch.stack(terms, dim=1)
    prior = prior_kl(schedule, x0)
    return {"prior": prior, "terms": terms, "total": prior + terms.sum(dim=1)}
