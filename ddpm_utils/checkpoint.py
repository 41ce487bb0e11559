"""Checkpoints: written atomically, read with `torch.load(weights_only=True)`, validated on load.

A checkpoint is a plain dict of tensors and primitives:
    format, step, model_config, train_config, schedule {betas}, data_shape (optional: one training example's
    shape), model, ema, optimizer (optional), generator_state, torch_rng_state (optional), history (optional)
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from pathlib import Path

import torch

from .levels import LevelOutput
from .schedules import Schedule
from .unet import MLPDenoiser, UNet, UNetConfig

__all__ = ["FORMAT", "save_checkpoint", "load_checkpoint", "model_from_checkpoint", "build_model", "check_writable"]

FORMAT = "ddpm-from-scratch/1"
REQUIRED = ("format", "step", "model_config", "schedule", "model")


def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """Write `state` to `path` atomically: to a temporary file in the same folder, then rename.

    A crash mid-write leaves any previous file at `path` intact.
    """
    return atomic_save({"format": FORMAT, **state}, path)


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """`torch.save(obj, path)` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_writable(path: str | os.PathLike, what: str = "the checkpoint") -> Path:
    """Refuse now, not after minutes of training or sampling, a `path` whose folder cannot be made or take a file."""
    path = Path(path)
    if path.is_dir():  # e.g. --out runs/: the file would replace a folder, which fails only after the work
        raise ValueError(f"cannot write {what} {str(path)!r}: it is a folder; name a file inside it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path.parent).close()
    except OSError as exc:
        blocking = next((p for p in path.parents if p.exists()), None)
        why = f"{str(blocking)!r} is a file, not a folder" if blocking and not blocking.is_dir() else exc.strerror
        raise ValueError(f"cannot write {what} {str(path)!r}: {why or exc}") from exc
    return path


def describe_load_error(exc: Exception) -> str:
    """The cause in torch.load's error, without its advice: for a weights-only refusal that advice is to load the
    file with weights_only=False, which runs whatever code the file holds."""
    text = str(exc)
    found = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    reason = found.group(1) if found else text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return reason.split(". ")[0].strip()[:200]


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a checkpoint with weights_only=True, with clear errors for missing or corrupt files."""
    path = Path(path)
    if path.is_dir():  # e.g. runs/ instead of runs/digits.pt
        raise FileNotFoundError(f"checkpoint {str(path)!r} is a folder; give the checkpoint file inside it")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:  # not a pickle at all, or one holding objects weights_only refuses
        raise ValueError(
            f"checkpoint {str(path)!r} is corrupt, or holds objects other than tensors and plain values, which "
            f"ddpm_utils does not load (torch.load with weights_only=True: {describe_load_error(exc)})"
        ) from exc
    except Exception as exc:  # damaged files raise RuntimeError, EOFError, struct.error, ...
        raise ValueError(
            f"checkpoint {str(path)!r} is corrupt or truncated and cannot be read ({describe_load_error(exc)})"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{str(path)!r} is not a {FORMAT} checkpoint (format: {found!r})")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise ValueError(f"checkpoint {str(path)!r} lacks {missing}")
    return state


def build_model(model_config: dict, schedule: Schedule | None = None) -> torch.nn.Module:
    """A fresh network from the config dict stored in a checkpoint ({'kind': 'unet'|'mlp'|'levels', ...}).

    'levels' (a `levels.LevelOutput` around a network) needs the checkpoint's `schedule`."""
    cfg = dict(model_config)
    kind = cfg.pop("kind", "unet")
    if kind == "unet":
        return UNet(UNetConfig.from_dict(cfg))
    if kind == "mlp":
        return MLPDenoiser(**cfg)
    if kind == "levels":
        if schedule is None:
            raise ValueError("a 'levels' model needs its schedule: build_model(model_config, schedule)")
        return LevelOutput(build_model(cfg["net"]), schedule, cfg["num_levels"], cfg["learn_sigma"])
    raise ValueError(f"unknown model kind {kind!r} in checkpoint; expected 'unet', 'mlp' or 'levels'")


def model_config_dict(model: torch.nn.Module) -> dict:
    if isinstance(model, LevelOutput):
        return {
            "kind": "levels",
            "num_levels": model.num_levels,
            "learn_sigma": model.learn_sigma,
            "net": model_config_dict(model.net),
        }
    if isinstance(model, UNet):
        return {"kind": "unet", **model.config.to_dict()}
    if isinstance(model, MLPDenoiser):
        hidden = model.net[0].out_features
        depth = sum(isinstance(m, torch.nn.Linear) for m in model.net) - 1
        return {"kind": "mlp", "dim": model.dim, "hidden": hidden, "depth": depth, "emb_dim": model.emb_dim}
    raise TypeError(f"cannot describe a {type(model).__name__} in a checkpoint")


def model_from_checkpoint(
    path_or_state, ema: bool = True, map_location="cpu"
) -> tuple[torch.nn.Module, Schedule, dict]:
    """(model in eval mode, schedule, checkpoint dict). Uses the EMA weights when present and `ema`."""
    state = path_or_state if isinstance(path_or_state, dict) else load_checkpoint(path_or_state, map_location)
    schedule = Schedule.from_state_dict(state["schedule"])
    model = build_model(state["model_config"], schedule)
    weights = state["ema"] if ema and state.get("ema") is not None else state["model"]
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise ValueError(f"checkpoint weights do not fit its model config {state['model_config']}: {exc}") from exc
    return model.eval(), schedule, state
