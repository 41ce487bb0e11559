"""The README's pictures, drawn from the shipped model (`make figures`):

    docs/samples.png   64 samples of the shipped digits model (DDPM, 1,000 steps) beside 64 real test digits
    docs/reverse.png   the reverse process: x_t at falling t (left to right) for 5 samples, one row per sample

Seeded, so a rerun on the same PyTorch gives the same pictures.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import ddpm_utils as du  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs"
SHOWN_T = (999, 700, 500, 300, 200, 100, 50, 0)  # 0-based timesteps of the strip (the paper's t + 1)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    model, schedule = du.load_pretrained("digits")
    snapshots = {}

    def keep(i, step, xt, x0_pred):  # x_t before the step from `step`; the last entry is replaced by x_0 below
        if step in SHOWN_T:
            snapshots[step] = xt[:5].clone()

    samples = du.ddpm_sample(model, schedule, (64, 1, 8, 8), generator=torch.Generator().manual_seed(0), callback=keep)
    real = du.load_digits("test")[:64]

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.8))
    du.plotting.show_grid(samples, nrow=8, ax=axes[0], title="the shipped model's samples (DDPM, 1,000 steps)")
    du.plotting.show_grid(real, nrow=8, ax=axes[1], title="real digits (held-out test split)")
    fig.tight_layout()
    fig.savefig(OUT / "samples.png", dpi=100)
    plt.close(fig)

    columns = [snapshots[t] for t in SHOWN_T[:-1]] + [samples[:5]]  # each (5, 1, 8, 8)
    strip = torch.stack(columns, dim=1).reshape(-1, 1, 8, 8)  # sample-major: one row per sample
    fig, ax = plt.subplots(figsize=(9, 5.4))
    du.plotting.show_grid(strip, nrow=len(SHOWN_T), ax=ax)
    ax.set_title("the reverse process: x_t from t = T (left) down to x_0 (right), 5 samples")
    ax.set_axis_on()
    ax.set_yticks([])
    ax.set_xticks([(j + 0.5) * 9 for j in range(len(SHOWN_T))])
    ax.set_xticklabels([f"t = {t + 1}" for t in SHOWN_T[:-1]] + ["x_0"])
    fig.tight_layout()
    fig.savefig(OUT / "reverse.png", dpi=100)
    plt.close(fig)
    print(f"wrote {OUT / 'samples.png'} and {OUT / 'reverse.png'}")


if __name__ == "__main__":
    main()
