"""Command line: python -m ddpm_utils {train,sample,evaluate} ...  (see --help of each)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

import torch

from ._checks import json_numbers, non_finite_rows
from .checkpoint import check_writable
from .data import DATASETS
from .extras.optim import OPTIMIZERS
from .extras.training import TrainConfig
from .sampling import SAMPLERS
from .unet import DDPM_CIFAR10, DIGITS, UNetConfig

DEFAULT_SAMPLE_STEPS = {"ddim": 50, "dpm-solver": 20}
DEFAULT_STEPS = 3000


NETS = {"digits": DIGITS, "ddpm-cifar10": DDPM_CIFAR10}  # --net: the course's 0.70M network, the paper's 35.7M


def _dataset(name: str, split: str, root: str, download: bool = False):
    """`data.load_dataset` with --data-root (and --download) for the data sets read from files; the digits are
    embedded, so --download with them is refused rather than ignored."""
    from .data import load_dataset

    if name == "digits":
        if download:
            raise ValueError("--download fetches mnist, fashion_mnist or cifar10; the digits are embedded")
        return load_dataset(name, split)
    return load_dataset(name, split, root=root, download=download)


def _add_download(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--download",
        action="store_true",
        help="fetch the data set's files into --data-root first if they are missing (internet, and torchvision: "
        "pip install 'ddpm-from-scratch[datasets]')",
    )


def _unet_config(args, channels: int) -> UNetConfig:
    """The --net preset with the data's channels, and each architecture flag given on the command line on top."""
    flags = {
        "base_channels": args.channels,
        "channel_mults": None if args.mults is None else tuple(args.mults),
        "num_res_blocks": args.blocks,
        "attention_levels": None if args.attention_levels is None else tuple(args.attention_levels),
        "num_heads": args.heads,
        "groups": args.groups,
        "dropout": args.dropout,
        "scale_shift": args.scale_shift,
        "zero_init_blocks": args.zero_init_blocks,
    }
    given = {k: v for k, v in flags.items() if v is not None}
    return dataclasses.replace(NETS[args.net], in_channels=channels, out_channels=None, **given)


def cmd_train(args) -> int:
    import os

    from .extras.distributed import cleanup, setup_from_env
    from .extras.training import Trainer
    from .schedules import make_schedule
    from .unet import UNet

    out = Path(args.out)
    check_writable(out)  # before any training: minutes or hours of it
    continuing = args.resume is not None and out.resolve() == Path(args.resume).resolve()
    if out.exists() and not (continuing or args.overwrite):
        raise ValueError(
            f"{out} already exists; continue that run with --resume {out}, replace it with --overwrite, "
            "or write to another --out"
        )
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # launched by torchrun: one process per device
        args.device = setup_from_env()
    if args.download and torch.distributed.is_initialized():  # under torchrun: one download per machine, then all read
        if int(os.environ.get("LOCAL_RANK", "0")) == 0:
            _dataset(args.dataset, "train", args.data_root, download=True)
        torch.distributed.barrier()
    data = _dataset(args.dataset, "train", args.data_root, args.download and not torch.distributed.is_initialized())
    if args.resume:
        more = {"bf16": True} if args.bf16 else {}  # otherwise the checkpoint's own setting holds
        trainer = Trainer.resume(
            args.resume, data, device=args.device, max_steps=args.steps, max_minutes=args.minutes, **more
        )
    else:
        config = TrainConfig(
            prediction=args.prediction,
            batch_size=args.batch_size,
            lr=args.lr,
            warmup_steps=args.warmup_steps,
            lr_schedule=args.lr_schedule,
            ema_decay=args.ema_decay,
            hflip=args.hflip,
            max_steps=args.steps,
            max_minutes=args.minutes,
            seed=args.seed,
            compile=args.compile,
            bf16=args.bf16,
            posterior_target=args.posterior_target,
            optimizer=args.optimizer,
            muon_lr_ratio=args.muon_lr_ratio,
        )
        torch.manual_seed(args.seed)
        model = UNet(_unet_config(args, data.shape[1])).to(args.device)
        trainer = Trainer(model, make_schedule(args.schedule, args.T), config, data)
    callback = None
    if args.sample_every:
        from .plotting import save_grid
        from .sampling import ddim_sample

        def callback(tr):
            if tr.rank != 0:  # under torchrun one grid, from rank 0 (the weights are the same on every rank)
                return
            g = torch.Generator().manual_seed(0)
            x = ddim_sample(tr.ema, tr.schedule, (64, *data.shape[1:]), 50, generator=g, device=tr.device)
            save_grid(x, Path(args.out).with_name(f"{Path(args.out).stem}_step{tr.step:06d}.png"), nrow=8)

    trainer.train(
        callback=callback,
        callback_every=args.sample_every,
        checkpoint_path=args.out,
        checkpoint_every=args.checkpoint_every,
        progress=not args.quiet,
    )
    cleanup()
    if trainer.rank == 0:
        losses = trainer.history["loss"]
        last = f"; last logged loss {losses[-1]:.4f}" if losses else ""
        print(f"trained {trainer.step} steps{last}; wrote {args.out}")
    return 0


