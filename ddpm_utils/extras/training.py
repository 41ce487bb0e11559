"""The core `Trainer` with what the chapters do not teach: speed, several processes, other optimisers and losses.

`extras.Trainer(model, schedule, extras.TrainConfig(...), data)` takes the core's arguments; each option below
changes one hook of the core class (`draw_batch`, `backward`, `record`, `save`, ...), so `train_step` stays
Algorithm 1. Under `torchrun` (torch.distributed initialised) every rank draws the same global batch from the
same generator and keeps its own slice, and DDP averages the gradients: a step on N ranks with batch B each equals
a step on one process with batch N·B (for a network without dropout: each rank draws its own dropout masks), and a
checkpoint resumes on any number of ranks; rank 0 alone writes checkpoints.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from .. import training
from .losses import extended_losses, random_hflip
from .optim import OPTIMIZERS, MuonAdamW, muon_parameter_groups
from .precision import LowPrecision

__all__ = ["TrainConfig", "Trainer"]


@dataclass(frozen=True)
class TrainConfig(training.TrainConfig):
    """The core's fields, and the options of `extras.Trainer`."""

    optimizer: str = "adamw"  # 'adamw', or 'muon': Muon on hidden weights, AdamW on the rest (extras.optim)
    muon_lr_ratio: float = 3.0  # Muon's step relative to AdamW's, after RMS matching (optimizer='muon')
    min_snr_gamma: float | None = None  # Min-SNR-γ loss weighting (None: plain L_simple)
    posterior_target: bool = False  # regress on E[target | x_t] over the training set (less gradient noise)
    hflip: bool = False  # mirror each training image left to right with probability 1/2 (DDPM's CIFAR-10 runs)
    bf16: bool = False  # forward and backward on a bfloat16 copy, float32 weights (single process; CPUs with BF16)
    amp: bool = True  # bfloat16 autocast on CUDA
    channels_last: bool = True  # images and weights in the channels-last layout (faster convolutions on a CPU)
    compile: bool = False  # torch.compile the network (CUDA; on a CPU it compiles slowly and gains little)
    num_buckets: int = 10  # the loss is also logged per t-bucket of width T / num_buckets (history['bucket_loss'])

    def __post_init__(self):
        super().__post_init__()
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not self.muon_lr_ratio > 0 or self.num_buckets < 1:
            raise ValueError("muon_lr_ratio must be positive and num_buckets >= 1")
        if self.min_snr_gamma is not None and not self.min_snr_gamma > 0:
            raise ValueError(f"min_snr_gamma must be positive or None, got {self.min_snr_gamma}")
        if self.hflip and self.posterior_target:
            raise ValueError("hflip and posterior_target exclude each other (mirrored images are not in the set)")


