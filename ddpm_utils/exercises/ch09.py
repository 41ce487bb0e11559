"""Checkers for chapter 09, learned variances and the likelihood."""

from __future__ import annotations

import torch

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