def _device(name: str) -> str:
    """--device: a device PyTorch knows and this machine has; argparse reports anything else by name."""
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise argparse.ArgumentTypeError(f"{name!r} is not a PyTorch device (cpu, cuda, cuda:1, ...)") from exc
    if device.type not in ("cpu", "cuda"):  # refused by name, not by a failure deep inside a run
        raise argparse.ArgumentTypeError(
            f"{name!r}: ddpm_utils runs on cpu or cuda only; schedules, the likelihood bound and guidance compute in "
            "float64, which Apple's MPS lacks, and no other device has been checked (the course's digits train in "
            "minutes on a CPU: --device cpu)"
        )
    try:
        torch.empty(0, device=device)
    except Exception as exc:  # no CUDA build or no GPU raises AssertionError or RuntimeError
        raise argparse.ArgumentTypeError(
            f"{name!r} is not available on this machine ({exc}); use --device cpu"
        ) from exc
    return name


def _at_least(kind: type, low: float, strict: bool = False):
    """An argparse type: a finite `kind` (int or float) >= low (> low if strict); anything else is reported by name,
    where the library would refuse it later under its own field's name, or (--n 0) do something useless."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{' whole' if kind is int else ''} number") from None
        if not math.isfinite(value) or value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"must be {'more than' if strict else 'at least'} {low}, got {text}")
        return value

    return parse


def _load(path):
    from .checkpoint import model_from_checkpoint
    from .pretrained import pretrained_path

    if path in ("digits",) and not Path(path).exists():
        path = pretrained_path(path)
    return model_from_checkpoint(path, ema=True)


def _prediction(state) -> str:
    """What the network outputs ('eps', 'x0' or 'v'), from the checkpoint's training config."""
    return (state.get("train_config") or {}).get("prediction", "eps")


def _guide_network(path, schedule, prediction: str, channels: int):
    """A worse network of the same data to guide with (autoguidance): it must output the same quantity for the
    same noise schedule and image channels, or `guide + w (network - guide)` would mix unlike things."""
    guide, guide_schedule, state = _load(path)
    if state["model_config"].get("kind", "unet") != "unet" or state["model_config"]["in_channels"] != channels:
        raise ValueError(f"--guide {path} is not an image network with {channels} channel(s)")
    if _prediction(state) != prediction:
        raise ValueError(f"--guide {path} predicts {_prediction(state)!r} but the network predicts {prediction!r}")
    if guide_schedule.num_steps != schedule.num_steps or not torch.allclose(guide_schedule.betas, schedule.betas):
        raise ValueError(f"--guide {path} was trained with a different noise schedule from the network's")
    return guide


