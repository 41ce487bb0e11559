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
