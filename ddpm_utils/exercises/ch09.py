"""Checkers for chapter 09, learned variances and the likelihood."""

from __future__ import annotations

import torch
from torch.distributions import Normal

from ..learned_variance import interpolate_log_variance, respace
from ..schedules import make_schedule
from . import checker, close, same_function


@checker("09.1")
def best_variance(answer):
    return close(answer, 1e-4 + 0.02**2, rtol=1e-6, what="σ²")


@checker("09.2")
def log_variance(fn):
    schedule = make_schedule("linear", 1000)
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(4, 2, 3, 3, generator=g)
    t = torch.tensor([0, 1, 300, 999])

    def reference(schedule, t, raw):
        return interpolate_log_variance(schedule, t, (raw + 1) / 2)

    return same_function(fn, reference, [(schedule, t, raw), (schedule, t, torch.full_like(raw, -1.0))])


@checker("09.3")
def respaced_betas(fn):
    schedule = make_schedule("linear", 1000)
    cases = [torch.tensor([0, 10, 500, 999]), torch.arange(1000), torch.tensor([5, 6])]

    def reference(alpha_bars, taus):
        return respace(schedule, taus).betas

    return same_function(fn, reference, [(schedule.alpha_bars, taus) for taus in cases], rtol=1e-9, atol=1e-12)


@checker("09.4")
def level_posterior_mean(fn):
    g = torch.Generator().manual_seed(0)
    xt = torch.randn(5, 7, generator=g, dtype=torch.float64)
    skewed = torch.randn(17, generator=g, dtype=torch.float64) * 2
    cases = [
        (xt, torch.tensor(ab, dtype=torch.float64), prior)
        for ab in (0.9999, 0.99, 0.5, 0.01)
        for prior in (torch.zeros(17, dtype=torch.float64), skewed)
    ]

    def reference(xt, alpha_bar, log_prior):  # Bayes' rule with torch.distributions, level by level
        levels = torch.linspace(-1, 1, 17, dtype=torch.float64)
        scores = torch.stack(
            [
                log_prior[k] + Normal(alpha_bar.sqrt() * levels[k], (1 - alpha_bar).sqrt()).log_prob(xt)
                for k in range(17)
            ]
        )
        return (torch.softmax(scores, dim=0) * levels.reshape(-1, *[1] * xt.dim())).sum(dim=0)

    return same_function(fn, reference, cases, rtol=1e-7, atol=1e-9)
