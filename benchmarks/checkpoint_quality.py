"""Which digits checkpoint is better: every measure the project has, for several checkpoints side by side.

    python benchmarks/checkpoint_quality.py [digits runs/a.pt runs/b.pt ...] [--n 1000] [--seeds 7 8 9 10 11]
                                            [--guidance 1 1.25] [--bpd]

Session 14 chose the shipped model with `checkpoint_quality.py digits runs/m3.pt runs/s5000.pt
runs/digits_d01_6k.pt --bpd` (the old shipped model, `train --minutes 3`, `train --steps 5000`, `train --steps 6000
--dropout 0.1`; see the README's "The pretrained digits model").

For each checkpoint ('digits' is the shipped one): its held-out L_simple (`common.held_out_loss`: every test digit
at 16 stratified timesteps, two fixed noises — the test loss, which separates networks that FD_digits cannot), the
test-set likelihood bound in bits/dim with `--bpd`, and, for each guidance weight w (1: the network alone), over
one sample set of `--n` digits per seed at 50 DDIM steps η = 0 (the sampler the README's tables use): FD_digits,
class-matched FD_digits and the share of samples too close to a training digit (5% expected of fresh digits),
as mean ± sd over the seeds. The floor (real training digits against the test digits) is printed with them.
Only the held-out loss and bits/dim are exact properties of a network; the sample scores carry sampling noise,
which the sd shows.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from common import held_out_loss, held_out_set, record

import ddpm_utils as du
from ddpm_utils.checkpoint import model_from_checkpoint
from ddpm_utils.data import DIGITS_LEVELS
from ddpm_utils.pretrained import pretrained_path


def spread(values: list[float]) -> str:
    """'mean ± sd' (sd over the seeds; nan for one seed)."""
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.mean(values):5.1f} ± {sd:3.1f}"


def sample_scores(model, schedule, prediction: str, w: float, n: int, seeds) -> dict[str, list[float]]:
    """FD_digits, class-matched FD_digits and too-close share of one DDIM-50 (η = 0) sample set per seed."""
    if w != 1:
        gaussian = du.GaussianData.fit(du.load_digits("train"))
        model = du.Guided(model, gaussian.denoiser(schedule, prediction), w)
    out = {"fd": [], "fd_class_matched": [], "too_close": []}
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        x = du.ddim_sample(model, schedule, (n, 1, 8, 8), 50, eta=0.0, generator=g, prediction=prediction)
        report = du.metrics.evaluate_samples(x)
        for key in out:
            out[key].append(report[key])
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "checkpoints", nargs="*", default=["digits"], help="checkpoint paths; 'digits' (default): the shipped model"
    )
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9, 10, 11])
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0, 1.25])
    parser.add_argument("--bpd", action="store_true", help="also the test-set bound in bits/dim (slower)")
    args = parser.parse_args()
    rows = []
    for path in args.checkpoints:
        model, schedule, state = model_from_checkpoint(pretrained_path() if path == "digits" else path, ema=True)
        config = state["model_config"]
        if config.get("kind", "unet") != "unet" or config["in_channels"] != 1:
            raise SystemExit(f"{path}: not a digits network (a one-channel UNet), so FD_digits cannot score it")
        prediction = (state.get("train_config") or {}).get("prediction", "eps")
        if prediction != "eps":
            raise SystemExit(
                f"{path}: the held-out loss here is for ε-prediction networks, this one predicts {prediction}"
            )
        row = {
            "checkpoint": path,
            "step": state["step"],
            "dropout": config.get("dropout", 0.0),
            "held_out": held_out_loss(model.eval(), schedule, held_out_set(schedule)),
        }
        if args.bpd:
            test = du.load_digits("test")
            bound = du.nll_bound(
                model, schedule, test, num_levels=DIGITS_LEVELS, generator=torch.Generator().manual_seed(0)
            )
            row["test_bits_per_dim"] = du.bits_per_dim(bound["total"], test).mean().item()
        for w in args.guidance:
            row[f"w{w:g}"] = sample_scores(model, schedule, prediction, w, args.n, args.seeds)
        rows.append(row)
        print(row, flush=True)
    ref = du.metrics.reference_scores(args.n)
    print(
        f"\nDDIM-50 η=0, {args.n} samples, seeds {args.seeds} (mean ± sd over seeds); floor at {args.n} images: "
        f"FD {ref['real_vs_real']:.1f} ± {ref['real_vs_real_sd']:.1f}, class-matched {ref['class_matched']:.1f} ± "
        f"{ref['class_matched_sd']:.1f}; too close: 5% expected"
    )
    bpd = " bits/dim" if args.bpd else ""
    print(
        f"{'checkpoint':<28} {'step':>6} {'drop':>5} {'held-out':>9}{bpd} {'w':>5} "
        f"{'FD':>11} {'class-m.':>11} {'close %':>8}"
    )
    for r in rows:
        for w in args.guidance:
            s = r[f"w{w:g}"]
            cells = [spread(s[k]) for k in ("fd", "fd_class_matched")]
            head = f"{r['checkpoint']:<28} {r['step']:6d} {r['dropout']:5.2f} {r['held_out']:9.5f}"
            if args.bpd:
                head += f" {r['test_bits_per_dim']:8.3f}"
            print(f"{head} {w:5.2f} {cells[0]:>11} {cells[1]:>11} {100 * statistics.mean(s['too_close']):7.1f}%")
    record("checkpoint_quality", {"rows": rows, "n": args.n, "seeds": args.seeds, "floor": ref})


if __name__ == "__main__":
    main()
