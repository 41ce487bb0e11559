"""Where a CPU training step's convolution time goes inside oneDNN (the bound behind the training ratio, by kernel).

    python benchmarks/onednn_kernels.py [--steps 3]

PyTorch runs the convolutions of both libraries through oneDNN. With oneDNN's verbose mode on, every primitive
it executes prints its kind (convolution, reorder, matmul), its direction (forward, backward_data,
backward_weights) and its own execution time; this script turns that log into a table per contender:
milliseconds a step in each kind and direction and, for convolutions, the rate (GFLOP/s, from each problem's
shape) each direction achieves. Beside it the step's wall time and the time torch.profiler gives the
convolution operators, so that what PyTorch spends around the kernels (building descriptors, allocating,
dispatch) shows as the difference. Contenders: diffusers' UNet2DModel in float32 and ours in float32
(channels-last, the default), and ours in bfloat16 in both memory layouts (contiguous is what
`TrainConfig(bf16=True)` runs).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import os
import re
import tempfile

import torch
from common import diffusers_digits, ours_digits, record, timed
from profile_train import CONV
from torch.profiler import profile
from train_throughput import make_step

import ddpm_utils as du

_SHAPE = re.compile(r"mb(\d+)_ic(\d+)oc(\d+)_ih\d+oh(\d+)kh(\d+)\S*_iw\d+ow(\d+)kw(\d+)")


def conv_flops(problem: str) -> int:
    """Multiply-adds x 2 of one convolution from oneDNN's problem descriptor, e.g.
    'mb128_ic32oc64_ih8oh8kh3sh1dh0ph1_iw8ow8kw3sw1dw0pw1'; every direction (forward, backward data,
    backward weights) does the same arithmetic."""
    m = _SHAPE.search(problem)
    if m is None:
        raise ValueError(f"not a 2-D convolution problem descriptor: {problem!r}")
    mb, ic, oc, oh, kh, ow, kw = map(int, m.groups())
    return 2 * mb * ic * oc * oh * ow * kh * kw


def parse_verbose(lines, steps: int) -> dict:
    """oneDNN verbose lines -> {kind: {"calls", "ms", "gflop"}} per step. Kind is 'convolution forward',
    'convolution backward_data', 'convolution backward_weights', 'reorder', 'matmul', ... (oneDNN's
    primitive name, and for convolutions its direction; forward_training and forward_inference count as
    forward). gflop is filled for convolutions only."""
    out = collections.defaultdict(lambda: {"calls": 0.0, "ms": 0.0, "gflop": 0.0})
    for line in lines:
        fields = line.strip().split(",")
        if len(fields) > 1 and re.fullmatch(r"v\d+", fields[1]):
            del fields[1]  # the log format's version, which oneDNN 3.5 and later write (PyTorch 2.4's 3.4 does not)
        # onednn_verbose,primitive,exec,cpu,<primitive>,<impl>,<prop_kind>,<mds>,<attrs>,<aux>,<problem>,<ms>
        if len(fields) < 12 or fields[0] != "onednn_verbose" or fields[1:3] != ["primitive", "exec"]:
            continue
        primitive, prop = fields[4], fields[6]
        kind = primitive
        if primitive == "convolution":
            kind += " " + ("forward" if prop.startswith("forward") else prop)
        row = out[kind]
        row["calls"] += 1 / steps
        row["ms"] += float(fields[-1]) / steps
        if primitive == "convolution":
            row["gflop"] += conv_flops(fields[-2]) / 1e9 / steps
    return dict(out)


@contextlib.contextmanager
def captured_stdout():
    """Collect what C code writes to file descriptor 1 (oneDNN prints its verbose log there) into a list."""
    lines: list[str] = []
    libc = ctypes.CDLL(None)
    with tempfile.TemporaryFile(mode="w+") as tmp:
        libc.fflush(None)
        saved = os.dup(1)
        os.dup2(tmp.fileno(), 1)
        try:
            yield lines
        finally:
            libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().splitlines())


def measure(step, steps: int) -> dict:
    for _ in range(3):
        step()
    wall_ms = timed(step, steps) / steps * 1e3
    with profile() as prof:
        for _ in range(steps):
            step()
    conv_op_ms = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in CONV) / steps / 1e3
    with captured_stdout() as lines, torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
        for _ in range(steps):
            step()
    return {"wall_ms": wall_ms, "conv_op_ms": conv_op_ms, "kernels": parse_verbose(lines, steps)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3, help="steps measured for each of the three readings")
    args = parser.parse_args()
    torch.manual_seed(0)
    data, schedule = du.load_digits("train"), du.make_schedule("linear", 1000)
    # (network, channels_last, bf16), as train_throughput.py runs them
    contenders = {
        "diffusers float32": (diffusers_digits(), False, False),
        "ddpm_utils float32, channels-last": (ours_digits(channels_last=True, dropout=0.0), True, False),
        "ddpm_utils bf16, contiguous": (ours_digits(channels_last=False, dropout=0.0), False, True),
        "ddpm_utils bf16, channels-last": (ours_digits(channels_last=True, dropout=0.0), True, True),
    }
    out = {}
    for name, (net, cl, bf16) in contenders.items():
        step, _ = make_step(net, data, schedule, args.batch, torch.Generator().manual_seed(0), cl, bf16)
        out[name] = r = measure(step, args.steps)
        kernels = r["kernels"]
        conv_ms = sum(v["ms"] for k, v in kernels.items() if k.startswith("convolution"))
        reorder_ms = kernels.get("reorder", {"ms": 0.0})["ms"]
        print(
            f"{name}: step {r['wall_ms']:.1f} ms; convolution operators {r['conv_op_ms']:.1f} ms, of which oneDNN "
            f"convolution kernels {conv_ms:.1f} ms and reorders {reorder_ms:.1f} ms "
            f"(the rest, {r['conv_op_ms'] - conv_ms - reorder_ms:.1f} ms, is PyTorch around the kernels)"
        )
        for kind, v in sorted(kernels.items(), key=lambda kv: -kv[1]["ms"]):
            rate = f"   {v['gflop'] / v['ms'] * 1e3:5.0f} GFLOP/s" if v["gflop"] else ""
            print(f"    {kind:<32} {v['calls']:5.0f} calls {v['ms']:7.2f} ms a step{rate}")
    record("onednn_kernels", {"batch": args.batch, "contenders": out})


if __name__ == "__main__":
    main()
