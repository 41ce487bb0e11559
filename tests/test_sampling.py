import math
import warnings

import pytest
import torch
from conftest import generator

from ddpm_utils import (
    GaussianMixture,
    Schedule,
    cosine_betas,
    make_schedule,
    p_mean_variance,
)
from ddpm_utils.sampling import (
    ddim_invert,
    ddim_sample,
    ddim_timesteps,
    ddpm_sample,
    dpm_solver_sample,
    logsnr_timesteps,
)

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
    start = torch.zeros(3, 2)
    for sample in (ddpm_sample, ddim_sample, dpm_solver_sample):  # both given and different: refused, not x_T taken
        with pytest.raises(ValueError, match=r"shape \(2, 2\) and x_T's shape \(3, 2\) differ"):
            sample(lambda x, t: torch.zeros_like(x), s, (2, 2), x_T=start)
    assert ddim_sample(lambda x, t: torch.zeros_like(x), s, (3, 2), 5, x_T=start).shape == (3, 2)  # agreeing: fine
    for eta in (-1, 1.5, float("nan")):  # nan slipped through `eta < 0` and gave NaN samples
        with pytest.raises(ValueError, match="eta must lie in"):
            ddim_sample(lambda x, t: x, s, (2, 2), eta=eta)
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
    with pytest.warns(UserWarning, match="clip_x0=True") as record:
        ddim_sample(zero, cosine, (2, 2), 50)
    message = str(record[0].message)
    assert f"ᾱ = {cosine.alpha_bars[-1].item():.1e} at its timestep" in message, message
    # the advice quotes both schedules' last ᾱ: the values they have
    linear = make_schedule("linear", 1000)
    for value in (cosine.alpha_bars[-1], linear.alpha_bars[-1]):
        assert f"{value.item():.1e}".replace("e-0", "e-") in message, message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ddim_sample(zero, cosine, (2, 2), 50, clip_x0=True)
        ddim_sample(zero, cosine, (2, 2), 50, prediction="v")
        ddim_sample(zero, make_schedule("linear", 1000), (2, 2), 50)
        ddpm_sample(zero, make_schedule("cosine", 100), (2, 2))  # one full step: weight β/√(α(1-ᾱ)) ≈ 32


def test_dpm_solver_is_second_order_on_the_exact_ode():
    """Oracle: the closed-form ODE end point for Gaussian data with its optimal denoiser. DDIM's error
    halves when the steps double (first order); DPM-Solver++(2M) on log-SNR-even steps quarters
    (second order) and at 20 steps is far closer than DDIM at 50."""
    s = make_schedule("linear", 1000)
    model = GAUSS.denoiser(s)
    x_T = torch.randn(2000, 2, generator=generator(4), dtype=torch.float64)
    exact = GAUSS.ode_sample(s, x_T)

    def rms(x):
        return (x - exact).pow(2).mean().sqrt().item()

    ddim = {n: rms(ddim_sample(model, s, num_inference_steps=n, x_T=x_T)) for n in (50, 100)}
    dpm = {n: rms(dpm_solver_sample(model, s, num_inference_steps=n, x_T=x_T)) for n in (20, 40, 80)}
    assert 1.7 < ddim[50] / ddim[100] < 2.3
    assert dpm[20] / dpm[40] > 3.2 and dpm[40] / dpm[80] > 3.2
    assert dpm[20] < ddim[50] / 3
    # and the samples have the data's spread (DDIM-50's is 0.37 here: a coarse first-order ODE shrinks it)
    x = dpm_solver_sample(model, s, (20_000, 2), 20, generator=generator(), dtype=torch.float64)
    _moments_match(x, [0.5, -0.3], 0.4, 20_000)


