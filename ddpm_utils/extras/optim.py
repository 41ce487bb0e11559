"""Muon for the network's hidden weights, AdamW for everything else: an optional optimiser for `Trainer`.

Muon [Jordan et al. 2024, "Muon: an optimizer for hidden layers"] keeps a momentum buffer per weight
matrix and steps along its *orthogonalised* direction: the buffer B = U S V^T is replaced by about
U V^T, computed without an SVD by five Newton-Schulz iterations. Every direction of the matrix then moves
at the same rate, instead of the few largest singular directions dominating the step. A convolution
filter (C_out, C_in, k, k) is treated as the matrix (C_out, C_in k k). Biases, normalisation scales,
and the network's first and last layers keep AdamW, as in the reference implementation.

Step size: the orthogonal update is multiplied by 0.2 sqrt(max(rows, cols)), which gives it the RMS of
a typical AdamW update [Liu et al. 2025, "Muon is scalable for LLM training"], so one learning rate can
drive both halves; `muon_lr_ratio` scales the Muon half relative to the AdamW half.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.adamw import adamw as adamw_step  # the functional form of torch.optim.AdamW

OPTIMIZERS = ("adamw", "muon")  # the choices of TrainConfig.optimizer
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # quintic Newton-Schulz coefficients of the reference implementation


def newton_schulz(matrix: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """Approximately orthogonalise a matrix: G = U S V^T -> U p(S / ||G||_F) V^T, near the polar factor U V^T.

    X <- X / ||G||_F, then `steps` times: A = X X^T; X <- a X + (b A + c A^2) X   (rows <= cols).
    Each step applies the odd quintic x -> a x + b x^3 + c x^5 to every singular value and keeps the
    singular vectors; its coefficients trade exact convergence to 1 for speed, so singular values not far
    below the largest land between about 0.7 and 1.2. Works in the input's dtype.
    """
    if matrix.dim() != 2:
        raise ValueError(f"newton_schulz needs a matrix, got shape {tuple(matrix.shape)}")
    a, b, c = NS_COEFFICIENTS
    wide = matrix.shape[0] <= matrix.shape[1]
    x = matrix if wide else matrix.T  # iterate on the smaller Gram matrix
    x = x / x.norm().clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x if wide else x.T


class MuonAdamW(torch.optim.Optimizer):
    """Muon on the parameter groups marked `muon=True`, AdamW on the others; one class, so that
    `state_dict()` / `load_state_dict()` cover both and a checkpoint resumes exactly.

    Muon group, per matrix W with gradient g (the update of `torch.optim.Muon` with nesterov and
    adjust_lr_fn="match_rms_adamw", extended to convolution filters):
        B <- momentum B + (1 - momentum) g;   D = (1 - momentum) g + momentum B
        W <- W (1 - lr wd) - lr muon_lr_ratio 0.2 sqrt(max(rows, cols)) newton_schulz(D as rows x cols)
    AdamW group: `torch.optim.adamw.adamw`, the step of torch.optim.AdamW (fused), with its betas and eps.
    """

    def __init__(
        self,
        param_groups: list[dict],
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        momentum: float = 0.95,
        muon_lr_ratio: float = 3.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        ns_steps: int = 5,
    ):
        if not lr > 0 or not muon_lr_ratio > 0:
            raise ValueError(f"lr and muon_lr_ratio must be positive, got {lr} and {muon_lr_ratio}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be non-negative, got {weight_decay}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        defaults = dict(
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            muon_lr_ratio=muon_lr_ratio,
            betas=betas,
            eps=eps,
            ns_steps=ns_steps,
            muon=False,
        )
        super().__init__(param_groups, defaults)
        for group in self.param_groups:
            if group["muon"]:
                for p in group["params"]:
                    if p.dim() < 2:
                        raise ValueError(f"Muon needs weights with 2 or more dimensions, got shape {tuple(p.shape)}")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                (self._muon if group["muon"] else self._adamw)(group, params)
        return loss

    def _muon(self, group: dict, params: list[torch.Tensor]) -> None:
        lr, momentum = group["lr"], group["momentum"]
        for p in params:
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p)
            buf = state["momentum_buffer"]
            buf.lerp_(p.grad, 1 - momentum)
            direction = p.grad.lerp(buf, momentum).reshape(p.shape[0], -1)  # (C_out, C_in k k)
            ortho = newton_schulz(direction.float(), group["ns_steps"]).to(p.dtype)
            scale = group["muon_lr_ratio"] * 0.2 * math.sqrt(max(direction.shape))
            p.mul_(1 - lr * group["weight_decay"])
            p.add_(ortho.reshape(p.shape), alpha=-lr * scale)

    def _adamw(self, group: dict, params: list[torch.Tensor]) -> None:
        """torch's own AdamW step (its functional form, fused) on this optimiser's state."""
        states = [self.state[p] for p in params]
        for p, state in zip(params, states):
            if "step" not in state:
                state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
        beta1, beta2 = group["betas"]
        adamw_step(
            params,
            [p.grad for p in params],
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [],
            [s["step"] for s in states],
            fused=True,
            amsgrad=False,
            beta1=beta1,
            beta2=beta2,
            lr=group["lr"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
        )


def muon_parameter_groups(model: nn.Module) -> list[dict]:
    """Split a network's parameters for `MuonAdamW`: hidden weights (2+ dimensions, both matrix sides > 1,
    not in a module named `conv_in` or `conv_out`) get Muon; biases, norms and the first and last layers
    get AdamW."""
    io = {id(p) for name in ("conv_in", "conv_out") if hasattr(model, name) for p in getattr(model, name).parameters()}
    hidden, rest = [], []
    for p in model.parameters():
        is_matrix = p.dim() >= 2 and p.shape[0] > 1 and p[0].numel() > 1
        (hidden if is_matrix and id(p) not in io else rest).append(p)
    return [dict(params=hidden, muon=True), dict(params=rest, muon=False)]
