"""A mean that knows the data's pixel levels: ε̂ from a posterior over the levels.

The digits' pixels take K = 17 values, the levels ℓ_k = -1 + 2k / (K - 1). If each pixel independently took level k
with probability p_k, the exact denoiser would be Bayes' rule over the levels, pixel by pixel (chapter 07):

    P(x_0 = ℓ_k | x_t) ∝ p_k · N(x_t; sqrt(ᾱ_t) ℓ_k, 1 - ᾱ_t),     E[x_0 | x_t] = Σ_k P(x_0 = ℓ_k | x_t) ℓ_k.

`LevelOutput` keeps that form and lets a network supply the prior, from the whole image: the network outputs K
logits a_k(x_t, t) per pixel (and, with `learn_sigma`, one raw variance value r per pixel), and

    P_θ(k | x_t) = softmax_k( a_k(x_t, t) - (x_t - sqrt(ᾱ_t) ℓ_k)² / (2 (1 - ᾱ_t)) ),
    x̂_0 = Σ_k P_θ(k | x_t) ℓ_k,      ε̂ = (x_t - sqrt(ᾱ_t) x̂_0) / sqrt(1 - ᾱ_t)           [DDPM Eq. 4 solved for ε]

At small t the likelihood term separates the levels by many standard deviations and x̂_0 lands on a level whatever
the network says; at large t it is nearly flat across the levels and the network's logits decide. With all logits
zero (an untrained network with a zero-initialised output layer) it is the denoiser of independent pixels with a
uniform prior over the levels. x̂_0 always lies in [ℓ_0, ℓ_{K-1}] = [-1, 1].

The module returns what an ε-prediction network returns, ε̂ (B, C, ...) or (ε̂, r) (B, 2C, ...), so every loss,
sampler and bound of the package takes it unchanged; the network is called with the original timesteps, so a
respaced sampler uses it as it is.
"""

from __future__ import annotations

import torch
from torch import nn

from .forward import eps_from_x0
from .schedules import Schedule, gather

__all__ = ["LevelOutput", "level_network_channels"]


def level_network_channels(channels: int, num_levels: int, learn_sigma: bool) -> int:
    """Output channels the wrapped network needs: C·K logits, plus C raw variance values with `learn_sigma`."""
    return channels * num_levels + (channels if learn_sigma else 0)


class LevelOutput(nn.Module):
    """ε̂ (and the raw variance channels) from a network's logits over `num_levels` evenly spaced levels in [-1, 1].

    Args: net, a network model(x_t, t[, y]) -> (B, C·K [+ C], ...) (see `level_network_channels`); schedule, the
    training schedule (its ᾱ_t sets the likelihood term); num_levels, K >= 2; learn_sigma, whether the network's last
    C channels are iDDPM's raw variance values, passed through after ε̂.
    """

    def __init__(self, net: nn.Module, schedule: Schedule, num_levels: int, learn_sigma: bool = False):
        super().__init__()
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a Schedule (the one the network is trained with), got {schedule!r:.60}")
        if not isinstance(num_levels, int) or num_levels < 2:
            raise ValueError(f"num_levels must be an integer >= 2, got {num_levels!r}")
        if not isinstance(learn_sigma, bool):
            raise TypeError(f"learn_sigma must be True or False, got {learn_sigma!r}")
        self.net, self.schedule, self.num_levels, self.learn_sigma = net, schedule, num_levels, learn_sigma

    def level_logits(self, xt: torch.Tensor, t: torch.Tensor, *args) -> torch.Tensor:
        """log P_θ(k | x_t) up to a constant per pixel: the network's a_k plus the likelihood term, (B, C, K, ...)."""
        return self._logits_and_raw(xt, t, *args)[0]

    def x0_prediction(self, xt: torch.Tensor, t: torch.Tensor, *args) -> torch.Tensor:
        """x̂_0 = Σ_k P_θ(k | x_t) ℓ_k, (B, C, ...)."""
        return self._x0(self.level_logits(xt, t, *args))

    def forward(self, xt: torch.Tensor, t: torch.Tensor, *args) -> torch.Tensor:
        """ε̂ (B, C, ...), or (ε̂, r) (B, 2C, ...) with `learn_sigma`."""
        logits, raw = self._logits_and_raw(xt, t, *args)
        eps_pred = eps_from_x0(self.schedule, xt, t, self._x0(logits))
        return eps_pred if raw is None else torch.cat([eps_pred, raw], dim=1)

    def _levels(self, like: torch.Tensor) -> torch.Tensor:
        """ℓ_0 ... ℓ_{K-1}, shaped (1, 1, K, 1, ...) to broadcast against (B, C, K, ...)."""
        levels = torch.linspace(-1.0, 1.0, self.num_levels, dtype=like.dtype, device=like.device)
        return levels.reshape((1, 1, self.num_levels) + (1,) * (like.dim() - 3))

    def _logits_and_raw(self, xt, t, *args):
        mean_scale = gather(self.schedule.sqrt_alpha_bars, t, xt).unsqueeze(2)  # (B, 1, 1, ...); checks t
        var = gather(self.schedule.sqrt_one_minus_alpha_bars, t, xt).unsqueeze(2) ** 2
        channels, k = xt.shape[1], self.num_levels
        out = self.net(xt, t, *args)
        expected = level_network_channels(channels, k, self.learn_sigma)
        if out.shape[1] != expected:
            raise ValueError(f"the network outputs {out.shape[1]} channels; {expected} expected (C·K logits[ + C])")
        a = out[:, : channels * k].reshape(xt.shape[0], channels, k, *xt.shape[2:])
        raw = out[:, channels * k :] if self.learn_sigma else None
        return a - (xt.unsqueeze(2) - mean_scale * self._levels(a)) ** 2 / (2 * var), raw

    def _x0(self, logits: torch.Tensor) -> torch.Tensor:
        return (torch.softmax(logits, dim=2) * self._levels(logits)).sum(dim=2)
