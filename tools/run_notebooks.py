"""Re-execute every notebook in place, in order, each in a fresh kernel, and store the outputs.

    python tools/run_notebooks.py                 # all notebooks
    python tools/run_notebooks.py 02 03           # those whose names start with 02 or 03

Each notebook runs with notebooks/ as its working directory, exactly as a reader's
"Restart & Run All" would, except that the kernel first loads tools/figure_alt.py, which gives every figure
alternative text in its output's metadata. Afterwards the outputs are tidied for a reader who opens the file
(notebook_hygiene.tidy: ipykernel's kernelspec, no stored widget views) and metadata noise is stripped (outputs and
counts kept), so the result passes `tools/notebook_hygiene.py --check` unless the notebook itself needs a change.
Execution times are printed and written to benchmarks/results/notebook_times.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebook_hygiene import NOTEBOOKS, ROOT, STRIP, tidy  # noqa: E402

# Alternative text for every figure (tools/figure_alt.py), set up in the kernel before the first cell; `and None`
# keeps run_path's result from being displayed.
FIGURE_ALT = (
    f"__import__('runpy').run_path({str(Path(__file__).resolve().parent / 'figure_alt.py')!r},"
    " run_name='__kernel_startup__') and None"
)


def execute(path: Path, timeout: int = 900) -> float:
    """Execute `path` in place in a fresh kernel; returns the wall-clock seconds it took."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        extra_arguments=[f"--IPKernelApp.exec_lines={FIGURE_ALT}"],
    )
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    tidy(nb)
    nbformat.write(nb, path)
    return elapsed


def main(prefixes: list[str]) -> int:
    import subprocess

    chosen = [p for p in NOTEBOOKS if not prefixes or any(p.name.startswith(x) for x in prefixes)]
    times_path = ROOT / "benchmarks" / "results" / "notebook_times.json"
    times = json.loads(times_path.read_text()) if times_path.exists() else {}
    for path in chosen:
        print(f"executing {path.name} ...", flush=True)
        seconds = execute(path)
        times[path.name] = round(seconds, 1)
        print(f"  {seconds:.1f} s", flush=True)
    subprocess.run([*STRIP, *map(str, chosen)], check=True)
    times_path.parent.mkdir(parents=True, exist_ok=True)
    times_path.write_text(json.dumps(dict(sorted(times.items())), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
