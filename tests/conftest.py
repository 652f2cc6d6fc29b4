"""Test-session setup: no test may touch the network, figures stay off-screen,
and the shared fixtures (the built site, the browser)."""

from __future__ import annotations

import os
import shutil

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

# Counts and timings the site tests measure (pages, links, build times): pytest
# hides a passing test's output, so they are collected here and printed in the
# terminal summary of every run, CI's included.
_MEASUREMENTS: list[str] = []


@pytest.fixture
def measured():
    """Call ``measured("what: number")`` to report a count or timing in the summary."""
    return _MEASUREMENTS.append


def pytest_terminal_summary(terminalreporter) -> None:
    if _MEASUREMENTS:
        terminalreporter.section("dlbook measurements")
        for line in _MEASUREMENTS:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def built_site():
    """Build the book once per session (``make html``, network blocked), reusing
    ``_build`` and its execution cache like ``make book`` does.

    Returns the completed process and the build's wall time in seconds.
    """
    import time

    from tests.site.test_book_build import ROOT, run_build

    start = time.perf_counter()
    result = run_build(ROOT)
    return result, time.perf_counter() - start


# No test may reach the network: the same guard the test builds load through
# PYTHONPATH (loopback stays allowed for the kernels, the HTTP and JupyterLab
# servers the tests start).
import tests.netblock.sitecustomize  # noqa: E402,F401


CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no Chromium on this machine: install Debian's 'chromium' package "
                    "(make test does so when it can) to run the browser tests")
    return path


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in requirements.txt")
    executable = _chromium()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


