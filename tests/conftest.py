"""Test-session setup: no test may touch the network, and figures stay off-screen."""

from __future__ import annotations

import ipaddress
import os
import socket

import shutil

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def built_site():
    """Build the book once per session (``make html``, network blocked), reusing
    ``_build`` and its execution cache like ``make book`` does.

    Returns the completed process and the build's wall time in seconds.
    """
    import time

    from tests.test_book_build import ROOT, run_build

    start = time.perf_counter()
    result = run_build(ROOT)
    return result, time.perf_counter() - start


def _is_local(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # an AF_UNIX path
        return True
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _is_local(address):
        raise RuntimeError(f"a test tried to reach the network ({address!r}); tests run offline")
    return _connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _is_local(address):
        raise RuntimeError(f"a test tried to reach the network ({address!r}); tests run offline")
    return _connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def _block_network() -> None:
    """Refuse every socket connection except to loopback for the whole session."""
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]


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


