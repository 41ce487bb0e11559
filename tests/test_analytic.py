import torch
from conftest import generator

from ddpm_utils import GaussianMixture, make_schedule, q_sample


def test_optimal_eps_matches_autograd_score_and_regression():
    """E[ε | x_t] from the closed-form score equals (a) -sqrt(1-ᾱ) ∇log q_t by autograd and
    (b) a Monte-Carlo regression estimate: ε̂* minimises E‖ε - f(x_t)‖², so it beats perturbations."""
    gm = GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.0, -0.2]], [0.2, 0.4])
    s = make_schedule("linear", 1000)
    t = torch.tensor([10, 300, 700])
    x = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    log_q = gm.log_prob(x, s.alpha_bars[t]).sum()
    (score,) = torch.autograd.grad(log_q, x)
    eps = gm.optimal_eps(s, x.detach(), t)
    torch.testing.assert_close(eps, -(1 - s.alpha_bars[t]).sqrt()[:, None] * score)

    n = 200_000
    x0 = gm.sample(n, generator=generator())
    noise = torch.randn(n, 2, dtype=torch.float64, generator=generator(1))
    tt = torch.full((n,), 300)
    xt = q_sample(s, x0, tt, noise=noise)
    best = ((gm.optimal_eps(s, xt, tt) - noise) ** 2).mean()
    for scale in (0.9, 1.1):
        assert best < ((scale * gm.optimal_eps(s, xt, tt) - noise) ** 2).mean()
