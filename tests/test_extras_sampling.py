"""extras.Guided (autoguidance) and extras.LowPrecision (a bfloat16 network for a float32 sampler)."""

import copy
import warnings

import pytest
import torch
from conftest import generator
from torch.distributions import MultivariateNormal

from ddpm_utils import (
    GaussianData,
    MLPDenoiser,
    eps_and_x0_from_output,
    load_digits,
    load_pretrained,
    make_schedule,
    q_sample,
)
from ddpm_utils.extras import Guided, LowPrecision, TrainConfig, Trainer, cpu_computes_bfloat16
from ddpm_utils.sampling import ddim_sample


def _gaussian(mean, var):
    return GaussianData(torch.tensor(mean, dtype=torch.float64), var * torch.eye(len(mean), dtype=torch.float64))


def test_guided_extrapolates_from_the_guide_in_score_space():
    """Oracle: with two Gaussian models A (network) and B (guide), Guided's ε̂ at weight w is
    -sqrt(1-ᾱ) (w ∇log q_A + (1-w) ∇log q_B), scores by autograd through torch.distributions."""
    s = make_schedule("linear", 1000)
    a_model, b_model = _gaussian([0.5, -0.3], 0.2), _gaussian([0.0, 0.1], 0.6)
    t = torch.tensor([2, 250, 700, 999])
    x = torch.randn(4, 2, dtype=torch.float64, generator=generator(), requires_grad=True)
    ab = s.alpha_bars[t].double()
    w = 1.7

    def log_q(g, i):
        var = ab[i] * g.covariance + (1 - ab[i]) * torch.eye(2, dtype=torch.float64)
        return MultivariateNormal(ab[i].sqrt() * g.mean, var).log_prob(x[i])

    total = sum(w * log_q(a_model, i) + (1 - w) * log_q(b_model, i) for i in range(4))
    (score,) = torch.autograd.grad(total, x)
    guided = Guided(a_model.denoiser(s), b_model.denoiser(s), w)
    torch.testing.assert_close(guided(x.detach(), t), -(1 - ab).sqrt()[:, None] * score)
    # w = 1: the network alone (the guide is not even called); w = 0: the guide alone
    xd = x.detach()

    def never(*_):
        raise AssertionError("the guide ran at w = 1")

    torch.testing.assert_close(Guided(a_model.denoiser(s), never, 1.0)(xd, t), a_model.optimal_eps(s, xd, t))
    torch.testing.assert_close(
        Guided(a_model.denoiser(s), b_model.denoiser(s), 0)(xd, t), b_model.optimal_eps(s, xd, t)
    )


def test_guidance_means_the_same_in_every_parameterisation():
    """Steering in ε, x_0 or v gives the same ε̂ and x̂_0: the conversions are affine in the output."""
    s = make_schedule("linear", 1000)
    a_model, b_model = _gaussian([0.5, -0.3, 0.2], 0.3), _gaussian([0.0, 0.0, 0.0], 1.0)
    t = torch.tensor([0, 100, 600])
    x = torch.randn(3, 3, dtype=torch.float64, generator=generator(1))
    results = [
        eps_and_x0_from_output(s, x, t, Guided(a_model.denoiser(s, p), b_model.denoiser(s, p), 1.25)(x, t), p)
        for p in ("eps", "x0", "v")
    ]
    for eps, x0 in results[1:]:
        torch.testing.assert_close(eps, results[0][0])
        torch.testing.assert_close(x0, results[0][1])


def test_guided_sampling():
    """w = 1 samples exactly as the network alone; guiding a Gaussian away from a wider one narrows it."""
    s = make_schedule("linear", 1000)
    narrow, wide = _gaussian([0.0], 0.25), _gaussian([0.0], 1.0)
    plain = ddim_sample(narrow.denoiser(s), s, (4000, 1), 50, generator=generator(2), dtype=torch.float64)
    same = ddim_sample(
        Guided(narrow.denoiser(s), wide.denoiser(s), 1.0), s, (4000, 1), 50, generator=generator(2), dtype=torch.float64
    )
    assert torch.equal(plain, same)
    steered = ddim_sample(
        Guided(narrow.denoiser(s), wide.denoiser(s), 1.5), s, (4000, 1), 50, generator=generator(2), dtype=torch.float64
    )
    assert steered.std() < 0.9 * plain.std() and abs(plain.std().item() - 0.5) < 0.05  # N(0, 0.5²); DDIM-50 error


