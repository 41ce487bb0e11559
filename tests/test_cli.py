import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ddpm_utils import (
    DIGITS,
    GaussianData,
    ddim_sample,
    dpm_solver_sample,
    load_digits,
    model_from_checkpoint,
)
from ddpm_utils.extras import Guided, LowPrecision
from ddpm_utils.extras.cli import main
from ddpm_utils.extras.datasets import load_mnist
from ddpm_utils.metrics import evaluate_samples

# a small UNet for command-line runs of a few steps
TINY = ["--channels", "16", "--groups", "8", "--heads", "2", "--blocks", "1", "--quiet", "--batch-size", "8"]


def test_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "ddpm_utils", "--help"], capture_output=True, text=True, check=True)
    for cmd in ("train", "sample", "evaluate"):
        assert cmd in out.stdout


@pytest.mark.filterwarnings("ignore:.*off course:UserWarning")  # the samples of a network trained a few steps
def test_train_then_sample(tmp_path, capsys):
    ck = tmp_path / "tiny.pt"
    args = [
        "train",
        "--out",
        str(ck),
        "--steps",
        "3",
        "--channels",
        "16",
        "--groups",
        "8",
        "--heads",
        "2",
        "--blocks",
        "1",
        "--quiet",
        "--batch-size",
        "8",
        "--posterior-target",
        "--optimizer",
        "muon",
    ]
    assert main(args) == 0
    assert ck.is_file()
    assert main(["train", "--resume", str(ck), "--out", str(ck), "--steps", "4", "--quiet"]) == 0
    resumed = torch.load(ck, weights_only=True)
    assert resumed["step"] == 4 and resumed["train_config"]["posterior_target"] is True
    assert resumed["train_config"]["optimizer"] == "muon"
    slim = tmp_path / "slim.pt"
    assert main(["export", str(ck), str(slim)]) == 0
    state = torch.load(slim, weights_only=True)
    assert "optimizer" not in state and state["step"] == 4
    # an export cannot be resumed (was: KeyError 'ema'), nor written over the checkpoint it reads
    assert main(["train", "--resume", str(slim), "--out", str(tmp_path / "more.pt"), "--steps", "6", "--quiet"]) == 2
    assert "holds sampling weights only" in capsys.readouterr().err
    before = ck.read_bytes()
    assert main(["export", str(ck), str(tmp_path / "." / ck.name)]) == 2
    assert "would overwrite" in capsys.readouterr().err and ck.read_bytes() == before
    out = tmp_path / "samples"
    assert main(["sample", str(ck), "--n", "4", "--ddim-steps", "5", "--out", str(out)]) == 0
    x = torch.load(out.with_suffix(".pt"), weights_only=True)
    assert x.shape == (4, 1, 8, 8) and torch.isfinite(x).all()
    assert out.with_suffix(".png").stat().st_size > 0
    # the DPM-Solver flag reaches the library sampler: same model, seed and steps, same samples
    assert main(["sample", str(ck), "--n", "4", "--sampler", "dpm-solver", "--steps", "3", "--out", str(out)]) == 0
    model, schedule, _ = model_from_checkpoint(ck)
    expected = dpm_solver_sample(model, schedule, (4, 1, 8, 8), 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(torch.load(out.with_suffix(".pt"), weights_only=True), expected)
    assert main(["sample", str(ck), "--n", "4", "--sampler", "dpm-solver", "--steps", "0", "--out", str(out)]) == 2
    # --bf16 samples with the network in bfloat16: what LowPrecision gives, float32 samples near the float32 ones
    assert main(["sample", str(ck), "--n", "4", "--steps", "3", "--bf16", "--out", str(out)]) == 0
    low = torch.load(out.with_suffix(".pt"), weights_only=True)
    g = torch.Generator().manual_seed(0)
    torch.testing.assert_close(low, ddim_sample(LowPrecision(model), schedule, (4, 1, 8, 8), 3, generator=g))
    full = ddim_sample(model, schedule, (4, 1, 8, 8), 3, generator=torch.Generator().manual_seed(0))
    assert low.dtype == torch.float32 and 0 < (low - full).abs().max() < 0.1
    # flags the chosen sampler would ignore are refused, not dropped silently
    assert main(["sample", str(ck), "--n", "4", "--sampler", "dpm-solver", "--eta", "1", "--out", str(out)]) == 2
    assert main(["sample", str(ck), "--n", "4", "--sampler", "ddpm", "--steps", "50", "--out", str(out)]) == 2
    # evaluate --repeats: seeds 7 and 8, each scored as the library scores it, then averaged
    capsys.readouterr()
    assert main(["evaluate", str(ck), "--n", "100", "--steps", "3", "--seed", "7", "--repeats", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    each = [
        evaluate_samples(ddim_sample(model, schedule, (100, 1, 8, 8), 3, generator=torch.Generator().manual_seed(seed)))
        for seed in (7, 8)
    ]
    assert report["fd_each"] == pytest.approx([r["fd"] for r in each], abs=1e-3)
    assert report["fd"] == pytest.approx((each[0]["fd"] + each[1]["fd"]) / 2, abs=1e-3)
    assert report["fd_sd"] == pytest.approx(abs(each[0]["fd"] - each[1]["fd"]) / 2**0.5, abs=1e-3)
    with pytest.raises(SystemExit):
        main(["evaluate", str(ck), "--n", "100", "--repeats", "0"])


def test_clear_errors(tmp_path, capsys):
    assert main(["sample", str(tmp_path / "nope.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    assert main(["sample", str(bad)]) == 2
    assert "corrupt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sample", str(bad), "--sampler", "euler"])  # argparse names the allowed choices
    assert "invalid choice" in capsys.readouterr().err
    assert main(["train", "--channels", "20", "--groups", "8", "--steps", "1", "--out", str(tmp_path / "x.pt")]) == 2
    assert "divisible" in capsys.readouterr().err
    for command in (["train"], ["sample", "digits"], ["evaluate", "digits"]):  # a device named wrongly or absent
        with pytest.raises(SystemExit):
            main([*command, "--device", "gpu"])
        assert "'gpu' is not a PyTorch device" in capsys.readouterr().err
        for other in ("mps", "meta"):  # real devices this package was not written for: refused before any work
            with pytest.raises(SystemExit):
                main([*command, "--device", other])
            assert f"'{other}': ddpm_utils runs on cpu or cuda only" in capsys.readouterr().err
        if not torch.cuda.is_available():
            with pytest.raises(SystemExit):
                main([*command, "--device", "cuda"])
            assert "'cuda' is not available on this machine" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --size 0 was ignored: the training images' size was used instead
        main(["sample", "digits", "--size", "0", "--out", str(tmp_path / "none")])
    assert "argument --size: must be at least 1" in capsys.readouterr().err
    for command in (["sample", "digits"], ["evaluate", "digits"]):  # no samples is a mistake, not an empty grid
        for n in ("0", "-3", "2.5"):
            with pytest.raises(SystemExit):
                main([*command, "--n", n, *(["--out", str(tmp_path / "none")] if command[0] == "sample" else [])])
            err = capsys.readouterr().err
            assert "argument --n" in err and ("at least 1" in err or "whole number" in err), err
    assert not (tmp_path / "none.png").exists()
    for flag, value in (("--checkpoint-every", "-1"), ("--sample-every", "-2")):  # -1 checkpointed every step
        with pytest.raises(SystemExit):
            main(["train", flag, value, "--out", str(tmp_path / "none.pt")])
        assert f"argument {flag}: must be" in capsys.readouterr().err
    for value in ("0", "nan"):  # 0 minutes wrote an untrained checkpoint: TrainConfig refuses it before training
        assert main(["train", "--minutes", value, "--out", str(tmp_path / "none.pt")]) == 2
        assert "max_minutes must be a positive number" in capsys.readouterr().err
    assert not (tmp_path / "none.pt").exists()


def test_train_bf16_reaches_the_trainer_and_resumes(tmp_path):
    """`train --bf16` is TrainConfig(bf16=True): float32 weights in the checkpoint, near the float32 run's; a resumed
    run keeps the checkpoint's setting unless --bf16 is given."""
    low, full = tmp_path / "low.pt", tmp_path / "full.pt"
    assert main(["train", "--out", str(low), "--steps", "3", "--bf16", *TINY]) == 0
    assert main(["train", "--out", str(full), "--steps", "3", *TINY]) == 0
    states = {name: torch.load(ck, weights_only=True) for name, ck in (("low", low), ("full", full))}
    assert states["low"]["train_config"]["bf16"] is True and states["full"]["train_config"]["bf16"] is False
    for k, v in states["low"]["model"].items():
        assert v.dtype == torch.float32
        torch.testing.assert_close(v, states["full"]["model"][k], rtol=0, atol=0.05)
    assert any(not torch.equal(v, states["full"]["model"][k]) for k, v in states["low"]["model"].items())
    assert main(["train", "--resume", str(low), "--out", str(low), "--steps", "4", "--quiet"]) == 0
    assert torch.load(low, weights_only=True)["train_config"]["bf16"] is True
    assert main(["train", "--resume", str(full), "--out", str(full), "--steps", "4", "--quiet", "--bf16"]) == 0
    assert torch.load(full, weights_only=True)["train_config"]["bf16"] is True


@pytest.mark.filterwarnings("ignore:.*off course:UserWarning")  # the samples of a network trained a few steps
def test_guidance_and_prediction_reach_the_samplers(tmp_path, capsys):
    """`--guidance w` samples `Guided(network, Gaussian fit of the training digits, w)`, and a network
    trained to predict v is sampled as one (the checkpoint's prediction type, not ε)."""
    ck = tmp_path / "v.pt"
    assert main(["train", "--out", str(ck), "--steps", "2", "--prediction", "v", *TINY]) == 0
    model, schedule, _ = model_from_checkpoint(ck)
    guide = GaussianData.fit(load_digits("train")).denoiser(schedule, "v")
    out = tmp_path / "s"
    for w in (1.0, 1.5):
        assert main(["sample", str(ck), "--n", "6", "--steps", "4", "--guidance", str(w), "--out", str(out)]) == 0
        g = torch.Generator().manual_seed(0)
        expected = ddim_sample(Guided(model, guide, w), schedule, (6, 1, 8, 8), 4, generator=g, prediction="v")
        torch.testing.assert_close(torch.load(out.with_suffix(".pt"), weights_only=True), expected)
    capsys.readouterr()
    assert main(["evaluate", str(ck), "--n", "100", "--steps", "4", "--guidance", "1.5", "--seed", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    g = torch.Generator().manual_seed(3)
    x = ddim_sample(Guided(model, guide, 1.5), schedule, (100, 1, 8, 8), 4, generator=g, prediction="v")
    assert report["guidance"] == 1.5 and report["fd"] == pytest.approx(evaluate_samples(x)["fd"], abs=1e-3)
    # --guidance-interval: Guided(..., interval=(lo, hi)), in the samples and in the report
    argv = ["--n", "6", "--steps", "4", "--guidance", "1.5", "--guidance-interval", "0", "500"]
    assert main(["sample", str(ck), *argv, "--out", str(out)]) == 0
    g = torch.Generator().manual_seed(0)
    expected = ddim_sample(
        Guided(model, guide, 1.5, interval=(0, 500)), schedule, (6, 1, 8, 8), 4, generator=g, prediction="v"
    )
    torch.testing.assert_close(torch.load(out.with_suffix(".pt"), weights_only=True), expected)
    capsys.readouterr()
    assert main(["evaluate", str(ck), *argv]) == 0
    assert json.loads(capsys.readouterr().out)["guidance_interval"] == [0, 500]
    # clear errors: a weight that is not a number, a Gaussian of the wrong image size, an interval without
    # guidance or upside down
    assert main(["sample", str(ck), "--n", "2", "--guidance-interval", "0", "500", "--out", str(out)]) == 2
    assert "--guidance-interval needs a guidance weight" in capsys.readouterr().err
    assert (
        main(["sample", str(ck), "--n", "2", "--guidance", "2", "--guidance-interval", "9", "5", "--out", str(out)])
        == 2
    )
    assert "0 <= lo <= hi" in capsys.readouterr().err
    assert main(["sample", str(ck), "--guidance", "2", "--guidance-interval", "1000", "2000", "--out", str(out)]) == 2
    assert "timesteps are 0..999: guidance would never apply" in capsys.readouterr().err
    assert main(["sample", str(ck), "--n", "2", "--guidance", "nan", "--out", str(out)]) == 2
    assert "finite" in capsys.readouterr().err
    assert main(["sample", str(ck), "--n", "2", "--size", "16", "--guidance", "2", "--out", str(out)]) == 2
    assert "--guidance-data digits has images of shape (1, 8, 8) but the samples have shape (1, 16, 16)" in (
        capsys.readouterr().err
    )


@pytest.mark.filterwarnings("ignore:.*off course:UserWarning")  # the samples of a network trained a few steps
def test_guide_network(tmp_path, capsys):
    """`--guide CHECKPOINT` samples `Guided(network, that network, w)` (autoguidance); guiding a network by itself
    changes nothing whatever w is; a guide that outputs another quantity, or was trained for another schedule,
    is refused with the reason."""
    paths = {name: tmp_path / f"{name}.pt" for name in ("net", "bad", "v", "cosine")}
    for name, extra in (
        ("net", ["--steps", "3"]),
        ("bad", ["--steps", "1", "--seed", "1"]),
        ("v", ["--steps", "1", "--prediction", "v"]),
        ("cosine", ["--steps", "1", "--schedule", "cosine"]),
    ):
        assert main(["train", "--out", str(paths[name]), *extra, *TINY]) == 0
    model, schedule, _ = model_from_checkpoint(paths["net"])
    bad, _, _ = model_from_checkpoint(paths["bad"])
    out = tmp_path / "s"
    argv = ["sample", str(paths["net"]), "--n", "6", "--steps", "4", "--out", str(out)]

    def drawn():
        return torch.load(out.with_suffix(".pt"), weights_only=True)

    assert main([*argv, "--guidance", "1.7", "--guide", str(paths["bad"])]) == 0
    g = torch.Generator().manual_seed(0)
    expected = ddim_sample(Guided(model, bad, 1.7), schedule, (6, 1, 8, 8), 4, generator=g)
    torch.testing.assert_close(drawn(), expected)
    assert main(argv) == 0
    alone = drawn()
    assert (expected - alone).abs().max() > 1e-3  # the guide did something
    assert main([*argv, "--guidance", "3", "--guide", str(paths["net"])]) == 0
    torch.testing.assert_close(drawn(), alone)
    capsys.readouterr()
    evaluate = ["evaluate", str(paths["net"]), "--n", "50", "--steps", "4"]
    assert main([*evaluate, "--guidance", "2", "--guide", str(paths["bad"])]) == 0
    assert json.loads(capsys.readouterr().out)["guide"] == str(paths["bad"])
    for extra, message in (
        (["--guide", str(paths["bad"])], "--guide needs a guidance weight other than 1"),
        (["--guidance", "2", "--guide", str(paths["v"])], "predicts 'v' but the network predicts 'eps'"),
        (["--guidance", "2", "--guide", str(paths["cosine"])], "different noise schedule"),
        (["--guidance", "2", "--guide", str(paths["bad"]), "--guidance-data", "digits"], "not both"),
        (["--guidance", "2", "--guide", str(tmp_path / "missing.pt")], "missing.pt"),
    ):
        assert main([*argv, *extra]) == 2
        assert message in capsys.readouterr().err


def test_zero_init_blocks_flag_reaches_the_checkpoint(tmp_path):
    ck = tmp_path / "plain.pt"
    assert main(["train", "--out", str(ck), "--steps", "1", "--no-zero-init-blocks", *TINY]) == 0
    model, _, state = model_from_checkpoint(ck)
    assert state["model_config"]["zero_init_blocks"] is False and model.config.zero_init_blocks is False


def test_cifar10_trains_samples_at_its_size_and_is_not_scored_as_digits(tmp_path, capsys):
    from test_data import write_fake_cifar10

    from ddpm_utils import bits_per_dim, nll_bound
    from ddpm_utils.extras.cli import _unet_config, build_parser
    from ddpm_utils.extras.datasets import load_cifar10
    from ddpm_utils.unet import DDPM_CIFAR10

    # --net ddpm-cifar10 alone is the paper's network; a flag changes only its own part
    parse = build_parser().parse_args
    assert _unet_config(parse(["train", "--net", "ddpm-cifar10"]), 3) == DDPM_CIFAR10
    narrow = _unet_config(parse(["train", "--net", "ddpm-cifar10", "--channels", "32", "--dropout", "0"]), 3)
    assert narrow == dataclasses.replace(DDPM_CIFAR10, base_channels=32, dropout=0.0)
    assert _unet_config(parse(["train"]), 1) == DIGITS  # the default is the course's network
    write_fake_cifar10(tmp_path / "files", per_file=4)
    ck, out = tmp_path / "cifar.pt", tmp_path / "grid"
    small = ["--channels", "32", "--mults", "1", "2", "--blocks", "1", "--quiet", "--batch-size", "4"]
    args = ["train", "--dataset", "cifar10", "--data-root", str(tmp_path / "files"), "--net", "ddpm-cifar10"]
    recipe = ["--warmup-steps", "1", "--lr-schedule", "constant", "--ema-decay", "0.9999", "--lr", "2e-4", "--hflip"]
    assert main([*args, "--steps", "2", "--T", "100", *recipe, "--out", str(ck), *small]) == 0  # T: a quick bound
    state = torch.load(ck, weights_only=True)
    assert state["data_shape"] == [3, 32, 32] and state["model_config"]["in_channels"] == 3
    config = state["train_config"]
    got = {k: config[k] for k in ("warmup_steps", "lr_schedule", "ema_decay", "lr", "hflip")}
    assert got == {"warmup_steps": 1, "lr_schedule": "constant", "ema_decay": 0.9999, "lr": 2e-4, "hflip": True}
    assert main(["sample", str(ck), "--n", "2", "--steps", "10", "--out", str(out)]) == 0
    assert torch.load(out.with_suffix(".pt"), weights_only=True).shape == (2, 3, 32, 32)  # its size, not 8x8
    capsys.readouterr()
    for digits in ([], ["--dataset", "digits"]):  # not scored as digits, even when asked to
        assert main(["evaluate", str(ck), "--n", "10", *digits]) == 2
        assert "trained on examples of shape (3, 32, 32)" in capsys.readouterr().err
    files = ["--dataset", "cifar10", "--data-root", str(tmp_path / "files")]
    assert main(["evaluate", str(ck), *files]) == 2
    assert "add --bpd" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", str(ck), *files, "--bpd", "--n", "0"])
    assert "argument --n: must be at least 1" in capsys.readouterr().err
    assert main(["evaluate", str(ck), *files, "--bpd", "--guidance", "1.5", "--repeats", "2"]) == 2  # no sampling here
    assert "--guidance, --repeats: options of sampling" in capsys.readouterr().err
    # the bound on CIFAR-10's first test images: 8-bit data, so the decoder's 256 levels
    assert main(["evaluate", str(ck), *files, "--bpd", "--n", "2", "--seed", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    model, schedule, _ = model_from_checkpoint(ck)
    test = load_cifar10("test", root=str(tmp_path / "files"))[:2]
    bound = nll_bound(model, schedule, test, num_levels=256, generator=torch.Generator().manual_seed(3))
    assert report["test_images"] == 2
    assert report["test_bits_per_dim"] == pytest.approx(bits_per_dim(bound["total"], test).mean().item(), abs=1e-4)


def test_mnist_from_local_files_trains_and_samples_at_28x28(tmp_path):
    import numpy as np
    from test_data import write_idx_images

    images = np.random.default_rng(0).integers(0, 256, (16, 28, 28), dtype=np.uint8)
    write_idx_images(tmp_path / "files" / "MNIST" / "raw" / "train-images-idx3-ubyte.gz", images, gzipped=True)
    ck, out = tmp_path / "mnist.pt", tmp_path / "grid"
    argv = ["train", "--dataset", "mnist", "--data-root", str(tmp_path / "files"), "--out", str(ck), "--steps", "1"]
    assert main([*argv, *TINY]) == 0
    assert torch.load(ck, weights_only=True)["data_shape"] == [1, 28, 28]
    assert main(["sample", str(ck), "--n", "2", "--steps", "10", "--out", str(out)]) == 0
    assert torch.load(out.with_suffix(".pt"), weights_only=True).shape == (2, 1, 28, 28)
    # guided by the Gaussian fit of MNIST's files under --data-root: what the library gives with that fit
    guided = ["sample", str(ck), "--n", "2", "--steps", "4", "--guidance", "1.5", "--guidance-data", "mnist"]
    assert main([*guided, "--data-root", str(tmp_path / "files"), "--out", str(out)]) == 0
    model, schedule, _ = model_from_checkpoint(ck)
    guide = GaussianData.fit(load_mnist("mnist", "train", root=str(tmp_path / "files"))).denoiser(schedule)
    g = torch.Generator().manual_seed(0)
    expected = ddim_sample(Guided(model, guide, 1.5), schedule, (2, 1, 28, 28), 4, generator=g)
    torch.testing.assert_close(torch.load(out.with_suffix(".pt"), weights_only=True), expected)
    assert main([*guided, "--data-root", str(tmp_path / "elsewhere"), "--out", str(out)]) == 2  # no files there
    assert (
        main(["train", "--dataset", "fashion_mnist", "--data-root", str(tmp_path / "files"), *TINY, "--steps", "1"])
        == 2
    )  # absent


def test_sample_refuses_to_write_samples_with_nan(tmp_path, capsys):
    ck, out = tmp_path / "tiny.pt", tmp_path / "grid"
    assert main(["train", "--out", str(ck), "--steps", "1", *TINY]) == 0
    state = torch.load(ck, weights_only=True)
    for weights in ("model", "ema"):  # a diverged run: one output channel's bias is NaN
        state[weights]["conv_out.bias"].fill_(float("nan"))
    torch.save(state, ck)
    with pytest.warns(UserWarning, match="ddim_sample: 3 of 3 samples hold NaN"):  # the sampler says so first
        assert main(["sample", str(ck), "--n", "3", "--steps", "20", "--out", str(out)]) == 2
    assert "3 of 3 samples contain NaN or infinite values, so nothing was written" in capsys.readouterr().err
    assert not out.with_suffix(".png").exists() and not out.with_suffix(".pt").exists()


def test_evaluate_writes_strict_json_and_says_why_a_score_is_undefined(capsys):
    def refuse(constant):  # json.loads accepts NaN and Infinity, which are not JSON; a strict reader does not
        raise ValueError(f"not JSON: {constant}")

    assert main(["evaluate", "digits", "--n", "5", "--steps", "3", "--seed", "0"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out, parse_constant=refuse)
    # 5 digits cannot hold all 10 classes: nothing to reweight to the test split's class mix
    assert report["fd_class_matched"] is None and report["floor_class_matched"] is None
    assert report["classes_present"] <= 5 and report["fd"] > 0
    assert "class-matched scores are null" in captured.err and "sets of 5 real digits miss a class" in captured.err
    assert f"hold {report['classes_present']} of the 10 classes" in captured.err


def test_train_keeps_an_existing_checkpoint_unless_resumed_or_overwritten(tmp_path, capsys):
    """Running `train` again with the same --out (its default is runs/digits.pt) used to replace the earlier run
    without a word; now it is refused before any training, the file untouched, unless the run continues from it
    (--resume of the same file) or --overwrite says to replace it."""
    ck, other = tmp_path / "run.pt", tmp_path / "other.pt"
    assert main(["train", "--out", str(ck), "--steps", "3", *TINY]) == 0
    before = ck.read_bytes()
    capsys.readouterr()
    assert main(["train", "--out", str(ck), "--steps", "2", *TINY]) == 2
    err = capsys.readouterr().err
    assert f"{ck} already exists" in err and "--resume" in err and "--overwrite" in err
    assert ck.read_bytes() == before
    assert main(["train", "--out", str(other), "--steps", "2", *TINY]) == 0
    assert main(["train", "--resume", str(other), "--out", str(ck), "--steps", "4", "--quiet"]) == 2  # another file
    assert ck.read_bytes() == before
    assert main(["train", "--resume", str(ck), "--out", str(ck), "--steps", "5", "--quiet"]) == 0
    assert torch.load(ck, weights_only=True)["step"] == 5  # continued: 3 steps, then 2 more
    assert main(["train", "--out", str(ck), "--steps", "2", "--overwrite", *TINY]) == 0
    assert torch.load(ck, weights_only=True)["step"] == 2  # a new run in its place
    # a place no checkpoint can go is refused before training, not after it (a file where the folder should be)
    capsys.readouterr()
    assert main(["train", "--out", str(ck / "run.pt"), "--steps", "2", *TINY]) == 2
    assert f"cannot write the checkpoint {str(ck / 'run.pt')!r}: {str(ck)!r} is a file" in capsys.readouterr().err
    assert main(["sample", str(ck), "--n", "2", "--steps", "2", "--out", str(ck / "grid")]) == 2  # likewise samples
    assert f"cannot write the samples {str(ck / 'grid.pt')!r}: {str(ck)!r} is a file" in capsys.readouterr().err
    folder = tmp_path / "runs"  # --out naming a folder: the checkpoint would replace it, which failed after training
    folder.mkdir()
    for extra in ([], ["--overwrite"]):
        assert main(["train", "--out", str(folder), "--steps", "2", *extra, *TINY]) == 2
        assert f"cannot write the checkpoint {str(folder)!r}: it is a folder" in capsys.readouterr().err
    with pytest.warns(UserWarning, match="first sampling step multiplies"):  # 2 DDIM steps of a 2-step network
        assert main(["sample", str(ck), "--n", "2", "--steps", "2", "--out", str(folder)]) == 0  # OUT.png, OUT.pt
    assert folder.with_suffix(".pt").is_file() and folder.with_suffix(".png").is_file()


def _documented_commands(texts: dict[str, str]):
    """Every command line the course shows: whole ones ('python -m ddpm_utils …', continuation lines joined) and
    fragments in backticks ('`sample --bf16`')."""
    import re
    import shlex

    for name, text in texts.items():
        text = text.replace("\\\n", " ")
        for m in re.finditer(r"python -m ddpm_utils ([^`\n#|]*)", text):
            if "…" not in m.group(1) and "{" not in m.group(1):  # not a table header's '…' or the usage line
                yield name, "whole", shlex.split(m.group(1))
        for m in re.finditer(r"`((?:train|sample|evaluate|export) [^`]*)`", text):
            yield name, "fragment", m.group(1).replace("[", " ").replace("]", " ").split()


def test_every_documented_command_line_parses(documented_texts):
    """Documentation drifts from the code silently: each whole command line shown to learners must parse as it
    stands, and each flag named in a fragment must exist in that command (run on the old docs, it found
    `evaluate --repeats 3` without the checkpoint it needs)."""
    from ddpm_utils.extras.cli import build_parser

    parser = build_parser()
    (commands,) = (a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    seen = {"whole": 0, "fragment": 0}
    for where, kind, argv in _documented_commands(documented_texts):
        seen[kind] += 1
        if kind == "whole":
            try:
                parser.parse_args(argv)
            except SystemExit:
                pytest.fail(f"{where}: 'python -m ddpm_utils {' '.join(argv)}' does not parse")
        else:
            known = commands[argv[0]]._option_string_actions
            unknown = [a for a in argv[1:] if a.startswith("--") and a not in known]
            assert not unknown, f"{where}: `{' '.join(argv)}` names {unknown}, which {argv[0]} does not have"
    assert seen["whole"] >= 10 and seen["fragment"] >= 5, seen  # the search itself still finds them


def test_download_flag_fetches_through_torchvision_and_is_refused_where_nothing_is_fetched(
    tmp_path, capsys, monkeypatch
):
    """The loaders' errors told command-line users to 'pass download=True', which only Python could: `--download`
    now does it (a stand-in torchvision here, which writes MNIST's raw files as the real one would); without
    torchvision it is a one-line error, not a traceback; with the embedded digits it is refused, not ignored."""
    import types

    import numpy as np
    from test_data import write_idx_images

    calls = []

    def fetch(root, train, download):
        calls.append((root, train, download))
        images = np.random.default_rng(0).integers(0, 256, (8, 28, 28), dtype=np.uint8)
        write_idx_images(Path(root) / "MNIST" / "raw" / "train-images-idx3-ubyte", images)

    argv = ["train", "--dataset", "mnist", "--data-root", str(tmp_path / "files"), "--steps", "1", *TINY]
    monkeypatch.setitem(sys.modules, "torchvision", None)  # not installed
    assert main([*argv, "--out", str(tmp_path / "a.pt"), "--download"]) == 2
    assert "downloading MNIST needs torchvision" in capsys.readouterr().err
    fake = types.SimpleNamespace(datasets=types.SimpleNamespace(MNIST=fetch))
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    assert main([*argv, "--out", str(tmp_path / "b.pt")]) == 2  # no files and no --download: the loader's advice
    assert "--download on the command line" in capsys.readouterr().err and calls == []
    assert main([*argv, "--out", str(tmp_path / "c.pt"), "--download"]) == 0
    assert calls == [(str(tmp_path / "files"), True, True)]
    assert torch.load(tmp_path / "c.pt", weights_only=True)["data_shape"] == [1, 28, 28]
    capsys.readouterr()
    for refused in (
        ["train", "--steps", "1", "--out", str(tmp_path / "d.pt"), "--download"],
        ["sample", "digits", "--n", "2", "--out", str(tmp_path / "s"), "--download"],
        ["evaluate", "digits", "--n", "2", "--download"],
    ):
        assert main(refused) == 2
        assert "--download fetches" in capsys.readouterr().err


def test_sample_a_class_with_classifier_free_guidance(tmp_path, capsys):
    from ddpm_utils.metrics import digits_classifier

    out = tmp_path / "sevens"
    assert (
        main(
            [
                "sample",
                "digits-cond",
                "--label",
                "7",
                "--guidance",
                "2",
                "--n",
                "16",
                "--steps",
                "20",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    x = torch.load(out.with_suffix(".pt"), weights_only=True)
    with torch.no_grad():
        share = (digits_classifier()(x).argmax(1) == 7).float().mean().item()
    assert share >= 0.9  # the shipped classifier reads nearly every sample as a 7 (a random class: 0.1)
    # a label for an unconditional model, a class out of range, and autoguidance's options are refused by name
    assert main(["sample", "digits", "--label", "3", "--n", "4", "--out", str(out)]) == 2
    assert "class-conditional" in capsys.readouterr().err
    assert main(["sample", "digits-cond", "--label", "10", "--n", "4", "--out", str(out)]) == 2
    assert main(["sample", "digits-cond", "--guide", "digits", "--guidance", "2", "--n", "4", "--out", str(out)]) == 2


@pytest.mark.parametrize("name", ["digits-hybrid", "digits-hybrid-eps"])
def test_sample_a_learned_variance_model(tmp_path, name):
    out = tmp_path / "hybrid"
    assert main(["sample", name, "--n", "4", "--steps", "5", "--out", str(out)]) == 0
    assert torch.load(out.with_suffix(".pt"), weights_only=True).shape == (4, 1, 8, 8)


def test_the_bound_of_a_learned_variance_model_uses_its_variance():
    # `evaluate --bpd` scores digits-hybrid with its own Σ_θ, as `nll_bound_learned` does
    from ddpm_utils import DIGITS_LEVELS, bits_per_dim, load_digits, load_pretrained
    from ddpm_utils.extras.cli import _test_bound
    from ddpm_utils.learned_variance import nll_bound_learned

    model, schedule = load_pretrained("digits-hybrid")
    test = load_digits("test")[:2]
    with torch.no_grad():
        got = _test_bound(model, schedule, test, DIGITS_LEVELS, "eps", 3, "cpu")
        want = nll_bound_learned(model, schedule, test, DIGITS_LEVELS, torch.Generator().manual_seed(3))
    torch.testing.assert_close(got, bits_per_dim(want["total"], test).cpu())


def test_ddpm_sampling_of_a_learned_variance_model_uses_its_variance(tmp_path):
    from ddpm_utils import load_pretrained
    from ddpm_utils.learned_variance import ddpm_sample_learned

    # the ε-network: the level network's samples land on the pixel levels whichever variance is used
    out = tmp_path / "hybrid_ddpm"
    assert main(["sample", "digits-hybrid-eps", "--sampler", "ddpm", "--n", "2", "--seed", "5", "--out", str(out)]) == 0
    model, schedule = load_pretrained("digits-hybrid-eps")
    with torch.no_grad():
        want = ddpm_sample_learned(model, schedule, (2, 1, 8, 8), generator=torch.Generator().manual_seed(5))
    got = torch.load(out.with_suffix(".pt"), weights_only=True)
    torch.testing.assert_close(got, want, atol=1e-3, rtol=0)  # with β̃ instead: 0.015 apart