def _sample(model, schedule, shape, args, prediction: str = "eps"):
    from .analytic import GaussianData
    from .extras import Guided, LowPrecision
    from .sampling import ddim_sample, ddpm_sample, dpm_solver_sample

    if args.eta != 0 and args.sampler != "ddim":
        raise ValueError(f"--eta applies to the ddim sampler only, not {args.sampler}")
    if args.steps is not None and args.sampler == "ddpm":
        raise ValueError("--steps applies to ddim and dpm-solver; ddpm always takes every timestep")
    interval = args.guidance_interval
    if interval is not None and args.guidance == 1:
        raise ValueError("--guidance-interval needs a guidance weight other than 1 (--guidance)")
    if interval is not None and interval[0] >= schedule.num_steps:
        raise ValueError(
            f"--guidance-interval starts at t = {interval[0]}, but the model's timesteps are "
            f"0..{schedule.num_steps - 1}: guidance would never apply"
        )
    guide_path, data_name = getattr(args, "guide", None), getattr(args, "guidance_data", None)
    if guide_path is not None and args.guidance == 1:
        raise ValueError("--guide needs a guidance weight other than 1 (--guidance)")
    if guide_path is not None and data_name is not None:
        raise ValueError("give --guide (a network) or --guidance-data (a Gaussian fit), not both")
    if args.bf16:  # before Guided: the guide keeps its own precision
        model = LowPrecision(model, torch.bfloat16)
    if args.guidance != 1:
        if guide_path is not None:
            guide = _guide_network(guide_path, schedule, prediction, shape[1]).to(args.device)
        else:
            data_name = data_name or "digits"
            data = _dataset(data_name, "train", args.data_root, args.download)
            if data.shape[1:] != tuple(shape[1:]):
                raise ValueError(
                    f"--guidance-data {data_name} has images of shape {tuple(data.shape[1:])} "
                    f"but the samples have shape {tuple(shape[1:])}"
                )
            guide = GaussianData.fit(data).denoiser(schedule, prediction)
        model = Guided(model, guide, args.guidance, interval=None if interval is None else tuple(interval))
    g = torch.Generator().manual_seed(args.seed)  # on the CPU: one seed, the same samples on any device
    where = {"generator": g, "prediction": prediction, "device": args.device}
    if args.sampler == "ddpm":
        return ddpm_sample(model, schedule, shape, **where)
    steps = DEFAULT_SAMPLE_STEPS[args.sampler] if args.steps is None else args.steps
    if args.sampler == "dpm-solver":
        return dpm_solver_sample(model, schedule, shape, steps, **where)
    return ddim_sample(model, schedule, shape, steps, eta=args.eta, **where)


def cmd_sample(args) -> int:
    from .plotting import save_grid

    if args.download and (args.guidance == 1 or args.guidance_data in (None, "digits")):
        raise ValueError(
            "--download fetches the files of --guidance-data (mnist, fashion_mnist, cifar10) for --guidance; "
            "nothing here needs them"
        )
    out = Path(args.out)
    check_writable(out.with_suffix(".pt"), "the samples")  # --out names both files: OUT.png and OUT.pt
    model, schedule, state = _load(args.checkpoint)
    model = model.to(args.device)
    cfg = state["model_config"]
    if cfg.get("kind", "unet") != "unet":
        raise SystemExit("error: `sample` writes image grids; this checkpoint holds a 2-D (MLP) model")
    trained_on = state.get("data_shape")  # absent from checkpoints written before it was stored: 8×8 then
    size = args.size or (trained_on[-1] if trained_on else 8)
    shape = (args.n, cfg["in_channels"], size, size)
    x = _sample(model, schedule, shape, args, _prediction(state)).cpu()
    broken = non_finite_rows(x)
    if broken:  # a grid of NaNs renders as a blank image that looks like a plotting bug
        raise ValueError(
            f"{broken} of {len(x)} samples contain NaN or infinite values, so nothing was written: the network "
            f"in {args.checkpoint} produces them (a diverged run?) or the sampler amplified its error (see its warning)"
        )
    save_grid(x, out.with_suffix(".png"), nrow=int(args.n**0.5) or 1)
    torch.save(x, out.with_suffix(".pt"))
    print(f"wrote {out.with_suffix('.png')} and {out.with_suffix('.pt')} ({args.n} samples, {args.sampler})")
    return 0


def _test_bound(model, schedule, test, num_levels: int, prediction: str, seed: int, device) -> torch.Tensor:
    """Bits/dim of the likelihood bound for each test example, 500 at a time (each batch takes T network calls)."""
    from .elbo import bits_per_dim, nll_bound

    g = torch.Generator().manual_seed(seed)
    parts = []
    for chunk in test.split(500):
        chunk = chunk.to(device)
        bound = nll_bound(model, schedule, chunk, num_levels=num_levels, prediction=prediction, generator=g)
        parts.append(bits_per_dim(bound["total"], chunk).cpu())
    return torch.cat(parts)


