"""The same code on a CPU and on a GPU: every test runs on the CPU, and again on CUDA where a GPU is present.

On a GPU each compares with the CPU: one seed of a CPU generator gives the same noise, hence the same samples up to
the arithmetic (TF32 is switched off so that float32 means float32 on both); training steps on the same batches;
metrics take samples from either device; a checkpoint written on one device resumes on the other. On the CPU the
comparisons are trivial, but every line of each test runs, so a GPU session finds the tests themselves sound.
"""

import copy
import dataclasses
import json
import math

import pytest
import torch
from conftest import generator

import ddpm_utils as du
from ddpm_utils.extras.cli import main
from ddpm_utils.forward import randn
from ddpm_utils.metrics import class_mix, evaluate_samples, nearest_neighbour_check

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")),
]
TINY = du.UNetConfig(base_channels=16, channel_mults=(1, 2), num_res_blocks=1, num_heads=2, groups=8)


@pytest.fixture
def exact_float32():
    """float32 arithmetic on a GPU too: no TensorFloat-32 in convolutions and matrix products."""
    saved = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    yield
    torch.backends.cudnn.allow_tf32 = saved[0]
    torch.set_float32_matmul_precision(saved[1])


@pytest.fixture(scope="module")
def pretrained():
    return du.load_pretrained("digits")


def test_randn_draws_from_the_generator_on_its_own_device():
    # a "meta" tensor stands in for a GPU's: torch.randn would not consume the CPU generator for it
    g = generator(3)
    x = randn((5, 7), g, "meta")
    assert x.device.type == "meta" and x.shape == (5, 7)
    expected = generator(3)
    torch.randn((5, 7), generator=expected)
    assert torch.equal(g.get_state(), expected.get_state())  # the draw came from the CPU generator
    torch.testing.assert_close(randn((5, 7), generator(3), "cpu"), torch.randn((5, 7), generator=generator(3)))
    torch.manual_seed(1)
    a = randn((4,))  # no generator: the global one, as torch.randn
    torch.manual_seed(1)
    torch.testing.assert_close(a, torch.randn(4))
    assert randn((2, 2), generator(0), "cpu", torch.float64).dtype == torch.float64