def test_dpm_solver_first_order_is_ddim():
    """order=1 holds x̂_0 fixed over each step: the same map as DDIM (η = 0) on the same timesteps."""
    s = make_schedule("linear", 1000)
    model = MIX.denoiser(s)
    for clip in (False, True):
        a = dpm_solver_sample(model, s, (500, 2), 25, order=1, spacing="uniform", generator=generator(5), clip_x0=clip)
        b = ddim_sample(model, s, (500, 2), 25, generator=generator(5), clip_x0=clip)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_dpm_solver_matches_a_step_by_step_reference():
    """Each step written out once more from the paper's Algorithm 2, in float64, with the solver's
    timesteps and callback: x_u = (σ_u/σ_s) x_s + α_u (1 - e^{-h}) D."""
    s = make_schedule("cosine", 200)
    model = MIX.denoiser(s)
    seen = []
    out = dpm_solver_sample(
        model, s, (64, 2), 8, generator=generator(2), dtype=torch.float64, callback=lambda *a: seen.append(a)
    )
    taus = [t for _, t, _, _ in seen]
    assert taus == logsnr_timesteps(s, 8).flip(0).tolist()
    ab = s.alpha_bars.double()
    lam = lambda t: 0.5 * math.log(ab[t] / (1 - ab[t]))  # noqa: E731
    x = seen[0][2]
    for i in range(len(taus) - 1):
        t, u = taus[i], taus[i + 1]
        h = lam(u) - lam(t)
        d = seen[i][3]
        if i > 0:
            r = (lam(t) - lam(taus[i - 1])) / h
            d = (1 + 1 / (2 * r)) * seen[i][3] - 1 / (2 * r) * seen[i - 1][3]
        x = math.sqrt((1 - ab[u]) / (1 - ab[t])) * x + math.sqrt(ab[u]) * (1 - math.exp(-h)) * d
        torch.testing.assert_close(x, seen[i + 1][2])
    torch.testing.assert_close(out, seen[-1][3])


def test_logsnr_timesteps():
    s = make_schedule("linear", 1000)
    for n in (1, 2, 10, 20, 50, 999, 1000):
        taus = logsnr_timesteps(s, n)
        assert len(taus) == n and len(taus.unique()) == n and taus.max() == 999
        assert n == 1 or taus.min() == 0
        assert (taus.diff() > 0).all()
    ab = s.alpha_bars.double()
    gaps = torch.log(ab / (1 - ab))[logsnr_timesteps(s, 10)].diff().abs() / 2
    assert gaps.max() / gaps.min() < 1.2  # even in λ to within the schedule's integer steps
    with pytest.raises(ValueError, match="num_inference_steps"):
        logsnr_timesteps(s, 1001)
    with pytest.raises(ValueError, match="order"):
        dpm_solver_sample(lambda x, t: x, s, (2, 2), order=3)
    with pytest.raises(ValueError, match="spacing"):
        dpm_solver_sample(lambda x, t: x, s, (2, 2), spacing="karras")
    with pytest.raises(ValueError, match="num_inference_steps"):
        dpm_solver_sample(lambda x, t: x, s, (2, 2), 0)
    x = dpm_solver_sample(lambda x, t: 30 * torch.ones_like(x), s, (4, 1, 4, 4), 5, generator=generator(), clip_x0=True)
    assert x.abs().max() <= 1.0 + 1e-6
    # cosine (ᾱ_T = 2.4e-9): t-even steps leave T with DDIM's large first jump and warn; log-SNR-even
    # steps start with a small one (ε̂'s weight ≈ 31 at 10 steps, against ≈ 3,500) and need no warning
    zero, cosine = (lambda x, t: torch.zeros_like(x)), make_schedule("cosine", 1000)
    with pytest.warns(UserWarning, match="clip_x0=True"):
        dpm_solver_sample(zero, cosine, (2, 2), 10, spacing="uniform")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dpm_solver_sample(zero, cosine, (2, 2), 10)


def test_dpm_solver_matches_diffusers():
    """Peer: diffusers' DPMSolverMultistepScheduler (DPM-Solver++, order 2, first-order last step to
    σ = 0) on our timesteps, driven by the same optimal denoiser."""
    diffusers = pytest.importorskip("diffusers")
    s = make_schedule("linear", 1000)
    model = MIX.denoiser(s)
    scheduler = diffusers.DPMSolverMultistepScheduler(
        num_train_timesteps=1000,
        trained_betas=s.betas.double().numpy(),
        algorithm_type="dpmsolver++",
        solver_order=2,
        final_sigmas_type="zero",
        lower_order_final=True,
    )
    scheduler.set_timesteps(timesteps=logsnr_timesteps(s, 12).flip(0).tolist())
    x_T = torch.randn(256, 2, generator=generator(), dtype=torch.float64)
    x = x_T.clone()
    for t in scheduler.timesteps:
        x = scheduler.step(model(x, torch.full((256,), int(t))), t, x).prev_sample
    ours = dpm_solver_sample(model, s, num_inference_steps=12, x_T=x_T)
    torch.testing.assert_close(ours, x.double(), rtol=0, atol=1e-5)  # diffusers keeps its σ's in float32


