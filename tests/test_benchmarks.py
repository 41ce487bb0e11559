"""Benchmark scripts' own parts: the GPU script runs end to end (on the CPU, in miniature), so that a lent GPU's time
goes to figures, not fixes; the augmentation screen's transform and network are what they claim."""

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_gpu_benchmark_script_runs_on_cpu_in_miniature():
    pytest.importorskip("diffusers")
    args = ["--device", "cpu", "--batch", "2", "--steps", "1", "--warmup", "1", "--eval-batch", "2", "--eval-reps", "1"]
    done = subprocess.run(
        [sys.executable, "gpu.py", *args, "--no-compile"], cwd=BENCHMARKS, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    # the full count for the paper's CIFAR-10 network (test_unet: diffusers' network does the same arithmetic)
    assert "37.3 GFLOP per training image" in out, out
    for row in ("ddpm_utils eager", "diffusers eager", "ddpm_utils eager vs diffusers eager"):
        assert row in out, out


def test_gpu_benchmark_script_reports_a_failed_compilation_and_keeps_the_eager_rows(monkeypatch, capsys):
    # a lent GPU gets one run: a compiler failure there must cost the compiled rows only, said plainly
    pytest.importorskip("diffusers")
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import gpu

    def broken_compile(model, *args, **kwargs):
        raise RuntimeError("inductor broke")

    monkeypatch.setattr(gpu.torch, "compile", broken_compile)
    argv = ["--device", "cpu", "--batch", "2", "--steps", "1", "--warmup", "1", "--eval-batch", "2", "--eval-reps", "1"]
    monkeypatch.setattr(sys, "argv", ["gpu.py", *argv])
    gpu.main()
    out = capsys.readouterr().out
    for key in ("ddpm_utils compiled", "diffusers compiled"):
        assert f"{key:<22} failed: RuntimeError: inductor broke" in out, out
    lines = out.splitlines()
    eager = [i for i, line in enumerate(lines) if "eager " in line and "images/s" in line]
    failed = [i for i, line in enumerate(lines) if "failed:" in line]
    assert len(eager) == 2 and max(eager) < min(failed), out  # both eager rows measured before any compilation
    assert "ddpm_utils eager vs diffusers eager: training" in out and "compiled vs" not in out, out
    assert "bf16 matrix product" in out, out


def test_gpu_benchmark_script_refuses_cuda_without_a_gpu():
    pytest.importorskip("diffusers")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    done = subprocess.run([sys.executable, "gpu.py"], cwd=BENCHMARKS, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "needs a CUDA GPU" in done.stderr


def test_bf16_training_step_updates_float32_master_weights_like_the_float32_step():
    """train_throughput.py --bf16: AdamW steps float32 master weights from the bf16 gradients and copies them back;
    two steps from the same weights and batches land where the float32 steps do, to bf16 precision."""
    import copy

    sys.path.insert(0, str(BENCHMARKS))
    from train_throughput import make_step

    import ddpm_utils as du

    torch.manual_seed(0)
    data, schedule = du.load_digits("train"), du.make_schedule("linear", 1000)
    ref = du.UNet(dataclasses.replace(du.DIGITS, dropout=0.0))  # as train_throughput.py: no random masks
    low = copy.deepcopy(ref)
    before = torch.cat([p.detach().flatten() for p in ref.parameters()])
    losses = {}
    for net, bf16 in ((ref, False), (low, True)):
        step, losses[bf16] = make_step(net, data, schedule, 16, torch.Generator().manual_seed(0), False, bf16)
        step()  # the output layer starts at zero, so the first step moves only it;
        step()  # the second moves every layer
    assert all(p.dtype == torch.bfloat16 for p in low.parameters())
    assert losses[True][0] == pytest.approx(losses[False][0], rel=0.02)
    after = torch.cat([p.detach().flatten() for p in ref.parameters()])
    low_after = torch.cat([p.detach().flatten() for p in low.parameters()])
    # where the float32 steps moved a weight by about lr = 1e-3 (some layers get no gradient until their
    # zero-initialised successors have moved) and that is many bf16 rounding steps
    small = (before.abs() < 0.05) & ((after - before).abs() > 5e-4)
    assert small.sum() > 10_000
    update, low_update = (after - before)[small], (low_after.float() - before)[small]
    cosine = torch.nn.functional.cosine_similarity(update, low_update, dim=0)
    # the bf16 weights took the float32 update (0.97 measured; about 0 with the copy-back removed)
    assert cosine.item() > 0.9, cosine.item()
    assert low_update.norm().item() == pytest.approx(update.norm().item(), rel=0.1)


def test_held_out_loss_is_the_mean_l_simple_over_every_test_digit_at_every_stratified_timestep():
    sys.path.insert(0, str(BENCHMARKS))
    from common import held_out_loss, held_out_set

    import ddpm_utils as du

    schedule = du.make_schedule("linear", 1000)
    x0, t, noise = held_out_set(schedule, draws=2, timesteps=4)
    test = du.load_digits("test")
    assert sorted(t.unique().tolist()) == [125, 375, 625, 875]  # bucket midpoints
    for step in (125, 875):  # every test digit, twice, at each timestep, with different noise
        assert torch.equal(x0[t == step], test.repeat(2, 1, 1, 1))
    assert not torch.equal(noise[t == 125][: len(test)], noise[t == 125][len(test) :])
    # brute force: an untrained network (ε̂ = 0) has loss ‖ε‖² per pixel; a perfect ε̂ has 0
    zero = du.UNet(du.UNetConfig(base_channels=16, groups=8, num_heads=2, num_res_blocks=1))
    with pytest.raises(ValueError, match="eval mode"):  # a network in training mode (dropout on) is refused
        held_out_loss(zero, schedule, (x0, t, noise))
    zero.eval()
    assert held_out_loss(zero, schedule, (x0, t, noise)) == pytest.approx(noise.pow(2).mean().item(), rel=1e-5)

    # ε̂ = x_t: loss ‖ε - x_t‖², x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε written out in float64 (checks each example's t)
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)[t].view(-1, 1, 1, 1)
    xt = abar.sqrt() * x0.double() + (1 - abar).sqrt() * noise.double()
    identity = lambda xt_, t_: xt_  # noqa: E731
    want = (noise.double() - xt).pow(2).mean().item()
    assert held_out_loss(identity, schedule, (x0, t, noise)) == pytest.approx(want, rel=1e-5)


def test_example_recipe_follows_diffusers_cosine_with_warmup_and_trains_the_network():
    sys.path.insert(0, str(BENCHMARKS))
    from common import diffusers_digits, held_out_loss, held_out_set
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from quality_per_minute import Unwrap, example_lr_factor, train_diffusers_example

    import ddpm_utils as du

    # the learning-rate factor against diffusers' own scheduler, with progress counted in steps instead of minutes
    total, warmup = 2000, 500
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    theirs = get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=warmup, num_training_steps=total)
    for step in range(total):
        mine = example_lr_factor(step, (step - warmup) / (total - warmup), warmup)
        assert mine == pytest.approx(optimizer.param_groups[0]["lr"], abs=1e-12), step
        optimizer.step()
        theirs.step()

    data = du.load_digits("train")
    with pytest.raises(ValueError, match="unknown recipe fields"):
        train_diffusers_example(0.01, data, learning_rate=1e-3)
    with pytest.raises(ValueError, match="minutes must be positive"):  # would return the untrained network
        train_diffusers_example(0.0, data)
    # six seconds with a short warm-up: the EMA network comes back in eval mode and has learnt (0.13 against 1.37)
    ema, steps, schedule = train_diffusers_example(0.1, data, lr=2e-3, warmup_steps=5)
    assert steps > 20 and not ema.training
    assert torch.equal(schedule.betas, du.make_schedule("linear", 1000).betas)
    held_out = held_out_set(schedule, draws=1, timesteps=4)
    torch.manual_seed(0)
    untrained = Unwrap(diffusers_digits()).eval()
    assert held_out_loss(ema, schedule, held_out) < 0.7 * held_out_loss(untrained, schedule, held_out)


