"""Chapter 01's exercise checkers: each rejects a typical wrong answer and accepts the worked solution.

The expected answers are recomputed here from their definitions (Monte Carlo, Bayes' rule on a grid), not
copied from the checkers.
"""

import math

import pytest
import torch

from ddpm_utils import exercises
from ddpm_utils.exercises import ch01


def test_01_1_gap_of_doubled_variance():
    # Oracle: Monte Carlo of E_q[log q - log p] for q = N(0.3, 2 * 0.1), p = N(0.3, 0.1).
    g = torch.Generator().manual_seed(0)
    q = torch.distributions.Normal(0.3, math.sqrt(0.2))
    p = torch.distributions.Normal(0.3, math.sqrt(0.1))
    z = 0.3 + math.sqrt(0.2) * torch.randn(400_000, generator=g, dtype=torch.float64)
    mc = (q.log_prob(z) - p.log_prob(z)).mean().item()
    assert abs(mc - 0.5 * (1 - math.log(2))) < 3e-3
    assert exercises.check("01.1", 0.5 * (1 - math.log(2)))
    assert exercises.check("01.1", 0.153)  # three decimals are right
    assert not exercises.check("01.1", 0.5 * (math.log(2) - 0.5))  # the reversed KL, KL(N(m, v) || N(m, 2v))
    assert not exercises.check("01.1", math.log(2))  # a KL with the arguments' roles confused
    assert not exercises.check("01.1", None)


def test_01_2_variance_exploding():
    assert exercises.check("01.2", lambda v0, beta, t: v0 + t * beta)
    # the variance-preserving formula is the typical wrong answer
    assert not exercises.check("01.2", lambda v0, beta, t: (1 - beta) ** t * v0 + 1 - (1 - beta) ** t)
    assert not exercises.check("01.2", lambda v0, beta, t: v0 + t * math.sqrt(beta))


def test_01_3_uniform_step_has_variance_beta():
    # Oracle: the step's noise, measured by Monte Carlo, has mean 0 and variance beta.
    step = lambda x, beta, u: math.sqrt(1 - beta) * x + math.sqrt(12 * beta) * (u - 0.5)  # noqa: E731
    u = torch.rand(400_000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    noise = step(torch.zeros_like(u), 0.05, u)
    assert abs(noise.mean().item()) < 2e-3 and abs(noise.var().item() / 0.05 - 1) < 1e-2
    assert exercises.check("01.3", step)
    assert exercises.check("01.3", lambda x, beta, u: math.sqrt(1 - beta) * x + math.sqrt(12 * beta) * (0.5 - u))
    # uniform on [-beta, beta] (variance beta^2 / 3) and on [0, sqrt(12 beta)] (not centred) are wrong
    assert not exercises.check("01.3", lambda x, beta, u: math.sqrt(1 - beta) * x + 2 * beta * (u - 0.5))
    assert not exercises.check("01.3", lambda x, beta, u: math.sqrt(1 - beta) * x + math.sqrt(12 * beta) * u)


def test_01_4_tight_encoder_matches_bayes_on_a_grid():
    # Oracle: p(z1 | x) by Bayes' rule on a grid for the chapter's model, x = 0.9.
    c, v1, v0, x = ch01.HVAE_C, ch01.HVAE_V1, ch01.HVAE_V0, 0.9
    z1 = torch.linspace(-6, 6, 200_001, dtype=torch.float64)
    log_post = -(z1**2) / (2 * (c**2 + v1)) - (x - z1) ** 2 / (2 * v0)
    w = torch.softmax(log_post, 0)
    mean, var = (w * z1).sum().item(), (w * z1**2).sum().item() - (w * z1).sum().item() ** 2
    a1, s1, a2, s2 = ch01.tight_encoder()
    assert a1 * x == pytest.approx(mean, rel=1e-6) and s1 == pytest.approx(var, rel=1e-5)
    # p(z2 | z1) on a grid at z1 = 0.7
    z2 = z1
    w2 = torch.softmax(-(z2**2) / 2 - (0.7 - c * z2) ** 2 / (2 * v1), 0)
    mean2, var2 = (w2 * z2).sum().item(), (w2 * z2**2).sum().item() - (w2 * z2).sum().item() ** 2
    assert a2 * 0.7 == pytest.approx(mean2, rel=1e-6) and s2 == pytest.approx(var2, rel=1e-5)

    assert exercises.check("01.4", (a1, s1, a2, s2))
    assert not exercises.check("01.4", (0.7, 0.25, 0.6, 0.5))  # the chapter's crude encoder
    assert not exercises.check("01.4", (a1, s1, c, v1))  # the decoder's coefficients, not Bayes' rule
    assert not exercises.check("01.4", (a1, s1, a2))


def test_01_5_reparameterise_with_logvar():
    assert exercises.check("01.5", lambda mu, logvar, eps: mu + torch.exp(0.5 * logvar) * eps)
    # exp(logvar) is the variance, not the standard deviation
    assert not exercises.check("01.5", lambda mu, logvar, eps: mu + torch.exp(logvar) * eps)
    # right values, but computed outside autograd: no gradient reaches mu and logvar
    assert not exercises.check("01.5", lambda mu, logvar, eps: (mu + torch.exp(0.5 * logvar) * eps).detach())
