"""Checkers for chapter 01's exercises (notebooks/01_vae_hvae_markov_chains.ipynb)."""

from __future__ import annotations

import math

import torch

from . import checker, close, same_function

# The two-level linear-Gaussian Markovian HVAE of the chapter's section 3:
# z2 ~ N(0, 1), z1 | z2 ~ N(c z2, v1), x | z1 ~ N(z1, v0).
HVAE_C, HVAE_V1, HVAE_V0 = 0.8, 0.3, 0.2


@checker("01.1")
def _gap_of_doubled_variance(answer):
    # KL(N(m, 2v) || N(m, v)) = 0.5 * (log(v / 2v) + 2v / v - 1) = 0.5 * (1 - ln 2), whatever m and v are.
    return close(answer, 0.5 * (1.0 - math.log(2.0)), rtol=5e-3, what="your gap (nats)")


def _variance_exploding(v0, beta, t):
    return v0 + t * beta


@checker("01.2")
def _variance_after_t_steps(answer):
    inputs = [(1.0, 0.05, 250), (0.0, 0.01, 10), (4.0, 0.2, 3), (0.25, 0.5, 0), (2.0, 0.001, 1000)]
    return same_function(answer, _variance_exploding, inputs, rtol=1e-6, atol=1e-9)


def _uniform_step(x, beta, u):
    # Uniform noise on [-a, a] has variance a^2 / 3; a = sqrt(3 beta) gives variance beta.
    return math.sqrt(1.0 - beta) * x + math.sqrt(12.0 * beta) * (u - 0.5)


def _uniform_step_mirrored(x, beta, u):
    # the same noise made from 1 - u, equally right
    return math.sqrt(1.0 - beta) * x + math.sqrt(12.0 * beta) * (0.5 - u)


@checker("01.3")
def _uniform_noise_step(answer):
    g = torch.Generator().manual_seed(0)
    x, u = torch.randn(1000, generator=g, dtype=torch.float64), torch.rand(1000, generator=g, dtype=torch.float64)
    inputs = [(x, 0.05, u), (x, 0.5, u), (x[:7], 0.001, u[:7])]
    ok, message = same_function(answer, _uniform_step, inputs, rtol=1e-6, atol=1e-9)
    if not ok and same_function(answer, _uniform_step_mirrored, inputs, rtol=1e-6, atol=1e-9)[0]:
        return True, "agrees with the reference (noise made from 1 - u) on 3 test inputs."
    return ok, message


def tight_encoder(c: float = HVAE_C, v1: float = HVAE_V1, v0: float = HVAE_V0) -> tuple[float, float, float, float]:
    """The encoder q(z1 | x) = N(a1 x, s1), q(z2 | z1) = N(a2 z1, s2) equal to the model's posterior.

    p(z1) = N(0, c^2 + v1) and x | z1 ~ N(z1, v0) give p(z1 | x); x is independent of z2 given z1, so
    p(z2 | z1, x) = p(z2 | z1), Bayes' rule on z2 ~ N(0, 1), z1 | z2 ~ N(c z2, v1).
    """
    prior_var = c**2 + v1
    a1, s1 = prior_var / (prior_var + v0), prior_var * v0 / (prior_var + v0)
    a2, s2 = c / prior_var, v1 / prior_var
    return a1, s1, a2, s2


@checker("01.4")
def _tight_encoder(answer):
    names = ("a1", "s1", "a2", "s2")
    try:
        values = [float(v) for v in answer]
    except (TypeError, ValueError):
        return False, "expected four numbers (a1, s1, a2, s2)"
    if len(values) != 4:
        return False, f"expected four numbers (a1, s1, a2, s2), got {len(values)}"
    for name, value, expected in zip(names, values, tight_encoder()):
        ok, message = close(value, expected, rtol=1e-3, what=name)
        if not ok:
            return False, message
    return True, "all four match the true posterior: the bound is tight."


def _reparameterised(mu, logvar, eps):
    return mu + torch.exp(0.5 * logvar) * eps


@checker("01.5")
def _reparameterise_logvar(answer):
    g = torch.Generator().manual_seed(1)
    shape = (16, 3)
    mu, logvar, eps = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3))
    inputs = [(mu, logvar, eps), (mu, 2 * logvar, eps), (mu[:1], logvar[:1], eps[:1])]
    ok, message = same_function(answer, _reparameterised, inputs, rtol=1e-6, atol=1e-9)
    if not ok:
        return ok, message
    # The sample must stay a differentiable function of (mu, logvar): dz/dmu = 1, dz/dlogvar = 0.5 sigma eps.
    mu_, logvar_ = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
    z = answer(mu_, logvar_, eps)
    if not isinstance(z, torch.Tensor) or not z.requires_grad:
        return False, "the sample does not depend differentiably on mu and logvar (no gradient flows)"
    grad_mu, grad_logvar = torch.autograd.grad(z.sum(), (mu_, logvar_))
    if not torch.allclose(grad_mu, torch.ones_like(mu)) or not torch.allclose(
        grad_logvar, 0.5 * torch.exp(0.5 * logvar) * eps
    ):
        return False, "the values are right but the gradients are not those of mu + sigma * eps"
    return True, "right values, and gradients flow to mu and logvar."
