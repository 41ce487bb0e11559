"""Training by DDPM Algorithm 1, with an EMA of the weights, learning-rate warm-up and checkpoints.

    1: repeat
    2:   x_0 ~ q(x_0)
    3:   t ~ Uniform({1, ..., T})                  (0-based here: t ~ Uniform({0, ..., T-1}))
    4:   ε ~ N(0, I)
    5:   gradient step on ∇_θ ‖ε - ε_θ(√ᾱ_t x_0 + √(1-ᾱ_t) ε, t)‖²
    6: until converged                                                        [DDPM Alg. 1]

`training_losses` is line 5's loss for given (x_0, t, ε); `Trainer.train_step` is one pass through
lines 2-5. Faster and multi-process training, other optimisers and loss weightings build on this
class in `ddpm_utils.extras`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from .checkpoint import build_model, check_writable, load_checkpoint, model_config_dict, save_checkpoint
from .elbo import loss_simple
from .forward import q_sample
from .reverse import PREDICTIONS, output_from_eps_and_x0
from .schedules import Schedule

__all__ = ["TrainConfig", "training_losses", "Trainer"]


@dataclass(frozen=True)
class TrainConfig:
    """How to train (saved in every checkpoint)."""

    batch_size: int = 128  # examples per step
    lr: float = 2e-3  # peak learning rate of AdamW
    lr_schedule: str = "cosine"  # after the warm-up: 'cosine' (decays to 0 at max_steps) or 'constant'
    warmup_steps: int = 100  # steps of linear learning-rate warm-up
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    grad_clip: float | None = 1.0  # clip the gradient's global norm at this (0 or None: no clipping)
    ema_decay: float = 0.999  # EMA of the weights; reached after a warm-up, min(ema_decay, (1 + k) / (10 + k))
    max_steps: int = 2000  # optimiser steps; the learning-rate schedule runs over them
    max_minutes: float | None = None  # also stop after this many minutes of wall clock
    prediction: str = "eps"  # what the network outputs: 'eps' (DDPM), 'x0' or 'v'
    seed: int = 0  # seeds the draws of x_0, t and ε
    log_every: int = 50  # steps between entries of Trainer.history

    def __post_init__(self):
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"lr_schedule must be 'cosine' or 'constant', got {self.lr_schedule!r}")
        if self.batch_size < 1 or self.max_steps < 1 or self.log_every < 1 or self.warmup_steps < 0:
            raise ValueError("batch_size, max_steps and log_every must be >= 1 and warmup_steps >= 0")
        if not 0 < self.lr < math.inf or not 0 <= self.weight_decay < math.inf:
            raise ValueError(f"lr must be a finite number > 0, weight_decay >= 0; got {self.lr}, {self.weight_decay}")
        if not 0.0 <= self.ema_decay <= 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1], got {self.ema_decay}")
        if self.grad_clip is not None and not 0.0 <= self.grad_clip < math.inf:
            raise ValueError(f"grad_clip must be a max norm >= 0 (0 or None: no clipping), got {self.grad_clip}")
        if self.max_minutes is not None and not 0.0 < self.max_minutes < math.inf:
            raise ValueError(f"max_minutes must be a positive number or None, got {self.max_minutes}")


def training_losses(
    model: nn.Module,
    schedule: Schedule,
    x0: torch.Tensor,
    t: torch.Tensor,
    eps: torch.Tensor,
    y: torch.Tensor | None = None,
    prediction: str = "eps",
) -> torch.Tensor:
    """Per-example L_simple for given (x_0, t, ε). [DDPM Eq. 14]  Returns (B,).

    ‖target - model(x_t, t)‖² averaged over each example, x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε, where the target
    is ε for 'eps', x_0 for 'x0' and v = √ᾱ_t ε - √(1-ᾱ_t) x_0 for 'v'. Labels y, if given, go to the model.
    """
    xt = q_sample(schedule, x0, t, eps)
    out = model(xt, t) if y is None else model(xt, t, y)
    return loss_simple(out.float(), output_from_eps_and_x0(schedule, t, eps, x0, prediction).float())


LossFn = Callable[..., torch.Tensor]  # loss_fn(model, schedule, x0, t, eps, y) -> (B,)


class Trainer:
    """One training run: the network, its EMA, AdamW, the schedule, the data and the random state.

    `Trainer(model, schedule, config, data, labels=None, loss_fn=None)`: data (N, ...) on any device (batches
    go to the model's), labels (N,) long drawn with their images; loss_fn(model, schedule, x0, t, eps, y) returns
    per-example losses (B,), by default L_simple for `config.prediction`.
    """

    config_class = TrainConfig

    def __init__(
        self,
        model: nn.Module,
        schedule: Schedule,
        config: TrainConfig,
        data: torch.Tensor,
        labels: torch.Tensor | None = None,
        loss_fn: LossFn | None = None,
    ):
        if not isinstance(schedule, Schedule) or not isinstance(config, TrainConfig):
            raise TypeError("call Trainer(model, schedule, config, data): a Schedule, then a TrainConfig")
        _check_data(data, labels)
        self.model, self.schedule, self.config, self.data, self.labels = model, schedule, config, data, labels
        self.device = next(model.parameters()).device
        self.loss_fn = loss_fn or functools.partial(training_losses, prediction=config.prediction)
        self.net = model  # what the loss calls: extras put a wrapper here (DDP, a bfloat16 copy)
        self.ema = copy.deepcopy(model).eval().requires_grad_(False)
        # fused=True: the whole AdamW update in one kernel (CPU and CUDA)
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True
        )
        self.generator = torch.Generator().manual_seed(config.seed)  # on the CPU: the same run on any device
        self.step = 0
        self.history: dict[str, list] = {"step": [], "loss": [], "lr": []}
        self._window: list[float] = []

    def draw_batch(self):
        """Lines 2-4 of Algorithm 1 for one batch: (x0, t, eps, y) on the model's device (y None without labels)."""
        n, g = self.config.batch_size, self.generator
        index = torch.randint(0, len(self.data), (n,), generator=g)  # x_0 drawn with replacement
        t = torch.randint(0, self.schedule.num_steps, (n,), generator=g)  # 0-based
        eps = torch.randn((n, *self.data.shape[1:]), generator=g, dtype=self.data.dtype)
        y = None if self.labels is None else self.labels[index.to(self.labels.device)].to(self.device)
        return self.data[index.to(self.data.device)].to(self.device), t.to(self.device), eps.to(self.device), y

    def train_step(self, progress: float | None = None) -> float:
        """One step of Algorithm 1, then the EMA update; returns the batch's mean loss.

        `progress` in [0, 1] places the step on the learning-rate schedule (default: step / max_steps).
        """
        cfg = self.config
        self.model.train()
        x0, t, eps, y = self.draw_batch()  # 2: x_0 ~ q(x_0)   3: t ~ Uniform({1..T})   4: ε ~ N(0, I)
        losses = self.loss_fn(self.net, self.schedule, x0, t, eps, y)  # 5: ‖ε - ε_θ(√ᾱ x_0 + √(1-ᾱ) ε, t)‖², (B,)
        loss = losses.mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"the loss is non-finite ({loss.item()}) at step {self.step}: lower lr, check the data"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.backward(loss)  # 5: ∇_θ of the loss
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step / cfg.max_steps if progress is None else progress)
        self.optimizer.step()  # 5: take the gradient step
        self.step += 1
        self.update_ema()  # θ_ema ← d θ_ema + (1 - d) θ
        self.record(losses.detach(), t)
        return loss.item()

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def lr_at(self, progress: float) -> float:
        """Learning rate after linear warm-up, then constant or cosine-decayed with `progress` in [0, 1]."""
        cfg = self.config
        warm = min(1.0, (self.step + 1) / max(1, cfg.warmup_steps))
        decay = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))) if cfg.lr_schedule == "cosine" else 1.0
        return cfg.lr * warm * decay

    def update_ema(self) -> None:
        """θ_ema ← d θ_ema + (1 - d) θ, d = min(ema_decay, (1 + k) / (10 + k)) after step k; buffers are copied."""
        decay = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for p_ema, p in zip(self.ema.parameters(), self.model.parameters()):
                p_ema.lerp_(p, 1 - decay)
            for b_ema, b in zip(self.ema.buffers(), self.model.buffers()):
                b_ema.copy_(b)

    def record(self, losses: torch.Tensor, t: torch.Tensor) -> None:
        """Every `log_every` steps, append the mean loss since the last entry to `history`."""
        self._window.append(losses.mean().item())
        if self.step % self.config.log_every == 0:
            self.history["step"].append(self.step)
            self.history["loss"].append(sum(self._window) / len(self._window))
            self.history["lr"].append(self.optimizer.param_groups[0]["lr"])
            self._window = []

    def train(
        self,
        max_steps: int | None = None,
        max_minutes: float | None = None,
        progress: bool = True,
        callback: Callable[[Trainer], None] | None = None,
        callback_every: int | None = None,
        checkpoint_path: str | Path | None = None,
        checkpoint_every: int | None = None,
    ) -> Trainer:
        """Train until step `max_steps` (counting resumed steps; default config.max_steps) or `max_minutes`.

        The learning-rate schedule runs over config.max_steps, or over max_minutes if that ends first, so a run
        stopped and resumed follows the same curve as one uninterrupted run. `callback(trainer)` runs every
        `callback_every` steps; a checkpoint is written every `checkpoint_every` steps and at the end.
        """
        from tqdm import tqdm

        cfg = self.config
        stop_at = cfg.max_steps if max_steps is None else max_steps
        max_minutes = cfg.max_minutes if max_minutes is None else max_minutes
        if not 0 <= stop_at <= cfg.max_steps:
            raise ValueError(f"max_steps={stop_at} lies outside [0, config.max_steps={cfg.max_steps}]")
        if max_minutes is not None and not 0.0 < max_minutes < math.inf:
            raise ValueError(f"max_minutes must be a positive number or None, got {max_minutes}")
        if (checkpoint_every or 0) < 0:
            raise ValueError(f"checkpoint_every must be >= 0 (0 or None: at the end only), got {checkpoint_every}")
        if callback is not None and not (callback_every or 0) >= 1:
            raise ValueError(f"a callback needs callback_every >= 1, got {callback_every}")
        if checkpoint_path is not None:
            check_writable(checkpoint_path)  # now, not after the training
        start, first = time.perf_counter(), self.step
        bar = tqdm(total=stop_at, initial=self.step, disable=not progress, mininterval=10.0, ncols=90)
        while self.step < stop_at:
            elapsed = self.minutes_since(start) if max_minutes is not None else 0.0
            if max_minutes is not None and elapsed >= max_minutes:
                break
            frac = self.step / cfg.max_steps
            if max_minutes is not None and self.step > first:
                frac = max(frac, elapsed / max_minutes)
            self.train_step(progress=frac)
            bar.update(1)
            if callback is not None and self.step % callback_every == 0:
                callback(self)
            if checkpoint_path is not None and checkpoint_every and self.step % checkpoint_every == 0:
                self.save(checkpoint_path)
        bar.close()
        if checkpoint_path is not None:
            self.save(checkpoint_path)
        return self

    def minutes_since(self, start: float) -> float:
        return (time.perf_counter() - start) / 60

    # ---- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "model_config": model_config_dict(self.model),
            "train_config": asdict(self.config),
            "schedule": self.schedule.state_dict(),
            "data_shape": list(self.data.shape[1:]),  # one example's shape: what `sample` draws by default
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator_state": self.generator.get_state(),
            "torch_rng_state": torch.get_rng_state(),
            "history": self.history,
        }

    def save(self, path: str | Path) -> None:
        """Write a checkpoint atomically (`ddpm_utils.checkpoint.save_checkpoint`)."""
        save_checkpoint(self.state_dict(), path)

    def load_state_dict(self, state: dict) -> None:
        if state.get("ema") is None or state.get("generator_state") is None:
            raise ValueError("this checkpoint holds sampling weights only: resume from the checkpoint `train` wrote")
        if state.get("model_config") != model_config_dict(self.model):
            raise ValueError(f"the checkpoint's model config {state.get('model_config')} differs from this model's")
        if list(state.get("data_shape") or self.data.shape[1:]) != list(self.data.shape[1:]):
            raise ValueError(f"the checkpoint was trained on examples of shape {tuple(state['data_shape'])}")
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        if state.get("optimizer") is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.generator.set_state(state["generator_state"])
        if state.get("torch_rng_state") is not None:
            torch.set_rng_state(state["torch_rng_state"])
        self.history = state.get("history") or self.history

    @classmethod
    def resume(cls, path, data, labels=None, loss_fn=None, device="cpu", **overrides) -> Trainer:
        """Rebuild a trainer from a checkpoint (config fields in `overrides` replaced) and continue where it stopped."""
        state = load_checkpoint(path)
        known = {f.name for f in dataclasses.fields(cls.config_class)}
        saved = {k: v for k, v in state["train_config"].items() if k in known}  # (an extras run's options are not)
        config = cls.config_class(**{**saved, **overrides})
        schedule = Schedule.from_state_dict(state["schedule"])
        model = build_model(state["model_config"], schedule).to(device)
        trainer = cls(model, schedule, config, data, labels, loss_fn)
        trainer.load_state_dict(state)
        return trainer


def _check_data(data, labels) -> None:
    if not isinstance(data, torch.Tensor) or not data.is_floating_point() or data.dim() < 2 or not len(data):
        raise ValueError(f"data must be a floating-point tensor of at least one example (N, ...), got {data!r:.80}")
    low, high = (v.item() for v in torch.aminmax(data))
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("data must hold only finite values")
    if data.dim() == 4 and (low >= 0 or max(high, -low) > 1.5):  # [0, 1] or [0, 255] images, not [-1, 1]
        warnings.warn(
            f"the images span [{low:.3g}, {high:.3g}]: DDPM trains on images scaled to [-1, 1] (data.to_model_range)",
            stacklevel=3,
        )
    if labels is not None and (
        not isinstance(labels, torch.Tensor) or labels.shape != data.shape[:1] or labels.is_floating_point()
    ):
        raise ValueError(f"labels must be a LongTensor of shape ({len(data)},), got {getattr(labels, 'shape', labels)}")
