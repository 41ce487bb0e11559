"""Chapter 10's checkers reject wrong answers and accept the worked solutions."""

import torch

from ddpm_utils import exercises, make_schedule


def _first_order_step(x_s, x0_pred, s, u):
    ab = make_schedule("linear", 1000).alpha_bars.double()
    a_s, a_u, sig_s, sig_u = ab[s].sqrt(), ab[u].sqrt(), (1 - ab[s]).sqrt(), (1 - ab[u]).sqrt()
    h = torch.log(a_u / sig_u) - torch.log(a_s / sig_s)
    return sig_u / sig_s * x_s + a_u * (1 - torch.exp(-h)) * x0_pred


def test_10_1_first_order_step():
    assert exercises.check("10.1", _first_order_step)
    ab = make_schedule("linear", 1000).alpha_bars.double()

    def sign_slip(x_s, x0_pred, s, u):  # e^{+h} where e^{-h} belongs
        a_s, a_u, sig_s, sig_u = ab[s].sqrt(), ab[u].sqrt(), (1 - ab[s]).sqrt(), (1 - ab[u]).sqrt()
        h = torch.log(a_u / sig_u) - torch.log(a_s / sig_s)
        return sig_u / sig_s * x_s + a_u * (1 - torch.exp(h)) * x0_pred

    assert not exercises.check("10.1", sign_slip)
    assert not exercises.check("10.1", lambda x_s, x0, s, u: x0)  # jumping to x̂0


def test_10_2_two_m():
    def right(x0_s, x0_prev, h, h_prev):
        return (1 + h / (2 * h_prev)) * x0_s - h / (2 * h_prev) * x0_prev

    assert exercises.check("10.2", right)
    assert not exercises.check("10.2", lambda x0_s, x0_prev, h, h_prev: 1.5 * x0_s - 0.5 * x0_prev)  # r = 1 always
    assert not exercises.check("10.2", lambda x0_s, x0_prev, h, h_prev: right(x0_s, x0_prev, h_prev, h))  # r inverted
    assert not exercises.check("10.2", lambda x0_s, x0_prev, h, h_prev: x0_s)  # first order
