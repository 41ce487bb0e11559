"""How cost grows: training images/s and peak memory vs image size and batch size; sampling time vs steps.

    python benchmarks/scaling.py          # writes results/scaling.png and a JSON line

Each configuration runs in a fresh subprocess so that its peak resident memory (ru_maxrss) is its own.
The network is the DIGITS architecture with in_channels=1 at every size (sizes must be even).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import torch
from common import RESULTS, record

CHILD = r"""
import json, resource, sys, time, torch
import ddpm_utils as du
size, batch = int(sys.argv[1]), int(sys.argv[2])
torch.manual_seed(0)
data = torch.rand(512, 1, size, size) * 2 - 1
config = du.extras.TrainConfig(batch_size=batch, max_steps=10**6)
tr = du.extras.Trainer(du.UNet(du.DIGITS), du.make_schedule("linear", 1000), config, data)
for _ in range(2): tr.train_step()
n = max(2, 2048 // batch)
start = time.perf_counter()
for _ in range(n): tr.train_step()
rate = n * batch / (time.perf_counter() - start)
print(json.dumps({"size": size, "batch": batch, "images_per_s": rate,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(size, batch):
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(size), str(batch)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import ddpm_utils as du

    by_size = [run(s, 128) for s in (8, 16, 28, 32)]
    by_batch = [run(8, b) for b in (32, 128, 512)]
    model, schedule = du.UNet(du.DIGITS).eval(), du.make_schedule("linear", 1000)
    by_steps = []
    for steps in (10, 50, 100, 250):
        start = time.perf_counter()
        du.ddim_sample(model, schedule, (256, 1, 8, 8), steps, generator=torch.Generator().manual_seed(0))
        by_steps.append({"steps": steps, "seconds": time.perf_counter() - start})

    print("training, batch 128:   size   images/s   peak RSS (MB)")
    for r in by_size:
        print(f"                        {r['size']:4d}   {r['images_per_s']:8.1f}   {r['peak_rss_mb']:8.0f}")
    print("training, 8x8:        batch   images/s   peak RSS (MB)")
    for r in by_batch:
        print(f"                        {r['batch']:4d}   {r['images_per_s']:8.1f}   {r['peak_rss_mb']:8.0f}")
    print("DDIM sampling, 256 digits:  steps   seconds")
    for r in by_steps:
        print(f"                             {r['steps']:5d}   {r['seconds']:7.2f}")

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    axes[0].plot([r["size"] for r in by_size], [r["images_per_s"] for r in by_size], marker="o")
    axes[0].set_xlabel("image size (pixels per side), batch 128")
    axes[0].set_ylabel("training images/s")
    ax2 = axes[0].twinx()
    ax2.plot([r["size"] for r in by_size], [r["peak_rss_mb"] for r in by_size], "C1--", marker="s")
    ax2.set_ylabel("peak RSS (MB)", color="C1")
    axes[1].plot([r["batch"] for r in by_batch], [r["images_per_s"] for r in by_batch], marker="o")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("batch size, 8x8")
    axes[1].set_ylabel("training images/s")
    axes[2].plot([r["steps"] for r in by_steps], [r["seconds"] for r in by_steps], marker="o")
    axes[2].set_xlabel("DDIM steps")
    axes[2].set_ylabel("seconds for 256 digits")
    plt.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / "scaling.png", dpi=90)
    record("scaling", {"by_size": by_size, "by_batch": by_batch, "by_steps": by_steps})


if __name__ == "__main__":
    main()
