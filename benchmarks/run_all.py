"""Run every CPU benchmark in turn (about two and a quarter hours on a 2-core CPU, most of it the quality scripts)."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = (
    "train_throughput.py",
    "profile_train.py",
    "sample_throughput.py",
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
    subprocess.run([sys.executable, str(HERE / script)], check=True, cwd=HERE)