def test_ddim_noise_fits_the_marginal_up_to_eta_1_and_not_beyond():
    """Why eta is refused above 1: x_{t-1} = √ᾱ' x̂_0 + √(1 - ᾱ' - σ²) ε̂ + σ z keeps q(x_{t-1} | x_0)'s variance
    1 - ᾱ' only while σ² <= 1 - ᾱ'. At eta = 1 that holds for every pair of timesteps (σ² = (1-ᾱ')/(1-ᾱ) (1 - ᾱ/ᾱ')
    and 1 - ᾱ/ᾱ' <= 1 - ᾱ); at 1.5 it fails for some, where the sampler could only clamp."""
    from ddpm_utils.sampling import _ddim_coefficients

    ab = make_schedule("linear", 1000).alpha_bars.tolist()
    pairs = [(ab[t], ab[p]) for t in range(1, 1000, 37) for p in range(0, t, 29)]
    assert all(_ddim_coefficients(a, a_prev, 1.0)[0] ** 2 <= (1 - a_prev) * (1 + 1e-12) for a, a_prev in pairs)
    assert any(_ddim_coefficients(a, a_prev, 1.5)[0] ** 2 > 1 - a_prev for a, a_prev in pairs)


class _BlowsUpOnRow(torch.nn.Module):
    """A network that computes ε̂ = 0, except for one row (if the batch has it) where it returns NaN below t = 50."""

    def __init__(self, row: int):
        super().__init__()
        self.row = row

    def forward(self, xt, t):
        out = torch.zeros_like(xt)
        if self.row < len(xt) and t[self.row] < 50:
            out[self.row] = torch.nan
        return out


@pytest.mark.parametrize(
    "sampler",
    [
        lambda m, s, **k: ddpm_sample(m, s, **k),
        lambda m, s, **k: ddim_sample(m, s, num_inference_steps=10, **k),
        lambda m, s, **k: dpm_solver_sample(m, s, num_inference_steps=10, **k),
    ],
    ids=["ddpm", "ddim", "dpm_solver"],
)
def test_samplers_say_when_samples_come_out_nan_and_refuse_a_nan_start(sampler):
    """A sampler whose network diverges returns its samples (to look at) but warns, naming how many are bad, at the
    caller's line; a healthy run stays quiet; a NaN x_T is bad input, refused before any network call."""
    schedule = make_schedule("linear", 100)
    with pytest.warns(UserWarning, match="1 of 4 samples hold NaN") as record:
        x = sampler(_BlowsUpOnRow(2), schedule, shape=(4, 2), generator=generator(0))
    assert record[0].filename == __file__
    assert torch.isnan(x[2]).all() and torch.isfinite(x[[0, 1, 3]]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.isfinite(sampler(_BlowsUpOnRow(9), schedule, shape=(4, 2), generator=generator(0))).all()
    x_T = torch.randn(4, 2)
    x_T[1, 0] = torch.inf
    with pytest.raises(ValueError, match="x_T holds NaN or infinite values in 1 of its 4 rows"):
        sampler(_BlowsUpOnRow(9), schedule, x_T=x_T)
    with pytest.raises(ValueError, match=r"x_T must have rank >= 1 \(batch first\)"):
        sampler(_BlowsUpOnRow(9), schedule, x_T=torch.tensor(0.5))


def test_ddim_invert_refuses_nan_images_and_warns_on_a_diverging_network():
    schedule = make_schedule("linear", 100)
    x0 = torch.randn(3, 2)
    with pytest.warns(UserWarning, match="ddim_invert: 1 of 3 samples"):
        ddim_invert(_BlowsUpOnRow(0), schedule, x0, num_inference_steps=10)
    x0[0, 1] = torch.nan
    with pytest.raises(ValueError, match="x0 holds NaN"):
        ddim_invert(_BlowsUpOnRow(9), schedule, x0)
    with pytest.raises(TypeError, match="x0 must be a torch.Tensor, got list"):
        ddim_invert(_BlowsUpOnRow(9), schedule, [[0.0, 1.0]])
    with pytest.raises(TypeError, match="x0 must be a floating-point tensor, got dtype torch.int64"):
        ddim_invert(_BlowsUpOnRow(9), schedule, torch.zeros(2, 2, dtype=torch.long))