def cmd_evaluate(args) -> int:
    from .data import DIGITS_LEVELS
    from .metrics import evaluate_samples, summarise_reports

    if args.repeats < 1:
        raise ValueError(f"--repeats must be at least 1, got {args.repeats}")
    model, schedule, state = _load(args.checkpoint)
    trained_on = list(state.get("data_shape") or [state["model_config"].get("in_channels"), 8, 8])
    if state["model_config"].get("kind", "unet") != "unet":
        raise ValueError(f"evaluate scores image models; {args.checkpoint} holds a 2-D (MLP) model")
    dataset = args.dataset or ("digits" if trained_on == [1, 8, 8] else None)
    if args.download and dataset == "digits":
        raise ValueError(
            "--download fetches the files of --dataset (mnist, fashion_mnist, cifar10); the digits are embedded"
        )
    if dataset is None or (dataset == "digits" and trained_on != [1, 8, 8]):
        raise ValueError(
            f"{args.checkpoint} was trained on examples of shape {tuple(trained_on)}, not the 8x8 digits: name its "
            "data with --dataset (mnist, fashion_mnist, cifar10) for the likelihood bound (--bpd)"
        )
    model = model.to(args.device)
    if dataset != "digits":  # FD_digits and the copying check are for the digits; the bound is for any data
        if not args.bpd:
            raise ValueError(f"for {dataset}, evaluate reports the likelihood bound only: add --bpd")
        drawing = {  # options of sampling, which the bound does not do: refused rather than silently ignored
            "--sampler": args.sampler != "ddim",
            "--steps": args.steps is not None,
            "--eta": args.eta != 0,
            "--guidance": args.guidance != 1 or args.guide is not None or args.guidance_interval is not None,
            "--bf16": args.bf16,
            "--repeats": args.repeats != 1,
        }
        if any(drawing.values()):
            flags = ", ".join(name for name, given in drawing.items() if given)
            raise ValueError(
                f"{flags}: options of sampling, but for {dataset} evaluate draws no samples (the bound only)"
            )
        test = _dataset(dataset, "test", args.data_root, args.download)
        if list(test.shape[1:]) != trained_on:
            raise ValueError(
                f"{dataset} has examples of shape {tuple(test.shape[1:])}, the checkpoint {tuple(trained_on)}"
            )
        bpd = _test_bound(model, schedule, test[: args.n], 256, _prediction(state), args.seed, args.device)
        report = {
            "dataset": dataset,
            "test_images": len(bpd),
            "test_bits_per_dim": bpd.mean().item(),
            "test_bits_per_dim_se": (bpd.std() / len(bpd) ** 0.5).item() if len(bpd) > 1 else float("nan"),
        }
        _print_report(report)
        return 0
    reports = []
    for k in range(args.repeats):  # independent sample sets from seeds seed, seed + 1, ...
        seed_args = argparse.Namespace(**{**vars(args), "seed": args.seed + k})
        x = _sample(model, schedule, (args.n, 1, 8, 8), seed_args, _prediction(state))
        reports.append(evaluate_samples(x))
    report = reports[0] if args.repeats == 1 else summarise_reports(reports)
    if args.guidance != 1:
        report["guidance"] = args.guidance
        if args.guidance_interval is not None:
            report["guidance_interval"] = args.guidance_interval
        report["guide"] = args.guide or "gaussian fit of the training digits"
    if args.bf16:
        report["network_dtype"] = "bfloat16"
    if args.bpd:  # of the network itself: a guided sampler has no likelihood bound
        test = _dataset("digits", "test", args.data_root)
        report["test_bits_per_dim"] = (
            _test_bound(model, schedule, test, DIGITS_LEVELS, _prediction(state), args.seed, args.device).mean().item()
        )
    if math.isnan(report["fd_class_matched"]) or math.isnan(report["floor_class_matched"]):
        why = []  # reweighting to the test split's class mix needs every class among the digits reweighted
        if report["classes_present"] < 10:
            average = " on average" if args.repeats > 1 else ""  # summarise_reports averages the count
            why.append(f"the samples hold {report['classes_present']:g} of the 10 classes{average}")
        if math.isnan(report["floor_class_matched"]):
            why.append(f"some sets of {args.n} real digits miss a class too (use --n 100 or more)")
        print(
            f"note: the class-matched scores are null: they reweight digits to the test split's class mix, which "
            f"needs every class among them, and {' and '.join(why)}",
            file=sys.stderr,
        )
    _print_report(report)
    return 0


def _print_report(report: dict) -> None:
    """The report as strict JSON, numbers to 4 decimals, an undefined one (a spread of one score, say) as null."""
    print(json.dumps(json_numbers(report, 4), indent=1, allow_nan=False))


