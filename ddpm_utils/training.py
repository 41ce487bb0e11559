"""Training by DDPM Algorithm 1, with EMA, warm-up, clipping, checkpoints and optional DDP.

    1: repeat
    2:   x_0 ~ q(x_0)
    3:   t ~ Uniform({1, ..., T})                  (0-based here: t ~ Uniform({0, ..., T-1}))
    4:   ε ~ N(0, I)
    5:   gradient step on ∇_θ ‖ε - ε_θ(√ᾱ_t x_0 + √(1-ᾱ_t) ε, t)‖²
    6: until converged                                                        [DDPM Alg. 1]

`training_losses` is steps 2-5's loss for given (x_0, t, ε); `Trainer` runs the loop. Under
`torchrun` (torch.distributed initialised), every rank draws the same global batch from the same
generator and keeps its own slice, and DDP averages the gradients: a step on N ranks with batch B
each equals a step on one process with batch N·B (for a network without dropout: each rank draws its own
dropout masks), and a checkpoint resumes on any number of ranks.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ._checks import share_beyond
from .analytic import empirical_x0_mean
from .checkpoint import check_writable, load_checkpoint, model_config_dict, save_checkpoint
from .elbo import loss_simple
from .forward import eps_from_x0, q_sample
from .optim import OPTIMIZERS, MuonAdamW, muon_parameter_groups
from .reverse import PREDICTIONS, output_from_eps_and_x0
from .schedules import Schedule, make_schedule

__all__ = ["TrainConfig", "training_losses", "draw_batch", "Trainer"]


@dataclass(frozen=True)
class TrainConfig:
    """How to train. `batch_size` is the global batch (split across ranks under DDP)."""

    schedule: str = "linear"
    num_steps: int = 1000  # T
    prediction: str = "eps"  # 'eps' (DDPM), 'x0' or 'v'
    batch_size: int = 128
    lr: float = 2e-3
    lr_schedule: str = "cosine"  # 'cosine' decays to 0 at the end of the run; 'constant'
    warmup_steps: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    # reached after a warm-up: decay_k = min(ema_decay, (1 + k) / (10 + k)), so 0.999 only from about step 9,000; a
    # shorter run (3 minutes of digits is ~2,500 steps) averages over about its last k / 9 steps whatever this says
    ema_decay: float = 0.999
    max_steps: int = 2000
    max_minutes: float | None = None  # stop after this much wall-clock time, whichever comes first
    seed: int = 0
    log_every: int = 50
    num_buckets: int = 10  # loss is also tracked per t-bucket of width T / num_buckets
    amp: bool = True  # bf16 autocast, on CUDA only
    # the forward and backward passes on a bfloat16 copy of the network, whose float32 gradients AdamW (or Muon)
    # applies to the float32 weights; EMA, clipping and checkpoints stay float32. For CPUs with bfloat16
    # instructions (AVX-512 BF16, AMX): on the project's CPU the digits UNet trains 1.12-1.15x as fast, with
    # the same held-out loss per step (benchmarks/README.md, session 19); elsewhere bfloat16 is emulated and
    # 2-20x slower (LowPrecision warns). Single process only.
    bf16: bool = False
    compile: bool = False  # torch.compile the network (CUDA; on CPU it compiles slowly and gains little)
    channels_last: bool = True
    min_snr_gamma: float | None = None  # Min-SNR-γ loss weighting (None: plain L_simple)
    posterior_target: bool = False  # regress on E[target | x_t] over the training set (see training_losses)
    hflip: bool = False  # mirror each training image left to right with probability 1/2 (DDPM's CIFAR-10 runs)
    optimizer: str = "adamw"  # 'adamw', or 'muon': Muon on hidden weights, AdamW on the rest (ddpm_utils.optim)
    muon_lr_ratio: float = 3.0  # Muon's step relative to AdamW's, after RMS matching (optimizer='muon' only)

    def __post_init__(self):
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"lr_schedule must be 'cosine' or 'constant', got {self.lr_schedule!r}")
        if self.batch_size < 1 or self.max_steps < 1 or not 0 < self.lr < math.inf:  # (nan fails `lr <= 0` too)
            raise ValueError("batch_size, max_steps and lr must be positive (lr a finite number)")
        # each of these would train without an error and give a wrong network: refused by name
        if not 0.0 <= self.ema_decay <= 1.0:  # above 1 the EMA diverges from the weights
            raise ValueError(f"ema_decay must lie in [0, 1], got {self.ema_decay}")
        if self.grad_clip is not None and not 0.0 <= self.grad_clip < math.inf:  # a negative norm flips the gradient
            raise ValueError(
                f"grad_clip must be a non-negative max norm (0 or None: no clipping), got {self.grad_clip}"
            )
        if not 0.0 <= self.weight_decay < math.inf:
            raise ValueError(f"weight_decay must be a non-negative number, got {self.weight_decay}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.max_minutes is not None and not 0.0 < self.max_minutes < math.inf:
            raise ValueError(f"max_minutes must be a positive number of minutes or None, got {self.max_minutes}")
        if self.log_every < 1 or self.num_buckets < 1:
            raise ValueError(f"log_every and num_buckets must be >= 1, got {self.log_every} and {self.num_buckets}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not self.muon_lr_ratio > 0:
            raise ValueError(f"muon_lr_ratio must be positive, got {self.muon_lr_ratio}")
        if self.min_snr_gamma is not None and not self.min_snr_gamma > 0:
            raise ValueError(f"min_snr_gamma must be positive or None, got {self.min_snr_gamma}")
        if self.hflip and self.posterior_target:
            raise ValueError(
                "hflip and posterior_target exclude each other: E[target | x_t] is computed over the training set "
                "as given, which mirrored images are not part of"
            )


def draw_batch(
    data: torch.Tensor, batch_size: int, num_steps: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Steps 2-4 of Algorithm 1: x_0 drawn with replacement from `data`, t uniform, ε ~ N(0, I).

    The generator lives on the CPU so that runs are reproducible across devices.
    Returns x0 (B, ...), t (B,) 0-based, noise (B, ...), all on the CPU.
    """
    index = torch.randint(0, len(data), (batch_size,), generator=generator)
    t = torch.randint(0, num_steps, (batch_size,), generator=generator)
    noise = torch.randn((batch_size, *data.shape[1:]), generator=generator, dtype=data.dtype)
    return data[index.to(data.device)].cpu(), t, noise


