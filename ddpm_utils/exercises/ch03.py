"""Checkers for chapter 03's exercises (notebooks/03_elbo.ipynb)."""

from __future__ import annotations

import math

import torch

from ..elbo import eps_mse_weights
from ..schedules import Schedule, cosine_betas, linear_betas, make_schedule
from . import checker, close, same_function


@checker("03.1")
def _prior_term(answer):
    """L_T = KL(N(sqrt(ab_T) x0, 1 - ab_T) || N(0, 1)) for x0 = 1, linear schedule, T = 1000."""
    ab = make_schedule("linear", 1000).alpha_bars[-1].item()
    expected = 0.5 * (ab + (1 - ab) - 1 - math.log1p(-ab))
    return close(answer, expected, rtol=1e-3, what="your L_T")


def _eps_weights_reference(schedule: Schedule) -> torch.Tensor:
    return eps_mse_weights(schedule, "beta_tilde")[1:]


@checker("03.2")
def _eps_weights(answer):
    """lambda_t for t = 2..T from the SNR, against DDPM Eq. 12 with sigma^2 = beta-tilde, on three schedules."""
    schedules = [
        (make_schedule("linear", 1000),),
        (Schedule(cosine_betas(50)),),
        (Schedule(linear_betas(20, 1e-3, 0.3)),),
    ]
    return same_function(answer, _eps_weights_reference, schedules, rtol=1e-8, atol=0.0)


@checker("03.3")
def _one_step_spread(answer):
    """The standard deviation over t ~ U{2..T} of T * lambda_t * 0.1 (linear schedule, T = 1000, beta-tilde)."""
    lam = eps_mse_weights(make_schedule("linear", 1000), "beta_tilde")[1:]
    expected = (1000 * 0.1 * lam).std(unbiased=False).item()
    return close(answer, expected, rtol=1e-2, what="your standard deviation")


def _gaussian_posterior_mean(xt, alpha_bar, mu, s):
    # the Gaussian conditional mean: mu + Cov(x0, xt) / Var(xt) * (xt - E[xt]), no score involved
    var_t = alpha_bar * s**2 + 1 - alpha_bar
    return mu + math.sqrt(alpha_bar) * s**2 / var_t * (xt - math.sqrt(alpha_bar) * mu)


@checker("03.4")
def _tweedie(answer):
    """E[x0 | x_t] for x0 ~ N(mu, s^2), against the Gaussian conditional mean."""
    xt = torch.linspace(-3, 3, 13, dtype=torch.float64)
    cases = [(xt, 0.5, 0.0, 1.0), (xt, 0.9, 0.4, 0.3), (xt, 0.05, -1.0, 2.0), (xt[:3], 0.999, 0.2, 0.5)]
    return same_function(answer, _gaussian_posterior_mean, cases, rtol=1e-6, atol=1e-9)
