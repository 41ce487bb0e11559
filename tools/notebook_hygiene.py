"""Check (or fix) that committed notebooks are clean, were executed top to bottom, and read well when opened.

    python tools/notebook_hygiene.py --check   # exit 1 and list problems
    python tools/notebook_hygiene.py --fix     # strip metadata noise and tidy outputs in place

A notebook passes when
- every non-empty code cell has an execution count, the counts run 1, 2, 3, ... in cell order (a notebook that
  was run top to bottom in a fresh kernel), and no output is an error;
- `nbstripout --keep-output --keep-count` would change nothing (no editor or widget-state metadata);
- its kernelspec is the one ipykernel installs ("Python 3 (ipykernel)"), so JupyterLab does not mark the
  notebook modified on opening it, and autosave does not rewrite a file the reader only read;
- it stores no widget view: without a running kernel a stored view shows as `interactive(children=...` text or
  "Error displaying widget: model not found", and in a static HTML page as the same text. (The tidy step drops
  such outputs rather than storing the widget state: a stored state draws a slider that does nothing until the
  cell is run, keeps a copy of every figure the widget drew, and needs the widget manager's scripts from a CDN
  in the HTML build. The cell's other outputs, such as a static figure beside the widget, are kept.)
- no cell ends in a bare `<function ...>` repr (what `widgets.interact(f)` returns when it is a cell's last
  expression: write `_ = widgets.interact(...)`);
- every figure has alternative text in its output's metadata (`{"image/png": {"alt": ...}}`, written by
  tools/run_notebooks.py from the figure's titles and axis labels; the HTML build puts it in <img alt>);
- every figure is readable: at least MIN_WIDTH x MIN_HEIGHT pixels, and a strip or grid of panels (an image at
  least STRIP_ASPECT times wider than tall) at least MIN_STRIP_WIDTH pixels wide;
- an HTML output that needs scripts (a JavaScript animation player) has a static image beside it, in the same or
  a neighbouring code cell, and a Markdown cell near it that mentions trust: JupyterLab runs no script of an
  untrusted notebook, so on first opening the player is a broken image with dead buttons.
"""

from __future__ import annotations

import argparse
import base64
import re
import struct
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
STRIP = [sys.executable, "-m", "nbstripout", "--keep-output", "--keep-count", "--drop-empty-cells"]

# What `python -m ipykernel install` writes (ipykernel.kernelspec): JupyterLab copies the running kernel's spec
# into the notebook, so any other value marks the notebook modified as soon as it is opened.
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
FUNCTION_REPR = re.compile(r"^<function [^\n]*>$")
MIN_WIDTH, MIN_HEIGHT = 300, 100  # pixels, as stored (matplotlib's inline backend: 72 dpi)
STRIP_ASPECT, MIN_STRIP_WIDTH = 2.0, 480
NEAR = 3  # how many cells away the static image and the note on trust may be


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _is_widget_output(out) -> bool:
    data = out.get("data", {})
    return WIDGET_VIEW in data or _text(data.get("text/plain")).startswith("interactive(children=")


def _is_function_repr(out) -> bool:
    return out.get("output_type") == "execute_result" and bool(
        FUNCTION_REPR.match(_text(out["data"].get("text/plain")))
    )


def _needs_scripts(out) -> bool:
    return "<script" in _text(out.get("data", {}).get("text/html")).lower()


def png_size(b64: str) -> tuple[int, int]:
    """(width, height) of a base64-encoded PNG, read from its IHDR chunk."""
    raw = base64.b64decode(_text(b64)[:64])
    if raw[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return struct.unpack(">II", raw[16:24])


def tidy(nb) -> None:
    """Make an executed notebook read well when opened: ipykernel's kernelspec; no stored widget views.

    A cell that displayed a widget loses that output (and the `<function ...>` repr that `interact` returns as the
    cell's last expression); its other outputs stay. Modifies `nb` in place.
    """
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = cell.get("outputs", [])
        if not any(_is_widget_output(out) for out in outputs):
            continue
        cell.outputs = [out for out in outputs if not _is_widget_output(out) and not _is_function_repr(out)]


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


def reader_problems(path: Path) -> list[str]:
    """Problems a reader sees on opening `path`: kernelspec, widget views, function reprs, tiny figures, players."""
    nb = nbformat.read(path, as_version=4)
    problems = []
    spec = dict(nb.metadata.get("kernelspec", {}))
    if spec != KERNELSPEC:
        problems.append(
            f"kernelspec is {spec}, expected {KERNELSPEC} (JupyterLab would mark the notebook modified on opening it;"
            " execute with tools/run_notebooks.py or run tools/notebook_hygiene.py --fix)"
        )
    images = {}  # cell index -> whether it stores an image
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        images[index] = False
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            plain = _text(data.get("text/plain"))
            if _is_widget_output(out):
                problems.append(
                    f"cell {index} stores a widget view, shown as {plain[:40]!r}... or 'Error displaying widget' until"
                    " the cell is run (execute with tools/run_notebooks.py, which drops it)"
                )
            elif _is_function_repr(out):
                problems.append(
                    f"cell {index} ends in the repr {plain!r}; assign the last expression (`_ = widgets.interact(...)`)"
                )
            for mime in ("image/png",):
                if mime not in data:
                    continue
                images[index] = True
                if not out.get("metadata", {}).get(mime, {}).get("alt"):
                    problems.append(
                        f"cell {index} stores a figure without alternative text (execute with tools/run_notebooks.py,"
                        " which describes each figure from its titles and axis labels)"
                    )
                width, height = png_size(data[mime])
                if width < MIN_WIDTH or height < MIN_HEIGHT:
                    problems.append(
                        f"cell {index} stores a {width}x{height} px figure, too small to read (at least"
                        f" {MIN_WIDTH}x{MIN_HEIGHT}: enlarge figsize)"
                    )
                elif width >= STRIP_ASPECT * height and width < MIN_STRIP_WIDTH:
                    problems.append(
                        f"cell {index} stores a {width}x{height} px strip of panels, too small to read (a figure"
                        f" {STRIP_ASPECT:g}x wider than tall needs at least {MIN_STRIP_WIDTH} px: enlarge figsize)"
                    )
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not any(_needs_scripts(out) for out in cell.get("outputs", [])):
            continue
        near = range(max(0, index - NEAR), min(len(nb.cells), index + NEAR + 1))
        if not any(images.get(i) for i in near):
            problems.append(
                f"cell {index} stores an HTML output that needs scripts (untrusted notebooks run none) with no static"
                f" image within {NEAR} cells of it"
            )
        if not any(nb.cells[i].cell_type == "markdown" and "trust" in nb.cells[i].source.lower() for i in near):
            problems.append(
                f"cell {index} stores an HTML output that needs scripts, and no Markdown cell within {NEAR} cells of"
                " it tells the reader to trust the notebook (or run the cell) to see it"
            )
    return problems


def fix(paths: list[Path]) -> None:
    """Strip metadata noise (nbstripout) and tidy the outputs of `paths` in place."""
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        tidy(nb)
        nbformat.write(nb, path)
    subprocess.run([*STRIP, *map(str, paths)], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true")
    group.add_argument("--fix", action="store_true")
    parser.add_argument("notebooks", nargs="*", type=Path, default=NOTEBOOKS)
    args = parser.parse_args()
    if args.fix:
        fix(args.notebooks)
        return 0
    failed = False
    for path in args.notebooks:
        for problem in execution_problems(path) + metadata_problems(path) + reader_problems(path):
            print(f"{path.name}: {problem}")
            failed = True
    if not args.notebooks:
        print("no notebooks found")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
