"""Run every CPU benchmark in turn (about two and a quarter hours on a 2-core CPU, most of it the quality scripts)."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = (  # each with the options its figures in README.md use
    "train_throughput.py --bf16",
    "profile_train.py",
    "onednn_kernels.py --steps 5",
    "sample_throughput.py --bf16 --rounds 5",
    "scaling.py",
    "quality_per_minute.py",
    "per_step.py",
    "quality_by_timestep.py",
    "training_recipes.py",
    "augmentation.py",
    "sampler_steps.py",
    "checkpoint_quality.py",
    "notebook_times.py",
)
for script in SCRIPTS:
    print(f"== {script} ==", flush=True)
    name, *options = script.split()
    subprocess.run([sys.executable, str(HERE / name), *options], check=True, cwd=HERE)
