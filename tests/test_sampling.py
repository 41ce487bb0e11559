import math
import warnings

import pytest
import torch
from conftest import generator

from ddpm_utils import GaussianMixture, Schedule, cosine_betas, make_schedule, p_mean_variance
from ddpm_utils.sampling import ddim_invert, ddim_sample, ddim_timesteps, ddpm_sample

GAUSS = GaussianMixture([1.0], [[0.5, -0.3]], [0.4])  # one Gaussian N(μ, 0.4² I) in 2-D
MIX = GaussianMixture([0.3, 0.7], [[-0.8, 0.0], [0.6, 0.4]], [0.15, 0.25])


def _moments_match(x, mean, std, n):
    assert (x.mean(0) - torch.tensor(mean, dtype=x.dtype)).abs().max() < 5 * std / math.sqrt(n) + 0.01
    assert (x.std(0) / std - 1).abs().max() < 0.03


def test_ddpm_with_optimal_denoiser_samples_the_data_distribution():
    stats = pytest.importorskip("scipy.stats")
    s = make_schedule("linear", 1000)
    n = 20_000
    x = ddpm_sample(GAUSS.denoiser(s), s, (n, 2), generator=generator(), dtype=torch.float64)
    _moments_match(x, [0.5, -0.3], 0.4, n)
    ks = stats.kstest(((x[:, 0] - 0.5) / 0.4).numpy(), "norm")
    assert ks.pvalue > 1e-3


def test_ddim_deterministic_samples_the_data_distribution():
    """η = 0 integrates the probability-flow ODE: exact in the limit, with an error that shrinks as
    the number of steps grows (coarse grids shrink the spread: std 0.34 at 20 steps, 0.39 at 100)."""
    s = make_schedule("linear", 1000)
    n = 20_000
    errors = []
    for steps in (20, 100, 1000):
        x = ddim_sample(GAUSS.denoiser(s), s, (n, 2), steps, generator=generator(), dtype=torch.float64)
        errors.append((x.std(0) / 0.4 - 1).abs().max().item())
    _moments_match(x, [0.5, -0.3], 0.4, n)
    assert errors[0] > errors[1] > errors[2]


def test_ddim_eta1_full_schedule_is_ddpm_with_beta_tilde():
    """Pathwise: with the same generator the two samplers draw the same noise and take the same steps."""
    s = Schedule(cosine_betas(200))
    model = MIX.denoiser(s)
    a = ddpm_sample(model, s, (4000, 2), generator=generator(3), variance="beta_tilde", dtype=torch.float64)
    b = ddim_sample(model, s, (4000, 2), num_inference_steps=200, eta=1.0, generator=generator(3), dtype=torch.float64)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    # and in distribution against the data: mixture weights recovered
    frac_left = (a[:, 0] < -0.1).double().mean().item()
    assert abs(frac_left - 0.3) < 0.03


def test_last_step_adds_no_noise():
    s = Schedule(cosine_betas(5))
    seen = []

    def model(xt, t):
        return torch.full_like(xt, 0.1)

    x0 = ddpm_sample(model, s, (3, 2), generator=generator(), callback=lambda i, t, xt, x0p: seen.append((t, xt, x0p)))
    assert [t for t, _, _ in seen] == [4, 3, 2, 1, 0]
    t_last, xt_last, x0_pred_last = seen[-1]
    out = p_mean_variance(s, xt_last, torch.zeros(3, dtype=torch.long), model(xt_last, None))
    torch.testing.assert_close(x0, out.model_mean)  # exactly the mean: no σ z at the last step
    torch.testing.assert_close(x0, x0_pred_last)  # and at t = 1 the mean is x̂_0 itself


def test_clip_x0_keeps_samples_in_range():
    s = make_schedule("linear", 50)

    def wild(xt, t):
        return 30 * torch.ones_like(xt)

    x = ddpm_sample(wild, s, (8, 1, 4, 4), generator=generator(), clip_x0=True)
    assert x.abs().max() <= 1.0 + 1e-6
    x = ddim_sample(wild, s, (8, 1, 4, 4), num_inference_steps=10, generator=generator(), clip_x0=True)
    assert x.abs().max() <= 1.0 + 1e-6


def test_ddim_inversion_reconstructs_its_input():
    s = make_schedule("linear", 1000)
    model = MIX.denoiser(s)
    x0 = ddim_sample(model, s, (256, 2), num_inference_steps=200, generator=generator(), dtype=torch.float64)
    xT = ddim_invert(model, s, x0, num_inference_steps=200)
    recon = ddim_sample(model, s, num_inference_steps=200, x_T=xT)
    # inversion approximates ε̂ at the previous point, so the round trip is close, not exact
    assert (recon - x0).abs().max() < 0.1
    assert (recon - x0).abs().mean() < 1e-2
    assert xT.std() > 0.5  # the inversion did reach noise


def test_timesteps_and_callbacks():
    assert ddim_timesteps(1000, 1000).tolist() == list(range(1000))
    taus = ddim_timesteps(1000, 50)
    assert taus[0] == 0 and taus[-1] == 999 and len(taus.unique()) == 50
    with pytest.raises(ValueError, match="num_inference_steps"):
        ddim_timesteps(1000, 0)
    s = make_schedule("linear", 100)
    calls = []
    ddim_sample(lambda x, t: torch.zeros_like(x), s, (2, 2), 10, callback=lambda *a: calls.append(a[1]))
    assert calls == ddim_timesteps(100, 10).flip(0).tolist()
    with pytest.raises(ValueError, match="shape or x_T"):
        ddpm_sample(lambda x, t: x, s)
    with pytest.raises(ValueError, match="eta"):
        ddim_sample(lambda x, t: x, s, (2, 2), eta=-1)
    with pytest.raises(ValueError, match="unknown variance"):
        ddpm_sample(lambda x, t: x, s, (2, 2), variance="large")


def test_same_generator_same_samples():
    s = make_schedule("linear", 20)
    model = GAUSS.denoiser(s)
    a = ddpm_sample(model, s, (5, 2), generator=generator(9))
    b = ddpm_sample(model, s, (5, 2), generator=generator(9))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_warns_when_the_first_step_amplifies_eps_errors():
    # cosine: ᾱ_T = 2.4e-9; DDIM-50's first jump (t 999 → 979) weights ε̂ by √(ᾱ_979/ᾱ_999) ≈ 630
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731
    cosine = make_schedule("cosine", 1000)
    with pytest.warns(UserWarning, match="clip_x0=True"):
        ddim_sample(zero, cosine, (2, 2), 50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ddim_sample(zero, cosine, (2, 2), 50, clip_x0=True)
        ddim_sample(zero, cosine, (2, 2), 50, prediction="v")
        ddim_sample(zero, make_schedule("linear", 1000), (2, 2), 50)
        ddpm_sample(zero, make_schedule("cosine", 100), (2, 2))  # one full step: weight β/√(α(1-ᾱ)) ≈ 32
