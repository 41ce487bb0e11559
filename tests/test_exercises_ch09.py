"""Chapter 09's checkers reject wrong answers and accept the worked solutions."""

import torch

from ddpm_utils.exercises import check


def test_09_1():
    assert not check("09.1", 1e-4)  # the true variance alone ignores the mean's error
    assert not check("09.1", None)
    assert check("09.1", 5e-4)


def test_09_2():
    def no_clip(schedule, t, raw):  # uses β̃ unclipped: -inf at t = 0
        v = (raw + 1) / 2
        lb = torch.log(schedule.betas)[t].reshape(-1, 1, 1, 1).float()
        lbt = torch.log(schedule.posterior_variance)[t].reshape(-1, 1, 1, 1).float()
        return v * lb + (1 - v) * lbt

    def right(schedule, t, raw):
        v = (raw + 1) / 2
        lb = torch.log(schedule.betas)[t].reshape(-1, 1, 1, 1).to(raw.dtype)
        lbt = schedule.posterior_log_variance_clipped[t].reshape(-1, 1, 1, 1).to(raw.dtype)
        return v * lb + (1 - v) * lbt

    def raw_as_v(schedule, t, raw):  # forgets v = (r + 1) / 2
        return right(schedule, t, 2 * raw - 1)

    assert not check("09.2", no_clip)
    assert not check("09.2", raw_as_v)
    assert check("09.2", right)


def test_09_3():
    def right(alpha_bars, taus):
        kept = alpha_bars[torch.as_tensor(taus)]
        return 1 - kept / torch.cat([kept.new_ones(1), kept[:-1]])

    def original_betas(alpha_bars, taus):  # keeps the one-step β at each kept t
        betas = 1 - alpha_bars / torch.cat([alpha_bars.new_ones(1), alpha_bars[:-1]])
        return betas[torch.as_tensor(taus)]

    assert not check("09.3", original_betas)
    assert check("09.3", right)


def test_09_4():
    def right(xt, alpha_bar, log_prior):
        levels = torch.linspace(-1, 1, 17, dtype=xt.dtype)
        scores = log_prior - (xt[..., None] - alpha_bar.sqrt() * levels) ** 2 / (2 * (1 - alpha_bar))
        return (torch.softmax(scores, dim=-1) * levels).sum(dim=-1)

    def no_scaling(xt, alpha_bar, log_prior):  # forgets sqrt(alpha_bar) on the level
        return right(xt / alpha_bar.sqrt(), alpha_bar, log_prior)

    def no_prior(xt, alpha_bar, log_prior):  # drops log p_k
        return right(xt, alpha_bar, torch.zeros_like(log_prior))

    def nearest_level(xt, alpha_bar, log_prior):  # rounds instead of averaging
        return ((xt / alpha_bar.sqrt()).clamp(-1, 1) * 8).round() / 8

    for wrong in (no_scaling, no_prior, nearest_level, None):
        assert not check("09.4", wrong)
    assert check("09.4", right)
