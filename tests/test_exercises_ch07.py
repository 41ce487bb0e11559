"""Chapter 07's checkers accept the worked solutions and reject typical wrong answers."""

import math

import torch

import ddpm_utils as du
from ddpm_utils import exercises


def test_07_1_accepts_the_1d_formula_and_rejects_variances_for_sds():
    assert exercises.check("07.1", lambda m1, s1, m2, s2: (m1 - m2) ** 2 + (s1 - s2) ** 2)
    assert not exercises.check("07.1", lambda m1, s1, m2, s2: (m1 - m2) ** 2 + (s1**2 - s2**2) ** 2)
    assert not exercises.check("07.1", lambda m1, s1, m2, s2: (m1 - m2) ** 2)


def _share(samples, train, test, quantile=0.05):
    flat = lambda x: x.reshape(len(x), -1).double()  # noqa: E731
    d_s = torch.cdist(flat(samples), flat(train)).min(1).values
    d_t = torch.cdist(flat(test), flat(train)).min(1).values
    return (d_s < torch.quantile(d_t, quantile)).double().mean().item()


def test_07_2_accepts_the_share_and_rejects_comparing_with_the_median():
    assert exercises.check("07.2", _share)
    assert not exercises.check("07.2", lambda s, tr, te, quantile=0.05: _share(s, tr, te, 0.5))
    # distances to the test set instead of the training set
    assert not exercises.check("07.2", lambda s, tr, te, quantile=0.05: _share(s, te, tr, quantile))


def test_07_3_accepts_the_5_level_baseline_and_rejects_the_17_level_one():
    train, test = du.load_digits("train"), du.load_digits("test")

    def baseline(levels_of):
        k_train, k_test = levels_of(train), levels_of(test)
        n = int(k_train.max()) + 1
        counts = torch.ones(64, n, dtype=torch.float64)
        counts.scatter_add_(1, k_train.T, torch.ones(64, len(train), dtype=torch.float64))
        log_p = (counts / counts.sum(1, keepdim=True)).log()
        return (-log_p.gather(1, k_test.T).sum(0) / (64 * math.log(2))).mean().item()

    five = baseline(lambda x: (((x + 1) * 8).round() / 4).round().long().reshape(len(x), 64))
    seventeen = baseline(lambda x: ((x + 1) * 8).round().long().reshape(len(x), 64))
    assert exercises.check("07.3", five)
    assert not exercises.check("07.3", seventeen)
    assert not exercises.check("07.3", five * math.log(2))  # nats, not bits
