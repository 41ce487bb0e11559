"""Learned reverse variances, L_hybrid and importance sampling (ddpm_utils.learned_variance)."""

import math

import pytest
import torch
from conftest import generator

import ddpm_utils as du
from ddpm_utils.learned_variance import (
    EpsChannels,
    FixedVariance,
    HybridLoss,
    ImportanceSampler,
    VlbLoss,
    ddpm_sample_learned,
    interpolate_log_variance,
    nll_bound_learned,
    p_mean_variance_learned,
    respace,
    split_output,
    vlb_term_learned,
)

LEVELS = 17


def digits_batch(n, seed=0):
    """n images on the digits' 17 levels in [-1, 1]."""
    levels = torch.randint(0, LEVELS, (n, 1, 8, 8), generator=generator(seed))
    return du.to_model_range(levels.float(), LEVELS - 1)


class FixedV(torch.nn.Module):
    """A learned-variance network with a fixed ε̂ (a smooth function of x_t) and raw variance output r."""

    def __init__(self, raw: float):
        super().__init__()
        self.raw = raw
        self.scale = torch.nn.Parameter(torch.tensor(0.3))

    def forward(self, xt, t):
        eps = self.scale * torch.tanh(xt) + 1e-4 * t.to(xt.dtype).reshape(-1, 1, 1, 1)
        return torch.cat([eps, torch.full_like(xt, self.raw)], dim=1)

    def eps_only(self, xt, t):
        return self.forward(xt, t)[:, :1]


def test_interpolation_end_points_are_beta_tilde_and_beta():
    schedule = du.make_schedule("linear", 1000)
    t = torch.arange(1000)
    x = torch.zeros(1000, 1, 2, 2)
    at0 = interpolate_log_variance(schedule, t, torch.zeros_like(x))
    at1 = interpolate_log_variance(schedule, t, torch.ones_like(x))
    torch.testing.assert_close(at0[:, 0, 0, 0], schedule.posterior_log_variance_clipped.float())
    torch.testing.assert_close(at1[:, 0, 0, 0], schedule.betas.log().float())
    beta_tilde = schedule.betas * (1 - schedule.alpha_bars_prev) / (1 - schedule.alpha_bars)  # [DDPM Eq. 7]
    torch.testing.assert_close(at0[1:, 0, 0, 0].exp(), beta_tilde[1:].float())
    half = interpolate_log_variance(schedule, t, torch.full_like(x, 0.5))[:, 0, 0, 0].exp()
    torch.testing.assert_close(half, (at0[:, 0, 0, 0].exp() * at1[:, 0, 0, 0].exp()).sqrt())  # geometric mean


def test_split_output_maps_raw_minus_one_and_one_to_v_zero_and_one():
    out = torch.cat([torch.zeros(2, 1, 4, 4), torch.tensor([-1.0, 1.0]).reshape(2, 1, 1, 1).expand(2, 1, 4, 4)], 1)
    _, v = split_output(out, 1)
    assert v[0].eq(0).all() and v[1].eq(1).all()
    with pytest.raises(ValueError, match="2·C"):
        split_output(torch.zeros(2, 1, 4, 4), 1)


def test_learned_range_matches_diffusers():
    diffusers = pytest.importorskip("diffusers")
    schedule = du.make_schedule("linear", 1000)
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=1000, variance_type="learned_range")
    torch.testing.assert_close(scheduler.alphas_cumprod.double(), schedule.alpha_bars, rtol=1e-5, atol=0)
    scheduler.alphas_cumprod = schedule.alpha_bars.clone()  # its float32 copy loses 1 - ᾱ's digits at small t
    scheduler.one = torch.tensor(1.0, dtype=torch.float64)
    raw = torch.linspace(-1.5, 1.5, 7)
    for step in (1, 2, 10, 500, 999):  # at t = 0 diffusers clamps β̃ = 0 to 1e-20, this code clips it to β̃_1
        theirs = scheduler._get_variance(step, predicted_variance=raw.double())
        ours = interpolate_log_variance(schedule, torch.full((7,), step), (raw.double() + 1) / 2)
        torch.testing.assert_close(ours, theirs.double(), rtol=1e-10, atol=1e-12)


