import pytest
import torch
from conftest import generator
from torch.distributions import MultivariateNormal

from ddpm_utils import GaussianData, GaussianMixture, ddim_sample, eps_and_x0_from_output, make_schedule, q_sample
from ddpm_utils.analytic import empirical_x0_mean


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


def test_empirical_x0_mean_is_the_atom_mixtures_optimal_denoiser():
    """A training set is a mixture of N atoms of weight 1/N, so E[x_0 | x_t] from `empirical_x0_mean`
    must give the same E[ε | x_t] as GaussianMixture's closed-form score, at every noise level."""
    data = torch.randn(30, 1, 2, 2, generator=generator(), dtype=torch.float64)
    gm = GaussianMixture(torch.ones(30), data.reshape(30, -1), torch.zeros(30))
    s = make_schedule("linear", 1000)
    t = torch.tensor([0, 1, 10, 50, 150, 300, 500, 700, 900, 999])
    x0 = data[torch.randint(0, 30, (10,), generator=generator(1))]
    xt = q_sample(s, x0, t, noise=torch.randn(10, 1, 2, 2, generator=generator(2), dtype=torch.float64))
    x0_mean = empirical_x0_mean(s, xt, t, data)
    a = s.alpha_bars[t].reshape(-1, 1, 1, 1)
    torch.testing.assert_close((xt - a.sqrt() * x0_mean) / (1 - a).sqrt(), gm.optimal_eps(s, xt, t))
    # at t = 0 the posterior has collapsed onto the x_0 that made x_t; at t = 999 it is the data mean
    torch.testing.assert_close(x0_mean[0], x0[0])
    torch.testing.assert_close(x0_mean[-1], data.mean(0), atol=0.02, rtol=0)
    assert empirical_x0_mean(s, xt.float(), t, data.float()).dtype == torch.float32
    with pytest.raises(ValueError, match="shape"):
        empirical_x0_mean(s, xt, t, data.reshape(30, 4))
    with pytest.raises(ValueError, match="empty"):
        empirical_x0_mean(s, xt, t, data[:0])


def test_ode_sample_is_the_flow_of_the_optimal_denoiser():
    """Independent checks of the closed form: (a) it maps x_T ~ q_T onto the data distribution;
    (b) DDIM, a first-order solver of the same ODE, converges to it: its error halves each time its
    steps S double, and (c) a mixture is refused."""
    gm = GaussianMixture([1.0], [[0.5, -0.3]], [0.4])
    s = make_schedule("linear", 1000)
    x_T = torch.randn(20_000, 2, generator=generator(), dtype=torch.float64)  # q_T ≈ N(0, I): ᾱ_T = 4e-5
    x = gm.ode_sample(s, x_T)
    assert (x.mean(0) - torch.tensor([0.5, -0.3], dtype=torch.float64)).abs().max() < 0.02
    assert (x.std(0) / 0.4 - 1).abs().max() < 0.02

    errors = [
        (ddim_sample(gm.denoiser(s), s, num_inference_steps=n, x_T=x_T[:500]) - x[:500]).abs().max().item()
        for n in (250, 500, 1000)
    ]
    assert 1.8 < errors[0] / errors[1] < 2.2 and 1.8 < errors[1] / errors[2] < 2.2  # → 0 as 1/S: same limit
    assert errors[2] < 0.01
    with pytest.raises(ValueError, match="single Gaussian"):
        GaussianMixture([0.5, 0.5], [[0.0], [1.0]], [0.1, 0.1]).ode_sample(s, torch.zeros(2, 1))
    with pytest.raises(ValueError, match="shape"):
        gm.ode_sample(s, torch.zeros(2, 3))


def _random_gaussian(dim=5, rank=3, seed=0):
    """A Gaussian with a singular covariance (rank < dim), like images with constant pixels."""
    g = generator(seed)
    a = torch.randn(dim, rank, generator=g, dtype=torch.float64)
    return GaussianData(torch.randn(dim, generator=g, dtype=torch.float64), a @ a.T)


