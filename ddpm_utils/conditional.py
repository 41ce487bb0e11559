"""Class-conditional diffusion and classifier-free guidance. [Ho & Salimans 2021, "Classifier-Free Diffusion Guidance"]

One network learns both ε_θ(x_t, t, y) and the unconditional ε_θ(x_t, t, ∅): during training each label is
replaced by the "no label" token ∅ with probability p_uncond [CFG Alg. 1]. At sampling time the two predictions
are combined [CFG Eq. 6]:

    ε̂_w(x_t, y) = (1 + w) ε_θ(x_t, t, y) - w ε_θ(x_t, t, ∅)

Convention: w = 0 is the plain conditional model, w > 0 guides; the "guidance scale" s = 1 + w of other
libraries (diffusers' `guidance_scale`) is the same thing shifted by one. The token ∅ is label index
`num_classes` (the network's label embedding has num_classes + 1 entries).

`ClassifierFreeGuidance(model, label, w)` is itself a `model(x_t, t)`, so `ddpm_sample`, `ddim_sample` and
`dpm_solver_sample` use it unchanged. `LabelDropoutLoss` is a `loss_fn(model, schedule, x0, t, eps, y) -> (B,)`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .elbo import loss_simple
from .forward import q_sample
from .schedules import Schedule

__all__ = ["num_classes_of", "null_labels", "drop_labels", "ClassifierFreeGuidance", "LabelDropoutLoss"]


def num_classes_of(model: nn.Module) -> int:
    """The number of classes a conditional network was built for (its `config.num_classes`)."""
    n = getattr(getattr(model, "config", None), "num_classes", None)
    if not isinstance(n, int) or n < 1:
        raise ValueError(
            f"{type(model).__name__} is not a class-conditional network (its config has no num_classes): "
            "build it with UNetConfig(num_classes=...)"
        )
    return n


def null_labels(batch: int, num_classes: int, device=None) -> torch.Tensor:
    """(B,) long tensor of the "no label" token ∅ = num_classes."""
    return torch.full((batch,), num_classes, dtype=torch.long, device=device)


def drop_labels(
    y: torch.Tensor, p_uncond: float, num_classes: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Replace each label by ∅ (= num_classes) independently with probability p_uncond. [CFG Alg. 1, line 3]

    Args: y (B,) long in [0, num_classes); the draws come from `generator` (on the CPU). Returns a new (B,) tensor.
    """
    if not 0.0 <= p_uncond <= 1.0:
        raise ValueError(f"p_uncond must lie in [0, 1], got {p_uncond}")
    drop = torch.rand(y.shape, generator=generator) < p_uncond  # (B,) on the CPU
    return torch.where(drop.to(y.device), torch.full_like(y, num_classes), y)


def _check_labels(y: torch.Tensor, num_classes: int, batch: int) -> None:
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor, got {getattr(y, 'dtype', type(y).__name__)}")
    if y.shape != (batch,):
        raise ValueError(f"labels must have shape ({batch},), got {tuple(y.shape)}")
    if ((y < 0) | (y > num_classes)).any():
        raise ValueError(f"labels must lie in [0, {num_classes}] ({num_classes} is 'no label'), got {y.tolist()}")


class ClassifierFreeGuidance(nn.Module):
    """ε̂_w = (1 + w) ε_θ(x_t, t, y) - w ε_θ(x_t, t, ∅) as a `model(x_t, t)`. [CFG Eq. 6]

    `label`: one class for the whole batch (an int) or a (B,) tensor of classes. w = 0 returns the conditional
    prediction alone (one network call); otherwise both predictions come from one call on a doubled batch.
    For a network with a learned variance (2·C output channels: ε, then v [iDDPM §3.1]) only the ε channels are
    guided; v is the conditional one's.
    """

    def __init__(self, model: nn.Module, label, weight: float, num_classes: int | None = None):
        super().__init__()
        self.num_classes = num_classes_of(model) if num_classes is None else int(num_classes)
        weight = float(weight)
        if not math.isfinite(weight):
            raise ValueError(f"guidance weight must be a finite number, got {weight}")
        if isinstance(label, int) and not isinstance(label, bool):
            if not 0 <= label <= self.num_classes:
                raise ValueError(
                    f"label must lie in [0, {self.num_classes}] ({self.num_classes}: no label), got {label}"
                )
        elif not isinstance(label, torch.Tensor):
            raise TypeError(f"label must be an int or a (B,) tensor of ints, got {type(label).__name__}")
        self.model, self.label, self.weight = model, label, weight

    def labels(self, batch: int, device) -> torch.Tensor:
        """The requested labels as a (B,) long tensor."""
        if isinstance(self.label, int):
            return torch.full((batch,), self.label, dtype=torch.long, device=device)
        _check_labels(self.label, self.num_classes, batch)
        return self.label.to(device)

    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        batch = xt.shape[0]
        y = self.labels(batch, xt.device)
        if self.weight == 0.0:
            return self.model(xt, t, y)
        out = self.model(
            torch.cat([xt, xt]), torch.cat([t, t]), torch.cat([y, null_labels(batch, self.num_classes, xt.device)])
        )
        cond, uncond = out[:batch], out[batch:]  # each (B, C_out, H, W)
        c = xt.shape[1]
        guided = (1 + self.weight) * cond[:, :c] - self.weight * uncond[:, :c]
        return torch.cat([guided, cond[:, c:]], dim=1) if cond.shape[1] > c else guided


class LabelDropoutLoss:
    """L_simple for a class-conditional ε-prediction network, each label dropped to ∅ with probability p_uncond.
    [CFG Alg. 1; DDPM Eq. 14]

    A `loss_fn(model, schedule, x0, t, eps, y) -> (B,)`: x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε, then ‖ε - ε_θ(x_t, t, ỹ)‖²
    averaged over pixels, where ỹ is y with each entry replaced by ∅ with probability p_uncond (drawn from this
    object's own generator, so a run is reproducible). y = None trains the unconditional model (all ∅).
    """

    def __init__(self, num_classes: int, p_uncond: float = 0.1, seed: int = 0):
        if not 0.0 <= p_uncond <= 1.0:
            raise ValueError(f"p_uncond must lie in [0, 1], got {p_uncond}")
        self.num_classes, self.p_uncond = int(num_classes), float(p_uncond)
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(
        self, model: nn.Module, schedule: Schedule, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, y
    ) -> torch.Tensor:
        if y is None:
            y = null_labels(x0.shape[0], self.num_classes, x0.device)
        else:
            _check_labels(y, self.num_classes, x0.shape[0])
            y = drop_labels(y, self.p_uncond, self.num_classes, self.generator)
        xt = q_sample(schedule, x0, t, noise=eps)
        return loss_simple(model(xt, t, y).float(), eps.float())
