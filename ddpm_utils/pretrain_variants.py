"""Train the three shipped variants of the digits model with the shipped model's recipe (5,000 steps, the default):

* digits-cond: class-conditional, label dropout p_uncond = 0.1 (`conditional.LabelDropoutLoss`);
* digits-hybrid-eps: learned variances, trained on L_hybrid (`learned_variance.HybridLoss`, 17 levels), the network
  predicting ε̂ as in Improved DDPM;
* digits-hybrid: the same loss and variance, the network's output 17 logits per pixel over the pixel levels and the
  variance channel (18 channels), turned into (ε̂, v) by `levels.LevelOutput` (a mean that knows the levels).

    python -m ddpm_utils.pretrain_variants cond --steps 5000 --out ddpm_utils/checkpoints/digits_cond.pt
    python -m ddpm_utils.pretrain_variants hybrid-eps --steps 5000 --out ddpm_utils/checkpoints/digits_hybrid_eps.pt
    python -m ddpm_utils.pretrain_variants hybrid --steps 5000 --out ddpm_utils/checkpoints/digits_hybrid.pt

Each runs `Trainer(model, schedule, config, data, labels, loss_fn)` (batch 128, AdamW at 2e-3 with warm-up and cosine
decay, EMA) and writes a sampling checkpoint: the EMA weights, as `python -m ddpm_utils export` does.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch
from torch import nn

from .checkpoint import check_writable, save_checkpoint
from .conditional import LabelDropoutLoss
from .data import DIGITS_LEVELS, load_digits
from .learned_variance import HybridLoss
from .levels import LevelOutput, level_network_channels
from .schedules import Schedule, make_schedule
from .training import TrainConfig, Trainer
from .unet import DIGITS, UNet

__all__ = ["digits_unet", "RECIPES", "train_variant", "main"]

RECIPES = {
    "cond": {"num_classes": 10, "learn_sigma": False},
    "hybrid-eps": {"num_classes": None, "learn_sigma": True},
    "hybrid": {"num_classes": None, "learn_sigma": True, "levels": True},
}


def digits_unet(
    num_classes: int | None = None, learn_sigma: bool = False, levels: bool = False, schedule: Schedule | None = None
) -> nn.Module:
    """The course's digits UNet, class-conditional (num_classes) and/or with a learned variance (2 outputs); with
    `levels`, its output is 17 logits over the pixel levels per pixel, wrapped in `levels.LevelOutput` (schedule)."""
    if not levels:
        return UNet(dataclasses.replace(DIGITS, num_classes=num_classes, learn_sigma=learn_sigma))
    out = level_network_channels(DIGITS.in_channels, DIGITS_LEVELS, learn_sigma)
    net = UNet(dataclasses.replace(DIGITS, num_classes=num_classes, out_channels=out))
    return LevelOutput(net, schedule, DIGITS_LEVELS, learn_sigma)


def train_variant(name: str, out, steps: int = 5000, seed: int = 0, p_uncond: float = 0.1, device: str = "cpu") -> None:
    """Train the `name` variant ('cond', 'hybrid-eps' or 'hybrid'); write its sampling checkpoint (EMA weights).

    The random draws (weights, batches, label dropout) come from CPU generators, so `device` changes only the
    floating-point rounding, not the run."""
    check_writable(out)
    config = TrainConfig(max_steps=steps, seed=seed)
    torch.manual_seed(seed)  # the initial weights and the dropout masks
    schedule = make_schedule("linear", 1000)
    model = digits_unet(**RECIPES[name], schedule=schedule).to(device)
    data, labels = load_digits("train", return_labels=True)
    if name == "cond":
        loss_fn, used, variant = LabelDropoutLoss(10, p_uncond, seed), labels, {"p_uncond": p_uncond}
    else:
        loss_fn, used, variant = HybridLoss(num_levels=DIGITS_LEVELS), None, {"loss": "hybrid", "lambda_vlb": 0.001}
    trainer = Trainer(model, schedule, config, data, labels=used, loss_fn=loss_fn)
    trainer.train(progress=False)
    state = trainer.state_dict()
    slim = {k: state[k] for k in ("step", "model_config", "schedule", "data_shape") if k in state}
    slim["train_config"] = {**state["train_config"], "variant": name, **variant}
    slim["model"] = {k: v.cpu() for k, v in state["ema"].items()}  # a CPU file, wherever it was trained
    save_checkpoint(slim, out)
    last = f"; last logged loss {trainer.history['loss'][-1]:.4f}" if trainer.history["loss"] else ""
    print(f"trained {trainer.step} steps{last}; wrote {out}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ddpm_utils.pretrain_variants", description=__doc__.split("\n")[0])
    p.add_argument("variant", choices=sorted(RECIPES))
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--p-uncond", type=float, default=0.1, help="cond only: the share of labels dropped")
    p.add_argument("--device", default="cpu", help="where to train, e.g. 'cuda'")
    args = p.parse_args(argv)
    train_variant(args.variant, args.out, args.steps, args.seed, args.p_uncond, args.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
