"""Execution time of each notebook in a fresh kernel (on copies; the committed notebooks are untouched).

python benchmarks/notebook_times.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from common import record  # noqa: E402
from notebook_hygiene import NOTEBOOKS  # noqa: E402
from run_notebooks import execute  # noqa: E402


def main():
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "notebooks").mkdir()
        for path in NOTEBOOKS:
            copy = root / "notebooks" / path.name
            shutil.copy(path, copy)
            times[path.name] = execute(copy)
            print(f"{path.name:<36} {times[path.name]:6.1f} s", flush=True)
    print(f"{'total':<36} {sum(times.values()):6.1f} s")
    record("notebook_times", {"seconds": times, "total": sum(times.values())})


if __name__ == "__main__":
    main()
