"""Guidance by a worse model (autoguidance) for any sampler: a wrapper around the network."""

from __future__ import annotations

import math

import torch

__all__ = ["Guided"]


class Guided(torch.nn.Module):
    """`guide(x_t, t) + w · (model(x_t, t) - guide(x_t, t))`: a network steered away from a worse model.

    Autoguidance [Karras et al. 2024, "Guiding a diffusion model with a bad version of itself"]: the
    guide is a weaker version of the *same* model (smaller, or trained for less), whose errors are of
    the same kind as the network's, only larger. Where the two disagree, the disagreement points along
    those errors, and w > 1 moves further away from them; Karras et al. report that a guide degraded in
    a different way does not help. At each t the combined score is ∇log p_θ + (w - 1) ∇log(p_θ / p_guide);
    guiding at every t does not make the sampler draw from p_θ^w p_guide^(1-w). Classifier-free
    guidance is the case where the weaker model is the unconditional one. `GaussianData.fit(train)`'s
    optimal denoiser can serve as a guide too, but that is not autoguidance: the Gaussian fit's errors
    are not the network's, and guiding by it trades the samples' variety for their fidelity.
    w = 1 is the network alone, w = 0 the guide alone. Both outputs must use the same
    parameterisation ('eps', 'x0' or 'v'); the combination then means the same in all three, because
    the conversions between them are affine in the output at fixed (x_t, t) and the weights sum to 1.
    Costs one guide evaluation per network evaluation.

    `interval=(lo, hi)` guides only at timesteps lo <= t <= hi (0-based) and returns the network
    alone elsewhere, without calling the guide: guidance in a limited interval [Kynkäänniemi et al.
    2024].
    """

    def __init__(self, model, guide, weight: float, interval: tuple[int, int] | None = None):
        super().__init__()
        weight = float(weight)
        if not math.isfinite(weight):
            raise ValueError(f"guidance weight must be a finite number, got {weight}")
        if interval is not None:
            try:
                ok = len(interval) == 2 and not any(isinstance(v, bool) or int(v) != v for v in interval)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"interval must be two integer timesteps (lo, hi), got {interval!r}")
            interval = (int(interval[0]), int(interval[1]))
            if not 0 <= interval[0] <= interval[1]:
                raise ValueError(f"interval must satisfy 0 <= lo <= hi, got {interval}")
        self.model, self.guide, self.weight, self.interval = model, guide, weight, interval

    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = self.model(xt, t)
        if self.weight == 1.0:
            return out
        inside = None
        if self.interval is not None:
            inside = (t >= self.interval[0]) & (t <= self.interval[1])
            if not inside.any():
                return out
        ref = self.guide(xt, t)
        if ref.shape != out.shape:
            raise ValueError(f"the guide returned shape {tuple(ref.shape)} but the network {tuple(out.shape)}")
        guided = torch.lerp(ref.to(out.dtype), out, self.weight)
        if inside is None or inside.all():
            return guided
        return torch.where(inside.reshape(-1, *[1] * (out.dim() - 1)), guided, out)
