"""Checkers for chapter 07 (Evaluation). Each compares the learner's answer with an independent computation."""

from __future__ import annotations

import math

import torch

from . import checker, close, same_function


@checker("07.1")
def _fd_1d(answer):
    """FD between N(mu1, s1^2) and N(mu2, s2^2), checked against the general matrix formula on 1x1 covariances."""

    def reference(mu1, s1, mu2, s2):
        # the general formula with 1x1 matrices: (mu1 - mu2)^2 + s1^2 + s2^2 - 2 sqrt(s1^2 s2^2)
        return (mu1 - mu2) ** 2 + s1**2 + s2**2 - 2 * (s1**2 * s2**2).sqrt()

    g = torch.Generator().manual_seed(71)
    inputs = [
        (
            torch.randn(5, generator=g, dtype=torch.float64),
            torch.rand(5, generator=g, dtype=torch.float64) + 0.1,
            torch.randn(5, generator=g, dtype=torch.float64),
            torch.rand(5, generator=g, dtype=torch.float64) + 0.1,
        )
        for _ in range(3)
    ]
    return same_function(answer, reference, inputs, rtol=1e-9, atol=1e-12)


@checker("07.2")
def _share_too_close(answer):
    """The share of samples nearer to the training set than the quantile of the test set's nearest distances."""
    from ..data import load_digits

    train, test = load_digits("train"), load_digits("test")

    def reference(samples, train_, test_, quantile=0.05):
        flat_train = train_.reshape(len(train_), -1).double()
        d_s = torch.cdist(samples.reshape(len(samples), -1).double(), flat_train).min(1).values
        d_t = torch.cdist(test_.reshape(len(test_), -1).double(), flat_train).min(1).values
        return (d_s < torch.quantile(d_t, quantile)).double().mean()

    g = torch.Generator().manual_seed(72)
    near_copies = (train[:100] + 0.05 * torch.randn(100, 1, 8, 8, generator=g)).clamp(-1, 1)
    fresh = test[torch.randperm(len(test), generator=g)[:100]]
    mixed = torch.cat([near_copies[:30], fresh[:70]])
    inputs = [(near_copies, train, test), (fresh, train, test), (mixed, train, test)]

    def as_number(fn):
        return lambda *args: torch.as_tensor(float(fn(*args)), dtype=torch.float64)

    if not callable(answer):
        return False, f"expected a function, got {type(answer).__name__}"
    return same_function(as_number(answer), reference, inputs, rtol=0, atol=1e-9)


@checker("07.3")
def _bpd_5_levels(answer):
    """The independent-pixel baseline on the test digits quantised to 5 levels, add-one smoothing, in bits/dim."""
    from ..data import load_digits

    def level5(x):
        return (((x + 1) * 8).round() / 4).round().long().reshape(len(x), 64)

    k_train, k_test = level5(load_digits("train")), level5(load_digits("test"))
    counts = torch.ones(64, 5, dtype=torch.float64)
    for k in range(5):
        counts[:, k] += (k_train == k).sum(0)
    log_p = (counts / counts.sum(1, keepdim=True)).log()
    nll = -torch.stack([log_p[torch.arange(64), row] for row in k_test]).sum(1)  # (N,) nats
    expected = (nll / (64 * math.log(2))).mean().item()
    return close(answer, expected, rtol=1e-3, what="your bits/dim")
