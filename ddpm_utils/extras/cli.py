"""Command line: python -m ddpm_utils {train,sample,evaluate,export} ...  (see --help of each).

A tool for running what the chapters build, not a chapter itself: hence here, beside the other extras.

`train` has one flag per field of `UNetConfig` and `extras.TrainConfig`, built from the dataclasses (the help is
each field's comment), plus the flags that are not configuration: data, output, resuming, the device.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
import os
import re
import sys
from pathlib import Path

import torch

from .._checks import non_finite_rows
from ..checkpoint import check_writable, load_checkpoint, model_from_checkpoint, save_checkpoint
from ..learned_variance import EpsChannels, ddpm_sample_learned
from ..levels import LevelOutput
from ..schedules import make_schedule
from ..unet import DDPM_CIFAR10, DIGITS, UNet, UNetConfig
from .datasets import DATASETS, load_dataset
from .guidance import Guided
from .precision import LowPrecision
from .training import TrainConfig, Trainer

NETS = {"digits": DIGITS, "ddpm-cifar10": DDPM_CIFAR10}  # --net: the course's 0.70M network, the paper's 35.7M
SAMPLERS = {"ddpm": None, "ddim": 50, "dpm-solver": 20}  # sampler: its default number of steps
# the config fields' flags: older or shorter names kept as aliases, and the command line's own defaults
ALIASES = {
    "base_channels": ["--channels"],
    "channel_mults": ["--mults"],
    "num_res_blocks": ["--blocks"],
    "num_heads": ["--heads"],
    "max_steps": ["--steps"],
    "max_minutes": ["--minutes"],
}
CHOICES = {"prediction": ("eps", "x0", "v"), "lr_schedule": ("cosine", "constant"), "optimizer": ("adamw", "muon")}
NOT_FLAGS = {"in_channels", "out_channels", "num_classes", "learn_sigma"}  # from the data, or not trained here


def field_comments(cls) -> dict[str, str]:
    """Each dataclass field's trailing comment, from the class's source (and its bases')."""
    comments = {}
    for klass in reversed(cls.__mro__[:-1]):
        for name, text in re.findall(r"^\s+(\w+): [^=]+= .*?#\s*(.+)$", inspect.getsource(klass), re.M):
            comments[name] = text
    return comments


def add_config_flags(parser: argparse.ArgumentParser, cls, title: str) -> None:
    """One flag per field of the dataclass `cls` (--field-name), default None: "the preset's or the config's"."""
    group, comments = parser.add_argument_group(title), field_comments(cls)
    for f in dataclasses.fields(cls):
        if f.name in NOT_FLAGS:
            continue
        kind = f.type.split("|")[0].strip()
        names = [f"--{f.name.replace('_', '-')}", *ALIASES.get(f.name, [])]
        kw = {"dest": f.name, "default": None, "help": comments.get(f.name, "")}
        if kind == "bool":
            kw["action"] = argparse.BooleanOptionalAction
        elif kind.startswith("tuple"):
            kw.update(type=int, nargs="*")
        else:
            kw.update(type={"int": int, "float": float, "str": str}[kind], choices=CHOICES.get(f.name))
        group.add_argument(*names, **kw)


def given(args, cls) -> dict:
    """The fields of `cls` given on the command line."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name, None) is not None}


def cmd_train(args) -> int:
    from .distributed import cleanup, setup_from_env

    out = Path(args.out)
    check_writable(out)  # before any training: minutes or hours of it
    continuing = args.resume is not None and out.resolve() == Path(args.resume).resolve()
    if out.exists() and not (continuing or args.overwrite):
        raise ValueError(f"{out} already exists; continue it with --resume {out}, replace it with --overwrite")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # launched by torchrun: one process per device
        args.device = str(setup_from_env())
    distributed = torch.distributed.is_initialized()
    if args.download and distributed:  # one download per machine, then every rank reads
        if int(os.environ.get("LOCAL_RANK", "0")) == 0:
            _dataset(args.dataset, "train", args.data_root, download=True)
        torch.distributed.barrier()
    data = _dataset(args.dataset, "train", args.data_root, args.download and not distributed)
    settings = given(args, TrainConfig)
    if args.resume:
        trainer = Trainer.resume(args.resume, data, device=args.device, **settings)
    else:
        settings.setdefault("max_steps", 3000)
        torch.manual_seed(settings.get("seed", 0))
        model = UNet(_unet_config(args, data.shape[1])).to(args.device)
        trainer = Trainer(model, make_schedule(args.schedule, args.T), TrainConfig(**settings), data)
    callback = None
    if args.sample_every:
        from ..plotting import save_grid
        from ..sampling import ddim_sample

        def callback(tr):
            if tr.rank == 0:  # one grid under torchrun: the weights are the same on every rank
                g = torch.Generator().manual_seed(0)
                x = ddim_sample(tr.ema, tr.schedule, (64, *data.shape[1:]), 50, generator=g, device=tr.device)
                save_grid(x, out.with_name(f"{out.stem}_step{tr.step:06d}.png"), nrow=8)

    every = {"callback": callback, "callback_every": args.sample_every, "checkpoint_every": args.checkpoint_every}
    trainer.train(checkpoint_path=out, progress=not args.quiet, **every)
    cleanup()
    if trainer.rank == 0:
        losses = trainer.history["loss"]
        print(f"trained {trainer.step} steps{f'; last logged loss {losses[-1]:.4f}' if losses else ''}; wrote {out}")
    return 0


def _unet_config(args, channels: int) -> UNetConfig:
    """The --net preset with the data's channels, and each architecture flag given on the command line on top."""
    architecture = {k: tuple(v) if isinstance(v, list) else v for k, v in given(args, UNetConfig).items()}
    return dataclasses.replace(NETS[args.net], in_channels=channels, **architecture)


def _dataset(name: str, split: str, root: str, download: bool = False):
    if name == "digits" and download:
        raise ValueError("--download fetches mnist, fashion_mnist or cifar10; the digits are embedded")
    return load_dataset(name, split) if name == "digits" else load_dataset(name, split, root=root, download=download)


def _load(path):
    from ..pretrained import PRETRAINED, pretrained_path

    model, schedule, state = model_from_checkpoint(pretrained_path(path) if path in PRETRAINED else path)
    if state["model_config"].get("kind", "unet") not in ("unet", "levels"):
        raise ValueError(f"{path} holds a 2-D (MLP) model; these commands work on image networks")
    return model, schedule, state, (state.get("train_config") or {}).get("prediction", "eps")


def _guide_network(path, schedule, prediction: str, channels: int):
    """A worse network of the same data (autoguidance): same output type, schedule and image channels."""
    guide, guide_schedule, state, guide_prediction = _load(path)
    if _image_channels(state) != channels:
        raise ValueError(f"--guide {path} is not an image network with {channels} channel(s)")
    if guide_prediction != prediction:
        raise ValueError(f"--guide {path} predicts {guide_prediction!r} but the network predicts {prediction!r}")
    if guide_schedule.num_steps != schedule.num_steps or not torch.allclose(guide_schedule.betas, schedule.betas):
        raise ValueError(f"--guide {path} was trained with a different noise schedule from the network's")
    return guide


def _image_channels(state) -> int:
    """The image channels of a checkpoint's network (inside a `LevelOutput`, of the network it wraps)."""
    config = state["model_config"]
    return (config["net"] if config.get("kind") == "levels" else config)["in_channels"]


def _net_config(model):
    """The UNetConfig of a network, or of the network inside a `LevelOutput`; None for others."""
    return getattr(model.net if isinstance(model, LevelOutput) else model, "config", None)


def _learns_sigma(model) -> bool:
    """Whether the model's output holds iDDPM's variance channels after ε̂."""
    return model.learn_sigma if isinstance(model, LevelOutput) else getattr(_net_config(model), "learn_sigma", False)


def _sample(model, schedule, shape, args, prediction: str):
    from ..analytic import GaussianData

    if args.eta != 0 and args.sampler != "ddim":
        raise ValueError(f"--eta applies to the ddim sampler only, not {args.sampler}")
    if args.steps is not None and args.sampler == "ddpm":
        raise ValueError("--steps applies to ddim and dpm-solver; ddpm always takes every timestep")
    num_classes = getattr(_net_config(model), "num_classes", None)
    if _learns_sigma(model):
        plain = num_classes is None and args.guidance in (None, 1) and not args.bf16
        if args.sampler == "ddpm" and plain:  # ancestral sampling with the learned variance Σ_θ [iDDPM Eq. 15]
            g = torch.Generator().manual_seed(args.seed)
            return ddpm_sample_learned(model, schedule, shape, generator=g, device=args.device)
        model = EpsChannels(model)  # ε̂ channels only: DDIM and DPM-Solver use ε̂; guided DDPM takes σ_t² = β̃_t
    if args.label is not None and num_classes is None:
        raise ValueError("--label needs a class-conditional model (e.g. digits-cond)")
    if num_classes is not None:
        return _sample_conditional(model, schedule, shape, args, prediction, num_classes)
    if args.guidance is None:
        args.guidance = 1.0
    interval, guide_path = args.guidance_interval, args.guide
    if (interval is not None or guide_path is not None) and args.guidance == 1:
        raise ValueError(f"{'--guide' if guide_path else '--guidance-interval'} needs a guidance weight other than 1")
    if interval is not None and interval[0] >= schedule.num_steps:
        raise ValueError(f"--guidance-interval: timesteps are 0..{schedule.num_steps - 1}: guidance would never apply")
    if guide_path is not None and args.guidance_data is not None:
        raise ValueError("give --guide (a network) or --guidance-data (a Gaussian fit), not both")
    if args.bf16:  # before Guided: the guide keeps its own precision
        model = LowPrecision(model, torch.bfloat16)
    if args.guidance != 1:
        if guide_path is not None:
            guide = _guide_network(guide_path, schedule, prediction, shape[1]).to(args.device)
        else:
            name = args.guidance_data or "digits"
            data = _dataset(name, "train", args.data_root, args.download)
            if data.shape[1:] != tuple(shape[1:]):
                raise ValueError(
                    f"--guidance-data {name} has images of shape {tuple(data.shape[1:])} but the samples have shape "
                    f"{tuple(shape[1:])}"
                )
            guide = GaussianData.fit(data).denoiser(schedule, prediction)
        model = Guided(model, guide, args.guidance, interval=None if interval is None else tuple(interval))
    return _run_sampler(model, schedule, shape, args, prediction)


def _sample_conditional(model, schedule, shape, args, prediction: str, num_classes: int):
    """A class-conditional model: --label picks the class (default: the classes in turn), --guidance is the
    classifier-free guidance weight w (0: none) of ε̂ = (1 + w) ε(x_t, y) - w ε(x_t, ∅)."""
    from ..conditional import ClassifierFreeGuidance

    if args.guide is not None or args.guidance_data is not None or args.guidance_interval is not None:
        raise ValueError("a class-conditional model takes classifier-free guidance (--label, --guidance W) only")
    if args.label is not None and not 0 <= args.label < num_classes:
        raise ValueError(f"--label must be a class in 0..{num_classes - 1}, got {args.label}")
    if args.bf16:
        model = LowPrecision(model, torch.bfloat16)
    labels = args.label if args.label is not None else torch.arange(shape[0]) % num_classes
    weight = 0.0 if args.guidance is None else args.guidance
    return _run_sampler(ClassifierFreeGuidance(model, labels, weight, num_classes), schedule, shape, args, prediction)


def _run_sampler(model, schedule, shape, args, prediction: str):
    from ..sampling import ddim_sample, ddpm_sample, dpm_solver_sample

    g = torch.Generator().manual_seed(args.seed)  # on the CPU: one seed, the same samples on any device
    where = {"generator": g, "prediction": prediction, "device": args.device}
    steps = SAMPLERS[args.sampler] if args.steps is None else args.steps
    if args.sampler == "ddpm":
        return ddpm_sample(model, schedule, shape, **where)
    if args.sampler == "dpm-solver":
        return dpm_solver_sample(model, schedule, shape, steps, **where)
    return ddim_sample(model, schedule, shape, steps, eta=args.eta, **where)


def cmd_sample(args) -> int:
    from ..plotting import save_grid

    if args.download and (args.guidance in (None, 1) or args.guidance_data in (None, "digits")):
        raise ValueError("--download fetches the files of --guidance-data for --guidance; nothing here needs them")
    out = Path(args.out)
    check_writable(out.with_suffix(".pt"), "the samples")  # --out names both files: OUT.png and OUT.pt
    model, schedule, state, prediction = _load(args.checkpoint)
    model = model.to(args.device, memory_format=torch.channels_last)  # faster convolutions on a CPU
    size = args.size or (state.get("data_shape") or [8])[-1]
    x = _sample(model, schedule, (args.n, _image_channels(state), size, size), args, prediction).cpu()
    broken = non_finite_rows(x)
    if broken:  # a grid of NaNs renders as a blank image that looks like a plotting bug
        raise ValueError(f"{broken} of {len(x)} samples contain NaN or infinite values, so nothing was written")
    save_grid(x, out.with_suffix(".png"), nrow=int(args.n**0.5) or 1)
    torch.save(x, out.with_suffix(".pt"))
    print(f"wrote {out.with_suffix('.png')} and {out.with_suffix('.pt')} ({args.n} samples, {args.sampler})")
    return 0


def _test_bound(model, schedule, test, num_levels: int, prediction: str, seed: int, device) -> torch.Tensor:
    """Bits/dim of the likelihood bound for each test example, 500 at a time (each batch takes T network calls);
    with the model's learned variance when it has one."""
    from ..elbo import bits_per_dim, nll_bound
    from ..learned_variance import nll_bound_learned

    g, parts = torch.Generator().manual_seed(seed), []
    for chunk in test.split(500):
        if _learns_sigma(model):
            bound = nll_bound_learned(model, schedule, chunk.to(device), num_levels, generator=g)
        else:
            bound = nll_bound(model, schedule, chunk.to(device), num_levels, prediction=prediction, generator=g)
        parts.append(bits_per_dim(bound["total"], chunk).cpu())
    return torch.cat(parts)


def cmd_evaluate(args) -> int:
    from ..data import DIGITS_LEVELS
    from ..metrics import evaluate_samples, summarise_reports

    model, schedule, state, prediction = _load(args.checkpoint)
    model = model.to(args.device)
    trained_on = list(state.get("data_shape") or [1, 8, 8])
    dataset = args.dataset or ("digits" if trained_on == [1, 8, 8] else None)
    if args.download and dataset == "digits":
        raise ValueError("--download fetches the files of --dataset (mnist, fashion_mnist, cifar10)")
    if dataset is None or (dataset == "digits") != (trained_on == [1, 8, 8]):
        raise ValueError(f"{args.checkpoint} was trained on examples of shape {tuple(trained_on)}: name --dataset")
    if dataset != "digits":  # FD_digits and the copying check are for the digits; the bound is for any data
        if not args.bpd:
            raise ValueError(f"for {dataset}, evaluate reports the likelihood bound only: add --bpd")
        sampling = {"--sampler": args.sampler != "ddim", "--steps": args.steps is not None, "--eta": args.eta != 0}
        sampling.update(
            {"--guidance": args.guidance not in (None, 1), "--bf16": args.bf16, "--repeats": args.repeats != 1}
        )
        if any(sampling.values()):
            flags = ", ".join(name for name, on in sampling.items() if on)
            raise ValueError(f"{flags}: options of sampling, but for {dataset} evaluate draws no samples")
        test = _dataset(dataset, "test", args.data_root, args.download)
        bpd = _test_bound(model, schedule, test[: args.n], 256, prediction, args.seed, args.device)
        se = (bpd.std() / len(bpd) ** 0.5).item() if len(bpd) > 1 else math.nan
        report = {"dataset": dataset, "test_images": len(bpd), "test_bits_per_dim": bpd.mean().item()}
        return _print_report({**report, "test_bits_per_dim_se": se})
    reports = []
    for k in range(args.repeats):  # independent sample sets from seeds seed, seed + 1, ...
        x = _sample(
            model, schedule, (args.n, 1, 8, 8), argparse.Namespace(**{**vars(args), "seed": args.seed + k}), prediction
        )
        reports.append(evaluate_samples(x))
    report = reports[0] if args.repeats == 1 else summarise_reports(reports)
    if getattr(_net_config(model), "num_classes", None) is not None:
        report.update(guidance=args.guidance or 0.0, guide="classifier-free", label=args.label)
    elif args.guidance not in (None, 1):
        report.update(guidance=args.guidance, guide=args.guide or "gaussian fit of the training digits")
        if args.guidance_interval is not None:
            report["guidance_interval"] = args.guidance_interval
    if args.bf16:
        report["network_dtype"] = "bfloat16"
    if args.bpd:  # of the network itself: a guided sampler has no likelihood bound
        test = _dataset("digits", "test", args.data_root)
        bound = _test_bound(model, schedule, test, DIGITS_LEVELS, prediction, args.seed, args.device)
        report["test_bits_per_dim"] = bound.mean().item()
    if math.isnan(report["fd_class_matched"]) or math.isnan(report["floor_class_matched"]):
        why = []  # reweighting to the test split's class mix needs every class among the digits reweighted
        if report["classes_present"] < 10:
            why.append(f"the samples hold {report['classes_present']:g} of the 10 classes")
        if math.isnan(report["floor_class_matched"]):
            why.append(f"some sets of {args.n} real digits miss a class too (use --n 100 or more)")
        print(
            f"note: the class-matched scores are null: they need every class, and {' and '.join(why)}", file=sys.stderr
        )
    return _print_report(report)


def json_numbers(value, ndigits: int | None = None):
    """`value` ready for strict JSON: every NaN or infinity (an undefined score) as None, floats rounded."""
    if isinstance(value, dict):
        return {k: json_numbers(v, ndigits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_numbers(v, ndigits) for v in value]
    if isinstance(value, float):
        return None if not math.isfinite(value) else value if ndigits is None else round(value, ndigits)
    return value


def _print_report(report: dict) -> int:
    """The report as strict JSON, numbers to 4 decimals, an undefined one as null."""
    print(json.dumps(json_numbers(report, 4), indent=1, allow_nan=False))
    return 0


def cmd_export(args) -> int:
    """Keep only what sampling needs: the EMA weights (as the model), config, schedule, step."""
    if Path(args.out).resolve() == Path(args.checkpoint).resolve():
        raise ValueError(f"export would overwrite {args.checkpoint}, the checkpoint it reads")
    state = load_checkpoint(args.checkpoint)
    slim = {k: state[k] for k in ("step", "model_config", "train_config", "schedule", "data_shape") if k in state}
    slim["model"] = state["ema"] if state.get("ema") is not None else state["model"]
    save_checkpoint(slim, args.out)
    print(f"wrote {args.out} (EMA weights of step {state['step']})")
    return 0


def _device(name: str) -> str:
    """--device: a device PyTorch knows and this machine has (cpu or cuda)."""
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise argparse.ArgumentTypeError(f"{name!r} is not a PyTorch device (cpu, cuda, cuda:1, ...)") from exc
    if device.type not in ("cpu", "cuda"):  # the schedules, the bound and guidance compute in float64
        raise argparse.ArgumentTypeError(f"{name!r}: ddpm_utils runs on cpu or cuda only")
    try:
        torch.empty(0, device=device)
    except Exception as exc:  # no CUDA build or no GPU
        raise argparse.ArgumentTypeError(f"{name!r} is not available on this machine ({exc})") from exc
    return name


def _at_least(kind: type, low: float):
    """An argparse type: a finite `kind` (int or float) >= low."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{' whole' if kind is int else ''} number") from None
        if not math.isfinite(value) or value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ddpm_utils", description="Train, sample and evaluate DDPMs.")
    sub = p.add_subparsers(dest="command", required=True)
    default_device = "cuda" if torch.cuda.is_available() else "cpu"

    t = sub.add_parser("train", help="train a UNet (default: the embedded 8x8 digits)")
    t.add_argument("--dataset", default="digits", choices=DATASETS, help="digits (embedded), or files in --data-root")
    t.add_argument("--data-root", default="data", help="folder of MNIST's or CIFAR-10's files")
    t.add_argument("--download", action="store_true", help="fetch the data set into --data-root (torchvision)")
    t.add_argument("--out", default="runs/digits.pt", help="checkpoint path, written atomically")
    t.add_argument("--overwrite", action="store_true", help="replace an existing --out with this run")
    t.add_argument("--resume", default=None, help="continue from this checkpoint (flags given replace its settings)")
    t.add_argument("--net", default="digits", choices=NETS, help="architecture preset; the flags below change parts")
    t.add_argument("--schedule", default="linear", choices=["linear", "cosine", "scaled_linear"])
    t.add_argument("--T", type=int, default=1000, help="number of diffusion steps")
    t.add_argument("--device", type=_device, default=default_device)
    t.add_argument("--sample-every", type=_at_least(int, 0), default=None, help="a sample grid PNG every N steps")
    t.add_argument("--checkpoint-every", type=_at_least(int, 0), default=500, help="0: only at the end")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_flags(t, UNetConfig, "network (UNetConfig; default: the --net preset's)")
    add_config_flags(t, TrainConfig, "training (extras.TrainConfig; --steps defaults to 3000)")
    t.set_defaults(func=cmd_train)

    for name, text, func in (
        ("sample", "draw samples: writes OUT.png (a grid) and OUT.pt (the tensor)", cmd_sample),
        ("evaluate", "sample-quality report for a digits model (FD_digits with floor and ceiling)", cmd_evaluate),
    ):
        s = sub.add_parser(name, help=text)
        s.add_argument("checkpoint", help="a checkpoint path, or 'digits' for the shipped model")
        s.add_argument("--n", type=_at_least(int, 1), default=64 if name == "sample" else 1000, help="samples")
        s.add_argument("--sampler", default="ddim", choices=SAMPLERS)
        s.add_argument("--steps", "--ddim-steps", type=int, default=None, help="ddim: 50, dpm-solver: 20; ddpm: all")
        s.add_argument("--eta", type=float, default=0.0, help="ddim only: 0 deterministic, 1 DDPM-like")
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--device", type=_device, default=default_device, help="where the network runs")
        s.add_argument("--bf16", action="store_true", help="the network in bfloat16, the sampler in float32")
        s.add_argument(
            "--guidance",
            type=float,
            default=None,
            help="weight w away from a worse model (1: off); for a class-conditional model the classifier-free "
            "guidance weight w of (1 + w) eps(x, y) - w eps(x, no label) (0: off)",
        )
        s.add_argument("--label", type=int, default=None, help="class to draw (class-conditional models, e.g. 7)")
        s.add_argument("--guide", default=None, metavar="CHECKPOINT", help="the worse model: a network")
        s.add_argument("--guidance-data", default=None, choices=DATASETS, help="... or a Gaussian fit (digits)")
        s.add_argument("--guidance-interval", type=int, nargs=2, metavar=("LO", "HI"), help="guide at LO <= t <= HI")
        s.add_argument("--data-root", default="data", help="folder of the files of mnist, fashion_mnist, cifar10")
        s.add_argument("--download", action="store_true", help="fetch those files first (torchvision)")
        if name == "sample":
            s.add_argument("--out", default="samples/digits")
            s.add_argument("--size", type=_at_least(int, 1), default=None, help="image size (default: trained size)")
        else:
            s.add_argument("--bpd", action="store_true", help="also the test-set bits/dim bound (unguided)")
            s.add_argument("--dataset", default=None, choices=DATASETS, help="the checkpoint's data (default digits)")
            s.add_argument("--repeats", type=_at_least(int, 1), default=1, help="sample sets (seeds seed, seed+1...)")
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
