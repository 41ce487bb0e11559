"""Checkers for chapter 05's exercises (notebooks/05_training.ipynb)."""

from __future__ import annotations

import math

import torch

from . import checker, same_function

__all__: list[str] = []


def _schedule():
    from ..schedules import make_schedule

    return make_schedule("linear", 1000)


class _FixedNet(torch.nn.Module):
    """A small deterministic stand-in for a network: a fixed 1x1 convolution plus a term in t."""

    def __init__(self, channels: int):
        super().__init__()
        g = torch.Generator().manual_seed(5)
        self.weight = torch.randn(channels, channels, generator=g) / channels**0.5

    def forward(self, x, t):
        return torch.einsum("oc,bc...->bo...", self.weight, x) + (t.float() / 1000)[(...,) + (None,) * (x.dim() - 1)]


def _inputs(shape, seed):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(shape, generator=g) * 2 - 1
    t = torch.randint(0, 1000, (shape[0],), generator=g)
    t[0], t[-1] = 0, 999  # both ends of the chain
    eps = torch.randn(shape, generator=g)
    return x0, t, eps


def _abar(schedule, t, x):
    return schedule.alpha_bars.to(x.dtype)[t].reshape(-1, *([1] * (x.dim() - 1)))


def _loss_v_reference(model, schedule, x0, t, eps):
    ab = _abar(schedule, t, x0)
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    v = ab.sqrt() * eps - (1 - ab).sqrt() * x0  # [Salimans & Ho 2022]
    return ((model(xt, t) - v) ** 2).flatten(1).mean(1)


@checker("05.1")
def _loss_v(fn):
    """fn(model, schedule, x0, t, eps) -> (B,) per-example mean squared error of the v-prediction."""
    schedule = _schedule()
    inputs = []
    for shape, seed in (((6, 2), 0), ((4, 1, 8, 8), 1), ((3, 3, 4, 4), 2)):
        x0, t, eps = _inputs(shape, seed)
        inputs.append((_FixedNet(shape[1]), schedule, x0, t, eps))
    return same_function(fn, _loss_v_reference, inputs, rtol=1e-4, atol=1e-6)


def _eps_from_v_reference(schedule, xt, t, v_pred):
    ab = _abar(schedule, t, xt)
    return (1 - ab).sqrt() * xt + ab.sqrt() * v_pred


@checker("05.2")
def _eps_from_v(fn):
    """fn(schedule, xt, t, v_pred) -> eps_pred."""
    schedule = _schedule()
    inputs = []
    for shape, seed in (((6, 2), 3), ((4, 1, 8, 8), 4)):
        x0, t, eps = _inputs(shape, seed)
        inputs.append((schedule, x0, t, eps))  # any x_t and v will do
    return same_function(fn, _eps_from_v_reference, inputs, rtol=1e-4, atol=1e-6)


def _lr_reference(step, max_steps, lr, warmup_steps):
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    return lr * warm * 0.5 * (1 + math.cos(math.pi * step / max_steps))


@checker("05.3")
def _lr_schedule(fn):
    """fn(step, max_steps, lr, warmup_steps) -> the learning rate of 0-based step `step`."""
    if not callable(fn):
        return False, f"expected a function (step, max_steps, lr, warmup_steps) -> float, got {type(fn).__name__}"
    cases = [(s, 500, 2e-3, 100) for s in (0, 1, 49, 99, 100, 250, 499)] + [(s, 1000, 1e-3, 0) for s in (0, 500, 999)]
    for case in cases:
        got, want = float(fn(*case)), _lr_reference(*case)
        if not math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-12):
            return False, f"at (step, max_steps, lr, warmup_steps) = {case}: {got:.6g}, expected {want:.6g}"
    return True, f"right at all {len(cases)} steps, through the warm-up, the cosine decay and without warm-up."


LEVELS = 17


def _eps_levels_reference(schedule, xt, t):
    ab = _abar(schedule, t, xt).double()
    levels = torch.linspace(-1, 1, LEVELS, dtype=torch.float64)
    x = xt.double()[..., None]
    log_w = -((x - ab[..., None].sqrt() * levels) ** 2) / (2 * (1 - ab[..., None]))  # uniform prior over levels
    x0_mean = (log_w.softmax(-1) * levels).sum(-1)
    return ((x.squeeze(-1) - ab.sqrt() * x0_mean) / (1 - ab).sqrt()).to(xt.dtype)


@checker("05.4")
def _eps_levels(fn):
    """fn(schedule, xt, t) -> E[ε | x_t] when every pixel of x_0 is independently uniform on 17 levels."""
    from ..data import load_digits
    from ..forward import q_sample

    schedule = _schedule()
    x0 = load_digits("test")[:32]
    g = torch.Generator().manual_seed(6)
    inputs = []
    for steps in ((0, 1, 2, 3), (5, 20, 100, 600)):
        t = torch.tensor(steps).repeat(8)
        inputs.append((schedule, q_sample(schedule, x0, t, eps=torch.randn(x0.shape, generator=g)), t))
    return same_function(fn, _eps_levels_reference, inputs, rtol=1e-3, atol=1e-3)
