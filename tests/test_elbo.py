import math

import pytest
import torch
from conftest import generator

from ddpm_utils import (
    GaussianMixture,
    Schedule,
    bits_per_dim,
    cosine_betas,
    decoder_nll,
    discretized_gaussian_log_likelihood,
    eps_mse_weights,
    kl_term,
    loss_simple,
    make_schedule,
    nll_bound,
    normal_kl,
    p_mean_variance,
    prior_kl,
    q_sample,
)


def test_normal_kl_matches_torch_distributions():
    g = generator()
    m1, m2 = torch.randn(100, generator=g), torch.randn(100, generator=g)
    lv1, lv2 = torch.randn(100, generator=g), torch.randn(100, generator=g)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(m1, (0.5 * lv1).exp()), torch.distributions.Normal(m2, (0.5 * lv2).exp())
    )
    torch.testing.assert_close(normal_kl(m1, lv1, m2, lv2), ref, rtol=1e-5, atol=1e-6)


def test_normal_kl_matches_monte_carlo():
    g = generator(3)
    n = 400_000
    m1, s1, m2, s2 = 0.3, 0.7, -0.5, 1.4
    x = m1 + s1 * torch.randn(n, dtype=torch.float64, generator=g)
    p, q = torch.distributions.Normal(m1, s1), torch.distributions.Normal(m2, s2)
    samples = p.log_prob(x) - q.log_prob(x)
    kl = normal_kl(torch.tensor(m1), 2 * math.log(s1), torch.tensor(m2), 2 * math.log(s2)).item()
    assert abs(samples.mean().item() - kl) < 5 * samples.std().item() / math.sqrt(n)


@pytest.mark.parametrize("num_levels", [2, 17, 256])
@pytest.mark.parametrize("mean,log_var", [(0.0, -2.0), (0.93, -9.0), (-1.3, 0.5), (0.1, -14.0), (3.0, -6.0)])
def test_discretized_likelihood_sums_to_one(num_levels, mean, log_var):
    levels = torch.linspace(-1, 1, num_levels, dtype=torch.float64)[:, None]
    logp = discretized_gaussian_log_likelihood(
        levels, torch.full_like(levels, mean), torch.tensor(log_var, dtype=torch.float64), num_levels
    )
    assert torch.isfinite(logp).all()
    assert abs(logp.exp().sum().item() - 1) < 1e-9


def test_discretized_likelihood_matches_cdf_differences():
    """Oracle: torch.distributions.Normal.cdf in float64 for bins away from the tails."""
    x = torch.linspace(-1, 1, 17, dtype=torch.float64)[:, None]
    mean, std = torch.full_like(x, 0.2), 0.3
    half = 1 / 16
    dist = torch.distributions.Normal(mean, std)
    ref = dist.cdf(x + half) - dist.cdf(x - half)
    ref[0], ref[-1] = dist.cdf(x[0] + half)[0], 1 - dist.cdf(x[-1] - half)[0]
    got = discretized_gaussian_log_likelihood(x, mean, torch.tensor(2 * math.log(std), dtype=torch.float64), 17).exp()
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)


def test_discretized_likelihood_rejects_bad_data():
    mean = torch.zeros(2, 1)
    with pytest.raises(ValueError, match="quantised to 17 levels"):
        discretized_gaussian_log_likelihood(torch.tensor([[0.01], [0.0]]), mean, torch.tensor(0.0), 17)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        discretized_gaussian_log_likelihood(torch.tensor([[2.0], [0.0]]), mean, torch.tensor(0.0), 17)
    with pytest.raises(ValueError, match="num_levels"):
        discretized_gaussian_log_likelihood(torch.zeros(2, 1), mean, torch.tensor(0.0), 1)