@pytest.mark.filterwarnings("ignore:.*off course:UserWarning")  # the samples of a network trained a few steps
def test_quality_per_minute_runs_in_miniature_with_the_chosen_samplers_and_no_anchor(tmp_path, monkeypatch, capsys):
    """ours alone (`--anchors` with no value), two 20-call samplers, guided and not: one row, every chosen column
    scored, no other column; the JSON line goes to a temporary results folder."""
    sys.path.insert(0, str(BENCHMARKS))
    import common
    import quality_per_minute

    monkeypatch.setattr(common, "RESULTS", tmp_path)
    argv = ["--minutes", "0.01", "--n", "40", "--ddpm-n", "0", "--guidance", "1", "1.25", "--anchors"]
    monkeypatch.setattr(sys, "argv", ["quality_per_minute.py", *argv, "--samplers", "ddim20_eta0", "dpm20"])
    quality_per_minute.main()
    out = capsys.readouterr().out
    assert "DDIM-20 η=0" in out and "DPM++2M-20" in out and "DDIM-50" not in out, out
    (line,) = (tmp_path / "quality_per_minute.jsonl").read_text().splitlines()
    payload = json.loads(line)
    assert payload["anchors"] == [] and payload["samplers"] == ["ddim20_eta0", "dpm20"]
    (row,) = payload["rows"]
    assert row["network"] == "ddpm_utils" and row["steps"] > 0
    scored = {k for k in row if k.startswith(("ddim", "dpm", "ddpm"))}
    tails = ("", "_class_matched", "_class_mix_tv")
    wanted = {f"{key}{w}{tail}" for key in ("ddim20_eta0", "dpm20") for w in ("", "_w1.25") for tail in tails}
    assert scored == wanted, scored ^ wanted
    # the class-matched FD is NaN by design when a class is missing, as it is from a network trained for 0.6 s
    assert all(math.isfinite(row[k]) for k in scored if not k.endswith("_class_matched"))


