import math

import pytest
import torch
from conftest import generator

from ddpm_utils import (
    Schedule,
    eps_from_score,
    eps_from_v,
    eps_from_x0,
    linear_betas,
    make_schedule,
    q_mean_variance,
    q_posterior_mean_variance,
    q_sample,
    q_step_sample,
    score_from_eps,
    v_from_eps,
    x0_from_eps,
    x0_from_v,
)


def test_iterated_single_steps_match_closed_form():
    """Monte Carlo: T single steps of Eq. 2 give the marginal of Eq. 4 (moments and KS)."""
    stats = pytest.importorskip("scipy.stats")
    s = Schedule(linear_betas(100, 1e-3, 0.05))
    n = 100_000
    x0_value = 1.3
    x = torch.full((n, 1), x0_value, dtype=torch.float64)
    g = generator(1)
    for step in range(s.num_steps):
        t = torch.full((n,), step, dtype=torch.long)
        x = q_step_sample(s, x, t, generator=g)
        if step in (0, 9, 49, 99):
            mean, var = q_mean_variance(s, torch.full((1, 1), x0_value, dtype=torch.float64), t[:1])
            mean, var = mean.item(), var.item()
            # sample mean within 5 standard errors; sample variance within 5 of its standard errors
            assert abs(x.mean().item() - mean) < 5 * math.sqrt(var / n)
            assert abs(x.var().item() - var) < 5 * var * math.sqrt(2 / (n - 1))
            ks = stats.kstest(x[:, 0].numpy(), stats.norm(mean, math.sqrt(var)).cdf)  # scipy 1.18 fails on args=
            assert ks.pvalue > 1e-3, (step, ks)


def _diffusers_float64(**kwargs):
    """diffusers' DDPMScheduler with its coefficients recomputed in float64.

    diffusers keeps ᾱ in float32, whose rounding (1 - ᾱ_1 ≈ 1e-4 loses ~4 digits) would swamp a
    1e-6 comparison of the formulas; its schedule values are compared in test_schedules."""
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, **kwargs)
    ref.betas = make_schedule("linear", 1000).betas
    ref.alphas = 1.0 - ref.betas
    ref.alphas_cumprod = torch.cumprod(ref.alphas, dim=0)
    return ref


def test_q_sample_matches_explicit_formula_and_diffusers():
    s = make_schedule("linear", 1000)
    x0 = torch.randn(6, 1, 8, 8, dtype=torch.float64, generator=generator())
    eps = torch.randn(6, 1, 8, 8, dtype=torch.float64, generator=generator(1))
    t = torch.tensor([0, 1, 10, 500, 998, 999])
    xt = q_sample(s, x0, t, noise=eps)
    torch.testing.assert_close(xt, _diffusers_float64().add_noise(x0, eps, t), rtol=0, atol=1e-6)
    explicit = (
        s.alpha_bars[t].sqrt().reshape(-1, 1, 1, 1) * x0 + (1 - s.alpha_bars[t]).sqrt().reshape(-1, 1, 1, 1) * eps
    )
    torch.testing.assert_close(xt, explicit, rtol=0, atol=1e-12)


def _bayes_posterior_on_grid(s, x0, xt, t):
    """q(x_{t-1} | x_t, x_0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x_0), normalised on a fine 1-D grid (float64)."""
    beta = s.betas[t].item()
    ab_prev = s.alpha_bars_prev[t].item()
    grid = torch.linspace(-8, 8, 400_001, dtype=torch.float64)
    log_lik = -0.5 * (xt - math.sqrt(1 - beta) * grid) ** 2 / beta
    log_prior = -0.5 * (grid - math.sqrt(ab_prev) * x0) ** 2 / (1 - ab_prev)
    w = torch.softmax(log_lik + log_prior, dim=0)
    mean = (w * grid).sum()
    return mean.item(), (w * (grid - mean) ** 2).sum().item()


@pytest.mark.parametrize("step", [1, 5, 50, 999])
def test_posterior_matches_bayes_rule_on_grid(step):
    s = make_schedule("linear", 1000)
    x0, xt = 0.8, -0.3
    mean, var, log_var = q_posterior_mean_variance(
        s, torch.tensor([[x0]], dtype=torch.float64), torch.tensor([[xt]], dtype=torch.float64), torch.tensor([step])
    )
    ref_mean, ref_var = _bayes_posterior_on_grid(s, x0, xt, step)
    assert abs(mean.item() - ref_mean) < 1e-6
    assert abs(var.item() / ref_var - 1) < 1e-4
    assert abs(log_var.item() - math.log(var.item())) < 1e-12