def test_prior_kl_matches_torch_distributions():
    s = make_schedule("linear", 1000)
    x0 = torch.rand(3, 1, 4, 4, generator=generator()) * 2 - 1
    ab = s.alpha_bars[-1].float()
    q = torch.distributions.Normal(ab.sqrt() * x0, (1 - ab).sqrt())
    ref = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum((1, 2, 3))
    torch.testing.assert_close(prior_kl(s, x0), ref, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_kl_term_is_weighted_eps_error(variance):
    """DDPM Eq. 12: with σ_t² fixed, L_{t-1} = λ_t ‖ε - ε_θ‖²."""
    s = make_schedule("linear", 1000)
    x0 = torch.randn(5, 1, 4, 4, dtype=torch.float64, generator=generator())
    eps = torch.randn_like(x0)
    eps_pred = eps + 0.3 * torch.randn(x0.shape, dtype=torch.float64, generator=generator(1))
    t = torch.tensor([1, 2, 100, 500, 999])
    xt = q_sample(s, x0, t, noise=eps)
    out = p_mean_variance(s, xt, t, eps_pred, variance=variance)
    kl = kl_term(s, x0, xt, t, out.model_mean, out.model_log_variance)
    var_ratio = s.posterior_variance[t] / out.model_variance.reshape(-1)
    # KL between Gaussians with different variances: the mean part is λ_t ‖ε - ε_θ‖²
    var_part = 0.5 * x0[0].numel() * (var_ratio - 1 - var_ratio.log())
    expected = eps_mse_weights(s, variance)[t] * ((eps - eps_pred) ** 2).sum((1, 2, 3)) + var_part
    torch.testing.assert_close(kl, expected, rtol=1e-8, atol=1e-10)


def test_kl_term_rejects_first_step():
    s = make_schedule("linear", 10)
    x = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="decoder_nll"):
        kl_term(s, x, x, torch.tensor([0]), x, torch.zeros(1, 1))


def _discrete_gaussian_data(num_levels=17, mean=0.2, std=0.35):
    levels = torch.linspace(-1, 1, num_levels, dtype=torch.float64)
    weights = torch.exp(-0.5 * ((levels - mean) / std) ** 2)
    return GaussianMixture(weights, levels[:, None], torch.zeros(num_levels))


def test_elbo_bounds_exact_likelihood_and_gap_shrinks_with_T():
    """1-D Gaussian data on 17 levels, the exact optimal ε: E[bound] ≥ entropy; the gap falls with T.

    (For small T the gap is not monotone: a coarse chain's wide decoder can itself fit Gaussian-shaped
    data. From T = 64 on, the finer chain wins; notebook 03 plots the whole curve.)"""
    data = _discrete_gaussian_data()
    entropy = -(data.weights * data.weights.log()).sum().item()  # E[-log p(x0)], nats
    n = 4000
    x0 = data.sample(n, generator=generator(5))
    gaps = []
    for num_steps in (64, 256, 1024):
        s = Schedule(cosine_betas(num_steps))
        out = nll_bound(data.denoiser(s), s, x0, num_levels=17, generator=generator(num_steps))
        total = out["total"]
        assert out["terms"].shape == (n, num_steps) and total.shape == (n,)
        stderr = total.std().item() / math.sqrt(n)
        assert total.mean().item() >= entropy - 4 * stderr
        gaps.append((total.mean().item() - entropy, stderr))
    for (g1, e1), (g2, e2) in zip(gaps, gaps[1:]):
        assert g2 < g1 - 3 * math.hypot(e1, e2), gaps
    assert gaps[-1][0] < 0.2 * gaps[0][0]


def test_decoder_nll_and_bits_per_dim():
    x0 = torch.linspace(-1, 1, 17)[None, :].repeat(3, 1)
    uniform = decoder_nll(x0, torch.zeros_like(x0), torch.tensor(20.0), 17)  # a huge variance
    assert uniform.shape == (3,)
    # a very wide Gaussian puts ~1/16 mass on inner bins, ~1/2 on each edge bin
    assert torch.isfinite(uniform).all()
    bpd = bits_per_dim(torch.full((3,), 17 * math.log(17)), x0)
    torch.testing.assert_close(bpd, torch.full((3,), math.log2(17)))
    assert bits_per_dim(torch.tensor(17 * math.log(17)), x0).item() == pytest.approx(math.log2(17))  # one number
    assert bits_per_dim(torch.ones(17), x0[0]).tolist() == pytest.approx([1 / math.log(2)] * 17)  # scalar examples
    for nats, x in ((torch.zeros(4), x0), (torch.zeros(3, 1), x0), (torch.zeros(3), x0[0, 0])):  # one per example
        with pytest.raises(ValueError, match="one value per example of x0"):
            bits_per_dim(nats, x)


def test_loss_simple_is_per_example_mse():
    a, b = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    loss = loss_simple(a, b)
    assert loss.shape == (4,)
    torch.testing.assert_close(loss, torch.nn.functional.mse_loss(a, b, reduction="none").mean((1, 2, 3)))
    with pytest.raises(ValueError, match="model_output must have the shape of target"):
        loss_simple(a, b[:, :, :4])