def test_guided_errors():
    s = make_schedule("linear", 1000)
    g2, g3 = _gaussian([0.0, 0.0], 1.0), _gaussian([0.0, 0.0, 0.0], 1.0)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite"):
            Guided(g2.denoiser(s), g2.denoiser(s), bad)
    with pytest.raises(ValueError, match="the guide returned shape"):
        Guided(g2.denoiser(s), lambda x, t: torch.zeros(len(x), 3), 2.0)(torch.zeros(1, 2), torch.tensor([5]))
    with pytest.raises(ValueError, match="3 dimensions per example but the Gaussian has 2"):
        Guided(g3.denoiser(s), g2.denoiser(s), 2.0)(torch.zeros(1, 3), torch.tensor([5]))


def test_guided_interval_guides_only_inside_it():
    """With interval=(lo, hi) each row is the guided output where lo <= t <= hi and the network's own
    output elsewhere (bit-identical); outside the interval the guide is never called."""
    s = make_schedule("linear", 1000)
    a_model, b_model = _gaussian([0.5, -0.3], 0.2), _gaussian([0.0, 0.1], 0.6)
    t = torch.tensor([0, 99, 100, 400, 700, 701, 999])
    x = torch.randn(len(t), 2, dtype=torch.float64, generator=generator(3))
    full = Guided(a_model.denoiser(s), b_model.denoiser(s), 1.5)(x, t)
    alone = a_model.denoiser(s)(x, t)
    part = Guided(a_model.denoiser(s), b_model.denoiser(s), 1.5, interval=(100, 700))(x, t)
    inside = (t >= 100) & (t <= 700)
    assert torch.equal(part[inside], full[inside]) and torch.equal(part[~inside], alone[~inside])
    assert not torch.equal(full, alone)

    def never(*_):
        raise AssertionError("the guide ran outside its interval")

    assert torch.equal(Guided(a_model.denoiser(s), never, 1.5, interval=(100, 700))(x[:2], t[:2]), alone[:2])
    # a sampler: the interval [0, T-1] is plain guidance; one past every timestep is the network alone
    narrow, wide = _gaussian([0.0], 0.25), _gaussian([0.0], 1.0)
    run = lambda m: ddim_sample(m, s, (500, 1), 20, generator=generator(4), dtype=torch.float64)  # noqa: E731
    assert torch.equal(
        run(Guided(narrow.denoiser(s), wide.denoiser(s), 1.5, interval=(0, 999))),
        run(Guided(narrow.denoiser(s), wide.denoiser(s), 1.5)),
    )
    assert torch.equal(run(Guided(narrow.denoiser(s), never, 1.5, interval=(1000, 2000))), run(narrow.denoiser(s)))


def test_guided_interval_errors():
    s = make_schedule("linear", 1000)
    g2 = _gaussian([0.0, 0.0], 1.0)
    for bad in ((5, 2), (-1, 10), (1.5, 10), (1, 2, 3), (True, 10), 7, ("a", 10), (None, 10)):
        with pytest.raises(ValueError, match="interval"):
            Guided(g2.denoiser(s), g2.denoiser(s), 1.5, interval=bad)


def test_low_precision_network_against_float64():
    """LowPrecision runs the shipped network in bfloat16 and returns float32: its ε̂ on noised test digits is within
    about 1% of a float64 evaluation (bfloat16 keeps 8 bits), where float32's is within 1e-5; the model passed in is
    left in float32; the sampler's DDIM samples in float32 stay near the float32 network's."""
    model, schedule = load_pretrained("digits")
    test = load_digits("test")
    g = generator(0)
    t = torch.randint(0, schedule.num_steps, (len(test),), generator=g)
    xt = q_sample(schedule, test, t, generator=g)
    with torch.no_grad():
        ref = copy.deepcopy(model).double()(xt.double(), t)
        full, low = model(xt, t), LowPrecision(model)(xt, t)

    def rel(out):
        return ((out.double() - ref).norm() / ref.norm()).item()

    assert low.dtype == torch.float32 and all(p.dtype == torch.float32 for p in model.parameters())
    assert rel(full) < 1e-5
    assert 1e-3 < rel(low) < 2e-2
    shape = (256, 1, 8, 8)
    a = ddim_sample(model, schedule, shape, 20, generator=generator(7))
    b = ddim_sample(LowPrecision(model), schedule, shape, 20, generator=generator(7))
    assert b.dtype == torch.float32 and (a - b).abs().mean() < 0.02