def test_posterior_at_first_step_is_x0():
    s = make_schedule("linear", 1000)
    x0, xt = torch.randn(3, 2), torch.randn(3, 2)
    mean, var, log_var = q_posterior_mean_variance(s, x0, xt, torch.zeros(3, dtype=torch.long))
    torch.testing.assert_close(mean, x0)
    assert (var == 0).all() and torch.isfinite(log_var).all()


def test_posterior_matches_diffusers_step():
    s = make_schedule("linear", 1000)
    ref = _diffusers_float64(prediction_type="sample", clip_sample=False)
    x0 = torch.randn(2, 1, 4, 4, dtype=torch.float64, generator=generator())
    xt = torch.randn(2, 1, 4, 4, dtype=torch.float64, generator=generator(1))
    for step in (1, 10, 500, 999):
        out = ref.step(x0, step, xt, generator=generator(7)).prev_sample
        noise = torch.randn(x0.shape, dtype=torch.float64, generator=generator(7))
        t = torch.full((2,), step)
        mean, var, _ = q_posterior_mean_variance(s, x0, xt, t)
        torch.testing.assert_close(mean + var.sqrt() * noise, out, rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", [(5, 2), (5, 1, 8, 8), (5, 3, 4, 4, 4)])
def test_parameterisation_round_trips(shape):
    s = make_schedule("cosine", 1000)
    x0 = torch.randn(shape, dtype=torch.float64, generator=generator())
    eps = torch.randn(shape, dtype=torch.float64, generator=generator(1))
    t = torch.tensor([0, 1, 100, 900, 999])
    xt = q_sample(s, x0, t, noise=eps)
    torch.testing.assert_close(x0_from_eps(s, xt, t, eps), x0, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(eps_from_x0(s, xt, t, x0), eps, rtol=1e-9, atol=1e-9)
    v = v_from_eps(s, x0, t, eps)
    torch.testing.assert_close(x0_from_v(s, xt, t, v), x0)
    torch.testing.assert_close(eps_from_v(s, xt, t, v), eps)
    torch.testing.assert_close(eps_from_score(s, score_from_eps(s, eps, t), t), eps)


def test_score_of_gaussian_data_by_autograd():
    """For x_0 ~ N(0, 1), q(x_t) = N(0, 1) for every t, so the score is -x_t and E[ε|x_t] = sqrt(1-ᾱ) x_t."""
    s = make_schedule("linear", 1000)
    xt = torch.randn(4, 1, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 10, 500, 999])
    log_q = torch.distributions.Normal(0.0, 1.0).log_prob(xt).sum()
    (score,) = torch.autograd.grad(log_q, xt)
    eps = s.sqrt_one_minus_alpha_bars[t][:, None] * xt.detach()
    torch.testing.assert_close(score_from_eps(s, eps, t), score)


def test_bad_inputs():
    s = make_schedule("linear", 10)
    x0 = torch.zeros(2, 3)
    t = torch.tensor([0, 1])
    with pytest.raises(TypeError, match="x0 must be a floating-point tensor"):
        q_sample(s, torch.zeros(2, 3, dtype=torch.long), t)
    with pytest.raises(ValueError, match="eps must have the shape of x"):
        q_sample(s, x0, t, noise=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="xt must have the shape of x0"):
        q_posterior_mean_variance(s, x0, torch.zeros(3, 3), t)
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        q_sample(s, x0, torch.tensor([0, 10]))
    with pytest.raises(TypeError, match="torch.Tensor"):
        q_sample(s, [[0.0]], t)


def test_output_from_eps_and_x0_inverts_eps_and_x0_from_output():
    """Each parameterisation's output, built from (ε, x_0) of one x_t, converts back to the same (ε, x_0);
    v matches its definition √ᾱ ε - √(1-ᾱ) x_0 written out here."""
    from ddpm_utils.reverse import eps_and_x0_from_output, output_from_eps_and_x0

    s = make_schedule("linear", 1000)
    t = torch.tensor([0, 400, 999])
    x0 = torch.randn(3, 4, dtype=torch.float64, generator=generator())
    eps = torch.randn(3, 4, dtype=torch.float64, generator=generator(1))
    xt = q_sample(s, x0, t, noise=eps)
    a = s.alpha_bars[t].double()[:, None]
    torch.testing.assert_close(output_from_eps_and_x0(s, t, eps, x0, "v"), a.sqrt() * eps - (1 - a).sqrt() * x0)
    for prediction in ("eps", "x0", "v"):
        back = eps_and_x0_from_output(s, xt, t, output_from_eps_and_x0(s, t, eps, x0, prediction), prediction)
        torch.testing.assert_close(back[0], eps)
        torch.testing.assert_close(back[1], x0)
    with pytest.raises(ValueError, match="unknown prediction 'score'"):
        output_from_eps_and_x0(s, t, eps, x0, "score")
