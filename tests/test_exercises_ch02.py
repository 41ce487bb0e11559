"""Chapter 02's exercise checkers: each accepts the worked solution and rejects a wrong answer.

The right answers are rebuilt here from their definitions by a route other than the checker's
(Monte Carlo or a loop), so a checker with a wrong expected value fails too.
"""

import math

import torch

import ddpm_utils as du


def check(key, answer):
    return du.exercises.check(key, answer)


def test_every_chapter_02_exercise_has_a_checker():
    assert [k for k in du.exercises.keys() if k.startswith("02.")] == ["02.1", "02.2", "02.3", "02.4", "02.5"]


def test_02_1_constant_schedule():
    alpha_bar = 1.0
    for _ in range(1000):  # a loop, not the checker's product
        alpha_bar *= 1 - 0.005
    assert check("02.1", alpha_bar)
    assert not check("02.1", math.sqrt(alpha_bar))  # √ᾱ_T, the signal's scale, is not ᾱ_T
    assert not check("02.1", None)


def test_02_2_slipped_variance_by_monte_carlo():
    s = du.make_schedule("linear", 1000)
    ab = s.alpha_bars[499]
    g = torch.Generator().manual_seed(0)
    eps = torch.randn(400_000, generator=g, dtype=torch.float64)
    slipped = ab.sqrt() * 0.3 + (1 - ab) * eps  # the slip: (1 - ᾱ) where √(1 - ᾱ) belongs
    assert check("02.2", slipped.var().item())
    assert not check("02.2", (1 - ab).item())  # the correct variance is the wrong answer here


def test_02_3_posterior_mean_in_eps():
    def right(schedule, xt, eps, t):
        b = schedule.gather("betas", t, xt)
        a = schedule.gather("alphas", t, xt)
        ab = schedule.gather("alpha_bars", t, xt)
        return (xt - b / (1 - ab).sqrt() * eps) / a.sqrt()

    def forgot_sqrt(schedule, xt, eps, t):  # β / (1 - ᾱ) instead of β / √(1 - ᾱ)
        b = schedule.gather("betas", t, xt)
        a = schedule.gather("alphas", t, xt)
        ab = schedule.gather("alpha_bars", t, xt)
        return (xt - b / (1 - ab) * eps) / a.sqrt()

    assert check("02.3", right)
    assert not check("02.3", forgot_sqrt)
    assert not check("02.3", 1.0)


def test_02_4_largest_T():
    # walk T upwards until ᾱ_T falls to 0.01 or below
    T = 1
    while torch.prod(1 - du.linear_betas(T + 1)).item() > 0.01:
        T += 1
    assert check("02.4", T)
    assert not check("02.4", T + 1)
    assert not check("02.4", T - 1)
    assert not check("02.4", float(T))


def test_02_5_reverse_variance_from_the_joint_gaussian():
    # A route that never mentions x_0's posterior: (x_{t-1}, x_t) is jointly Gaussian, so
    # Var(x_{t-1} | x_t) = Var(x_{t-1}) - Cov(x_{t-1}, x_t)² / Var(x_t).
    var_prev = 0.9 * 0.25 + 0.1  # Eq. 2.2 applied to N(0, 0.5²) data at ᾱ_{t-1} = 0.9
    cov = math.sqrt(0.8) * var_prev
    var_t = 0.8 * var_prev + 0.2
    exact = (var_prev - cov**2 / var_t) / 0.2
    # and Monte Carlo agrees with that route (regression residual of x_{t-1} on x_t)
    g = torch.Generator().manual_seed(0)
    n = 1_000_000
    x0 = 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    x_prev = math.sqrt(0.9) * x0 + math.sqrt(0.1) * torch.randn(n, generator=g, dtype=torch.float64)
    xt = math.sqrt(0.8) * x_prev + math.sqrt(0.2) * torch.randn(n, generator=g, dtype=torch.float64)
    c = torch.cov(torch.stack([x_prev, xt]))
    assert abs((c[0, 0] - c[0, 1] ** 2 / c[1, 1]).item() / 0.2 - exact) < 5 * math.sqrt(2 / n) * exact
    assert check("02.5", exact)
    beta_tilde = 0.1 / (1 - 0.72) * 0.2
    assert not check("02.5", beta_tilde / 0.2)  # leaving out Var(x_0 | x_t)
    assert not check("02.5", 1.0)  # β_t: right only for unit-variance Gaussian data