def test_low_precision_copies_the_network_and_keeps_its_mode():
    model, _ = load_pretrained("digits")
    low = LowPrecision(model.eval())
    assert not low.model.training and low.model is not model
    assert all(p.dtype == torch.bfloat16 for p in low.model.parameters())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert LowPrecision(model.train()).model.training  # dropout stays on if the caller wants it on


def test_low_precision_errors():
    model, _ = load_pretrained("digits")
    with pytest.raises(ValueError, match="bfloat16 or torch.float16"):
        LowPrecision(model, torch.float64)
    with pytest.raises(ValueError, match="float16 is emulated on CPUs"):
        LowPrecision(model, torch.float16)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        LowPrecision(lambda x, t: x)
    with pytest.raises(TypeError, match="floating-point"):
        LowPrecision(model)(torch.zeros(2, 1, 8, 8, dtype=torch.long), torch.tensor([1, 2]))


@pytest.mark.parametrize(
    "machine,avx512_bf16,amx,expected",
    [
        ("x86_64", False, False, False),
        ("x86_64", True, False, True),
        ("AMD64", False, True, True),
        ("arm64", False, False, None),
    ],
)
def test_low_precision_warns_where_the_cpu_would_emulate_bfloat16(monkeypatch, machine, avx512_bf16, amx, expected):
    """On an x86 CPU without AVX-512 BF16 or AMX, bfloat16 is emulated (0.05-0.6x float32's speed, measured): a
    bfloat16 network there, for sampling or through extras.TrainConfig(bf16=True), says so; elsewhere it stays quiet."""

    monkeypatch.setattr("platform.machine", lambda: machine)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    assert cpu_computes_bfloat16() is expected
    model = MLPDenoiser(2)
    if expected is False:
        with pytest.warns(UserWarning, match="no bfloat16 instructions"):
            LowPrecision(model)
        with pytest.warns(UserWarning, match="no bfloat16 instructions"):
            Trainer(model, make_schedule("linear", 10), TrainConfig(batch_size=8, bf16=True), torch.randn(32, 2))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            LowPrecision(model)
            Trainer(model, make_schedule("linear", 10), TrainConfig(batch_size=8, bf16=True), torch.randn(32, 2))


def test_bfloat16_check_without_torchs_helpers_reads_the_kernels_cpu_flags(monkeypatch, tmp_path):
    """PyTorch 2.4 lacks torch.cpu._is_avx512_bf16_supported: the check then reads /proc/cpuinfo's flags. Where
    both exist they must agree (the kernel's list is an oracle independent of PyTorch's CPUID code)."""
    from ddpm_utils.extras.precision import cpu_flags

    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    real = cpu_flags()
    if real is not None and hasattr(torch.cpu, "_is_avx512_bf16_supported"):
        assert bool(real & {"avx512_bf16", "amx_tile"}) == cpu_computes_bfloat16()
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    info = tmp_path / "cpuinfo"
    for flags, expected in [("fpu sse2 avx512f", False), ("fpu avx512f avx512_bf16", True), ("fpu amx_tile", True)]:
        info.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
        monkeypatch.setattr("ddpm_utils.extras.precision.cpu_flags", lambda p=str(info): cpu_flags(p))
        assert cpu_computes_bfloat16() is expected, flags
    assert cpu_flags(str(tmp_path / "missing")) is None
    monkeypatch.setattr("ddpm_utils.extras.precision.cpu_flags", lambda: None)
    assert cpu_computes_bfloat16() is None  # unknown: LowPrecision then stays quiet
