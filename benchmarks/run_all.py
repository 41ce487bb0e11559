"""Run every CPU benchmark in turn, each with the options its figures in benchmarks/README.md use."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = (  # each with the options its figures in README.md use
    "train_throughput.py --bf16",
    "sample_throughput.py --bf16 --rounds 5",
    "scaling.py",
    "quality_per_minute.py",
    "sampler_steps.py",
    "notebook_times.py",
)
for script in SCRIPTS:
    print(f"== {script} ==", flush=True)
    name, *options = script.split()
    subprocess.run([sys.executable, str(HERE / name), *options], check=True, cwd=HERE)
