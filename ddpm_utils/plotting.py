"""Plots used across the notebooks: image grids and 2-D scatter plots."""

from __future__ import annotations

import torch

__all__ = ["image_grid", "show_grid", "save_grid", "scatter2d"]


# One-channel grids are drawn inverted (digits: white background, dark strokes), so the value that
# separates the tiles is low: it shows as a light grey line, not as a black one.
_GREY_PAD = 0.2


def _display_pad(images: torch.Tensor) -> float:
    return _GREY_PAD if images.dim() == 4 and images.shape[1] == 1 else 1.0


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 1, pad_value: float = 1.0) -> torch.Tensor:
    """Tile (B, C, H, W) images in [-1, 1] into one (H', W', C) array in [0, 1]; `nrow` images per row,
    separated by `pad` pixels of `pad_value` (in the output's [0, 1] scale)."""
    if images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W), got {tuple(images.shape)}")
    if not 0.0 <= pad_value <= 1.0:
        raise ValueError(f"pad_value must lie in [0, 1], got {pad_value}")
    if pad < 0:
        raise ValueError(f"pad must be a non-negative number of pixels, got {pad}")
    if nrow is not None and nrow < 1:
        raise ValueError(f"nrow must be a positive number of images per row, got {nrow}")
    b, c, h, w = images.shape
    nrow = nrow or max(1, int(round(b**0.5)))
    ncol = -(-b // nrow)
    grid = torch.full((c, ncol * (h + pad) + pad, nrow * (w + pad) + pad), float(pad_value))
    x = (images.detach().float().cpu().clamp(-1, 1) + 1) / 2
    for i in range(b):
        r, col = divmod(i, nrow)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w] = x[i]
    return grid.permute(1, 2, 0)


def show_grid(images: torch.Tensor, nrow: int | None = None, ax=None, title: str | None = None):
    """Draw `image_grid(images)` on a matplotlib axis (one channel: inverted grey scale, light grey pad)."""
    import matplotlib.pyplot as plt

    grid = image_grid(images, nrow, pad_value=_display_pad(images))
    ax = ax or plt.subplots(figsize=(4, 4))[1]
    ax.imshow(
        (grid.squeeze(-1) if grid.shape[-1] == 1 else grid).numpy(),
        cmap="gray_r" if grid.shape[-1] == 1 else None,
        vmin=0,
        vmax=1,
    )
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def save_grid(images: torch.Tensor, path, nrow: int | None = None) -> None:
    """Write a PNG of `image_grid(images)` (one channel: white background, dark strokes, light grey pad)."""
    import matplotlib.pyplot as plt

    grid = image_grid(images, nrow, pad_value=_display_pad(images))
    if grid.shape[-1] == 1:
        plt.imsave(path, 1 - grid.squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        plt.imsave(path, grid.numpy())


def scatter2d(points: torch.Tensor, ax=None, title: str | None = None, **kwargs):
    """Scatter (N, 2) points with equal axes."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(4, 4))[1]
    pts = points.detach().cpu()
    ax.scatter(pts[:, 0], pts[:, 1], s=kwargs.pop("s", 2), alpha=kwargs.pop("alpha", 0.5), **kwargs)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if title:
        ax.set_title(title)
    return ax
