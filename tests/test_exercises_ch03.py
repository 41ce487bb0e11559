"""Chapter 03's exercise checkers accept the worked solutions and reject wrong answers."""

import math

import torch

import ddpm_utils as du
from ddpm_utils import exercises


def _ok(key, answer):
    return exercises.check(key, answer)


def test_03_1_prior_term():
    ab = du.make_schedule("linear", 1000).alpha_bars[-1].item()
    right = 0.5 * (ab + (1 - ab) - 1 - math.log(1 - ab))
    assert _ok("03.1", right)
    assert not _ok("03.1", 0.5 * (ab**2 + (1 - ab) - 1 - math.log(1 - ab)))  # mean alpha_bar instead of its root
    assert not _ok("03.1", 0.0)
    assert not _ok("03.1", None)


def test_03_2_eps_weights():
    def right(schedule):
        snr = schedule.snr
        return (snr[:-1] - snr[1:]) / (2 * snr[1:])

    def forgot_the_division(schedule):
        snr = schedule.snr
        return (snr[:-1] - snr[1:]) / 2

    def off_by_one(schedule):
        snr = schedule.snr
        return (snr[:-1] - snr[1:]) / (2 * snr[:-1])

    assert _ok("03.2", right)
    assert not _ok("03.2", forgot_the_division)
    assert not _ok("03.2", off_by_one)
    assert not _ok("03.2", lambda schedule: right(schedule)[1:])  # wrong shape


def test_03_3_one_step_spread():
    lam = du.eps_mse_weights(du.make_schedule("linear", 1000), "beta_tilde")[1:]
    assert _ok("03.3", (100 * lam).std(unbiased=False).item())
    assert not _ok("03.3", (100 * lam).mean().item())  # the mean, not the spread
    assert not _ok("03.3", (0.1 * lam).std().item())  # forgot the factor T


def test_03_4_tweedie():
    def right(xt, alpha_bar, mu, s):
        var_t = alpha_bar * s**2 + 1 - alpha_bar
        score = -(xt - math.sqrt(alpha_bar) * mu) / var_t
        return (xt + (1 - alpha_bar) * score) / math.sqrt(alpha_bar)

    def score_of_unit_gaussian(xt, alpha_bar, mu, s):  # ignores the data's spread
        return (xt - (1 - alpha_bar) * xt) / math.sqrt(alpha_bar)

    assert _ok("03.4", right)
    assert not _ok("03.4", score_of_unit_gaussian)
    assert not _ok("03.4", lambda xt, alpha_bar, mu, s: torch.zeros(2))
    assert not _ok("03.4", 1.0)
