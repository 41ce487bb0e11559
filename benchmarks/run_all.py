"""Run every CPU benchmark in turn (about 10 minutes on a 2-core CPU)."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for script in ("train_throughput.py", "profile_train.py", "sample_throughput.py", "scaling.py", "notebook_times.py"):
    print(f"== {script} ==", flush=True)
    subprocess.run([sys.executable, str(HERE / script)], check=True, cwd=HERE)
