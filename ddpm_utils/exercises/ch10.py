"""Checkers for chapter 10's exercises (notebooks/10_beyond.ipynb: a faster solver)."""

from __future__ import annotations

import torch

from ..schedules import make_schedule
from . import checker, same_function

__all__: list[str] = []


def _ddim_step(x_s, x0_pred, s, u):
    """DDIM's deterministic update from timestep s to u, alpha_u x0 + sigma_u eps, with eps implied by x_s and x0."""
    alpha_bars = make_schedule("linear", 1000).alpha_bars.double()
    eps_pred = (x_s - alpha_bars[s].sqrt() * x0_pred) / (1 - alpha_bars[s]).sqrt()
    return alpha_bars[u].sqrt() * x0_pred + (1 - alpha_bars[u]).sqrt() * eps_pred


@checker("10.1")
def _first_order_step(fn):
    """fn(x_s, x0_pred, s, u) -> x_u: the exponential-integrator step with x̂0 held fixed, which is DDIM's."""
    g = torch.Generator().manual_seed(101)
    inputs = []
    for s, u in ((999, 899), (500, 450), (40, 10), (1, 0)):
        x_s = torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64)
        x0_pred = torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64).clamp(-1, 1)
        inputs.append((x_s, x0_pred, s, u))
    return same_function(fn, _ddim_step, inputs, rtol=1e-6, atol=1e-8)
