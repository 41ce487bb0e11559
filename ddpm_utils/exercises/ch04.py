"""Checkers for chapter 04's exercises (notebooks/04_unet.ipynb)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import checker, same_function

__all__: list[str] = []


def _resblock_parameters(in_ch: int, out_ch: int, emb_dim: int, scale_shift: bool) -> int:
    """The reference count, taken from the library's own block."""
    from ..unet import ResBlock

    block = ResBlock(in_ch, out_ch, emb_dim, dropout=0.0, groups=1, scale_shift=scale_shift)
    return sum(p.numel() for p in block.parameters())


@checker("04.1")
def _resblock_count(fn):
    """fn(in_ch, out_ch, emb_dim, scale_shift) -> the number of parameters of a ResBlock."""
    if not callable(fn):
        return False, f"expected a function (in_ch, out_ch, emb_dim, scale_shift) -> int, got {type(fn).__name__}"
    cases = [(32, 32, 128, False), (32, 64, 128, False), (64, 128, 256, False), (96, 64, 128, True), (8, 8, 16, True)]
    for case in cases:
        got, want = fn(*case), _resblock_parameters(*case)
        if int(got) != want:
            return False, f"for (in_ch, out_ch, emb_dim, scale_shift) = {case} you count {got}, the block has {want}"
    return True, f"your formula gives the right count for all {len(cases)} blocks, with and without a 1x1 skip."


def _attention_reference(x, w_q, w_k, w_v, heads):
    """softmax(Q Kᵀ / √d) V per head, via PyTorch's fused kernel; x (B, C, H, W), w_* (C, C)."""
    b, c, h, w = x.shape
    flat = x.reshape(b, c, h * w)  # (B, C, N)

    def split(wt):  # (B, heads, N, d)
        return (wt @ flat).reshape(b, heads, c // heads, h * w).transpose(-1, -2)

    out = F.scaled_dot_product_attention(split(w_q), split(w_k), split(w_v))  # (B, heads, N, d)
    return out.transpose(-1, -2).reshape(b, c, h, w)


@checker("04.2")
def _multihead_attention(fn):
    """fn(x, w_q, w_k, w_v, heads) -> (B, C, H, W): multi-head self-attention without the output projection."""
    g = torch.Generator().manual_seed(42)
    inputs = []
    for b, c, h, w, heads in ((2, 8, 4, 4, 2), (1, 16, 2, 4, 4), (3, 6, 3, 3, 1)):
        x = torch.randn(b, c, h, w, generator=g)
        ws = [torch.randn(c, c, generator=g) / c**0.5 for _ in range(3)]
        inputs.append((x, *ws, heads))
    return same_function(fn, _attention_reference, inputs, rtol=1e-4, atol=1e-5)
