"""Chapter 05's exercise checkers accept the worked solutions and reject typical wrong answers."""

import math

import torch

from ddpm_utils import exercises


def _ab(schedule, t, x):
    return schedule.alpha_bars.float()[t].reshape(-1, *([1] * (x.dim() - 1)))


def loss_v(model, schedule, x0, t, eps):
    ab = _ab(schedule, t, x0)
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    v = ab.sqrt() * eps - (1 - ab).sqrt() * x0
    return ((model(xt, t) - v) ** 2).flatten(1).mean(1)


def eps_from_v(schedule, xt, t, v_pred):
    ab = _ab(schedule, t, xt)
    return (1 - ab).sqrt() * xt + ab.sqrt() * v_pred


def lr_at(step, max_steps, lr, warmup_steps):
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
    return lr * warm * 0.5 * (1 + math.cos(math.pi * step / max_steps))


def eps_levels(schedule, xt, t, prior=None):
    ab = _ab(schedule, t, xt).double()[..., None]
    levels = torch.linspace(-1, 1, 17, dtype=torch.float64)
    log_w = -((xt.double()[..., None] - ab.sqrt() * levels) ** 2) / (2 * (1 - ab))
    if prior is not None:
        log_w = log_w + prior.log()
    x0 = (log_w.softmax(-1) * levels).sum(-1)
    return ((xt.double() - ab[..., 0].sqrt() * x0) / (1 - ab[..., 0]).sqrt()).float()


def test_05_1_loss_v():
    assert exercises.check("05.1", None) is False
    assert exercises.check("05.1", loss_v) is True

    def eps_loss(model, schedule, x0, t, eps):  # the ε target instead of v
        ab = _ab(schedule, t, x0)
        return ((model(ab.sqrt() * x0 + (1 - ab).sqrt() * eps, t) - eps) ** 2).flatten(1).mean(1)

    assert exercises.check("05.1", eps_loss) is False
    assert exercises.check("05.1", lambda *a: loss_v(*a).mean()) is False  # reduced over the batch


def test_05_2_eps_from_v():
    assert exercises.check("05.2", None) is False
    assert exercises.check("05.2", eps_from_v) is True

    def swapped(schedule, xt, t, v_pred):  # the x0 formula's coefficients: x0 = √ᾱ x_t - √(1-ᾱ) v
        ab = _ab(schedule, t, xt)
        return ab.sqrt() * xt - (1 - ab).sqrt() * v_pred

    assert exercises.check("05.2", swapped) is False


def test_05_3_lr():
    assert exercises.check("05.3", None) is False
    assert exercises.check("05.3", lr_at) is True
    assert exercises.check("05.3", lambda s, m, lr, w: lr_at(s + 1, m, lr, w)) is False  # off by one
    assert exercises.check("05.3", lambda s, m, lr, w: lr_at(s, m, lr, 0)) is False  # no warm-up
    assert exercises.check("05.3", 2e-3) is False


def test_05_4_eps_levels():
    assert exercises.check("05.4", None) is False
    assert exercises.check("05.4", eps_levels) is True
    skewed = torch.tensor([10.0] + [1.0] * 16, dtype=torch.float64)
    assert exercises.check("05.4", lambda s, x, t: eps_levels(s, x, t, skewed / skewed.sum())) is False  # another prior

    def rounding(schedule, xt, t):  # right at the smallest t only
        ab = _ab(schedule, t, xt)
        x0 = (((xt / ab.sqrt() + 1) * 8).round().clamp(0, 16) / 8) - 1
        return (xt - ab.sqrt() * x0) / (1 - ab).sqrt()

    assert exercises.check("05.4", rounding) is False
