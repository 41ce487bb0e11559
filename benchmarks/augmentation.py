"""Does non-leaky augmentation lower the digits' FD plateau, or only delay copying?

    python benchmarks/augmentation.py [--steps 6000] [--p 0 0.5] [--seed 0] [--n 1000] [--seeds 7 8 9]

With 1,438 training digits, every recipe tried reaches FD_digits ~13-15 (unguided, DDIM-50) after about
2,500 steps, and longer training starts to copy training digits (benchmarks/README.md). Augmentation is the
usual remedy for small data sets; to keep it from leaking into the samples, the network is told which
augmentation it sees and samples are drawn with "none" [Karras et al. 2022, "Elucidating the design space of
diffusion-based generative models", App. D.2]. Here, with probability p, a training digit is shifted by
(dx, dy) in {-1, 0, 1}^2 (background padding) and mirrored left-right with probability 1/2; the label
(dx, dy, mirrored) enters through a zero-initialised linear map added to the timestep embedding. p = 0 is the
default recipe exactly (the map then gets zero gradients and stays zero), the control arm of the same run.
Each arm trains the default network with the default `TrainConfig` for `--steps`, then scores its EMA with
FD_digits (DDIM-50, η = 0, `--n` samples, mean over `--seeds`) and the copying check (first seed).
About 8 minutes per arm at 6,000 steps on a 2-core Zen 5 CPU.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from common import floor_text, record
from torch import nn

import ddpm_utils as du
import ddpm_utils.training as training
from ddpm_utils.unet import DIGITS, UNet

LABELS = 3  # (dx, dy, mirrored)


def augment(x0: torch.Tensor, p: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """With probability p per image: shift by (dx, dy) in {-1, 0, 1}^2, padding with the background (-1), then
    mirror left-right with probability 1/2. Returns the images (B, 1, H, W) and labels (B, 3) = (dx, dy, mirrored),
    all zero for an untouched image; dx > 0 moves the digit right, dy > 0 down."""
    b, _, h, w = x0.shape
    on = torch.rand(b, generator=generator) < p
    dx = torch.randint(-1, 2, (b,), generator=generator) * on
    dy = torch.randint(-1, 2, (b,), generator=generator) * on
    mirror = (torch.rand(b, generator=generator) < 0.5) & on
    padded = F.pad(x0, (1, 1, 1, 1), value=-1.0)
    rows = (1 - dy)[:, None] + torch.arange(h)  # output row i reads padded row i + 1 - dy
    cols = (1 - dx)[:, None] + torch.arange(w)
    out = padded[torch.arange(b)[:, None, None], :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    out = torch.where(mirror[:, None, None, None], out.flip(-1), out)
    return out, torch.stack([dx, dy, mirror.long()], dim=1).float()


class LabelledUNet(UNet):
    """The UNet with an augmentation label added to its timestep embedding; `labels` None means no augmentation."""

    def __init__(self, config=DIGITS):
        super().__init__(config)
        self.augment_map = nn.Linear(LABELS, 4 * config.base_channels, bias=False)
        nn.init.zeros_(self.augment_map.weight)
        self.labels: torch.Tensor | None = None

    def embedding(self, t, dtype):  # the timestep's embedding plus the label's
        labels = self.labels if self.labels is not None else torch.zeros(len(t), LABELS, device=t.device)
        if labels.shape != (len(t), LABELS):  # a stale batch's labels would broadcast silently
            raise ValueError(f"labels must have shape ({len(t)}, {LABELS}), got {tuple(labels.shape)}")
        return super().embedding(t, dtype) + self.augment_map(labels.to(dtype))


def train_arm(p: float, steps: int, seed: int, data: torch.Tensor) -> tuple[nn.Module, float]:
    """Train with augmentation probability p; returns the EMA network (labels off) and the seconds taken."""
    model = LabelledUNet()
    aug_generator = torch.Generator().manual_seed(1000 + seed)
    draw = training.draw_batch

    def draw_augmented(data, batch_size, num_steps, generator):  # Trainer's batch, augmented, labels to the net
        x0, t, noise = draw(data, batch_size, num_steps, generator)
        x0, model.labels = augment(x0, p, aug_generator)
        return x0, t, noise

    training.draw_batch = draw_augmented
    try:
        trainer = training.Trainer(model, data, training.TrainConfig(max_steps=steps, seed=seed))
        start = time.perf_counter()
        trainer.train(progress=False)
        seconds = time.perf_counter() - start
    finally:
        training.draw_batch = draw
    trainer.ema.labels = None
    return trainer.ema, seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--p", type=float, nargs="+", default=[0.0, 0.5], help="augmentation probabilities")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--n", type=int, default=1000, help="samples per score")
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9], help="sampling seeds; scores are means")
    args = parser.parse_args()
    data, schedule = du.load_digits("train"), du.make_schedule("linear", 1000)
    rows = []
    for p in args.p:
        ema, seconds = train_arm(p, args.steps, args.seed, data)
        reports = [
            du.metrics.evaluate_samples(
                du.ddim_sample(ema, schedule, (args.n, 1, 8, 8), 50, 0.0, torch.Generator().manual_seed(s))
            )
            for s in args.seeds
        ]
        fds = [r["fd"] for r in reports]
        rows.append(
            {
                "p": p,
                "steps": args.steps,
                "seconds": round(seconds, 1),
                "fd": statistics.mean(fds),
                "fd_sd": statistics.stdev(fds) if len(fds) > 1 else 0.0,
                "fd_each": fds,
                "too_close": reports[0]["too_close"],
                "confidence": reports[0]["confidence"],
            }
        )
        r = rows[-1]
        print(
            f"p = {p:<4}  {args.steps} steps in {seconds:4.0f} s   FD_digits {r['fd']:5.1f} ± {r['fd_sd']:.1f}"
            f"  ({', '.join(f'{v:.1f}' for v in fds)})   too close {r['too_close']:.1%}",
            flush=True,
        )
    floor = du.metrics.reference_scores(args.n)
    print(f"FD_digits at {args.n} samples, DDIM-50 η=0, seeds {args.seeds}; {floor_text(floor)}")
    record("augmentation", {"n": args.n, "seed": args.seed, "sampling_seeds": args.seeds, "arms": rows})


if __name__ == "__main__":
    main()