@pytest.mark.parametrize("device", DEVICES)
def test_a_cpu_generator_gives_the_same_noise_on_any_device(device):
    x = randn((1000,), generator(0), device)
    assert x.device.type == device
    torch.testing.assert_close(x.cpu(), torch.randn(1000, generator=generator(0)), rtol=0, atol=0)
    x0 = du.load_digits("test")[:16]
    t = torch.arange(16) * 60
    noisy = du.q_sample(du.make_schedule("linear", 1000), x0.to(device), t.to(device), generator=generator(1))
    expected = du.q_sample(du.make_schedule("linear", 1000), x0, t, generator=generator(1))
    torch.testing.assert_close(noisy.cpu(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_samplers_give_the_cpu_samples_on_any_device(device, pretrained, exact_float32):
    model, schedule = pretrained
    on_device = copy.deepcopy(model).to(device).eval()
    shape = (4, 1, 8, 8)
    runs = {
        "ddpm": lambda m, d: du.ddpm_sample(m, schedule, shape, generator=generator(0), device=d),
        "ddim, eta 1": lambda m, d: du.ddim_sample(m, schedule, shape, 10, eta=1.0, generator=generator(0), device=d),
        "dpm-solver": lambda m, d: du.dpm_solver_sample(m, schedule, shape, 10, generator=generator(0), device=d),
    }
    for name, run in runs.items():
        x = run(on_device, device)
        assert x.device.type == device, name
        # float32 on both, in a different order of operations: 1,000 DDPM steps carry the differences furthest
        torch.testing.assert_close(x.cpu(), run(model, "cpu"), rtol=0, atol=1e-2 if name == "ddpm" else 1e-3, msg=name)
    # guidance by the Gaussian fit (float64 on the device) and the network in bfloat16 on the device
    gaussian = du.GaussianData.fit(du.load_digits("train"))

    def guided(m, d):
        net = du.extras.Guided(m, gaussian.denoiser(schedule), 1.25)
        return du.ddim_sample(net, schedule, (4, 1, 8, 8), 10, generator=generator(2), device=d)

    torch.testing.assert_close(guided(on_device, device).cpu(), guided(model, "cpu"), rtol=0, atol=1e-3)
    xt, t = torch.randn(64, 1, 8, 8, generator=generator(4)), torch.arange(64) * 15
    with torch.no_grad():
        low = du.extras.LowPrecision(on_device)(xt.to(device), t.to(device))
        full = model(xt, t)
    assert low.dtype == torch.float32 and low.device.type == device
    assert ((low.cpu() - full).norm() / full.norm()).item() < 0.02  # bfloat16's rounding: about 1% in ε̂


@pytest.mark.parametrize("device", DEVICES)
def test_nll_bound_on_any_device(device, exact_float32):
    torch.manual_seed(0)
    model = du.UNet(dataclasses.replace(TINY, zero_init_blocks=False)).eval()
    with torch.no_grad():  # wake the zero-initialised output layer, so that the bound depends on the network
        model.conv_out.weight.normal_(0, 0.05)
    schedule = du.make_schedule("linear", 50)
    x0 = du.load_digits("test")[:8]
    ref = du.nll_bound(model, schedule, x0, num_levels=du.DIGITS_LEVELS, generator=generator(5))
    out = du.nll_bound(
        copy.deepcopy(model).to(device), schedule, x0.to(device), num_levels=du.DIGITS_LEVELS, generator=generator(5)
    )
    assert out["total"].device.type == device
    torch.testing.assert_close(out["total"].cpu(), ref["total"], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_metrics_take_samples_from_any_device(device):
    x = du.load_digits("test")[:200]
    expected = evaluate_samples(x)
    got = evaluate_samples(x.to(device))
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), key
    assert nearest_neighbour_check(x.to(device)) == nearest_neighbour_check(x)
    torch.testing.assert_close(class_mix(x.to(device)), class_mix(x))


@pytest.mark.parametrize("bf16", [False, True])  # extras.TrainConfig.bf16: the network's bfloat16 copy on the device
@pytest.mark.parametrize("device", DEVICES)
def test_training_on_a_device_takes_the_cpu_steps_and_resumes_on_the_cpu(device, bf16, tmp_path):
    data = du.load_digits("train")[:256]
    config = du.extras.TrainConfig(max_steps=3, batch_size=16, log_every=1, bf16=bf16)
    trainers = {}
    for where in ("cpu", device):
        torch.manual_seed(0)  # the same initial weights
        model = du.UNet(TINY).to(where)
        trainers[where] = du.extras.Trainer(model, du.make_schedule("linear", 1000), config, data)
        trainers[where].train(progress=False)
    on_device = trainers[device]
    assert next(on_device.model.parameters()).device.type == device
    assert next(on_device.ema.parameters()).device.type == device
    # the same batches (drawn on the CPU); on a GPU in bfloat16 autocast, so the losses agree to about a percent
    losses, cpu_losses = on_device.history["loss"], trainers["cpu"].history["loss"]
    assert len(losses) == 3 and losses == pytest.approx(cpu_losses, rel=0.03)
    path = tmp_path / "run.pt"
    on_device.save(path)
    resumed = du.extras.Trainer.resume(path, data, device="cpu", max_steps=4)
    for a, b in zip(resumed.ema.parameters(), on_device.ema.parameters()):
        torch.testing.assert_close(a, b.cpu(), rtol=0, atol=0)
    resumed.train(progress=False)
    assert resumed.step == 4 and all(torch.isfinite(p).all() for p in resumed.model.parameters())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.filterwarnings("ignore:.*off course:UserWarning")  # the samples of a network trained a few steps
def test_the_commands_run_on_a_device(device, tmp_path, capsys, exact_float32):
    out = tmp_path / "cli.pt"
    from test_cli import TINY

    args = ["train", "--device", device, "--steps", "2", "--sample-every", "1", "--out", str(out), *TINY]
    assert main(args) == 0
    grids = sorted(p.name for p in tmp_path.glob("cli_step*.png"))
    assert grids == ["cli_step000001.png", "cli_step000002.png"]
    model, _, state = du.model_from_checkpoint(out)
    assert state["step"] == 2 and next(model.parameters()).device.type == "cpu"
    # sample and evaluate: the same seed gives the CPU's samples, written as CPU tensors
    samples = {}
    for where in ("cpu", device):
        prefix = tmp_path / f"samples_{where}"
        sampled = ["sample", "digits", "--n", "16", "--steps", "10", "--guidance", "1.25", "--device", where]
        assert main([*sampled, "--out", str(prefix)]) == 0
        samples[where] = torch.load(prefix.with_suffix(".pt"), weights_only=True)
    assert samples[device].device.type == "cpu"
    torch.testing.assert_close(samples[device], samples["cpu"], rtol=0, atol=1e-3)
    capsys.readouterr()
    assert main(["evaluate", str(out), "--n", "50", "--steps", "3", "--bpd", "--device", device]) == 0
    report = json.loads(capsys.readouterr().out)
    assert math.isfinite(report["fd"]) and report["test_bits_per_dim"] > 0