def _dist() -> tuple[int, int]:
    """(rank, world_size) of the running torch.distributed group, or (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class Trainer(training.Trainer):
    """`ddpm_utils.Trainer` with the options of `extras.TrainConfig`."""

    config_class = TrainConfig

    def __init__(self, model, schedule, config: TrainConfig, data, labels=None, loss_fn=None):
        if not isinstance(config, TrainConfig):
            raise TypeError("extras.Trainer needs an extras.TrainConfig")
        self.rank, self.world_size = _dist()
        if config.batch_size % self.world_size:
            raise ValueError(f"batch_size {config.batch_size} is not divisible by {self.world_size} ranks")
        if config.bf16 and self.world_size > 1:
            raise ValueError("bf16 trains in one process; under torchrun use a GPU, where amp=True does the same job")
        if config.hflip and data.dim() != 4:
            raise ValueError(f"hflip mirrors images (N, C, H, W); the data has shape {tuple(data.shape)}")
        device = next(model.parameters()).device
        self._channels_last = config.channels_last and data.dim() == 4 and not (config.bf16 and device.type == "cpu")
        if self._channels_last:
            model = model.to(memory_format=torch.channels_last)
        if loss_fn is None:
            reference = data.to(device, torch.float64) if config.posterior_target else None  # converted once
            loss_fn = functools.partial(
                extended_losses, prediction=config.prediction, min_snr_gamma=config.min_snr_gamma, reference=reference
            )
        if config.amp and device.type == "cuda":
            loss_fn = _autocast(loss_fn)
        super().__init__(model, schedule, config, data, labels, loss_fn)
        if config.optimizer == "muon":
            self.optimizer = MuonAdamW(
                muon_parameter_groups(model), config.lr, config.weight_decay, muon_lr_ratio=config.muon_lr_ratio
            )
        self._low = None
        if config.bf16:  # the copy that runs forward and backward
            self.net = self._low = LowPrecision(model, torch.bfloat16)
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if config.compile:
            self.net = torch.compile(self.net)
        self.history["bucket_loss"] = []
        self._buckets = torch.zeros(2, config.num_buckets)  # (loss sums, counts) per t-bucket

    def draw_batch(self):
        x0, t, eps, y = super().draw_batch()  # the global batch, the same on every rank
        if self.config.hflip:
            x0 = random_hflip(x0, self.generator)
        per_rank = self.config.batch_size // self.world_size
        part = slice(self.rank * per_rank, (self.rank + 1) * per_rank)
        x0, t, eps, y = (v if v is None else v[part] for v in (x0, t, eps, y))
        if self._channels_last:
            x0, eps = (v.contiguous(memory_format=torch.channels_last) for v in (x0, eps))
        return x0, t, eps, y

    def train_step(self, progress: float | None = None) -> float:
        if self._low is not None:  # the bfloat16 copy from the float32 weights as they are now
            self._low.train()
            with torch.no_grad():
                for dst, src in zip(
                    [*self._low.parameters(), *self._low.buffers()], [*self.model.parameters(), *self.model.buffers()]
                ):
                    dst.copy_(src)
        return super().train_step(progress)

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()
        if self._low is not None:  # the copy's gradients, in float32, are the float32 weights' gradients
            for p, p_low in zip(self.model.parameters(), self._low.parameters()):
                p.grad = None if p_low.grad is None else p_low.grad.float()
                p_low.grad = None
            with torch.no_grad():  # and what its forward pass updated (BatchNorm's statistics, say) is kept
                for b, b_low in zip(self.model.buffers(), self._low.buffers()):
                    b.copy_(b_low)

    def record(self, losses: torch.Tensor, t: torch.Tensor) -> None:
        bucket = (t.cpu() * self.config.num_buckets) // self.schedule.num_steps
        self._buckets[0].index_add_(0, bucket, losses.float().cpu())
        self._buckets[1].index_add_(0, bucket, torch.ones(len(bucket)))
        if self.step % self.config.log_every == 0:
            self.history["bucket_loss"].append((self._buckets[0] / self._buckets[1].clamp(min=1)).tolist())
            self._buckets.zero_()
        super().record(losses, t)

    def train(self, *args, progress: bool = True, **kwargs):
        return super().train(*args, progress=progress and self.rank == 0, **kwargs)

    def minutes_since(self, start: float) -> float:
        """Rank 0's clock on every rank: ranks reading their own would stop at different steps and hang."""
        minutes = torch.tensor([super().minutes_since(start)], dtype=torch.float64, device=self.device)
        if self.world_size > 1:
            torch.distributed.broadcast(minutes, src=0)
        return minutes.item()

    def save(self, path) -> None:
        """Rank 0 writes the checkpoint; the other ranks wait for it."""
        if self.rank == 0:
            super().save(path)
        if self.world_size > 1:
            torch.distributed.barrier()

    def load_state_dict(self, state: dict) -> None:
        saved = (state.get("train_config") or {}).get("optimizer", "adamw")
        if state.get("optimizer") is not None and saved != self.config.optimizer:
            raise ValueError(f"the checkpoint's optimizer is {saved!r}, this trainer's {self.config.optimizer!r}")
        super().load_state_dict(state)


def _autocast(loss_fn):
    @functools.wraps(loss_fn)
    def wrapped(*args):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return loss_fn(*args)

    return wrapped
