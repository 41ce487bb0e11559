import math

import pytest
import torch

from ddpm_utils import Schedule, cosine_betas, gather, linear_betas, make_schedule, scaled_linear_betas

ALL = {"linear": linear_betas, "cosine": cosine_betas, "scaled_linear": scaled_linear_betas}


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("num_steps", [1, 2, 10, 1000])
def test_alpha_bars_strictly_decreasing_and_in_unit_interval(name, num_steps):
    s = make_schedule(name, num_steps)
    assert s.num_steps == num_steps
    assert (s.alpha_bars > 0).all() and (s.alpha_bars < 1).all()
    assert (s.alpha_bars[1:] < s.alpha_bars[:-1]).all()
    assert s.alpha_bars.dtype == torch.float64


def test_derived_quantities_match_definitions():
    s = Schedule(linear_betas(50, 1e-3, 0.2))
    ab = torch.ones(1, dtype=torch.float64)
    for t in range(50):  # brute-force product, one factor at a time
        ab_prev = ab.clone()
        ab = ab * (1 - s.betas[t])
        torch.testing.assert_close(s.alpha_bars[t], ab[0], rtol=1e-12, atol=0)
        torch.testing.assert_close(s.alpha_bars_prev[t], ab_prev[0], rtol=1e-12, atol=0)
        beta_tilde = (1 - ab_prev) / (1 - ab) * s.betas[t]
        torch.testing.assert_close(s.posterior_variance[t], beta_tilde[0], rtol=1e-12, atol=1e-300)
    assert s.posterior_variance[0] == 0  # β̃_1 = 0: x_0 is determined by x_1 and x_0
    assert torch.isfinite(s.posterior_log_variance_clipped).all()
    assert s.posterior_log_variance_clipped[0] == s.posterior_log_variance_clipped[1]
    torch.testing.assert_close(s.snr, s.alpha_bars / (1 - s.alpha_bars))
    torch.testing.assert_close(s.posterior_variance[1:] <= s.betas[1:], torch.ones(49, dtype=torch.bool))


def test_ddpm_defaults_alpha_bar_T():
    s = make_schedule("linear", 1000)
    # the product of (1 - β) over the paper's schedule, written as exp(Σ log) for an independent route
    expected = math.exp(sum(math.log(1 - (1e-4 + (0.02 - 1e-4) * i / 999)) for i in range(1000)))
    assert abs(s.alpha_bars[-1].item() - expected) < 1e-12
    assert s.alpha_bars[-1] < 1e-4


def test_cosine_matches_closed_form_alpha_bar():
    T, s_off = 1000, 0.008
    s = Schedule(cosine_betas(T))
    f = [math.cos((t / T + s_off) / (1 + s_off) * math.pi / 2) ** 2 for t in range(T + 1)]
    expected = torch.tensor([f[t + 1] / f[0] for t in range(T)], dtype=torch.float64)
    unclipped = s.betas < 0.999
    assert unclipped[:-1].all()  # only the last step is clipped
    torch.testing.assert_close(s.alpha_bars[:-1], expected[:-1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "ours,theirs",
    [("linear", "linear"), ("cosine", "squaredcos_cap_v2"), ("scaled_linear", "scaled_linear")],
)
def test_schedules_match_diffusers(ours, theirs):
    diffusers = pytest.importorskip("diffusers")
    kwargs = {"beta_start": 0.00085, "beta_end": 0.012} if ours == "scaled_linear" else {}
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=theirs, **kwargs)
    s = make_schedule(ours, 1000)
    torch.testing.assert_close(s.betas.float(), ref.betas.float(), rtol=0, atol=1e-6)
    torch.testing.assert_close(s.alpha_bars.float(), ref.alphas_cumprod.float(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", [(4,), (4, 2), (4, 1, 8, 8), (4, 3, 2, 2, 2)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_gather_broadcasts_to_any_rank(shape, dtype):
    s = make_schedule("linear", 10)
    x = torch.zeros(shape, dtype=dtype)
    t = torch.tensor([0, 3, 9, 5])
    out = gather(s.betas, t, x)
    assert out.shape == (4,) + (1,) * (len(shape) - 1)
    assert out.dtype == dtype
    torch.testing.assert_close(out.reshape(-1), s.betas[t].to(dtype))


def test_state_dict_round_trip():
    s = make_schedule("cosine", 20)
    s2 = Schedule.from_state_dict(s.state_dict())
    torch.testing.assert_close(s2.alpha_bars, s.alpha_bars)


@pytest.mark.parametrize(
    "betas,err,match",
    [
        (torch.tensor([0.1, 1.0]), ValueError, "open interval"),
        (torch.tensor([0.0, 0.1]), ValueError, "open interval"),
        (torch.tensor([0.1, float("nan")]), ValueError, "open interval"),
        (torch.ones(2, 2) * 0.1, ValueError, "1-D"),
        (torch.tensor([1, 2]), TypeError, "floating point"),
    ],
)
def test_bad_betas(betas, err, match):
    with pytest.raises(err, match=match):
        Schedule(betas)


def test_bad_schedule_name_and_steps():
    with pytest.raises(ValueError, match="unknown schedule"):
        make_schedule("quadratic")
    with pytest.raises(ValueError, match="num_steps"):
        linear_betas(0)


@pytest.mark.parametrize(
    "t,err,match",
    [
        (torch.tensor([0, 10]), ValueError, r"\[0, 10\)"),
        (torch.tensor([-1, 0]), ValueError, r"\[0, 10\)"),
        (torch.tensor([0.0, 1.0]), TypeError, "integer"),
        (torch.tensor([[0, 1]]), ValueError, r"shape \(B,\)"),
        (torch.tensor([0, 1, 2]), ValueError, "3 timesteps but the batch has 2"),
        ([0, 1], TypeError, "torch.Tensor"),
    ],
)
def test_bad_timesteps(t, err, match):
    s = make_schedule("linear", 10)
    with pytest.raises(err, match=match):
        gather(s.betas, t, torch.zeros(2, 3))


def test_mismatched_devices():
    s = make_schedule("linear", 10)
    with pytest.raises(ValueError, match="t is on cpu but the data is on meta"):
        gather(s.betas, torch.tensor([0, 1]), torch.empty(2, 3, device="meta"))
