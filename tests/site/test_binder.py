"""Binder, reproduced locally: JupyterLab with the settings binder/postBuild
installs, serving the converted chapters the way the notebooks branch lays them
out (``book/<part>/<page>.ipynb``, written by the build), each opened at the
path the launch button uses, in headless Chromium.

For every chapter: it opens as a notebook; its rendered Markdown shows no MyST
syntax and no error boxes; equations are typeset; solutions are collapsed
``<details>``; and its first code cells run in the project's kernel. Screenshots
of one chapter in JupyterLab and of one converted notebook rendered by plain
nbconvert (no extension at all, as a stand-in for Colab's renderer) are saved to
``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from tests.site.test_book_build import NETBLOCK, ROOT
from tests.site.test_site import _has_code, toc_files

pytestmark = pytest.mark.build
ARTIFACTS = ROOT / "test-artifacts"
SOURCES = ROOT / "_build" / "html" / "_sources"
CHAPTERS = [name for name in toc_files() if _has_code(name)]
SCREENSHOT_CHAPTER = "book/deep/dropout"
#: What must never show in a rendered chapter.
RAW = ["{eq}`", "{glue", "{footcite", "{numref}", "{doc}", ":::", "```{", "$$ (", ":class:",
       "Unknown Directive", "Unknown Role", "Unknown directive", "Unknown role"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory, built_site):
    pytest.importorskip("jupyterlab", reason="jupyterlab is in requirements.txt")
    result, _ = built_site
    assert result.returncode == 0, "the book build failed: the converted notebooks are missing"
    home = tmp_path_factory.mktemp("lab")
    settings = home / "settings"
    settings.mkdir()
    shutil.copy(ROOT / "binder" / "overrides.json", settings / "overrides.json")  # what postBuild installs
    # The notebooks branch: the converted chapters beside the sources (a copy, so
    # that JupyterLab's autosave and checkpoints never touch the build's files).
    root = home / "repo"
    shutil.copytree(ROOT / "book", root / "book", ignore=shutil.ignore_patterns("_ext", "_static"))
    for name in CHAPTERS:
        shutil.copy(SOURCES / f"{name}.ipynb", root / f"{name}.ipynb")
    port, token = _free_port(), "dlbook-binder-test"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(NETBLOCK), str(ROOT)]), JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTER_DATA_DIR=str(home / "data"))
    env.pop("MPLBACKEND", None)
    log = (home / "lab.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--LabApp.app_settings_dir={settings}",
         f"--ServerApp.root_dir={root}", "--allow-root", "--LabApp.news_url=",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if time.time() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("JupyterLab did not start:\n" + (home / "lab.log").read_text()[-3000:])
            time.sleep(0.5)
    yield base, token
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def _shutdown_kernels(base: str, token: str) -> None:
    with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=10) as response:
        sessions = json.load(response)
    for session in sessions:
        request = urllib.request.Request(f"{base}/api/sessions/{session['id']}?token={token}", method="DELETE")
        urllib.request.urlopen(request, timeout=30).close()


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_chapter_reads_like_the_site_and_runs_in_binder(browser, lab, chapter, measured):
    base, token = lab
    notebook = nbformat.read(SOURCES / f"{chapter}.ipynb", as_version=4)
    markdown = [c.source for c in notebook.cells if c.cell_type == "markdown"]
    details = sum(m.count("<details>") for m in markdown)
    has_math = any("$" in m for m in markdown)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        # The path the launch button puts after urlpath= (see test_browser.py).
        # A workspace of its own: JupyterLab would otherwise restore the previous chapter's tab.
        workspace = chapter.replace("/", "-")
        page.goto(f"{base}/lab/workspaces/{workspace}/tree/{chapter}.ipynb?token={token}",
                  wait_until="domcontentloaded")
        page.locator(".jp-NotebookPanel").first.wait_for(state="visible", timeout=90_000)
        assert page.locator(".jp-FileEditor").count() == 0, "the chapter opened as a text file"
        rendered = page.locator(".jp-NotebookPanel .jp-MarkdownCell .jp-RenderedMarkdown")
        deadline = time.time() + 60
        while rendered.count() < len(markdown) and time.time() < deadline:
            time.sleep(0.25)
        assert rendered.count() == len(markdown), "not every Markdown cell rendered"
        if has_math:
            page.locator(".jp-RenderedMarkdown mjx-container").first.wait_for(state="attached", timeout=60_000)
        text = "\n".join(rendered.all_inner_texts())
        left = [raw for raw in RAW if raw in text]
        assert not left, f"raw MyST or error boxes in the rendered chapter: {left}"
        assert page.locator(".jp-RenderedMarkdown details").count() == details
        assert page.locator(".jp-RenderedMarkdown details[open]").count() == 0, "a solution is open"
        # Run the first code cells: the install cell (a no-op here), then the page's imports.
        page.get_by_text("Python 3 (ipykernel) | Idle").first.wait_for(timeout=90_000)
        run = page.locator(".jp-NotebookPanel-toolbar [data-command='notebook:run-cell-and-select-next']")
        prompts = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt")
        for i in range(2):
            prompts.nth(i).click()
            run.first.click()
            prompts.nth(i).filter(has_text=f"[{i + 1}]").wait_for(timeout=120_000)
        tracebacks = page.locator(".jp-NotebookPanel .jp-OutputArea-output", has_text="Traceback")
        assert tracebacks.count() == 0, tracebacks.first.inner_text()[:2000]
        if chapter == SCREENSHOT_CHAPTER:
            ARTIFACTS.mkdir(exist_ok=True)
            page.locator(".jp-RenderedMarkdown details").first.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "binder-lab-dropout.png"))
        measured(f"binder: {chapter}: {len(markdown)} Markdown cells rendered, {details} solutions "
                 f"collapsed, raw-syntax hits 0, 2 cells ran")
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"binder-failure-{chapter.replace('/', '-')}.png"))
        raise
    finally:
        context.close()
        _shutdown_kernels(base, token)


def test_a_converted_notebook_renders_without_any_extension(browser, built_site, tmp_path):
    """nbconvert's classic HTML: Markdown and MathJax, nothing MyST-aware (as in Colab)."""
    from nbconvert import HTMLExporter

    result, _ = built_site
    assert result.returncode == 0
    notebook = nbformat.read(SOURCES / f"{SCREENSHOT_CHAPTER}.ipynb", as_version=4)
    # MathJax from the site's own copy (the default CDN is unreachable offline)
    mathjax = (ROOT / "_build" / "html" / "_static" / "mathjax" / "tex-mml-chtml.js").as_uri()
    html, _ = HTMLExporter(template_name="classic", mathjax_url=mathjax).from_notebook_node(notebook)
    # the classic template configures MathJax 2; MathJax 3 needs $...$ declared as inline math
    config = ("<script>window.MathJax = {tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], "
              "processEscapes: true}};</script>")
    html = html.replace("<head>", "<head>" + config, 1)
    page_file = tmp_path / "dropout.html"
    page_file.write_text(html)
    context = browser.new_context(viewport={"width": 1100, "height": 1400})
    page = context.new_page()
    try:
        page.route("http*://**", lambda route: route.abort())  # offline: MathJax from a CDN cannot load
        page.goto(page_file.as_uri())
        page.locator("mjx-container").first.wait_for(state="attached", timeout=60_000)
        text = page.locator("body").inner_text()
        assert not [raw for raw in RAW if raw in text]
        assert "$\\" not in text, "TeX left unrendered"
        assert page.locator("details").count() >= 3 and page.locator("details[open]").count() == 0
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "converted-notebook-dropout.png"))
    finally:
        context.close()
