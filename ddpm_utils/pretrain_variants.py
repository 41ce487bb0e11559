"""Train the two shipped variants of the digits model, with the shipped model's recipe otherwise unchanged:

* digits-cond: class-conditional, label dropout p_uncond = 0.1 (`conditional.LabelDropoutLoss`);
* digits-hybrid: learned variances, trained on L_hybrid (`learned_variance.HybridLoss`, 17 levels).

    python -m ddpm_utils.pretrain_variants cond --out ddpm_utils/checkpoints/digits_cond.pt
    python -m ddpm_utils.pretrain_variants hybrid --out ddpm_utils/checkpoints/digits_hybrid.pt

Each writes a sampling checkpoint (EMA weights, as `python -m ddpm_utils export` does). `fit` is Algorithm 1 with
a `loss_fn(model, schedule, x0, t, eps, y) -> (B,)` and labels; AdamW, linear warm-up then cosine decay, gradient
clipping and the EMA follow `training.Trainer`.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import time
from dataclasses import asdict

import torch
from torch import nn

from .checkpoint import check_writable, save_checkpoint
from .conditional import LabelDropoutLoss
from .data import DIGITS_LEVELS, load_digits
from .learned_variance import HybridLoss
from .schedules import make_schedule
from .training import TrainConfig
from .unet import DIGITS, UNet, UNetConfig, timestep_embedding

__all__ = ["fit", "digits_unet", "RECIPES", "train_variant", "main"]

RECIPE = TrainConfig(max_steps=5000, seed=0)  # the shipped digits model's: 5,000 steps, batch 128, lr 2e-3


class _LabelledUNet(UNet):
    """Stand-in for UNetConfig(num_classes=...) until the package's UNet has it: a label embedding
    (num_classes + 1 entries, the last = no label) added to the timestep embedding."""

    def __init__(self, config: UNetConfig, num_classes: int):
        super().__init__(config)
        self.num_classes = num_classes
        self.label_emb = nn.Embedding(num_classes + 1, 4 * config.base_channels)
        self.config = _ConfigWithLabels(**config.to_dict(), num_classes=num_classes)

    def forward(self, x, t, y=None):
        if y is None:
            y = torch.full((x.shape[0],), self.num_classes, dtype=torch.long, device=x.device)
        self._y = y
        return super().forward(x, t)

    def embedding(self, t, dtype):
        return self.time_mlp(timestep_embedding(t, self.config.base_channels).to(dtype)) + self.label_emb(self._y).to(
            dtype
        )


@dataclasses.dataclass(frozen=True)
class _ConfigWithLabels(UNetConfig):
    num_classes: int | None = None


def digits_unet(num_classes: int | None = None, learn_sigma: bool = False) -> nn.Module:
    """The course's digits UNet, class-conditional (num_classes) and/or with a learned variance (2 outputs)."""
    config = dataclasses.replace(DIGITS, out_channels=2 if learn_sigma else None)
    try:
        return UNet(dataclasses.replace(config, num_classes=num_classes, learn_sigma=learn_sigma, out_channels=None))
    except TypeError:  # this UNetConfig has neither field yet
        return UNet(config) if num_classes is None else _LabelledUNet(config, num_classes)


def _model_config(model: nn.Module) -> dict:
    return {"kind": "unet", **model.config.to_dict()}


def fit(model: nn.Module, data: torch.Tensor, labels, loss_fn, config: TrainConfig = RECIPE, log=print):
    """Algorithm 1 with `loss_fn(model, schedule, x0, t, eps, y)`. Returns (model, EMA copy, history of losses).

    Steps 2-4 draw x_0 (with its label), t and ε from one CPU generator seeded with config.seed.
    """
    torch.manual_seed(config.seed)  # dropout masks
    if config.channels_last:  # as the Trainer: faster on a CPU
        model = model.to(memory_format=torch.channels_last)
    schedule = make_schedule(config.schedule, config.num_steps)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    g = torch.Generator().manual_seed(config.seed)
    history, start = [], time.perf_counter()
    for step in range(config.max_steps):
        model.train()
        index = torch.randint(0, len(data), (config.batch_size,), generator=g)
        t = torch.randint(0, config.num_steps, (config.batch_size,), generator=g)
        eps = torch.randn((config.batch_size, *data.shape[1:]), generator=g)
        y = None if labels is None else labels[index]
        warm = min(1.0, (step + 1) / max(1, config.warmup_steps))
        lr = config.lr * warm * 0.5 * (1 + math.cos(math.pi * step / config.max_steps))
        for group in opt.param_groups:
            group["lr"] = lr
        loss = loss_fn(model, schedule, data[index], t, eps, y).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        decay = min(config.ema_decay, (2 + step) / (11 + step))
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), model.parameters()):
                p_ema.lerp_(p, 1 - decay)
        history.append(loss.item())
        if log is not None and (step + 1) % config.log_every == 0:
            recent = sum(history[-config.log_every :]) / config.log_every
            log(f"step {step + 1}: loss {recent:.4f} ({time.perf_counter() - start:.0f} s)")
    return model, ema, history


RECIPES = {
    "cond": {"num_classes": 10, "learn_sigma": False},
    "hybrid": {"num_classes": None, "learn_sigma": True},
}


def train_variant(name: str, out, steps: int = RECIPE.max_steps, seed: int = 0, p_uncond: float = 0.1) -> None:
    """Train the `name` variant ('cond' or 'hybrid') and write its sampling checkpoint to `out`."""
    check_writable(out)
    config = dataclasses.replace(RECIPE, max_steps=steps, seed=seed)
    torch.manual_seed(seed)
    model = digits_unet(**RECIPES[name])
    data, labels = load_digits("train", return_labels=True)
    if name == "cond":
        loss_fn, used = LabelDropoutLoss(10, p_uncond, seed), labels
    else:
        loss_fn, used = HybridLoss(num_levels=DIGITS_LEVELS), None
    model, ema, history = fit(model, data, used, loss_fn, config)
    variant = {"variant": name, "p_uncond": p_uncond} if name == "cond" else {"variant": name, "loss": "hybrid"}
    save_checkpoint(
        {
            "step": config.max_steps,
            "model_config": _model_config(model),
            "train_config": {**asdict(config), **variant},
            "schedule": make_schedule(config.schedule, config.num_steps).state_dict(),
            "data_shape": list(data.shape[1:]),
            "model": {k: v.contiguous() for k, v in ema.state_dict().items()},
        },
        out,
    )
    print(f"trained {config.max_steps} steps; last loss {sum(history[-50:]) / 50:.4f}; wrote {out}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ddpm_utils.pretrain_variants", description=__doc__.split("\n")[0])
    p.add_argument("variant", choices=sorted(RECIPES))
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=RECIPE.max_steps)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--p-uncond", type=float, default=0.1, help="cond only: the share of labels dropped")
    args = p.parse_args(argv)
    train_variant(args.variant, args.out, args.steps, args.seed, args.p_uncond)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def _standin_from_checkpoint(path):
    """(model, schedule) for a class-conditional checkpoint while UNetConfig lacks num_classes."""
    from .checkpoint import load_checkpoint
    from .schedules import Schedule

    state = load_checkpoint(path)
    cfg = {k: v for k, v in state["model_config"].items() if k not in ("kind", "num_classes", "learn_sigma")}
    model = _LabelledUNet(UNetConfig.from_dict(cfg), state["model_config"]["num_classes"])
    model.load_state_dict(state["model"])
    return model.eval(), Schedule.from_state_dict(state["schedule"])
