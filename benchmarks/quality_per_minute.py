"""Quality per CPU-minute: the default digits recipe with ddpm_utils' UNet vs diffusers' UNet2DModel.

    python benchmarks/quality_per_minute.py [--minutes 3 10] [--n 1000] [--ddpm-n 300]
                                            [--guidance 1 1.25 1.5:100-700] [--seeds 7 8 9]
                                            [--dropout 0.1] [--train-seed 1]
                                            [--samplers ddim50_eta0 ddim20_eta0 dpm20 ...]

Both networks (the same 0.70M architecture) are trained by the same loop, `ddpm_utils.extras.Trainer`
with its default `TrainConfig`, for the same wall-clock minutes, one after the other on this
machine (not concurrently: two cores). Each EMA network is then scored by FD_digits at 50 DDIM
steps (η = 0 and η = 1, `--n` samples) and at 1,000 DDPM steps (`--ddpm-n` samples), next to the
real-vs-real floor (mean ± spread over subsets) for the same number of images; `--samplers` chooses other columns,
among them 20 network calls (DDIM-20 η = 0, DPM-Solver++(2M)-20). So the difference
between the two rows is the networks' speed and architecture details, not the recipe.

With `--guidance w ...`, each sampler also runs on `du.extras.Guided(ema, gaussian, w)`: the network steered
away from the optimal denoiser of the training digits' Gaussian fit (w = 1: the network alone), for
both networks alike; `w:LO-HI` guides only at timesteps LO..HI (`Guided(..., interval=(LO, HI))`).
With several `--seeds` each score is the mean over that many sample sets. A second table gives the
class-matched FD_digits (`evaluate_samples`' 'fd_class_matched': samples reweighted to the test split's
class mix), whose floor spreads about a third as much, so that it separates the two networks' digits
more sharply; the class mix itself is in the JSON line ('class_mix_tv'). A third gives each network's held-out
L_simple (`common.held_out_loss`), which separates differences that FD_digits cannot (per_step.py).
`--anchors same-recipe example-recipe` adds a third row per length: diffusers' network trained the way diffusers'
own example trains it (`examples/unconditional_image_generation/train_unconditional.py`'s defaults at the issue's
batch of 128: AdamW lr 1e-4, betas (0.95, 0.999), weight decay 1e-6, 500 warm-up steps then a cosine decay, EMA with
diffusers' `EMAModel` warm-up (inv_gamma 1, power 3/4, at most 0.9999), gradients clipped at 1, shuffled epochs,
`DDPMScheduler`'s linear betas; no random flip, which would mirror the digits) — the anchor as a learner who picks
diffusers instead of this course would train it. Its cosine runs over the minutes left after the warm-up, as ours
runs over the whole budget. `same-recipe` (the default) is the network-for-network comparison above.
`--dropout p` trains ddpm_utils' network with dropout p in its residual blocks instead of DIGITS' 0.1 (`--dropout 0`:
none); diffusers' network stays the anchor's, without dropout.
`--late-dropout N` keeps ddpm_utils' dropout off for the first N steps and switches it on after ("late dropout", Liu
et al. 2023: for a network that underfits early and overfits late).
"""

from __future__ import annotations

import argparse
import math
import time
from functools import partial

import torch
import torch.nn.functional as F
from common import call, diffusers_digits, floor_text, held_out_loss, held_out_set, ours_digits, record

import ddpm_utils as du


class Unwrap(torch.nn.Module):
    """diffusers returns an output object; the trainer and samplers want the tensor."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, t):
        return call(self.model, x, t)


def train_for(build, minutes: float, data: torch.Tensor, late_dropout: int | None = None, **config) -> du.Trainer:
    """The default recipe (`Trainer`, `TrainConfig` with `config`'s changes) on `build()`'s network for `minutes`;
    the training seed (initial weights, batches, dropout masks) is `config`'s 'seed', 0 unless given.
    `late_dropout=N`: the network's dropout stays off for the first N steps, then takes its rate ("late dropout",
    Liu et al. 2023, for networks that would overfit; see `switch_dropout_on`)."""
    torch.manual_seed(config.get("seed", 0))
    schedule = du.make_schedule("linear", 1000)
    trainer = du.extras.Trainer(build(), schedule, du.extras.TrainConfig(max_steps=10**6, **config), data)
    if late_dropout is None:
        return trainer.train(max_minutes=minutes, progress=False)
    switch = switch_dropout_on(trainer.model, late_dropout)
    return trainer.train(max_minutes=minutes, progress=False, callback=switch, callback_every=late_dropout)


def switch_dropout_on(model: torch.nn.Module, at_step: int):
    """Set every `torch.nn.Dropout` of `model` to rate 0 now and return a `Trainer` callback that restores
    each module's rate once the trainer has made `at_step` steps."""
    if at_step < 1:
        raise ValueError(f"late dropout needs a positive step, got {at_step}")
    modules = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    rates = [m.p for m in modules]
    if not any(rates):
        raise ValueError("the network has no dropout to switch on")
    for m in modules:
        m.p = 0.0

    def callback(trainer: du.Trainer) -> None:
        if trainer.step == at_step:
            for m, rate in zip(modules, rates):
                m.p = rate

    return callback


