"""Records where each page of the book executed, for the build report (back matter).

The book build appends a hidden cell to every executed page that calls
:func:`record`; outside the build (no ``DLBOOK_BUILD_RECORD_DIR``) it does
nothing, so a downloaded notebook runs the same cell harmlessly.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import torch

__all__ = ["describe_device", "record"]


def describe_device() -> str:
    """A human-readable name for :func:`dlbook.device`, e.g. ``cuda (NVIDIA H100)``."""
    from dlbook import device

    dev = device()
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    if dev.type == "cpu":
        return f"cpu ({os.cpu_count()} cores)"
    return dev.type


def record(page: str, dependency_hash: str) -> dict[str, str] | None:
    """Write this page's execution record into ``$DLBOOK_BUILD_RECORD_DIR``.

    Returns the record, or ``None`` when not running inside the book build.
    """
    folder = os.environ.get("DLBOOK_BUILD_RECORD_DIR")
    if not folder:
        return None
    entry = {
        "page": page,
        "device": describe_device(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "dependency_hash": dependency_hash,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    path = Path(folder) / f"{page.replace('/', '__')}.json"
    path.write_text(json.dumps(entry, indent=1), encoding="utf8")
    return entry
