"""Build the chapters, with their stored outputs, into static HTML pages that work offline.

    python tools/build_html.py              # every chapter into build/html/
    python tools/build_html.py --out DIR    # elsewhere

Why nbconvert and not Jupyter Book: nbconvert is already installed with JupyterLab, renders a notebook exactly as
JupyterLab's own "Export as HTML" does (its `lab` template), and needs no configuration, table of contents or
Sphinx build; a course of ten numbered pages needs only an index.

Offline: the pages load MathJax 2.7 from the copy that the `jupyter-server-mathjax` package ships (what nbconvert's
template configures), and the Font Awesome 4.7 icons of matplotlib's JavaScript animation player from the
`XStatic-Font-Awesome` package, both copied next to the pages; require.js, which nbconvert links from a CDN for
widgets the chapters do not store, is left out. Images keep the alternative text stored in their output's
metadata (`{"image/png": {"alt": ...}}`); nbconvert's placeholder is used where there is none.
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebook_hygiene import NOTEBOOKS, ROOT  # noqa: E402

MATHJAX_URL = "assets/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
FONT_AWESOME_CDN = re.compile(
    r"<link[^>]*href=\"https?://[^\"]*/font-awesome/[0-9.]+/css/font-awesome(\.min)?\.css\"[^>]*>"
)
# jupyter-server-mathjax ships only the STIX-Web fonts (as the classic notebook configured them); MathJax's default,
# the TeX fonts, would fail to load ("Math Processing Error"). Read by MathJax.js when it loads.
MATHJAX_FONTS = (
    '<script>window.MathJax = {"HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web",'
    ' imageFont: null}, SVG: {font: "STIX-Web"}};</script>\n'
)
REQUIRE_JS = re.compile(r"<script src=\"https?://[^\"]*require(\.min)?\.js\"></script>\s*")


DISPLAY_MATH = re.compile(r"(\$\$.*?\$\$)", re.DOTALL)
INLINE_MATH = re.compile(r"(?<![\\$])\$(?:[^$\n]|\n(?![ \t]*\n))+\$")  # within one paragraph


def join_inline_math(source: str) -> str:
    """Put each inline `$...$` on one line: nbconvert's Markdown parser leaves inline math that spans lines raw
    (JupyterLab renders it); display math `$$...$$` is left as it is."""
    parts = DISPLAY_MATH.split(source)
    for k in range(0, len(parts), 2):  # the even parts lie outside display math
        parts[k] = INLINE_MATH.sub(lambda m: re.sub(r"\s*\n\s*", " ", m.group(0)), parts[k])
    return "".join(parts)


def copy_assets(out: Path) -> str:
    """MathJax and Font Awesome, from their Python packages, into out/assets/; returns the Font Awesome <link>s.

    Font Awesome 4 (the player's own version) has css/font-awesome.min.css; 5 and later have all.min.css and
    v4-shims.min.css, which map the player's `fa fa-play` names onto the new icons.
    """
    import jupyter_server_mathjax
    import xstatic.pkg.font_awesome as font_awesome

    mathjax = Path(jupyter_server_mathjax.__file__).parent / "static"
    shutil.copytree(mathjax, out / "assets" / "mathjax", dirs_exist_ok=True)
    source = Path(font_awesome.BASE_DIR)
    for part in ("css", "fonts", "webfonts"):
        if (source / part).is_dir():
            shutil.copytree(source / part, out / "assets" / "font-awesome" / part, dirs_exist_ok=True)
    sheets = (
        ["font-awesome.min.css"]
        if (source / "css" / "font-awesome.min.css").exists()
        else ["all.min.css", "v4-shims.min.css"]
    )
    return "\n".join(f'<link rel="stylesheet" href="assets/font-awesome/css/{name}">' for name in sheets)


def title_of(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def build(out: Path, notebooks: list[Path] = NOTEBOOKS) -> list[Path]:
    """Write one page per notebook, an index and the assets into `out`; returns the pages."""
    from nbconvert import HTMLExporter

    out.mkdir(parents=True, exist_ok=True)
    font_awesome = copy_assets(out)
    exporter = HTMLExporter(template_name="lab", mathjax_url=MATHJAX_URL)
    pages, links = [], []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = join_inline_math(cell.source)
        alts = [
            out.get("metadata", {}).get("image/png", {}).get("alt")
            for cell in nb.cells
            for out in cell.get("outputs", [])
            if "image/png" in out.get("data", {})
        ]
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title_of(nb) or path.stem}})
        body = FONT_AWESOME_CDN.sub(lambda _: font_awesome, body)
        body = REQUIRE_JS.sub("", body)
        body = body.replace(f'<script src="{MATHJAX_URL}">', MATHJAX_FONTS + f'<script src="{MATHJAX_URL}">', 1)
        body = add_alt_text(body, alts)
        page = out / (path.stem + ".html")
        page.write_text(body, encoding="utf-8")
        pages.append(page)
        links.append(f'<li><a href="{page.name}">{html.escape(title_of(nb) or path.stem)}</a></li>')
    index = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>ddpm-from-scratch</title></head>\n'
        "<body><h1>ddpm-from-scratch</h1>\n<ol>\n" + "\n".join(links) + "\n</ol></body></html>\n"
    )
    (out / "index.html").write_text(index, encoding="utf-8")
    return pages


def add_alt_text(body: str, alts: list[str | None]) -> str:
    """Replace nbconvert's placeholder alt text of the k-th PNG with the k-th stored alt text, where there is one."""
    pieces = iter(alts)

    def replace(match: re.Match) -> str:
        alt = next(pieces, None)
        return match.group(0) if not alt else match.group(0).replace(PLACEHOLDER, html.escape(alt, quote=True))

    return re.sub(r"<img[^>]*src=\"data:image/png;base64,[^\"]*\"[^>]*>", replace, body)


PLACEHOLDER = "No description has been provided for this image"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "html")
    parser.add_argument("notebooks", nargs="*", type=Path, default=NOTEBOOKS)
    args = parser.parse_args()
    pages = build(args.out, args.notebooks)
    print(f"wrote {len(pages)} pages and index.html to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
