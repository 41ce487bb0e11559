"""What a learner sees: each chapter opened in JupyterLab, and each page of the HTML build, in headless Chromium.

nbval shows that the notebooks execute; this file shows what they look like when opened. One JupyterLab server
(a free local port, a random token, settings and trust store in a temporary folder) serves copies of the
notebooks for the whole session, and one Chromium (Debian's `chromium`, driven by Playwright) visits it. For every
chapter: it opens; every equation renders (no raw `$`, no MathJax error); every stored image loads; no widget
error text and no `interactive(children=` text shows; the notebook is not marked modified after opening, and its
file is unchanged on disk after autosave (set to 1 s) had the chance to rewrite it. For the chapter with a slider:
Run All, drag the slider, the plot changes. For a chapter with a JavaScript animation (trusted copy): it plays.
The same checks run on the pages `tools/build_html.py` builds, with every request off the machine refused.

Needs Chromium (`apt-get install chromium` on Debian; or set CHROMIUM=/path/to/chrome) and Playwright (test
extra). Without them the tests skip, saying why; under CI (the CI variable set, as .ci/run does) they fail instead.
Run only these: `python -m pytest tests/test_browser.py`; leave them out: `-m "not browser"`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from notebook_hygiene import NOTEBOOKS  # noqa: E402

pytestmark = pytest.mark.browser
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
SLIDER_CHAPTER = "01"  # the chapter whose slider is dragged after Run All (its widget is found generically)
WIDGET_TEXT = ("interactive(children=", "Error displaying widget", "model not found")
TIMEOUT_MS = 60_000
NO_ALT = "No description has been provided for this image"  # nbconvert's placeholder


def unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping; .ci/run installs it)")
    pytest.skip(reason)


def find_chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def stored_images(nb) -> int:
    return sum(
        "image/png" in out.get("data", {}) or "image/jpeg" in out.get("data", {})
        for cell in nb.cells
        for out in cell.get("outputs", [])
    )


def has_player(nb) -> bool:
    return any(
        "anim-controls" in "".join(out.get("data", {}).get("text/html", ""))
        for cell in nb.cells
        for out in cell.get("outputs", [])
    )


def has_math(nb) -> bool:
    return any("$" in cell.source for cell in nb.cells if cell.cell_type == "markdown")


PLAYERS = [p for p in NOTEBOOKS if has_player(nbformat.read(p, as_version=4))]
SLIDERS = [p for p in NOTEBOOKS if p.name.startswith(SLIDER_CHAPTER)]


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright is not installed (pip install -e '.[test]')")
    chromium = find_chromium()
    if chromium is None:
        unavailable("no Chromium found: install Debian's (apt-get install chromium) or set CHROMIUM=/path/to/chrome")
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []  # Chromium refuses root otherwise
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=args)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.js_errors = errors
    yield page
    context.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_settings(folder: Path) -> None:
    """JupyterLab user settings for the test server: autosave every second, every cell in the page, no news."""
    settings = {
        "@jupyterlab/docmanager-extension/plugin": {"autosaveInterval": 1},
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "@jupyterlab/extensionmanager-extension/plugin": {"enabled": False},
    }
    for plugin, values in settings.items():
        package, name = plugin.rsplit("/", 1)
        path = folder / package / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


class Lab:
    def __init__(self, url: str, token: str, root: Path):
        self.url, self.token, self.root = url, token, root

    def open(self, page, relpath: str):
        """Open `relpath` (under the server's root) in a fresh workspace; wait until its kernel is started and idle."""
        page.goto(f"{self.url}/lab/tree/{relpath}?reset&token={self.token}")
        page.locator(".jp-NotebookPanel").first.wait_for(state="visible")
        deadline = time.monotonic() + 120
        while not self.kernel_idle(relpath):
            assert time.monotonic() < deadline, f"no idle kernel for {relpath} after 120 s"
            time.sleep(0.5)
        page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\| Idle")).first.wait_for(state="visible")

    def kernel_idle(self, relpath: str) -> bool:
        with urllib.request.urlopen(f"{self.url}/api/sessions?token={self.token}", timeout=10) as response:
            sessions = json.load(response)
        return any(s["path"] == relpath and (s.get("kernel") or {}).get("execution_state") == "idle" for s in sessions)


@pytest.fixture(scope="session")
def lab(tmp_path_factory, browser):
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    data = base / "data"
    for folder in (root / "run", root / "trusted", data):
        folder.mkdir(parents=True)
    for path in NOTEBOOKS:
        shutil.copy2(path, root / path.name)  # as committed: what a learner opens
        shutil.copy2(path, root / "run" / path.name)  # for Run All (autosave rewrites these)
    from nbformat.sign import NotebookNotary

    notary = NotebookNotary(data_dir=str(data))
    for path in PLAYERS:  # trusted, as after "Trust Notebook": JupyterLab then runs the player's script
        nb = nbformat.read(path, as_version=4)
        notary.sign(nb)
        nbformat.write(nb, root / "trusted" / path.name)
    write_settings(base / "settings")
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_DATA_DIR": str(data),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    port, token = free_port(), secrets.token_hex(16)
    log = open(base / "jupyterlab.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--allow-root"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"JupyterLab did not start:\n{(base / 'jupyterlab.log').read_text()[-3000:]}")
            time.sleep(0.5)
    yield Lab(url, token, root)
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


# JavaScript run in the page. Markdown text outside rendered math, code and scripts must hold no `$`.
RAW_DOLLARS = """(sel) => {
    const found = [];
    for (const md of document.querySelectorAll(sel)) {
        const copy = md.cloneNode(true);
        copy.querySelectorAll('mjx-container, .MathJax, .MathJax_Display, .MathJax_Preview, .MathJax_CHTML, '
            + '.MathJax_SVG, script, code, pre, style').forEach(e => e.remove());
        const text = copy.textContent;
        const at = text.indexOf('$');
        if (at >= 0) found.push(text.slice(Math.max(0, at - 40), at + 40));
    }
    return found;
}"""
ALL_RENDERED = """([cells, markdown]) => document.querySelectorAll('.jp-NotebookPanel .jp-Cell').length === cells
    && document.querySelectorAll('.jp-NotebookPanel .jp-MarkdownCell .jp-RenderedMarkdown').length === markdown"""
IMAGES = """(sel) => [...document.querySelectorAll(sel)].map(img => ({
    ok: img.complete && img.naturalWidth > 0, src: (img.getAttribute('src') || '').slice(0, 40),
    alt: img.getAttribute('alt')}))"""


def check_math(page, markdown: str, rendered: str, errors: str, expect_math: bool):
    """Wait for typesetting; then no raw `$` remains, no math error shows, and some math rendered."""
    deadline = time.monotonic() + 60
    while True:
        raw = page.evaluate(RAW_DOLLARS, markdown)
        count = page.locator(rendered).count()
        if (not raw and (count or not expect_math)) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert raw == [], f"raw $ left in rendered Markdown (an equation did not render): {raw[:5]}"
    assert page.locator(errors).count() == 0, f"MathJax errors: {page.locator(errors).all_inner_texts()[:5]}"
    assert count > 0 or not expect_math, "the chapter has equations but none rendered"


def check_images(page, selector: str, expected: int, alt: bool = False):
    deadline = time.monotonic() + 30
    while (images := page.evaluate(IMAGES, selector)) and not all(i["ok"] for i in images):
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert [i for i in images if not i["ok"]] == [], "stored images that did not load"
    assert len(images) == expected, f"{len(images)} images shown, {expected} stored"
    if alt:  # nbconvert's placeholder where a figure's output stores none
        assert [i for i in images if not i["alt"] or i["alt"] == NO_ALT] == [], "images without alternative text"


def check_no_widget_text(text: str):
    for bad in WIDGET_TEXT:
        assert bad not in text, f"{bad!r} shows in the outputs"
    assert not re.search(r"<function [\w.]+\(", text), "a <function ...> repr shows in the outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_opens_cleanly_in_jupyterlab(lab, page, path):
    before = (lab.root / path.name).read_bytes()
    nb = nbformat.read(path, as_version=4)
    lab.open(page, path.name)
    markdown_cells = sum(cell.cell_type == "markdown" for cell in nb.cells)
    page.wait_for_function(ALL_RENDERED, arg=[len(nb.cells), markdown_cells])
    check_math(page, ".jp-RenderedMarkdown", "mjx-container", "mjx-merror, [data-mjx-error]", has_math(nb))
    check_images(page, ".jp-RenderedImage img", stored_images(nb))
    check_no_widget_text("\n".join(page.locator(".jp-OutputArea").all_inner_texts()))
    time.sleep(3)  # autosave runs every second here: a notebook JupyterLab changed would be written by now
    assert page.locator(".lm-TabBar-tab.jp-mod-dirty").count() == 0, "JupyterLab marks the notebook modified"
    assert (lab.root / path.name).read_bytes() == before, "opening the notebook changed its file on disk"


@pytest.mark.parametrize("path", SLIDERS, ids=lambda p: p.name)
def test_slider_redraws_the_plot_after_run_all(lab, page, path):
    lab.open(page, f"run/{path.name}")
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    # the first interact-style widget holding a slider and a plot
    widget = page.locator(".widget-interact", has=page.locator(".widget-slider")).filter(has=page.locator("img"))
    widget.first.wait_for(state="visible", timeout=300_000)
    page.wait_for_function(  # every cell has run: no "[*]" prompt left
        "() => ![...document.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('*'))",
        timeout=300_000,
    )
    widget = widget.first
    widget.scroll_into_view_if_needed()
    image, readout = widget.locator("img").first, widget.locator(".widget-readout").first
    src, value = image.get_attribute("src"), readout.inner_text()
    handle = widget.locator(".widget-slider .noUi-handle, .widget-slider input[type=range]").first
    track = widget.locator(".widget-slider .noUi-target, .widget-slider input[type=range]").first.bounding_box()
    box = handle.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(track["x"] + 0.3 * track["width"], y, steps=10)
    page.mouse.up()
    assert readout.inner_text() != value, "dragging the slider did not change its value"
    page.wait_for_function(  # the widget draws a new figure (a new <img>) for the new value
        "([widget, src]) => { const img = widget.querySelector('img'); return img && img.getAttribute('src') !== src }",
        arg=[widget.element_handle(), src],
    )
    assert page.js_errors == []


def check_player_plays(page):
    player = page.locator(".animation").first
    frame = player.locator("img").first
    frame.wait_for(state="visible")
    page.wait_for_function("(img) => (img.getAttribute('src') || '').startsWith('data:')", arg=frame.element_handle())
    first = frame.get_attribute("src")
    player.locator("button:has(.fa-play)").first.click()
    page.wait_for_function("([img, src]) => img.getAttribute('src') !== src", arg=[frame.element_handle(), first])


@pytest.mark.parametrize("path", PLAYERS, ids=lambda p: p.name)
def test_animation_plays_in_a_trusted_notebook(lab, page, path):
    lab.open(page, f"trusted/{path.name}")
    check_player_plays(page)


@pytest.fixture(scope="session")
def html_pages(tmp_path_factory):
    from build_html import build

    out = tmp_path_factory.mktemp("html")
    return {page.stem: page for page in build(out)}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_html_page_works_offline(page, html_pages, path):
    refused = []

    def offline(route):
        if route.request.url.startswith(("file:", "data:", "blob:")):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", offline)
    nb = nbformat.read(path, as_version=4)
    page.goto(html_pages[path.stem].as_uri())
    page.wait_for_function("() => window.MathJax && window.MathJax.Hub")
    page.evaluate("() => new Promise(done => MathJax.Hub.Queue(() => done(true)))")
    check_math(
        page, ".jp-RenderedMarkdown", ".MathJax, .MathJax_CHTML, .MathJax_SVG", ".MathJax_Error, .merror", has_math(nb)
    )
    check_images(page, ".jp-RenderedImage img", stored_images(nb), alt=True)
    check_no_widget_text("\n".join(page.locator(".jp-OutputArea").all_inner_texts()))
    if has_player(nb):
        check_player_plays(page)
    assert refused == [], f"the page needs the network for {refused}"
    assert page.js_errors == []
