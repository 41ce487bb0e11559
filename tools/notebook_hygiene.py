"""Check (or fix) that committed notebooks are clean and were executed top to bottom.

    python tools/notebook_hygiene.py --check   # exit 1 and list problems
    python tools/notebook_hygiene.py --fix     # strip metadata noise in place (outputs and counts kept)

A notebook passes when every non-empty code cell has an execution count, the counts run 1, 2, 3, ...
in cell order (a notebook that was run top to bottom in a fresh kernel), no output is an error, and
`nbstripout --keep-output --keep-count` would change nothing (no editor or widget-state metadata).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
STRIP = [sys.executable, "-m", "nbstripout", "--keep-output", "--keep-count", "--drop-empty-cells"]


def execution_problems(path: Path) -> list[str]:
    """Problems with how `path` was executed: unexecuted cells, counts out of order, error outputs."""
    nb = nbformat.read(path, as_version=4)
    problems = []
    expected = 1
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        count = cell.get("execution_count")
        if count is None:
            problems.append(f"cell {index} was not executed")
        elif count != expected:
            problems.append(f"cell {index} has execution count {count}, expected {expected} (not run top to bottom)")
        expected = (count or expected) + 1
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"cell {index} stores an error output: {out.get('ename')}")
    return problems


def metadata_problems(path: Path) -> list[str]:
    result = subprocess.run([*STRIP, "--verify", str(path)], capture_output=True, text=True)
    return [] if result.returncode == 0 else ["metadata is not stripped (run: python tools/notebook_hygiene.py --fix)"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true")
    group.add_argument("--fix", action="store_true")
    parser.add_argument("notebooks", nargs="*", type=Path, default=NOTEBOOKS)
    args = parser.parse_args()
    if args.fix:
        subprocess.run([*STRIP, *map(str, args.notebooks)], check=True)
        return 0
    failed = False
    for path in args.notebooks:
        for problem in execution_problems(path) + metadata_problems(path):
            print(f"{path.name}: {problem}")
            failed = True
    if not args.notebooks:
        print("no notebooks found")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
