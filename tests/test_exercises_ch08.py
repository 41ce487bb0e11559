"""Chapter 08's checkers reject wrong answers and accept the worked solutions."""

import torch

from ddpm_utils.exercises import check


def test_08_1():
    assert not check("08.1", lambda c, u, w: c + w * u)
    assert not check("08.1", None)
    assert check("08.1", lambda c, u, w: (1 + w) * c - w * u)


def test_08_2():
    assert not check("08.2", 7.5)
    assert check("08.2", 6.5)


def test_08_3():
    def wrong_rate(y, p, n, g):
        return torch.where(torch.rand(y.shape, generator=g) < p / 2, torch.full_like(y, n), y)

    def changes_labels(y, p, n, g):
        return torch.where(torch.rand(y.shape, generator=g) < p, torch.full_like(y, n), (y + 1) % n)

    def right(y, p, n, g):
        return torch.where(torch.rand(y.shape, generator=g) < p, torch.full_like(y, n), y)

    assert not check("08.3", wrong_rate)
    assert not check("08.3", changes_labels)
    assert check("08.3", right)
