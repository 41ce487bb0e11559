"""Kernel start-up file for tools/run_notebooks.py: every matplotlib figure a notebook displays gets alternative text.

The text is stored in the output's metadata, `{"image/png": {"alt": ...}}`, and describes the figure from what it
says of itself: its title, and each panel's title and axis labels, e.g. "Figure (2 panels): Forward process. panel 1:
x_t, t = 10 (image); panel 2: loss against t." The HTML build (tools/build_html.py) writes it into the page's
<img alt>; JupyterLab (4.6) shows stored images without alt text whatever the metadata says.
Run by the kernel before the first cell (IPKernelApp.exec_lines, with runpy: no name enters the notebook's
namespace), so no cell, output or execution count changes.
"""

from __future__ import annotations


def describe(fig) -> str:
    """One-sentence alternative text for a matplotlib figure, from its titles and axis labels."""

    def clean(text: str) -> str:
        return " ".join(text.replace("$", "").replace("\\", "").split())

    axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    title = clean(fig._suptitle.get_text()) if getattr(fig, "_suptitle", None) else ""
    panels = []
    for ax in axes:
        what = clean(ax.get_title()) or clean(ax.get_title(loc="left")) or clean(ax.get_title(loc="right"))
        x, y = clean(ax.get_xlabel()), clean(ax.get_ylabel())
        if y and x:
            what = f"{what}, {y} against {x}" if what else f"{y} against {x}"
        elif x or y:
            what = f"{what}, {x or y}" if what else x or y
        if ax.images:
            what = f"{what} (image)" if what else "an image"
        panels.append(what)
    if len(axes) == 1:
        return "Figure: " + ". ".join(filter(None, [title, panels[0]])) + "." if title or panels[0] else "Figure."
    described = "; ".join(f"panel {k + 1}: {p}" for k, p in enumerate(panels) if p)
    return f"Figure ({len(axes)} panels)" + (f": {title}" if title else "") + (f". {described}." if described else ".")


def _install() -> None:
    from IPython.core.formatters import PNGFormatter
    from matplotlib.figure import Figure

    if getattr(PNGFormatter.__call__, "_adds_alt", False):
        return
    original = PNGFormatter.__call__

    def call(self, obj):
        result = original(self, obj)
        if not isinstance(obj, Figure) or result is None:
            return result
        data, metadata = result if isinstance(result, tuple) else (result, None)
        return data, {**(metadata or {}), "alt": describe(obj)}

    call._adds_alt = True
    PNGFormatter.__call__ = call


if __name__ == "__kernel_startup__":  # run_notebooks' kernel; importing this file (the tests) changes nothing
    _install()
