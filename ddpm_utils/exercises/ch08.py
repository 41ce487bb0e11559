"""Checkers for chapter 08, conditioning and classifier-free guidance."""

from __future__ import annotations

import math

import torch

from . import checker, close, same_function


def _guided(eps_cond, eps_uncond, w):
    return (1 + w) * eps_cond - w * eps_uncond


@checker("08.1")
def guided_prediction(fn):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 1, 8, 8, generator=g), torch.randn(3, 1, 8, 8, generator=g)
    inputs = [(a, b, w) for w in (0.0, -1.0, 0.5, 2.0, 7.0)] + [(a[0, 0, 0], b[0, 0, 0], 3.0)]
    return same_function(fn, _guided, inputs)


@checker("08.2")
def guidance_scale(answer):
    return close(answer, 6.5, rtol=0, atol=1e-9, what="w")


@checker("08.3")
def label_dropout(fn):
    if not callable(fn):
        return False, f"expected a function, got {type(fn).__name__}"
    n, p, num_classes = 100_000, 0.2, 10
    y = torch.randint(0, num_classes, (n,), generator=torch.Generator().manual_seed(1))
    out = fn(y.clone(), p, num_classes, torch.Generator().manual_seed(2))
    out = torch.as_tensor(out)
    if out.shape != y.shape:
        return False, f"returned shape {tuple(out.shape)}, expected {tuple(y.shape)}"
    dropped = out == num_classes
    if not torch.equal(out[~dropped], y[~dropped]):
        return False, "labels that were not dropped changed"
    share = dropped.double().mean().item()
    tol = 4 * math.sqrt(p * (1 - p) / n)
    if abs(share - p) > tol:
        return False, f"{share:.4f} of the labels were dropped, expected {p} ± {tol:.4f}"
    return True, f"dropped {share:.4f} of the labels (p = {p}); the rest are unchanged."