def cmd_export(args) -> int:
    """Keep only what sampling needs: the EMA weights (as the model), config, schedule, step."""
    from .checkpoint import load_checkpoint, save_checkpoint

    if Path(args.out).resolve() == Path(args.checkpoint).resolve():
        raise ValueError(
            f"export would overwrite {args.checkpoint}, the checkpoint it reads (and a run's only way to resume)"
        )
    state = load_checkpoint(args.checkpoint)
    slim = {k: state[k] for k in ("step", "model_config", "train_config", "schedule", "data_shape") if k in state}
    slim["model"] = state["ema"] if state.get("ema") is not None else state["model"]
    save_checkpoint(slim, args.out)
    print(f"wrote {args.out} (EMA weights of step {state['step']})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ddpm_utils", description="Train, sample and evaluate DDPMs.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a UNet (default: the embedded 8x8 digits)")
    t.add_argument(
        "--dataset",
        default="digits",
        choices=DATASETS,
        help="digits (embedded, default); mnist, fashion_mnist, cifar10: files under --data-root (see README)",
    )
    t.add_argument(
        "--data-root", default="data", help="folder holding MNIST's or CIFAR-10's files (default %(default)s)"
    )
    _add_download(t)
    t.add_argument(
        "--out",
        default="runs/digits.pt",
        help="checkpoint path (written atomically); an existing file is kept unless it is the --resume source "
        "or --overwrite is given",
    )
    t.add_argument("--overwrite", action="store_true", help="replace an existing --out with this run")
    t.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="total optimiser steps")
    t.add_argument(
        "--minutes", type=_at_least(float, 0, strict=True), default=None, help="stop after this many minutes"
    )
    t.add_argument("--resume", default=None, help="continue from this checkpoint")
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument(
        "--lr", type=float, default=TrainConfig.lr, help="peak learning rate (the DDPM paper's CIFAR-10 run: 2e-4)"
    )
    t.add_argument(
        "--warmup-steps",
        type=int,
        default=TrainConfig.warmup_steps,
        help="linear warm-up of the learning rate (the paper's CIFAR-10 run: 5000)",
    )
    t.add_argument(
        "--lr-schedule",
        default=TrainConfig.lr_schedule,
        choices=["cosine", "constant"],
        help="after the warm-up: cosine decay to 0 at the last step (default) or constant (the DDPM paper's)",
    )
    t.add_argument(
        "--ema-decay",
        type=float,
        default=TrainConfig.ema_decay,
        help="EMA of the weights (the paper's CIFAR-10 run: 0.9999)",
    )
    t.add_argument(
        "--hflip",
        action="store_true",
        help="mirror each training image left to right with probability 1/2 (the paper's CIFAR-10 runs; not digits)",
    )
    t.add_argument("--schedule", default="linear", choices=["linear", "cosine", "scaled_linear"])
    t.add_argument("--T", type=int, default=1000, help="number of diffusion steps")
    t.add_argument("--prediction", default="eps", choices=["eps", "x0", "v"])
    t.add_argument(
        "--posterior-target",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="regress on E[target | x_t] over the training set (less gradient noise; small data sets)",
    )
    t.add_argument(
        "--optimizer",
        default="adamw",
        choices=OPTIMIZERS,
        help="'muon': Muon (orthogonalised momentum) on hidden weights, AdamW on the rest",
    )
    t.add_argument(
        "--muon-lr-ratio", type=float, default=3.0, help="Muon's step relative to AdamW's (with --optimizer muon)"
    )
    t.add_argument(
        "--net",
        default="digits",
        choices=NETS,
        help="the network: 'digits' (the course's 0.70M UNet, default) or 'ddpm-cifar10' (the DDPM paper's 35.7M "
        "CIFAR-10 UNet); the flags below change single parts of it",
    )
    preset = "default: the --net preset's"
    t.add_argument("--channels", type=int, default=None, help=f"base channels ({preset}: digits 32)")
    t.add_argument("--mults", type=int, nargs="+", default=None, help=f"channel multiplier per level ({preset})")
    t.add_argument("--blocks", type=int, default=None, help=f"residual blocks per level ({preset})")
    t.add_argument("--attention-levels", type=int, nargs="*", default=None, help=f"levels with attention ({preset})")
    t.add_argument("--heads", type=int, default=None, help=f"attention heads ({preset})")
    t.add_argument("--groups", type=int, default=None, help=f"GroupNorm groups ({preset})")
    t.add_argument(
        "--dropout",
        type=float,
        default=None,
        help="dropout in the residual blocks (default: 0.1 in both presets; 0 fits a 3-minute digits run slightly "
        "better, 0.1 keeps runs of 10 minutes and more from overfitting the digits)",
    )
    t.add_argument(
        "--scale-shift",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"scale-and-shift timestep conditioning ({preset}: additive in both)",
    )
    t.add_argument(
        "--zero-init-blocks",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start each residual block and attention as the identity (zero last layer; the default); "
        "--no-zero-init-blocks keeps PyTorch's default initialisation there",
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", type=_device, default="cuda" if torch.cuda.is_available() else "cpu")
    t.add_argument("--compile", action="store_true", help="torch.compile the network (CUDA)")
    t.add_argument(
        "--bf16",
        action="store_true",
        help="forward and backward in bfloat16, weights kept in float32: faster on CPUs with bfloat16 instructions "
        "(AVX-512 BF16, AMX), slower on others",
    )
    t.add_argument("--sample-every", type=_at_least(int, 0), default=None, help="write a sample grid PNG every N steps")
    t.add_argument("--checkpoint-every", type=_at_least(int, 0), default=500, help="0: only at the end")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    for name, helptext, func in (
        ("sample", "draw samples: writes OUT.png (a grid) and OUT.pt (the tensor)", cmd_sample),
        ("evaluate", "sample-quality report for a digits model (FD_digits with floor and ceiling)", cmd_evaluate),
    ):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("checkpoint", help="a checkpoint path, or 'digits' for the shipped model")
        s.add_argument(
            "--n", type=_at_least(int, 1), default=64 if name == "sample" else 1000, help="number of samples"
        )
        s.add_argument("--sampler", default="ddim", choices=SAMPLERS)
        s.add_argument(
            "--steps",
            "--ddim-steps",
            type=int,
            default=None,
            help="network evaluations for ddim (default 50) or dpm-solver (default 20); ddpm uses all",
        )
        s.add_argument("--eta", type=float, default=0.0, help="ddim only: 0 deterministic, 1 DDPM-like")
        s.add_argument("--seed", type=int, default=0)
        s.add_argument(
            "--device",
            type=_device,
            default="cuda" if torch.cuda.is_available() else "cpu",
            help="where the network runs (the seed gives the same samples on any device, up to the arithmetic)",
        )
        s.add_argument(
            "--bf16",
            action="store_true",
            help="run the network in bfloat16, the sampler in float32: 1.6-1.9x as fast on a CPU with AVX-512 BF16 "
            "(measured), slower on CPUs without bfloat16 instructions"
            + ("; --bpd stays in float32" if name == "evaluate" else ""),
        )
        s.add_argument(
            "--guidance",
            type=float,
            default=1.0,
            help="steer the network away from the optimal denoiser of the training data's Gaussian fit "
            "(or from --guide) by this weight (1: off; 1.25 suits the digits); one extra evaluation per step",
        )
        s.add_argument(
            "--guide",
            default=None,
            metavar="CHECKPOINT",
            help="with --guidance: steer away from this worse network of the same data (autoguidance: a smaller "
            "or shorter-trained model, same schedule and prediction) instead of the Gaussian fit",
        )
        s.add_argument(
            "--guidance-interval",
            type=int,
            nargs=2,
            metavar=("LO", "HI"),
            default=None,
            help="guide only at timesteps LO..HI (0-based, inclusive), the network alone elsewhere "
            "(for the digits: --guidance 1.5 --guidance-interval 100 700)",
        )
        if name == "sample":
            s.add_argument(
                "--guidance-data",
                default=None,
                choices=DATASETS,
                help="the training data the Gaussian is fitted to (with --guidance; default digits)",
            )
            s.add_argument("--data-root", default="data", help="folder of --guidance-data's files (not digits)")
            _add_download(s)
            s.add_argument("--out", default="samples/digits")
            s.add_argument(
                "--size", type=_at_least(int, 1), default=None, help="image size (default: the training images')"
            )
        else:
            s.add_argument(
                "--bpd", action="store_true", help="also compute the test-set bits/dim bound (of the network, unguided)"
            )
            s.add_argument(
                "--dataset",
                default=None,
                choices=DATASETS,
                help="the checkpoint's data (default digits for an 8x8 network): for mnist, fashion_mnist and cifar10 "
                "evaluate gives the bound (--bpd) on the first --n test images",
            )
            s.add_argument("--data-root", default="data", help="folder of --dataset's files (not digits)")
            _add_download(s)
            s.add_argument(
                "--repeats",
                type=int,
                default=1,
                help="score this many sample sets (seeds seed, seed+1, ...): mean FD, its spread (fd_sd), each",
            )
        s.set_defaults(func=func)
    e = sub.add_parser("export", help="write a small sampling-only checkpoint (EMA weights, no optimiser)")
    e.add_argument("checkpoint")
    e.add_argument("out")
    e.set_defaults(func=cmd_export)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ImportError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
