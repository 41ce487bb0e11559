"""Checkers for chapter 06 (Sampling). Each compares the learner's answer with an independent computation."""

from __future__ import annotations

import math

import torch

from . import checker, close, same_function


def _schedule():
    from ..schedules import make_schedule

    return make_schedule("linear", 1000)  # the shipped digits model's schedule


def _inputs(schedule, low: int = 1) -> list[tuple]:
    g = torch.Generator().manual_seed(60)
    out = []
    for steps in ([low, low + 1, 500, 999], [999, 998, 997, 996], [low, 10, 50, 100]):
        t = torch.tensor(steps)
        out.append((torch.randn(4, 1, 8, 8, generator=g), t))
    return [(x, t, torch.randn(x.shape, generator=g), torch.randn(x.shape, generator=g)) for x, t in out]


@checker("06.1")
def _step_x0(answer):
    """One ancestral step from an x0-prediction: q(x_{t-1} | x_t, x0_pred)'s mean plus sigma z, sigma^2 = beta-tilde."""
    from ..forward import q_posterior_mean_variance

    s = _schedule()

    def reference(xt, t, x0_pred, z):
        mean, variance, _ = q_posterior_mean_variance(s, x0_pred, xt, t)
        return (mean + variance.sqrt() * z).float()

    return same_function(answer, reference, _inputs(s), rtol=1e-4, atol=1e-5)


@checker("06.2")
def _eps_from_v(answer):
    """eps = sqrt(1 - ab) x_t + sqrt(ab) v, checked on (x0, eps) pairs whose true eps is known."""
    s = _schedule()
    g = torch.Generator().manual_seed(62)
    inputs, truth = [], {}
    for steps in ([0, 1, 500, 999], [10, 100, 700, 998]):
        t = torch.tensor(steps)
        x0, eps = torch.randn(4, 1, 8, 8, generator=g), torch.randn(4, 1, 8, 8, generator=g)
        ab = s.alpha_bars[t].reshape(-1, 1, 1, 1).float()
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        v = ab.sqrt() * eps - (1 - ab).sqrt() * x0
        inputs.append((xt, t, v))
        truth[id(xt)] = eps
    return same_function(answer, lambda xt, t, v: truth[id(xt)], inputs, rtol=1e-4, atol=1e-4)


@checker("06.3")
def _ddim20_gain(answer):
    """|sqrt(1 - ab') - sqrt(ab'/ab) sqrt(1 - ab)| for the first step of 20-step DDIM on the cosine schedule."""
    from ..sampling import ddim_timesteps
    from ..schedules import make_schedule

    s = make_schedule("cosine", 1000)
    taus = ddim_timesteps(1000, 20)
    ab, ab_prev = s.alpha_bars[taus[-1]].item(), s.alpha_bars[taus[-2]].item()
    expected = abs(math.sqrt(1 - ab_prev) - math.sqrt(ab_prev / ab) * math.sqrt(1 - ab))
    return close(answer, expected, rtol=1e-2, what="your multiplier")