def test_respaced_learned_range_matches_diffusers_custom_timesteps():
    diffusers = pytest.importorskip("diffusers")
    schedule = du.make_schedule("linear", 1000)
    taus = du.sampling.ddim_timesteps(1000, 50)
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=1000, variance_type="learned_range")
    scheduler.set_timesteps(timesteps=taus.flip(0).tolist())
    scheduler.alphas_cumprod, scheduler.one = schedule.alpha_bars.clone(), torch.tensor(1.0, dtype=torch.float64)
    short = respace(schedule, taus)
    raw = torch.tensor([-0.7, 0.2, 0.9], dtype=torch.float64)
    for i in (1, 10, 49):
        theirs = scheduler._get_variance(int(taus[i]), predicted_variance=raw)
        ours = interpolate_log_variance(short, torch.full((3,), i), (raw + 1) / 2)
        torch.testing.assert_close(ours, theirs.double(), rtol=1e-10, atol=1e-12)


def test_respace_keeps_alpha_bars_and_full_respacing_is_identity():
    schedule = du.make_schedule("linear", 1000)
    taus = torch.tensor([0, 3, 10, 400, 999])
    torch.testing.assert_close(respace(schedule, taus).alpha_bars, schedule.alpha_bars[taus])
    torch.testing.assert_close(respace(schedule, torch.arange(1000)).betas, schedule.betas)
    with pytest.raises(ValueError, match="increasing"):
        respace(schedule, [3, 3, 5])


@pytest.mark.parametrize("raw, variance", [(-1.0, "beta_tilde"), (1.0, "beta")])
def test_vlb_terms_match_elbo_at_the_end_points(raw, variance):
    schedule = du.make_schedule("linear", 1000)
    x0 = digits_batch(6)
    model = FixedV(raw)
    for step in (1, 2, 50, 999):  # beta's first step is special-cased in reverse.model_log_variance: t >= 1 here
        t = torch.full((6,), step)
        xt = du.q_sample(schedule, x0, t, generator=generator(step))
        ours = vlb_term_learned(schedule, x0, xt, t, model(xt, t), LEVELS)
        ref = du.p_mean_variance(schedule, xt, t, model.eps_only(xt, t), variance=variance)
        theirs = du.kl_term(schedule, x0, xt, t, ref.model_mean, ref.model_log_variance)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    t = torch.zeros(6, dtype=torch.long)
    xt = du.q_sample(schedule, x0, t, generator=generator(0))
    ref = du.p_mean_variance(schedule, xt, t, model.eps_only(xt, t), variance="beta_tilde")
    ours = vlb_term_learned(schedule, x0, xt, t, FixedV(-1.0)(xt, t), LEVELS)
    torch.testing.assert_close(ours, du.decoder_nll(x0, ref.model_mean, ref.model_log_variance, LEVELS))


def test_vlb_term_stops_the_gradient_at_the_mean():
    schedule = du.make_schedule("linear", 100)
    x0 = digits_batch(4)
    t = torch.tensor([0, 1, 30, 99])
    xt = du.q_sample(schedule, x0, t, generator=generator(1))
    out = torch.cat([0.1 * torch.randn_like(x0), torch.zeros_like(x0)], 1).requires_grad_(True)
    vlb_term_learned(schedule, x0, xt, t, out, LEVELS).sum().backward()
    assert out.grad[:, :1].abs().max() == 0 and out.grad[:, 1:].abs().max() > 0
    out.grad = None
    vlb_term_learned(schedule, x0, xt, t, out, LEVELS, stop_gradient_mean=False).sum().backward()
    assert out.grad[:, :1].abs().max() > 0


def test_hybrid_loss_is_l_simple_plus_lambda_t_vlb_in_bits_per_dim():
    schedule = du.make_schedule("linear", 1000)
    x0 = digits_batch(8)
    t = torch.randint(0, 1000, (8,), generator=generator(2))
    eps = torch.randn(x0.shape, generator=generator(3))
    model = FixedV(0.3)
    got = HybridLoss(0.001, LEVELS)(model, schedule, x0, t, eps, None)
    xt = du.q_sample(schedule, x0, t, noise=eps)
    out = model(xt, t)
    simple = du.loss_simple(out[:, :1], eps)
    vlb_bits = vlb_term_learned(schedule, x0, xt, t, out, LEVELS) / (64 * math.log(2))
    torch.testing.assert_close(got, simple + 0.001 * 1000 * vlb_bits)


