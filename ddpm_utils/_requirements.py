"""What ddpm_utils needs of its environment, checked when it is imported."""

import re

import torch

MIN_TORCH = (2, 4)


def check_torch(version: str) -> None:
    """Refuse a PyTorch older than MIN_TORCH by name: on 2.3 the Trainer would fail later, and less clearly,
    in AdamW(fused=True), which has no CPU kernel there."""
    found = tuple(int(v) for v in re.findall(r"\d+", version)[:2])
    if found < MIN_TORCH:
        raise ImportError(
            f"ddpm_utils needs PyTorch {MIN_TORCH[0]}.{MIN_TORCH[1]} or newer; this environment has {version} "
            "(install a newer build first: see README, 'Which PyTorch')"
        )


check_torch(torch.__version__)
