"""Checkers for chapter 02's exercises (the forward process). Each returns ``(ok, message)``.

Every expected value is computed here from its definition, in float64, not copied from a run.
"""

from __future__ import annotations

import torch

from ..forward import q_posterior_mean_variance, x0_from_eps
from ..schedules import Schedule, linear_betas, make_schedule
from . import checker, close, same_function


@checker("02.1")
def _constant_schedule_alpha_bar(answer) -> tuple[bool, str]:
    """ᾱ_T of a constant β = 0.005 with T = 1000: the product of 1000 factors (1 - 0.005)."""
    expected = torch.prod(torch.full((1000,), 1 - 0.005, dtype=torch.float64)).item()
    return close(answer, expected, rtol=1e-3, what="alpha_bar_T")


@checker("02.2")
def _slipped_variance(answer) -> tuple[bool, str]:
    """Var(x_t | x_0) of the slipped sampler x_t = √ᾱ x_0 + (1 - ᾱ) ε at the paper's t = 500: (1 - ᾱ_500)²."""
    alpha_bar = make_schedule("linear", 1000).alpha_bars[499].item()
    ok, message = close(answer, (1 - alpha_bar) ** 2, rtol=1e-2, what="the slipped variance")
    if not ok and abs(float(answer) - (1 - alpha_bar)) < 1e-2 * (1 - alpha_bar):
        message += " That is the correct variance 1 - alpha_bar; the slipped sampler's is smaller."
    return ok, message


def _posterior_mean_via_x0(schedule: Schedule, xt: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    # Eq. 2.3 with x_0 recovered from ε: the definition the learner's simplified formula must equal
    x0 = x0_from_eps(schedule, xt, t, eps)
    return q_posterior_mean_variance(schedule, x0, xt, t)[0]


@checker("02.3")
def _posterior_mean_from_eps(answer) -> tuple[bool, str]:
    """A function (schedule, xt, eps, t) -> μ̃_t equal to Eq. 2.3 with x_0 written in terms of ε."""
    g = torch.Generator().manual_seed(0)
    inputs = []
    for name, steps in (("linear", 1000), ("cosine", 50)):
        schedule = make_schedule(name, steps)
        for shape in ((5, 1), (3, 2, 4)):
            t = torch.randint(1, steps, (shape[0],), generator=g)
            xt = torch.randn(shape, generator=g, dtype=torch.float64)
            eps = torch.randn(shape, generator=g, dtype=torch.float64)
            inputs.append((schedule, xt, eps, t))
    return same_function(answer, _posterior_mean_via_x0, inputs, rtol=1e-6, atol=1e-8)


def _alpha_bar_T_linear(num_steps: int) -> float:
    return torch.prod(1 - linear_betas(num_steps)).item()


@checker("02.4")
def _largest_T_above_one_percent(answer) -> tuple[bool, str]:
    """The largest T for which DDPM's linear β (1e-4 to 0.02 over T steps) leaves ᾱ_T > 0.01."""
    if isinstance(answer, bool) or not isinstance(answer, int):
        return False, f"expected a whole number of steps (an int), got {type(answer).__name__}"
    expected = max(T for T in range(1, 2000) if _alpha_bar_T_linear(T) > 0.01)
    if answer == expected:
        return (
            True,
            f"T = {answer} leaves alpha_bar_T = {_alpha_bar_T_linear(answer):.5f}; one more step drops it below 0.01.",
        )
    if answer < 1:
        return False, "T must be at least 1"
    side = "above" if _alpha_bar_T_linear(answer + 1) > 0.01 else "at or below"
    return False, f"with T = {answer + 1} alpha_bar_T is still {side} 0.01, so T = {answer} is not the largest such T."


@checker("02.5")
def _gaussian_data_reverse_variance(answer) -> tuple[bool, str]:
    """Var(x_{t-1} | x_t) / β_t for x_0 ~ N(0, 0.5²), one step β_t = 0.2 taken from ᾱ_{t-1} = 0.9.

    Law of total variance over the mixture over x_0: β̃_t + c1² Var(x_0 | x_t), where for Gaussian data
    Var(x_0 | x_t) = s²(1 - ᾱ_t) / (ᾱ_t s² + 1 - ᾱ_t), the same for every x_t.
    """
    var_data, alpha_bar_prev, beta = 0.25, 0.9, 0.2
    alpha_bar = alpha_bar_prev * (1 - beta)
    beta_tilde = (1 - alpha_bar_prev) / (1 - alpha_bar) * beta
    c1 = alpha_bar_prev**0.5 * beta / (1 - alpha_bar)
    var_x0 = var_data * (1 - alpha_bar) / (alpha_bar * var_data + 1 - alpha_bar)
    expected = (beta_tilde + c1**2 * var_x0) / beta
    ok, message = close(answer, expected, rtol=1e-3, what="Var(x_{t-1} | x_t) / beta_t")
    if not ok and isinstance(answer, (int, float)) and abs(answer - beta_tilde / beta) < 1e-3:
        message += " That is beta_tilde / beta: it leaves out the spread of x_0 given x_t."
    return ok, message
