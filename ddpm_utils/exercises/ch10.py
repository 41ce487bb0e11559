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


def _two_m_reference(x0_s, x0_prev, h, h_prev):
    half_inv_r = h / (2 * h_prev)  # 1 / (2r), r = h_prev / h
    return (1 + half_inv_r) * x0_s - half_inv_r * x0_prev


@checker("10.2")
def _two_m(fn):
    """fn(x0_s, x0_prev, h, h_prev) -> D, DPM-Solver++(2M)'s combination of the two predictions."""
    g = torch.Generator().manual_seed(102)
    inputs = []
    for h, h_prev in ((0.3, 0.3), (0.2, 0.5), (0.8, 0.1)):  # equal steps, then unequal both ways
        x0_s, x0_prev = torch.randn(2, 3, 1, 4, 4, generator=g, dtype=torch.float64)
        inputs.append((x0_s, x0_prev, h, h_prev))
    return same_function(fn, _two_m_reference, inputs, rtol=1e-9, atol=1e-12)