def test_importance_sampler_weights_give_an_unbiased_sum():
    num_steps = 20
    true_terms = torch.linspace(0.1, 5.0, num_steps, dtype=torch.float64) ** 2
    sampler = ImportanceSampler(num_steps, history=3)
    assert not sampler.ready()
    for _ in range(3):
        sampler.update(torch.arange(num_steps), true_terms)
    assert sampler.ready()
    p = sampler.probabilities()
    expected = true_terms / true_terms.sum() * 0.999 + 0.001 / num_steps  # √E[L²] = L for a constant L
    torch.testing.assert_close(p, expected)
    t, w = sampler.sample(200_000, generator(4))
    estimate = (num_steps * w * true_terms[t]).mean()
    assert abs(estimate - true_terms.sum()) < 0.01 * true_terms.sum()
    torch.testing.assert_close(
        (num_steps * w * true_terms[t]).std() / estimate, torch.tensor(0.0, dtype=torch.float64), atol=0.05, rtol=0
    )  # ∝ L_t: near zero variance


def test_vlb_loss_with_importance_sampler_runs_and_records():
    schedule = du.make_schedule("linear", 10)
    sampler = ImportanceSampler(10, history=1)
    loss_fn = VlbLoss(LEVELS, sampler)
    x0 = digits_batch(64)
    for _ in range(5):
        losses = loss_fn(FixedV(0.0), schedule, x0, torch.zeros(64, dtype=torch.long), torch.randn_like(x0), None)
        assert losses.shape == (64,) and torch.isfinite(losses).all()
    assert sampler.ready()


def test_learned_sampler_at_v_zero_equals_ddpm_sample_beta_tilde():
    schedule = du.make_schedule("linear", 30)
    model = FixedV(-1.0)
    ours = ddpm_sample_learned(model, schedule, (5, 1, 8, 8), generator=generator(5))
    theirs = du.ddpm_sample(model.eps_only, schedule, (5, 1, 8, 8), generator=generator(5), variance="beta_tilde")
    torch.testing.assert_close(ours, theirs)


def test_learned_sampler_respaced_and_eps_channels_for_ddim():
    schedule = du.make_schedule("linear", 100)
    model = FixedV(0.0)
    x = ddpm_sample_learned(model, schedule, (3, 1, 8, 8), num_inference_steps=10, generator=generator(6))
    assert x.shape == (3, 1, 8, 8) and torch.isfinite(x).all()
    a = du.ddim_sample(EpsChannels(model), schedule, (3, 1, 8, 8), 10, generator=generator(7))
    b = du.ddim_sample(model.eps_only, schedule, (3, 1, 8, 8), 10, generator=generator(7))
    torch.testing.assert_close(a, b)


def test_bound_at_v_zero_equals_nll_bound_beta_tilde():
    schedule = du.make_schedule("linear", 40)
    x0 = digits_batch(5)
    model = FixedV(-1.0)
    ours = nll_bound_learned(model, schedule, x0, LEVELS, generator(8))
    theirs = du.nll_bound(model.eps_only, schedule, x0, LEVELS, "beta_tilde", generator=generator(8))
    for key in ("prior", "terms", "total"):
        torch.testing.assert_close(ours[key], theirs[key])


def test_p_mean_variance_learned_shapes():
    schedule = du.make_schedule("linear", 10)
    xt = torch.randn(2, 3, 4, 4)
    out = p_mean_variance_learned(schedule, xt, torch.tensor([0, 9]), torch.zeros(2, 6, 4, 4))
    assert out.model_variance.shape == xt.shape and out.model_mean.shape == xt.shape


def test_fixed_variance_wrapper_gives_the_fixed_choices():
    schedule = du.make_schedule("linear", 30)
    model = FixedV(-1.0)
    for v, variance in ((0.0, "beta_tilde"), (1.0, "beta")):
        xt, t = torch.randn(2, 1, 8, 8), torch.tensor([5, 20])
        ours = p_mean_variance_learned(schedule, xt, t, FixedVariance(model.eps_only, v)(xt, t))
        theirs = du.p_mean_variance(schedule, xt, t, model.eps_only(xt, t), variance=variance)
        torch.testing.assert_close(ours.model_log_variance, theirs.model_log_variance.expand_as(xt))
        torch.testing.assert_close(ours.model_mean, theirs.model_mean)
