"""The GPU benchmark script runs end to end (on the CPU, in miniature): a lent GPU's time goes to figures, not fixes."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_gpu_benchmark_script_runs_on_cpu_in_miniature():
    pytest.importorskip("diffusers")
    args = ["--device", "cpu", "--batch", "2", "--steps", "1", "--warmup", "1", "--eval-batch", "2", "--eval-reps", "1"]
    done = subprocess.run(
        [sys.executable, "gpu.py", *args, "--no-compile"], cwd=BENCHMARKS, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    # the full count for the paper's CIFAR-10 network (test_unet: diffusers' network does the same arithmetic)
    assert "37.3 GFLOP per training image" in out, out
    for row in ("ddpm_utils eager", "diffusers eager", "ddpm_utils eager vs diffusers eager"):
        assert row in out, out


def test_gpu_benchmark_script_refuses_cuda_without_a_gpu():
    pytest.importorskip("diffusers")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    done = subprocess.run([sys.executable, "gpu.py"], cwd=BENCHMARKS, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "needs a CUDA GPU" in done.stderr
