"""The companion package of the book (front matter, "How to use this book").

Every module belongs to a chapter of the book and says which in its docstring.
This top-level module holds the two helpers every page calls first:
``device`` picks where tensors live, ``seed`` makes a page repeatable.
"""

from __future__ import annotations

import os
import random
import re

import numpy as np
import torch

from dlbook import _checks as check

__version__ = "0.1.0"

__all__ = ["__version__", "device", "seed"]

_DEVICE_CHOICES = ("cpu", "cuda", "cuda:N", "mps")


def _available_devices() -> list[str]:
    """The devices this machine can use, as ``DLBOOK_DEVICE`` spells them."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        found.append("mps")
    return found


def _forced_device(name: str) -> torch.device:
    """The device ``DLBOOK_DEVICE=name`` asks for, if it is valid and usable here."""
    available = _available_devices()
    valid = re.fullmatch(r"cpu|mps|cuda(:\d+)?", name) is not None
    if not valid or name not in available:
        problem = "is not a device name" if not valid else "is not available on this machine"
        raise ValueError(
            f"DLBOOK_DEVICE={name!r} {problem}: valid choices are {', '.join(_DEVICE_CHOICES)}; "
            f"available here: {', '.join(available)}"
        )
    return torch.device(name)


def device() -> torch.device:
    """The best available device: CUDA, then Apple's MPS, then the CPU.

    Set the environment variable ``DLBOOK_DEVICE`` to ``cpu``, ``cuda``, ``cuda:N``
    or ``mps`` to override the choice (for example, to compare a GPU run with a CPU
    run); a name that is not one of these, or a device this machine lacks, raises a
    ``ValueError`` that lists the choices available here.

    >>> device().type in {"cuda", "mps", "cpu"}
    True
    """
    forced = os.environ.get("DLBOOK_DEVICE")
    if forced:
        return _forced_device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed(n: int) -> torch.Generator:
    """Seed Python's, NumPy's and torch's random number generators with ``n``.

    Every page calls this once at the top, so two builds print the same numbers.
    Returns a fresh ``torch.Generator`` seeded with ``n`` for code that prefers an
    explicit generator to the global one. ``n`` must be an int in ``[0, 2**63)``.
    """
    n = check.nonnegative_int("seed n", n)
    if n >= 2**63:
        raise ValueError(f"seed n must be < 2**63 (a 64-bit seed), got {n}")
    random.seed(n)
    np.random.seed(n % 2**32)
    torch.manual_seed(n)
    return torch.Generator().manual_seed(n)