# diffusers' examples/unconditional_image_generation/train_unconditional.py: its argument defaults, at batch 128
EXAMPLE_RECIPE = {
    "lr": 1e-4,
    "warmup_steps": 500,
    "betas": (0.95, 0.999),
    "weight_decay": 1e-6,
    "eps": 1e-8,
    "ema_max_decay": 0.9999,
    "ema_inv_gamma": 1.0,
    "ema_power": 0.75,
    "grad_clip": 1.0,
    "batch_size": 128,
}


def example_lr_factor(step: int, progress: float, warmup_steps: int = EXAMPLE_RECIPE["warmup_steps"]) -> float:
    """diffusers' `get_cosine_schedule_with_warmup` (one half-cosine): step / warmup during the warm-up, then
    0.5 (1 + cos(π progress)), `progress` in [0, 1] being the fraction of the run after the warm-up that is done."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def train_diffusers_example(
    minutes: float, data: torch.Tensor, seed: int = 0, **changes
) -> tuple[torch.nn.Module, int, du.Schedule]:
    """diffusers' network trained for `minutes` by diffusers' own example recipe (`EXAMPLE_RECIPE`, with `changes`),
    with its own `DDPMScheduler.add_noise` and `EMAModel`. Returns the EMA network (in eval mode, returning tensors),
    the number of optimiser steps and the schedule it was trained on, as ours (the DDPMScheduler equivalence is
    tested in tests/test_schedules.py)."""
    from diffusers import DDPMScheduler
    from diffusers.training_utils import EMAModel

    if not minutes > 0:
        raise ValueError(f"minutes must be positive, got {minutes}")
    unknown = set(changes) - set(EXAMPLE_RECIPE)
    if unknown:
        raise ValueError(f"unknown recipe fields {sorted(unknown)}; expected some of {sorted(EXAMPLE_RECIPE)}")
    r = {**EXAMPLE_RECIPE, **changes}
    torch.manual_seed(seed)
    net = diffusers_digits()
    noise_scheduler = DDPMScheduler(num_train_timesteps=1000)  # linear betas 1e-4 .. 0.02, ε-prediction
    config = noise_scheduler.config  # checked before training, not after minutes of it
    if config.beta_schedule != "linear" or (config.beta_start, config.beta_end) != (1e-4, 0.02):
        raise RuntimeError(f"this diffusers' DDPMScheduler defaults differ from the linear 1e-4 .. 0.02: {config}")
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=r["lr"], betas=r["betas"], weight_decay=r["weight_decay"], eps=r["eps"]
    )
    ema = EMAModel(
        net.parameters(),
        decay=r["ema_max_decay"],
        use_ema_warmup=True,
        inv_gamma=r["ema_inv_gamma"],
        power=r["ema_power"],
    )
    generator = torch.Generator().manual_seed(seed)
    batches: list[torch.Tensor] = []
    step, start, warm_end = 0, time.perf_counter(), 0.0
    while (elapsed := (time.perf_counter() - start) / 60) < minutes:
        if step == r["warmup_steps"]:
            warm_end = elapsed
        progress = (elapsed - warm_end) / max(minutes - warm_end, 1e-9)
        for group in optimizer.param_groups:
            group["lr"] = r["lr"] * example_lr_factor(step, progress, r["warmup_steps"])
        if not batches:  # a new epoch: shuffled, in batches of 128 and a last, smaller one (DataLoader(shuffle=True))
            batches = list(torch.randperm(len(data), generator=generator).split(r["batch_size"]))
        x0 = data[batches.pop(0)]
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.randint(0, config.num_train_timesteps, (len(x0),), generator=generator)
        loss = F.mse_loss(call(net, noise_scheduler.add_noise(x0, noise, t), t).float(), noise.float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), r["grad_clip"])
        optimizer.step()
        ema.step(net.parameters())
        step += 1
    ema.copy_to(net.parameters())
    return Unwrap(net).eval(), step, du.make_schedule("linear", config.num_train_timesteps)


def train_same_recipe(
    build, minutes: float, data: torch.Tensor, seed: int = 0, late_dropout: int | None = None
) -> tuple[torch.nn.Module, int, du.Schedule]:
    """`train_for`, returning what `train_diffusers_example` returns: EMA network (eval mode), steps, schedule."""
    trainer = train_for(build, minutes, data, late_dropout=late_dropout, seed=seed)
    return trainer.ema.eval(), trainer.step, trainer.schedule


def parse_guidance(setting: str) -> tuple[float, tuple[int, int] | None]:
    """'1.25' -> (1.25, None); '1.5:100-700' -> (1.5, (100, 700))."""
    weight, _, interval = setting.partition(":")
    if not interval:
        return float(weight), None
    lo, _, hi = interval.partition("-")
    return float(weight), (int(lo), int(hi))


def guidance_setting(setting: str) -> str:
    """argparse type: the setting string, refused at once if it does not parse or `Guided` would refuse it."""
    try:
        w, interval = parse_guidance(setting)
        du.extras.Guided(None, None, w, interval=interval)  # its own checks: a finite weight, 0 <= LO <= HI
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"expected w or w:LO-HI, e.g. 1.25 or 1.5:100-700, got {setting!r} ({e})"
        ) from None
    return setting


def suffix(setting: str) -> str:
    """The key suffix of a guidance setting: '' for w = 1, '_w1.25', '_w1.5_t100-700'."""
    w, interval = parse_guidance(setting)
    if w == 1:
        return ""
    return f"_w{w:g}" + ("" if interval is None else f"_t{interval[0]}-{interval[1]}")


def score(model, schedule, sampler, n, seeds=(7,)) -> dict[str, float]:
    """FD_digits of `n` samples, class-matched too, and the class mix's distance: means over one sample set per
    seed."""
    reports = [
        du.metrics.evaluate_samples(sampler(model, schedule, (n, 1, 8, 8), torch.Generator().manual_seed(s)))
        for s in seeds
    ]
    return {key: sum(r[key] for r in reports) / len(reports) for key in ("fd", "fd_class_matched", "class_mix_tv")}


SAMPLERS = {  # key: (column title, sampler)
    "ddim50_eta0": ("DDIM-50 η=0", lambda m, s, shape, g: du.ddim_sample(m, s, shape, 50, eta=0.0, generator=g)),
    "ddim50_eta1": ("DDIM-50 η=1", lambda m, s, shape, g: du.ddim_sample(m, s, shape, 50, eta=1.0, generator=g)),
    "ddpm1000": ("DDPM-1000", lambda m, s, shape, g: du.ddpm_sample(m, s, shape, generator=g)),
    # the "near real-digit quality with 20 DDIM steps", and the solver that needs fewer steps than DDIM
    "ddim20_eta0": ("DDIM-20 η=0", lambda m, s, shape, g: du.ddim_sample(m, s, shape, 20, eta=0.0, generator=g)),
    "dpm20": ("DPM++2M-20", lambda m, s, shape, g: du.dpm_solver_sample(m, s, shape, 20, generator=g)),
}
DEFAULT_SAMPLERS = ("ddim50_eta0", "ddim50_eta1", "ddpm1000")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, nargs="+", default=[3.0])
    parser.add_argument("--n", type=int, default=1000, help="samples for the DDIM scores")
    parser.add_argument("--ddpm-n", type=int, default=300, help="samples for the DDPM-1000 score (0: skip)")
    parser.add_argument(
        "--guidance", type=guidance_setting, nargs="+", default=["1"], help="weights w or w:LO-HI (1: none)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[7], help="sampling seeds; scores are means")
    parser.add_argument(
        "--samplers", nargs="+", choices=tuple(SAMPLERS), default=list(DEFAULT_SAMPLERS), help="columns to score"
    )
    parser.add_argument("--train-seed", type=int, default=0, help="seed of both networks' training runs")
    parser.add_argument("--dropout", type=float, default=None, help="ddpm_utils' dropout (default: DIGITS', 0.1)")
    parser.add_argument(
        "--late-dropout", type=int, default=None, metavar="STEP", help="ddpm_utils' dropout off until STEP, then on"
    )
    parser.add_argument(
        "--anchors",
        nargs="*",
        choices=("same-recipe", "example-recipe"),
        default=["same-recipe"],
        help="diffusers' network trained by our recipe and loop, and/or by diffusers' own example's recipe "
        "(none: ours alone, e.g. to compare --dropout settings on the same training seed)",
    )
    args = parser.parse_args()
    data = du.load_digits("train")
    gaussian = du.GaussianData.fit(data)
    rows = []
    # each contender: minutes -> (EMA network, steps, schedule)
    ours = partial(train_same_recipe, partial(ours_digits, dropout=args.dropout), late_dropout=args.late_dropout)
    contenders = [("ddpm_utils", ours)]
    if "same-recipe" in args.anchors:
        contenders.append(("diffusers", partial(train_same_recipe, lambda: Unwrap(diffusers_digits()))))
    if "example-recipe" in args.anchors:
        contenders.append(("diffusers-ex", train_diffusers_example))
    for minutes in args.minutes:
        for name, train in contenders:
            start = time.perf_counter()
            ema, steps, schedule = train(minutes, data, seed=args.train_seed)
            row = {"minutes": minutes, "network": name, "steps": steps, "train_s": time.perf_counter() - start}
            row["held_out"] = held_out_loss(ema, schedule, held_out_set(schedule))
            for setting in args.guidance:
                w, interval = parse_guidance(setting)
                model = du.extras.Guided(ema, gaussian.denoiser(schedule), w, interval=interval)
                for key in args.samplers:
                    sampler = SAMPLERS[key][1]
                    n = args.ddpm_n if key == "ddpm1000" else args.n
                    if n:
                        scores = score(model, schedule, sampler, n, args.seeds)
                        row[key + suffix(setting)] = scores["fd"]
                        row[key + suffix(setting) + "_class_matched"] = scores["fd_class_matched"]
                        row[key + suffix(setting) + "_class_mix_tv"] = scores["class_mix_tv"]
            rows.append(row)
            print(row, flush=True)
    print("\nheld-out L_simple of each EMA network (test digits, 16 timesteps, fixed noise; lower is better)")
    for r in rows:
        print(f"{r['minutes']:7.1f} {r['network']:<12} {r['steps']:6d} {r['held_out']:10.5f}")
    floors = {n: du.metrics.reference_scores(n) for n in {args.n, args.ddpm_n} if n}
    for title, tail in (("FD_digits", ""), ("class-matched FD_digits", "_class_matched")):
        print(f"\n{title} (lower is better)")
        for n, ref in sorted(floors.items()):
            if tail:
                print(
                    f"  at {n} images: floor {ref['class_matched']:.1f} ± {ref['class_matched_sd']:.1f} (real "
                    f"digits, over subsets); one score's sampling sd {ref['class_matched_sampling_sd']:.1f}"
                )
            else:
                print(f"  at {n} images: {floor_text(ref)}")
        print(f"sampling seeds {args.seeds}; w: guidance weight (1: the network alone), :LO-HI only at those t")
        head = "".join(f"{SAMPLERS[key][0]:>13}" for key in args.samplers)
        print(f"{'minutes':>7} {'network':<12} {'steps':>6} {'w':>12}{head}")
        for r in rows:
            for setting in args.guidance:
                cells = (r.get(key + suffix(setting) + tail, float("nan")) for key in args.samplers)
                print(
                    f"{r['minutes']:7.1f} {r['network']:<12} {r['steps']:6d} {setting:>12}"
                    + "".join(f"{c:13.1f}" for c in cells)
                )
    record(
        "quality_per_minute",
        {
            "rows": rows,
            "n": args.n,
            "ddpm_n": args.ddpm_n,
            "floors": floors,
            "guidance": args.guidance,
            "seeds": args.seeds,
            "samplers": args.samplers,
            "dropout": args.dropout,
            "late_dropout": args.late_dropout,
            "train_seed": args.train_seed,
            "anchors": args.anchors,
            "example_recipe": EXAMPLE_RECIPE if "example-recipe" in args.anchors else None,
        },
    )


if __name__ == "__main__":
    main()
