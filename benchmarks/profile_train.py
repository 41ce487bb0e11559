"""Where a CPU training step spends its time, for both libraries (the bound behind the training ratio).

    python benchmarks/profile_train.py

Profiles 10 training steps of each matched model with torch.profiler and reports the share of
self CPU time in convolution kernels (forward and backward, the same oneDNN kernels in both), and
the resulting Amdahl bound: even with every other op free, ours could be at most
diffusers_step_time / our_convolution_time faster.
"""

from __future__ import annotations

import torch
from common import call, diffusers_digits, ours_digits, record
from torch.profiler import profile

import ddpm_utils as du

CONV = ("aten::convolution_backward", "aten::mkldnn_convolution", "aten::_convolution", "aten::convolution")


def main():
    torch.manual_seed(0)
    data, schedule = du.load_digits("train"), du.make_schedule("linear", 1000)
    out = {}
    for name, model, cl in (("diffusers", diffusers_digits(), False), ("ddpm_utils", ours_digits(), True)):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
        g = torch.Generator().manual_seed(0)

        def step(model=model, opt=opt, g=g, cl=cl):
            x0, t, eps = du.training.draw_batch(data, 128, 1000, g)
            if cl:
                x0, eps = (v.contiguous(memory_format=torch.channels_last) for v in (x0, eps))
            loss = ((call(model, du.q_sample(schedule, x0, t, noise=eps), t) - eps) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        for _ in range(3):
            step()
        with profile() as prof:
            for _ in range(10):
                step()
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        conv = sum(e.self_cpu_time_total for e in events if e.key in CONV)
        out[name] = {"step_ms": total / 10 / 1e3, "conv_ms": conv / 10 / 1e3, "conv_share": conv / total}
    for name, r in out.items():
        share = 100 * r["conv_share"]
        print(f"{name:<11} step {r['step_ms']:7.1f} ms   convolutions {r['conv_ms']:7.1f} ms ({share:.0f}%)")
    bound = out["diffusers"]["step_ms"] / out["ddpm_utils"]["conv_ms"]
    print(f"Amdahl bound on ddpm_utils' training speed-up with these convolution kernels: {bound:.2f}x")
    record("profile_train", {**out, "amdahl_bound": bound})


if __name__ == "__main__":
    main()