def test_late_dropout_keeps_the_blocks_dropout_off_until_the_step_then_restores_each_rate():
    sys.path.insert(0, str(BENCHMARKS))
    from types import SimpleNamespace

    from common import ours_digits
    from quality_per_minute import switch_dropout_on

    import ddpm_utils as du

    torch.manual_seed(0)
    net = ours_digits(dropout=0.1).train()
    modules = [m for m in net.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(modules) == sum(isinstance(m, du.unet.ResBlock) for m in net.modules()) == 8  # one per block
    with torch.no_grad():  # the zero-initialised last convolutions hide dropout from the output: wake them up
        for m in net.modules():
            if isinstance(m, du.unet.ResBlock):
                m.conv2.weight.normal_(0, 0.1)
        net.conv_out.weight.normal_(0, 0.1)
    callback = switch_dropout_on(net, 3)
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([10, 200, 500, 900])
    assert torch.equal(net(x, t), net(x, t))  # training mode, yet no dropout: the same output twice
    for step in (1, 2):
        callback(SimpleNamespace(step=step))
        assert all(m.p == 0.0 for m in modules)
    callback(SimpleNamespace(step=3))
    assert all(m.p == 0.1 for m in modules)
    assert not torch.equal(net(x, t), net(x, t))  # dropout on: two draws differ

    with pytest.raises(ValueError, match="positive step"):
        switch_dropout_on(net, 0)

    # wired into the Trainer by train_for: switched on at step 5 of a 1.2-second run, still off at a step not reached
    from quality_per_minute import train_for

    data = du.load_digits("train")[:256]
    for at_step, rate in ((5, 0.1), (10**6, 0.0)):
        trainer = train_for(lambda: ours_digits(dropout=0.1), 0.02, data, late_dropout=at_step, batch_size=16)
        assert trainer.step > 5
        assert all(m.p == rate for m in trainer.model.modules() if isinstance(m, torch.nn.Dropout))
    with pytest.raises(ValueError, match="no dropout"):
        switch_dropout_on(ours_digits(dropout=0.0), 10)


def test_recorded_lines_are_strict_json(tmp_path, monkeypatch):
    """A benchmark's JSON line holds None where a score is undefined (NaN), not Python's bare NaN, so any JSON reader
    can read the results; finite numbers and nesting are kept."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from common import record

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    record("check", {"fd": 12.5, "cells": {"a": [1.0, math.nan], "b": (math.inf, 2)}}, tmp_path)
    line = json.loads((tmp_path / "check.jsonl").read_text(), parse_constant=refuse)
    assert line["fd"] == 12.5 and line["cells"] == {"a": [1.0, None], "b": [None, 2]} and "date" in line


def _run_script(module_name: str, argv: list[str], tmp_path, monkeypatch) -> dict:
    """Run a benchmark script's main() with `argv`, its JSON line going to tmp_path; returns that line."""
    sys.path.insert(0, str(BENCHMARKS))
    import importlib

    import common

    monkeypatch.setattr(common, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", [f"{module_name}.py", *argv])
    importlib.import_module(module_name).main()
    (line,) = (tmp_path / f"{module_name}.jsonl").read_text().splitlines()
    return json.loads(line)


def test_sample_throughput_runs_in_miniature_with_its_bf16_checks(tmp_path, monkeypatch):
    pytest.importorskip("diffusers")
    payload = _run_script("sample_throughput", ["--batch", "8", "--rounds", "1", "--bf16"], tmp_path, monkeypatch)
    assert set(payload["evals_per_s"]) == set(payload["ddim50_s"]) and len(payload["evals_per_s"]) == 5
    assert all(v > 0 for v in payload["evals_per_s"].values())
    errors = payload["checks"]["eps_relative_error_bf16"]
    assert all(1e-4 < e < 5e-2 for e in errors.values()), errors  # rounded to bfloat16, not broken


def test_train_throughput_runs_in_miniature(tmp_path, monkeypatch):
    pytest.importorskip("diffusers")
    argv = ["--batch", "8", "--steps", "2", "--rounds", "1"]
    payload = _run_script("train_throughput", argv, tmp_path, monkeypatch)
    assert payload["ratio_vs_diffusers"]["diffusers UNet2DModel"] == 1.0 and len(payload["images_per_s"]) == 3


@pytest.mark.filterwarnings("ignore:.*off course:UserWarning")
def test_sampler_steps_runs_in_miniature_on_the_shipped_model(tmp_path, monkeypatch):
    argv = ["--minutes", "0", "--n", "20", "--seeds", "7"]
    payload = _run_script("sampler_steps", argv, tmp_path, monkeypatch)
    oracle = {r["sampler"]: r["rms_error"] for r in payload["oracle"]}
    assert oracle["dpm-solver-20"] < oracle["ddim-20"] / 4  # second order against first, on the exact ODE
    assert {r["model"] for r in payload["rows"]} == {"shipped checkpoint"}


def test_scaling_child_reports_a_rate_and_the_peak_memory():
    sys.path.insert(0, str(BENCHMARKS))
    from scaling import run

    result = run(8, 64)
    assert result["size"] == 8 and result["batch"] == 64 and result["images_per_s"] > 0 and result["peak_rss_mb"] > 50


def test_notebook_times_runs_copies_and_leaves_the_notebooks_alone(tmp_path, monkeypatch):
    import nbformat

    sys.path.insert(0, str(BENCHMARKS))
    import notebook_times

    tiny = tmp_path / "nb" / "00_tiny.ipynb"
    tiny.parent.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1 + 1")]), tiny)
    before = tiny.read_bytes()
    monkeypatch.setattr(notebook_times, "NOTEBOOKS", [tiny])
    payload = _run_script("notebook_times", [], tmp_path, monkeypatch)
    assert list(payload["seconds"]) == ["00_tiny.ipynb"] and payload["total"] > 0
    assert tiny.read_bytes() == before
