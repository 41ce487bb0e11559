"""Chapter 06's checkers accept the worked solutions and reject typical wrong answers."""

import math

import torch

import ddpm_utils as du
from ddpm_utils import exercises

S = du.make_schedule("linear", 1000)


def _col(v, t):
    return v[t].reshape(-1, 1, 1, 1)


def step_x0(xt, t, x0_pred, z):
    ab, ab_prev, beta, alpha = (_col(v, t) for v in (S.alpha_bars, S.alpha_bars_prev, S.betas, S.alphas))
    mean = ab_prev.sqrt() * beta / (1 - ab) * x0_pred + alpha.sqrt() * (1 - ab_prev) / (1 - ab) * xt
    return (mean + _col(S.posterior_variance, t).sqrt() * z).float()


def test_06_1_accepts_the_posterior_step_and_rejects_slips():
    assert exercises.check("06.1", step_x0)
    # sigma = beta-tilde instead of its square root
    var = lambda t: _col(S.posterior_variance, t)  # noqa: E731
    assert not exercises.check("06.1", lambda xt, t, x0, z: step_x0(xt, t, x0, z * var(t).sqrt()))

    # alpha_bar_t where alpha_bar_{t-1} belongs
    def wrong_coefficient(xt, t, x0, z):
        ab, ab_prev, beta, alpha = (_col(v, t) for v in (S.alpha_bars, S.alpha_bars_prev, S.betas, S.alphas))
        mean = ab.sqrt() * beta / (1 - ab) * x0 + alpha.sqrt() * (1 - ab_prev) / (1 - ab) * xt
        return (mean + _col(S.posterior_variance, t).sqrt() * z).float()

    assert not exercises.check("06.1", wrong_coefficient)
    assert not exercises.check("06.1", None)


def test_06_2_accepts_eps_from_v_and_rejects_swapped_coefficients():
    def right(xt, t, v):
        ab = _col(S.alpha_bars, t).float()
        return (1 - ab).sqrt() * xt + ab.sqrt() * v

    def swapped(xt, t, v):
        ab = _col(S.alpha_bars, t).float()
        return ab.sqrt() * xt + (1 - ab).sqrt() * v

    assert exercises.check("06.2", right)
    assert exercises.check("06.2", lambda xt, t, v: du.eps_from_v(S, xt, t, v))  # the library agrees
    assert not exercises.check("06.2", swapped)


def test_06_3_rejects_the_x0_multiplier_and_the_ancestral_one():
    cos = du.make_schedule("cosine", 1000)
    taus = du.sampling.ddim_timesteps(1000, 20)
    ab, ab_prev = cos.alpha_bars[taus[-1]].item(), cos.alpha_bars[taus[-2]].item()
    gain = abs(math.sqrt(1 - ab_prev) - math.sqrt(ab_prev / ab) * math.sqrt(1 - ab))
    assert exercises.check("06.3", gain)
    assert not exercises.check("06.3", math.sqrt((1 - ab) / ab))  # x0_hat's multiplier, ~20,000
    assert not exercises.check("06.3", 31.6)  # the ancestral step's


def test_06_checkers_reject_a_function_that_raises():
    def broken(*args):
        raise RuntimeError("not written yet")

    assert not exercises.check("06.1", broken)
    assert not exercises.check("06.2", broken)
    assert not exercises.check("06.3", torch.tensor([1.0, 2.0]))