def random_hflip(x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image (B, C, H, W) mirrored left to right with probability 1/2, the choices drawn from `generator`."""
    if x0.dim() != 4:
        raise ValueError(f"hflip needs images (B, C, H, W), got shape {tuple(x0.shape)}")
    flip = torch.rand(len(x0), generator=generator) < 0.5
    return torch.where(flip[:, None, None, None].to(x0.device), x0.flip(-1), x0)


def training_losses(
    model: nn.Module,
    schedule: Schedule,
    x0: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
    prediction: str = "eps",
    min_snr_gamma: float | None = None,
    reference: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-example L_simple for given (x_0, t, ε). [DDPM Eq. 14]  Returns (B,).

    The target is ε for 'eps', x_0 for 'x0' and v = √ᾱ ε - √(1-ᾱ) x_0 for 'v'.
    With `reference` (the training set, (N, ...)) the target is replaced by its posterior mean given
    x_t under the empirical distribution, E[ε | x_t] etc. (`analytic.empirical_x0_mean`): the
    Rao-Blackwellised target of notebook 03, as in Stable Target Field [Xu et al. 2023]. Since
    E_ε‖ε_θ - ε‖² = ‖ε_θ - E[ε | x_t]‖² + Var(ε | x_t), the loss differs from L_simple by a term that
    does not depend on θ: same minimum, same expected gradient, less noise in each step's gradient.
    With `min_snr_gamma` = γ each example is weighted so that, whatever the target, the loss equals
    the x_0-prediction error times min(SNR_t, γ) [Min-SNR, Hang et al. 2023]: the low-noise steps,
    which L_simple already over-weights relative to their effect on samples, stop dominating.
    """
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
    xt = q_sample(schedule, x0, t, noise=noise)
    if reference is not None:  # (x_0, ε) -> (E[x_0 | x_t], E[ε | x_t]); x_t is unchanged
        x0 = empirical_x0_mean(schedule, xt, t, reference)
        noise = eps_from_x0(schedule, xt, t, x0)
    target = output_from_eps_and_x0(schedule, t, noise, x0, prediction)
    loss = loss_simple(model(xt, t).float(), target.float())
    if min_snr_gamma is None:
        return loss
    snr = schedule.gather("snr", t, loss)  # (B,)
    clipped = snr.clamp(max=min_snr_gamma)
    # ‖ε̂-ε‖² = SNR ‖x̂0-x0‖², ‖v̂-v‖² = (1+SNR) ‖x̂0-x0‖²: divide those factors out, multiply min(SNR, γ) in
    weight = {"eps": clipped / snr, "x0": clipped, "v": clipped / (snr + 1)}[prediction]
    return loss * weight


def _dist():
    """(rank, world_size) of the running torch.distributed group, or (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class Trainer:
    """Holds the network, its EMA, the optimiser, the schedule and the random state of one run."""

    def __init__(self, model: nn.Module, data: torch.Tensor, config: TrainConfig = TrainConfig(), device="cpu"):
        if not isinstance(data, torch.Tensor) or not data.is_floating_point() or data.dim() < 2:
            raise ValueError(f"data must be a floating-point tensor (N, ...), got {getattr(data, 'shape', data)}")
        low, high = (v.item() for v in torch.aminmax(data)) if len(data) else (math.nan, math.nan)  # NaN propagates
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(
                f"data must hold at least one example and only finite values, got shape {tuple(data.shape)}"
            )
        # images in [0, 1] or [0, 255] (what image libraries give) have no negative values; [-1, 1] ones do
        if data.dim() == 4 and (low >= 0 or max(high, -low) > 1.5 and share_beyond(data, 1.5) > 0.01):
            warnings.warn(
                f"the images span [{low:.3g}, {high:.3g}]: DDPM trains on images scaled "
                "to [-1, 1] (its prior N(0, I) at t = T, the decoder's bins, the samplers' clipping assume it); "
                "map them there first (ddpm_utils.data.to_model_range)",
                stacklevel=2,
            )
        if config.hflip and data.dim() != 4:
            raise ValueError(f"hflip mirrors images (N, C, H, W); the data has shape {tuple(data.shape)}")
        self.config = config
        self.device = torch.device(device)
        self.rank, self.world_size = _dist()
        if config.batch_size % self.world_size:
            raise ValueError(f"batch_size {config.batch_size} is not divisible by {self.world_size} ranks")
        if config.bf16 and self.world_size > 1:
            raise ValueError(
                "bf16 trains a bfloat16 copy of the network in one process; under torchrun use a GPU, where "
                "amp=True (bf16 autocast, the default) does the same job"
            )
        self.data = data
        # float64 once here, so that empirical_x0_mean does not convert the whole set every step
        self._reference = data.to(self.device, torch.float64) if config.posterior_target else None
        self.schedule = make_schedule(config.schedule, config.num_steps)
        self.model = model.to(self.device)
        low_on_cpu = config.bf16 and self.device.type == "cpu"  # bfloat16 is faster contiguous there
        self._channels_last = config.channels_last and data.dim() == 4 and not low_on_cpu
        if self._channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        if config.optimizer == "muon":
            self.optimizer = MuonAdamW(
                muon_parameter_groups(self.model),
                lr=config.lr,
                weight_decay=config.weight_decay,
                muon_lr_ratio=config.muon_lr_ratio,
            )
        else:  # fused=True runs the whole AdamW update in one kernel (CPU and CUDA), not a loop over tensors
            self.optimizer = torch.optim.AdamW(
                self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.999), fused=True
            )
        self._ema_params = list(self.ema.parameters())
        self._params = list(self.model.parameters())
        self.generator = torch.Generator().manual_seed(config.seed)
        self.step = 0
        self.history: dict[str, list] = {"step": [], "loss": [], "bucket_loss": [], "lr": []}
        self._net = self.model
        self._low = None
        if config.bf16:  # the copy that runs forward and backward (contiguous on a CPU: faster in bfloat16 there)
            from .sampling import LowPrecision

            self._net = self._low = LowPrecision(self.model, torch.bfloat16)
            self._low_params = list(self._low.model.parameters())
            self._low_buffers = list(self._low.model.buffers())
        if self.world_size > 1:
            self._net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if config.compile:
            self._net = torch.compile(self._net)
        self._window = self._new_window()

    # ---- one step -------------------------------------------------------------------------
    def _new_window(self):
        return {
            "sum": 0.0,
            "n": 0,
            "bucket_sum": torch.zeros(self.config.num_buckets),
            "bucket_n": torch.zeros(self.config.num_buckets),
        }

    def lr_at(self, progress: float) -> float:
        """Learning rate after linear warm-up, then constant or cosine-decayed with `progress` in [0, 1]."""
        cfg = self.config
        warm = min(1.0, (self.step + 1) / max(1, cfg.warmup_steps))
        decay = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))) if cfg.lr_schedule == "cosine" else 1.0
        return cfg.lr * warm * decay

    def train_step(self, progress: float | None = None) -> float:
        """One optimiser step on one global batch; returns the mean loss of this rank's slice."""
        cfg = self.config
        self.model.train()
        if self._low is not None:  # from the float32 weights as they are now (also after load_state_dict or edits)
            self._low.train()
            with torch.no_grad():
                torch._foreach_copy_(self._low_params, self._params)
                for b_low, b in zip(self._low_buffers, self.model.buffers()):
                    b_low.copy_(b)
        x0, t, noise = draw_batch(self.data, cfg.batch_size, cfg.num_steps, self.generator)
        if cfg.hflip:  # drawn for the whole global batch, so every rank mirrors the same images
            x0 = random_hflip(x0, self.generator)
        per_rank = cfg.batch_size // self.world_size
        part = slice(self.rank * per_rank, (self.rank + 1) * per_rank)
        x0, t, noise = (v[part].to(self.device) for v in (x0, t, noise))
        if self._channels_last:
            x0, noise = (
                x0.contiguous(memory_format=torch.channels_last),
                noise.contiguous(memory_format=torch.channels_last),
            )
        lr = self.lr_at(self.step / cfg.max_steps if progress is None else progress)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.amp and self.device.type == "cuda"):
            losses = training_losses(  # (B,)
                self._net, self.schedule, x0, t, noise, cfg.prediction, cfg.min_snr_gamma, self._reference
            )
        loss = losses.mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"the training loss became non-finite ({loss.item()}) at step {self.step}; stopping. "
                "The last checkpoint written (if any) is left intact; lower the learning rate or check the data."
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self._low is not None:  # the bfloat16 copy's gradients, in float32, are the float32 weights' gradients
            for p, p_low in zip(self._params, self._low_params):
                p.grad = None if p_low.grad is None else p_low.grad.float()
                p_low.grad = None
            with torch.no_grad():  # and what its forward pass updated (BatchNorm's running statistics, say) is kept
                for b, b_low in zip(self.model.buffers(), self._low_buffers):
                    b.copy_(b_low)
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.step += 1
        decay = min(cfg.ema_decay, (1 + self.step) / (10 + self.step))
        with torch.no_grad():  # θ_ema ← decay θ_ema + (1 - decay) θ
            torch._foreach_lerp_(self._ema_params, self._params, 1 - decay)
            for b_ema, b in zip(self.ema.buffers(), self.model.buffers()):
                b_ema.copy_(b)
        self._record(losses.detach().cpu(), t.cpu(), lr)
        return loss.item()

    def _record(self, losses: torch.Tensor, t: torch.Tensor, lr: float) -> None:
        w, cfg = self._window, self.config
        w["sum"] += losses.sum().item()
        w["n"] += len(losses)
        bucket = (t * cfg.num_buckets) // cfg.num_steps
        w["bucket_sum"].index_add_(0, bucket, losses)
        w["bucket_n"].index_add_(0, bucket, torch.ones_like(losses))
        if self.step % cfg.log_every == 0:
            self.history["step"].append(self.step)
            self.history["loss"].append(w["sum"] / w["n"])
            self.history["bucket_loss"].append((w["bucket_sum"] / w["bucket_n"].clamp(min=1)).tolist())
            self.history["lr"].append(lr)
            self._window = self._new_window()

    # ---- the loop -------------------------------------------------------------------------
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
        """Train until step `max_steps` (total, counting resumed steps; at most `config.max_steps`)
        or `max_minutes` of wall clock.

        The learning-rate schedule runs over `config.max_steps`, or over `max_minutes` if that is
        nearer. `callback(trainer)` runs
        every `callback_every` steps (e.g. to draw a sample grid); a checkpoint is written every
        `checkpoint_every` steps and at the end, by rank 0 only.
        """
        from tqdm import tqdm

        cfg = self.config
        if max_minutes is not None and not 0.0 < max_minutes < math.inf:  # 0 or less would return untrained weights
            raise ValueError(f"max_minutes must be a positive number of minutes or None, got {max_minutes}")
        for name, every in (("callback_every", callback_every), ("checkpoint_every", checkpoint_every)):
            if every is not None and every < 0:  # `step % -1 == 0` would fire at every step
                raise ValueError(f"{name} must be >= 0 (0 or None: never), got {every}")
        if callback is not None and not callback_every:  # given a callback, "never" is a forgotten argument
            raise ValueError(
                f"a callback needs callback_every >= 1 (steps between calls); with {callback_every} it never runs"
            )
        if max_steps is not None and not 0 <= max_steps <= cfg.max_steps:  # was capped at cfg.max_steps silently
            raise ValueError(
                f"max_steps={max_steps} lies outside [0, config.max_steps={cfg.max_steps}], the length the "
                "learning-rate schedule runs over: to train longer, set TrainConfig(max_steps=...) "
                "(Trainer.resume(..., max_steps=...) extends a saved run)"
            )
        if checkpoint_path is not None and self.rank == 0:  # before the training whose result it would hold
            check_writable(checkpoint_path)
        stop_at = cfg.max_steps if max_steps is None else max_steps
        max_minutes = max_minutes if max_minutes is not None else cfg.max_minutes
        start, first = time.perf_counter(), self.step
        bar = tqdm(total=stop_at, initial=self.step, disable=not progress or self.rank != 0, mininterval=10.0, ncols=90)
        while self.step < stop_at:
            elapsed = self._minutes_since(start) if max_minutes is not None else 0.0
            if max_minutes is not None and elapsed >= max_minutes:
                break
            # the learning-rate schedule always runs over the configured length (cfg.max_steps), so
            # stopping early and resuming follows the same curve as one uninterrupted run
            frac = self.step / cfg.max_steps
            if max_minutes is not None and self.step > first:
                frac = max(frac, elapsed / max_minutes)
            self.train_step(progress=frac)
            bar.update(1)
            if self.step % cfg.log_every == 0:
                bar.set_postfix(loss=f"{self.history['loss'][-1]:.4f}")
            if callback is not None and callback_every and self.step % callback_every == 0:
                callback(self)
            if checkpoint_path is not None and checkpoint_every and self.step % checkpoint_every == 0:
                self.save(checkpoint_path)
        bar.close()
        if checkpoint_path is not None:
            self.save(checkpoint_path)
        return self

    def _minutes_since(self, start: float) -> float:
        """Wall-clock minutes since `start` by rank 0's clock, the same number on every rank.

        Under DDP each rank's own clock differs (they start apart and wait on each other), so ranks
        reading their own would stop at different steps (the rest then hang in the next all-reduce)
        and follow different learning rates (the replicas drift apart).
        """
        minutes = (time.perf_counter() - start) / 60
        if self.world_size > 1:
            shared = torch.tensor([minutes], dtype=torch.float64, device=self.device)
            torch.distributed.broadcast(shared, src=0)
            minutes = shared.item()
        return minutes

    # ---- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "model_config": model_config_dict(self.model),
            "train_config": asdict(self.config),
            "schedule": self.schedule.state_dict(),
            "data_shape": list(self.data.shape[1:]),  # one example's shape: what `sample` draws by default
            "model": {k: v.contiguous() for k, v in self.model.state_dict().items()},
            "ema": {k: v.contiguous() for k, v in self.ema.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "generator_state": self.generator.get_state(),
            "torch_rng_state": torch.get_rng_state(),
            "history": self.history,
        }

    def save(self, path: str | Path) -> None:
        """Write a checkpoint atomically (rank 0 only; other ranks wait for it)."""
        if self.rank == 0:
            save_checkpoint(self.state_dict(), path)
        if self.world_size > 1:
            torch.distributed.barrier()

    def load_state_dict(self, state: dict) -> None:
        missing = [key for key in ("ema", "generator_state") if state.get(key) is None]
        if missing:
            raise ValueError(
                f"this checkpoint holds sampling weights only (as `export` writes them, and as the shipped model is): "
                f"it has no {' or '.join(missing)} to continue a run from; resume from the checkpoint `train` wrote"
            )
        if state.get("model_config") != model_config_dict(self.model):
            raise ValueError(
                f"checkpoint model config {state.get('model_config')} differs from this trainer's "
                f"{model_config_dict(self.model)}"
            )
        trained_on = state.get("data_shape")
        if trained_on is not None and list(trained_on) != list(self.data.shape[1:]):
            raise ValueError(
                f"the checkpoint was trained on examples of shape {tuple(trained_on)}, but this data's are "
                f"{tuple(self.data.shape[1:])}: resume with the data it was trained on"
            )
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        if state.get("optimizer") is not None:
            saved = (state.get("train_config") or {}).get("optimizer", "adamw")
            if saved != self.config.optimizer:
                raise ValueError(
                    f"the checkpoint's optimizer state is {saved!r}, this trainer uses {self.config.optimizer!r}; "
                    "resume with the same optimizer"
                )
            self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.generator.set_state(state["generator_state"])
        if state.get("torch_rng_state") is not None:
            torch.set_rng_state(state["torch_rng_state"])
        self.history = state.get("history") or self.history

    @classmethod
    def resume(cls, path: str | Path, data: torch.Tensor, device="cpu", **overrides) -> Trainer:
        """Rebuild a trainer from a checkpoint and continue where it stopped."""
        from .checkpoint import build_model

        state = load_checkpoint(path)
        config = TrainConfig(**{**state["train_config"], **overrides})
        trainer = cls(build_model(state["model_config"]), data, config, device=device)
        trainer.load_state_dict(state)
        return trainer