def test_gaussian_data_optimal_eps_is_the_diffused_gaussians_score():
    """Oracle: q_t = N(√ᾱ μ, ᾱ Σ + (1-ᾱ) I) from torch.distributions; E[ε | x_t] = -sqrt(1-ᾱ) ∇log q_t
    by autograd, at every noise level, for a singular Σ; and the x_0 form agrees with the ε form."""
    gd = _random_gaussian()
    s = make_schedule("linear", 1000)
    t = torch.tensor([0, 5, 100, 400, 800, 999])
    x = torch.randn(6, 5, dtype=torch.float64, generator=generator(1), requires_grad=True)
    a = s.alpha_bars[t].double()
    log_q = sum(
        MultivariateNormal(
            a[i].sqrt() * gd.mean, a[i] * gd.covariance + (1 - a[i]) * torch.eye(5, dtype=torch.float64)
        ).log_prob(x[i])
        for i in range(6)
    )
    (score,) = torch.autograd.grad(log_q, x)
    eps = gd.optimal_eps(s, x.detach(), t)
    torch.testing.assert_close(eps, -(1 - a).sqrt()[:, None] * score)
    x0 = gd.optimal_x0(s, x.detach(), t)
    torch.testing.assert_close(x.detach(), a.sqrt()[:, None] * x0 + (1 - a).sqrt()[:, None] * eps)
    # images: trailing dims are flattened, dtype kept
    img = x.detach().float().reshape(6, 1, 5, 1)
    out = gd.optimal_eps(s, img, t)
    assert out.shape == img.shape and out.dtype == torch.float32
    torch.testing.assert_close(out.reshape(6, 5), eps.float(), rtol=1e-4, atol=1e-4)


def test_gaussian_data_isotropic_case_is_the_one_component_mixture():
    mean = torch.tensor([0.3, -0.5, 1.0], dtype=torch.float64)
    gd = GaussianData(mean, 0.7**2 * torch.eye(3, dtype=torch.float64))
    gm = GaussianMixture([1.0], mean[None], [0.7])
    s = make_schedule("cosine", 200)
    t = torch.tensor([0, 50, 120, 199])
    x = torch.randn(4, 3, dtype=torch.float64, generator=generator(2))
    torch.testing.assert_close(gd.optimal_eps(s, x, t), gm.optimal_eps(s, x, t))


def test_gaussian_data_fit_and_sampling_round_trip():
    """fit() gives the sample mean and covariance; DDIM with the fitted Gaussian's own optimal
    denoiser draws from that Gaussian (mean and covariance within Monte-Carlo error)."""
    gd = _random_gaussian(dim=4, rank=4, seed=3)
    chol = torch.linalg.cholesky(gd.covariance)
    data = gd.mean + torch.randn(400, 4, generator=generator(4), dtype=torch.float64) @ chol.T
    fitted = GaussianData.fit(data.reshape(400, 1, 2, 2))
    torch.testing.assert_close(fitted.mean, data.mean(0))
    centred = data - data.mean(0)
    torch.testing.assert_close(fitted.covariance, centred.T @ centred / 399)
    s = make_schedule("linear", 1000)
    x = ddim_sample(fitted.denoiser(s), s, (20_000, 4), 100, generator=generator(5), dtype=torch.float64)
    torch.testing.assert_close(x.mean(0), fitted.mean, atol=0.1, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), fitted.covariance, atol=0.15, rtol=0.05)


def test_gaussian_data_denoiser_parameterisations_agree():
    gd = _random_gaussian(seed=6)
    s = make_schedule("linear", 1000)
    t = torch.tensor([3, 300, 990])
    x = torch.randn(3, 5, dtype=torch.float64, generator=generator(7))
    eps, x0 = gd.optimal_eps(s, x, t), gd.optimal_x0(s, x, t)
    for prediction in ("eps", "x0", "v"):
        got = eps_and_x0_from_output(s, x, t, gd.denoiser(s, prediction)(x, t), prediction)
        torch.testing.assert_close(got[0], eps)
        torch.testing.assert_close(got[1], x0)
    with pytest.raises(ValueError, match="prediction"):
        gd.denoiser(s, "score")


def test_gaussian_data_errors():
    with pytest.raises(ValueError, match="symmetric"):
        GaussianData(torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="positive semi-definite"):
        GaussianData(torch.zeros(2), -torch.eye(2))
    with pytest.raises(ValueError, match=r"\(D,\)"):
        GaussianData(torch.zeros(3), torch.eye(2))
    with pytest.raises(ValueError, match="finite"):
        GaussianData(torch.tensor([0.0, float("nan")]), torch.eye(2))
    with pytest.raises(ValueError, match="at least 2"):
        GaussianData.fit(torch.zeros(1, 4))
    with pytest.raises(TypeError, match="floating-point"):
        GaussianData.fit(torch.zeros(5, 4, dtype=torch.long))
    gd = GaussianData(torch.zeros(64), torch.eye(64))
    s = make_schedule("linear", 1000)
    with pytest.raises(ValueError, match="784 dimensions per example but the Gaussian has 64"):
        gd.optimal_eps(s, torch.zeros(2, 1, 28, 28), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1000\)"):
        gd.optimal_eps(s, torch.zeros(2, 64), torch.tensor([0, 1000]))
