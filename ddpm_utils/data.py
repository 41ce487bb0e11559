"""Data sets: the embedded 8×8 digits (default) and 2-D toy sets (MNIST and CIFAR-10: `extras.datasets`).

Images are scaled to [-1, 1], the range the forward process assumes: a pixel with integer value
v in 0..v_max becomes 2 v / v_max - 1, so the digits (v_max = 16) lie on K = 17 levels and 8-bit
images (v_max = 255) on K = 256. `to_model_range` and `from_model_range` convert both ways.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .analytic import GaussianMixture

__all__ = [
    "DIGITS_LEVELS",
    "to_model_range",
    "from_model_range",
    "load_digits",
    "make_moons",
    "make_swiss_roll",
    "toy_gaussian_mixture",
    "load_toy",
]

DIGITS_LEVELS = 17  # scikit-learn's digits take integer values 0..16


def to_model_range(x: torch.Tensor, max_value: float) -> torch.Tensor:
    """Map values in [0, max_value] to [-1, 1]: 2 x / max_value - 1."""
    return 2.0 * x / max_value - 1.0


def from_model_range(x: torch.Tensor, max_value: float) -> torch.Tensor:
    """Map [-1, 1] back to [0, max_value] (clamped): (x + 1) / 2 * max_value."""
    return ((x.clamp(-1, 1) + 1.0) / 2.0 * max_value).clamp(0, max_value)


def load_digits(split: str = "train", test_fraction: float = 0.2, seed: int = 0, return_labels: bool = False):
    """scikit-learn's 1,797 8×8 handwritten digits, bundled with scikit-learn (no download).

    A fixed permutation (from `seed`) puts `test_fraction` of the images in 'test' and the rest in
    'train'; 'all' returns every image. Returns float32 images (N, 1, 8, 8) in [-1, 1] on 17
    levels, and the labels (N,) when `return_labels`.
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    bunch = _sk_load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32))[:, None]  # (N, 1, 8, 8)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(test_fraction * len(images)))
    if split == "test":
        order = order[:n_test]
    elif split == "train":
        order = order[n_test:]
    x = to_model_range(images[order], DIGITS_LEVELS - 1)
    return (x, labels[order]) if return_labels else x


def make_moons(n: int, noise: float = 0.05, generator: torch.Generator | None = None) -> torch.Tensor:
    """Two interleaving half circles, standardised to roughly unit scale. Returns (n, 2) float32."""
    n_top = n // 2
    angle = torch.rand(n, generator=generator) * math.pi
    top = torch.arange(n) < n_top
    x = torch.where(top, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(top, torch.sin(angle), 0.5 - torch.sin(angle))
    pts = torch.stack([x, y], dim=1) + noise * torch.randn(n, 2, generator=generator)
    return ((pts - torch.tensor([0.5, 0.25])) / torch.tensor([0.87, 0.5])).float()


def make_swiss_roll(n: int, noise: float = 0.05, generator: torch.Generator | None = None) -> torch.Tensor:
    """A 2-D swiss roll (spiral), scaled to roughly [-1, 1]. Returns (n, 2) float32."""
    turn = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator))
    pts = torch.stack([turn * torch.cos(turn), turn * torch.sin(turn)], dim=1) / 10.0
    return (pts + noise * torch.randn(n, 2, generator=generator)).float()


def toy_gaussian_mixture() -> GaussianMixture:
    """Eight Gaussians on a circle of radius 1 with std 0.1: a 2-D set with a closed-form density."""
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    means = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return GaussianMixture(torch.ones(8), means, torch.full((8,), 0.1))


def load_toy(name: str, n: int = 4096, seed: int = 0) -> torch.Tensor:
    """A seeded 2-D toy set: 'moons', 'swiss_roll' or 'gaussian_mixture'. Returns (n, 2) float32."""
    if isinstance(n, bool) or not hasattr(n, "__index__") or n < 1:  # any integer, numpy's included
        raise ValueError(f"n must be a positive int (points to draw), got {n!r}")
    n, g = int(n), torch.Generator().manual_seed(seed)
    if name == "moons":
        return make_moons(n, generator=g)
    if name == "swiss_roll":
        return make_swiss_roll(n, generator=g)
    if name == "gaussian_mixture":
        return toy_gaussian_mixture().sample(n, generator=g).float()
    raise ValueError(f"unknown toy data set {name!r}; expected 'moons', 'swiss_roll' or 'gaussian_mixture'")
