"""The shipped pretrained models (trained on this project's CPU recipe; see README)."""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import model_from_checkpoint
from .schedules import Schedule

__all__ = ["PRETRAINED", "pretrained_path", "load_pretrained"]

# inside the package, so that an installed copy (pip install ., a wheel) has them too
PRETRAINED = {"digits": Path(__file__).resolve().parent / "checkpoints" / "digits.pt"}


def pretrained_path(name: str = "digits") -> Path:
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}; available: {sorted(PRETRAINED)}")
    path = PRETRAINED[name]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; recreate it with `make pretrained` (see README)")
    return path


def load_pretrained(name: str = "digits") -> tuple[torch.nn.Module, Schedule]:
    """(EMA network in eval mode, its schedule) of a shipped model, e.g. `load_pretrained("digits")`."""
    model, schedule, _ = model_from_checkpoint(pretrained_path(name))
    return model, schedule


# ---- the class-conditional and learned-variance variants ----
# digits-cond: class-conditional, label dropout p_uncond = 0.1; digits-hybrid-eps: learned variances, trained on
# L_hybrid (iDDPM); digits-hybrid: the same with a mean that knows the 17 pixel levels (`levels.LevelOutput`).
# All trained by `python -m ddpm_utils.pretrain_variants` (Makefile: `make pretrained`).
PRETRAINED["digits-cond"] = PRETRAINED["digits"].with_name("digits_cond.pt")
PRETRAINED["digits-hybrid-eps"] = PRETRAINED["digits"].with_name("digits_hybrid_eps.pt")
PRETRAINED["digits-hybrid"] = PRETRAINED["digits"].with_name("digits_hybrid.pt")
