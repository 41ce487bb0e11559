"""Input validation shared by every module: clear errors that name the argument."""

from __future__ import annotations

import torch


def check_float_tensor(x, name: str, min_rank: int = 1, rank: int | None = None) -> None:
    """Raise TypeError/ValueError unless `x` is a floating-point tensor of the expected rank."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if rank is not None and x.dim() != rank:
        raise ValueError(f"{name} must have rank {rank}, got shape {tuple(x.shape)}")
    if x.dim() < min_rank:
        raise ValueError(f"{name} must have rank >= {min_rank} (batch first), got shape {tuple(x.shape)}")


def check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_b} must have the shape of {name_a} {tuple(a.shape)}, got {tuple(b.shape)}")
    if a.device != b.device:
        raise ValueError(f"{name_b} is on {b.device} but {name_a} is on {a.device}")


def check_timesteps(t, num_steps: int, batch: int | None = None, device: torch.device | None = None) -> None:
    """`t` must be an integer tensor of shape (B,) with 0 <= t < num_steps."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"t must be a torch.Tensor of integer timesteps, got {type(t).__name__}")
    if t.is_floating_point() or t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"t must be an integer (long) tensor, got dtype {t.dtype}")
    if t.dim() != 1:
        raise ValueError(f"t must have shape (B,), got shape {tuple(t.shape)}")
    if batch is not None and t.shape[0] != batch:
        raise ValueError(f"t has {t.shape[0]} timesteps but the batch has {batch} examples")
    if device is not None and t.device != device:
        raise ValueError(f"t is on {t.device} but the data is on {device}")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_steps):
        raise ValueError(
            f"t must lie in [0, {num_steps}) (0-based; the paper's t is t + 1), "
            f"got values in [{int(t.min())}, {int(t.max())}]"
        )


def share_beyond(x: torch.Tensor, bound: float) -> float:
    """The fraction of x's values outside [-bound, bound], without a float copy of x (data sets can be large)."""
    return ((x > bound).sum() + (x < -bound).sum()).item() / x.numel()


def non_finite_rows(x: torch.Tensor) -> int:
    """How many rows of x (samples along its first dimension) hold a NaN or an infinity."""
    return int((~torch.isfinite(x.detach().reshape(len(x), -1)).all(dim=1)).sum()) if x.numel() else 0
