"""Noise schedules and every quantity derived from the β sequence. [DDPM §2, iDDPM §3.2]

Timesteps are 0-based throughout the package: index `t` in 0..T-1 holds the paper's step t + 1.
So `betas[0]` is the paper's β_1 and `alpha_bars[t]` is the paper's ᾱ_{t+1}.
All coefficients are computed in float64 and cast to the input's dtype when gathered.
"""

from __future__ import annotations

import math

import torch

from ._checks import check_timesteps

__all__ = [
    "Schedule",
    "linear_betas",
    "cosine_betas",
    "scaled_linear_betas",
    "make_schedule",
    "gather",
]


def linear_betas(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """β_t rising linearly from `beta_start` to `beta_end`. [DDPM §4]

    β_t = beta_start + (beta_end - beta_start) * t / (T - 1),  t = 0..T-1

    The paper's constants (1e-4, 0.02) assume T = 1000; for a much smaller T pass larger
    values (iDDPM scales both by 1000 / T), or ᾱ_T stays far from 0.
    """
    _check_num_steps(num_steps)
    return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)


def cosine_betas(num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """β_t from the cosine ᾱ schedule. [iDDPM Eq. 17]

    f(u) = cos(((u + s) / (1 + s)) * π/2)^2,  ᾱ_t = f(t/T) / f(0),  β_t = min(1 - ᾱ_t / ᾱ_{t-1}, max_beta)
    """
    _check_num_steps(num_steps)
    u = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=max_beta)


def scaled_linear_betas(num_steps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012) -> torch.Tensor:
    """β_t whose square root rises linearly (the latent-diffusion / Stable Diffusion schedule).

    β_t = (sqrt(beta_start) + (sqrt(beta_end) - sqrt(beta_start)) * t / (T - 1))^2
    """
    _check_num_steps(num_steps)
    return torch.linspace(beta_start**0.5, beta_end**0.5, num_steps, dtype=torch.float64) ** 2


_SCHEDULES = {"linear": linear_betas, "cosine": cosine_betas, "scaled_linear": scaled_linear_betas}


def make_schedule(name: str = "linear", num_steps: int = 1000) -> Schedule:
    """Build a `Schedule` by name: 'linear', 'cosine' or 'scaled_linear'."""
    if name not in _SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; expected one of {sorted(_SCHEDULES)}")
    return Schedule(_SCHEDULES[name](num_steps))


class Schedule:
    """Everything derived from one β sequence, in float64. [DDPM Eqs. 4, 6, 7]

    α_t = 1 - β_t,  ᾱ_t = Π_{s<=t} α_s,  ᾱ_prev = ᾱ_{t-1} (ᾱ_0 := 1)
    β̃_t = β_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t)                                  [DDPM Eq. 7]
    μ̃_t = coef1 * x_0 + coef2 * x_t,  coef1 = √ᾱ_{t-1} β_t / (1 - ᾱ_t),
                                      coef2 = √α_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t)
    SNR_t = ᾱ_t / (1 - ᾱ_t)

    Attributes are 1-D float64 tensors of shape (T,); use `gather` to index them with a batch of t.
    """

    def __init__(self, betas: torch.Tensor):
        if not isinstance(betas, torch.Tensor):
            betas = torch.as_tensor(betas)
        if betas.dim() != 1 or betas.numel() == 0:
            raise ValueError(f"betas must be a non-empty 1-D tensor, got shape {tuple(betas.shape)}")
        if not betas.is_floating_point():
            raise TypeError(f"betas must be floating point, got dtype {betas.dtype}")
        betas = betas.detach().to(torch.float64)
        if not torch.isfinite(betas).all() or (betas <= 0).any() or (betas >= 1).any():
            raise ValueError(
                f"every beta must lie in the open interval (0, 1), got min {betas.min().item():.3g}, "
                f"max {betas.max().item():.3g}"
            )
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alpha_bars = torch.cumprod(self.alphas, dim=0)
        self.alpha_bars_prev = torch.cat([betas.new_ones(1), self.alpha_bars[:-1]])
        self.sqrt_alpha_bars = self.alpha_bars.sqrt()
        self.sqrt_one_minus_alpha_bars = (1.0 - self.alpha_bars).sqrt()
        self.sqrt_recip_alpha_bars = self.alpha_bars.rsqrt()
        self.sqrt_recipm1_alpha_bars = (1.0 / self.alpha_bars - 1.0).sqrt()
        self.posterior_variance = betas * (1.0 - self.alpha_bars_prev) / (1.0 - self.alpha_bars)
        # β̃ is 0 at the first step (x_0 is known exactly given x_1 and x_0); its log is clipped
        # to the next value so that it can be used as a model log-variance there. [iDDPM §3.1]
        if len(betas) > 1:
            first = self.posterior_variance[1:2]
        else:
            first = betas[:1]
        self.posterior_log_variance_clipped = torch.log(torch.cat([first, self.posterior_variance[1:]]))
        self.posterior_mean_coef1 = betas * self.alpha_bars_prev.sqrt() / (1.0 - self.alpha_bars)
        self.posterior_mean_coef2 = (1.0 - self.alpha_bars_prev) * self.alphas.sqrt() / (1.0 - self.alpha_bars)
        self.snr = self.alpha_bars / (1.0 - self.alpha_bars)
        self.log_snr = torch.log(self.snr)

    @property
    def num_steps(self) -> int:
        """T, the number of diffusion steps."""
        return len(self.betas)

    def __len__(self) -> int:
        return self.num_steps

    def __repr__(self) -> str:
        return (
            f"Schedule(num_steps={self.num_steps}, beta_1={self.betas[0].item():.3g}, "
            f"beta_T={self.betas[-1].item():.3g}, alpha_bar_T={self.alpha_bars[-1].item():.3g})"
        )

    def state_dict(self) -> dict:
        """The β sequence, which determines everything else (stored in checkpoints)."""
        return {"betas": self.betas.clone()}

    @classmethod
    def from_state_dict(cls, state: dict) -> Schedule:
        if "betas" not in state:
            raise ValueError("schedule state must contain 'betas'")
        return cls(state["betas"])

    def gather(self, name: str, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """`gather(getattr(self, name), t, x)`: a named coefficient at `t`, broadcast like `x`."""
        return gather(getattr(self, name), t, x)


def gather(values: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Pick values[t] for each example and broadcast to x's rank: (T,) , (B,) -> (B, 1, ..., 1).

    The result has x's dtype and device, so float64 coefficients meet float32 data only here.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 1:
        raise ValueError("x must have a batch dimension, got a scalar")
    check_timesteps(t, len(values), batch=x.shape[0], device=x.device)
    out = values.to(device=x.device)[t].to(dtype=x.dtype if x.is_floating_point() else torch.float32)
    return out.reshape(x.shape[0], *([1] * (x.dim() - 1)))


def _check_num_steps(num_steps: int) -> None:
    if not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")
