"""Binder, reproduced locally: JupyterLab with the settings binder/postBuild
installs, a chapter opened at the path the launch button uses, in headless
Chromium. The chapter must open as a notebook (not as Markdown text), and a cell
must run in the project's kernel and show its output. A screenshot is saved to
``test-artifacts/``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.site.test_book_build import NETBLOCK, ROOT

pytestmark = pytest.mark.build
ARTIFACTS = ROOT / "test-artifacts"
CHAPTER = "book/foundations/tensors.md"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    pytest.importorskip("jupyterlab", reason="jupyterlab is in requirements.txt")
    home = tmp_path_factory.mktemp("lab")
    settings = home / "settings"
    settings.mkdir()
    shutil.copy(ROOT / "binder" / "overrides.json", settings / "overrides.json")  # what postBuild installs
    # Serve a copy of book/, laid out as in the repository, so that JupyterLab's
    # autosave and checkpoints never touch the sources.
    root = home / "repo"
    shutil.copytree(ROOT / "book", root / "book", ignore=shutil.ignore_patterns("_ext", "_static"))
    port, token = _free_port(), "dlbook-binder-test"
    env = dict(os.environ, PYTHONPATH=str(NETBLOCK), JUPYTER_CONFIG_DIR=str(home / "config"),
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


def test_a_chapter_opens_as_a_notebook_and_runs(browser, lab, measured):
    base, token = lab
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        # The path the launch button puts after urlpath= (see test_browser.py).
        page.goto(f"{base}/lab/tree/{CHAPTER}?token={token}", wait_until="domcontentloaded")
        notebook = page.locator(".jp-NotebookPanel")
        notebook.first.wait_for(state="visible", timeout=90_000)
        assert page.locator(".jp-FileEditor").count() == 0, "the chapter opened as a text file"
        # Cells appear as the notebook model loads (and lazily, as they scroll in).
        page.locator(".jp-NotebookPanel .jp-CodeCell").first.wait_for(state="visible", timeout=60_000)
        # Run the first two code cells: the imports, then the cell that prints shapes.
        page.get_by_text("Python 3 (ipykernel) | Idle").first.wait_for(timeout=90_000)
        run = page.locator(".jp-NotebookPanel-toolbar [data-command='notebook:run-cell-and-select-next']")
        prompts = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt")
        for i in range(2):  # the imports, then the cell that prints shapes
            prompts.nth(i).click()
            run.first.click()
            prompts.nth(i).filter(has_text=f"[{i + 1}]").wait_for(timeout=120_000)
        output = page.locator(".jp-NotebookPanel .jp-OutputArea-output", has_text="ndim=4")
        try:
            output.first.wait_for(state="visible", timeout=120_000)
        except Exception:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "binder-lab-failure.png"))
            raise
        assert "shape=(32, 3, 28, 28)" in output.first.inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "binder-lab-tensors.png"))
        measured(f"binder: {CHAPTER} opened in JupyterLab as a notebook, 2 cells ran "
                 f"(screenshot test-artifacts/binder-lab-tensors.png)")
    finally:
        context.close()
