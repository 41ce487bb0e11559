"""Learning per step: what makes diffusers' network learn more per step than ours at the same architecture.

    python benchmarks/per_step.py [--steps 2500] [--every 500] [--seeds 0 1 2] [--arms ours diffusers ...]

Every arm trains by the same loop (`ddpm_utils.Trainer`, default recipe) for the same number of steps,
on the same batches (the trainer's generator is seeded by `--seeds`, whatever the network). The arms:

  ours                ddpm_utils' UNet as shipped (zero-initialised output and residual branches), without dropout
                      (DIGITS before session 14; every arm but ours_dropout has none, like diffusers' network)
  ours_default_init   the same with `zero_init_blocks=False` (only the output layer starts at zero)
  ours_no_zero        the same with the output layer at PyTorch's default initialisation too
  ours_dropout        ddpm_utils' UNet with dropout 0.1 in its residual blocks (DIGITS since session 14)
  ours_dinit          ddpm_utils' UNet holding diffusers' initial weights (`ours_from_diffusers`)
  ours_dfunc          the same with diffusers' timestep embedding: diffusers' function, our code
  diffusers           diffusers' UNet2DModel

`ours_dfunc` computes exactly diffusers' function at initialisation (tests/test_unet.py), so the arms
separate initialisation (ours vs ours_dinit), timestep embedding (ours_dinit vs ours_dfunc) and
implementation (ours_dfunc vs diffusers, whose runs part only by floating-point rounding).

Each arm is scored, every `--every` steps, by its EMA network's held-out loss: L_simple on the 359 test
digits at 16 timesteps (midpoints of 16 equal buckets) with 2 fixed noise draws each, the same draws for
every arm — a low-noise measure of how far training has got. At the end, FD_digits and the class-matched
FD_digits of 1,000 DDIM-50 (η = 0) samples, a mean over `--sample-seeds` (default 7).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch
from common import DiffusersEmbeddingUNet, diffusers_digits, held_out_loss, held_out_set, ours_from_diffusers, record
from quality_per_minute import Unwrap

import ddpm_utils as du
from ddpm_utils.unet import DIGITS, UNet

MATCHED = dataclasses.replace(DIGITS, dropout=0.0)  # the architecture of diffusers' network


def build(arm: str) -> torch.nn.Module:
    if arm == "ours":
        return UNet(MATCHED)
    if arm == "ours_default_init":
        return UNet(dataclasses.replace(MATCHED, zero_init_blocks=False))
    if arm == "ours_no_zero":
        model = UNet(dataclasses.replace(MATCHED, zero_init_blocks=False))
        model.conv_out.reset_parameters()
        return model
    if arm == "ours_dropout":
        return UNet(DIGITS)
    if arm == "diffusers":
        return Unwrap(diffusers_digits())
    if arm in ("ours_dinit", "ours_dfunc"):
        return ours_from_diffusers(
            diffusers_digits(), (UNet if arm == "ours_dinit" else DiffusersEmbeddingUNet)(MATCHED)
        )
    raise ValueError(f"unknown arm {arm!r}")


ARMS = ("ours", "ours_default_init", "ours_no_zero", "ours_dropout", "ours_dinit", "ours_dfunc", "diffusers")


def train_setting(item: str) -> tuple[str, object]:
    """'lr=1e-3' -> ('lr', 0.001): a TrainConfig field and a value of its type."""
    key, _, value = item.partition("=")
    fields = du.TrainConfig.__dataclass_fields__
    if key not in fields or not value:
        raise SystemExit(f"--train expects KEY=VALUE with KEY one of {sorted(fields)}, got {item!r}")
    default = getattr(du.TrainConfig(), key)
    if isinstance(default, str):
        return key, value
    if isinstance(default, bool):
        if value.lower() not in ("true", "false"):
            raise SystemExit(f"--train {key} takes true or false, got {value!r}")
        return key, value.lower() == "true"
    try:
        return key, type(default or 0.0)(float(value))
    except ValueError:
        raise SystemExit(f"--train {key} takes a number, got {value!r}") from None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--n", type=int, default=1000, help="samples for the final FD_digits (0: skip)")
    parser.add_argument("--sample-seeds", type=int, nargs="+", default=[7], help="the final scores are means")
    parser.add_argument(
        "--train", nargs="+", default=[], metavar="KEY=VALUE", help="TrainConfig changes for every arm, e.g. lr=1e-3"
    )
    args = parser.parse_args()
    changes = dict(train_setting(item) for item in args.train)
    data = du.load_digits("train")
    rows = []
    for seed in args.seeds:
        for arm in args.arms:
            torch.manual_seed(seed)  # the initial weights (the trainer's batches come from its own generator)
            trainer = du.Trainer(build(arm), data, du.TrainConfig(**{**changes, "max_steps": args.steps, "seed": seed}))
            batch = held_out_set(trainer.schedule)
            curve = {}

            def check(tr, curve=curve, batch=batch):
                curve[tr.step] = held_out_loss(tr.ema.eval(), tr.schedule, batch)

            start = time.perf_counter()
            trainer.train(progress=False, callback=check, callback_every=args.every)
            row = {"arm": arm, "seed": seed, "steps": trainer.step, "train_s": time.perf_counter() - start}
            row["held_out"] = curve
            if args.n:  # means over one sample set per sampling seed
                reports = [
                    du.metrics.evaluate_samples(
                        du.ddim_sample(
                            trainer.ema.eval(),
                            trainer.schedule,
                            (args.n, 1, 8, 8),
                            50,
                            generator=torch.Generator().manual_seed(s),
                        )
                    )
                    for s in args.sample_seeds
                ]
                for key in ("fd", "fd_class_matched", "class_mix_tv"):
                    row[key] = statistics.mean(r[key] for r in reports)
            rows.append(row)
            print(row, flush=True)
    steps = sorted({s for r in rows for s in r["held_out"]})
    print("\nheld-out L_simple of the EMA network (mean over seeds; lower is better)")
    print(f"{'arm':<18}" + "".join(f"{s:>8d}" for s in steps) + f"{'FD':>7}{'FD cm':>7}")
    for arm in args.arms:
        mine = [r for r in rows if r["arm"] == arm]
        cells = [statistics.mean(r["held_out"][s] for r in mine) for s in steps]
        tail = (
            "".join(f"{statistics.mean(r[k] for r in mine):7.1f}" for k in ("fd", "fd_class_matched")) if args.n else ""
        )
        print(f"{arm:<18}" + "".join(f"{c:8.4f}" for c in cells) + tail)
    record(
        "per_step",
        {"train": changes, "rows": rows, "steps": args.steps, "seeds": args.seeds, "sample_seeds": args.sample_seeds},
    )


if __name__ == "__main__":
    main()
