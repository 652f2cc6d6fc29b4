"""dlbook: the companion package of the executable deep-learning textbook.

Every module belongs to a chapter of the book and says which in its docstring.
This top-level module holds the two helpers every page calls first:
:func:`device` picks where tensors live, :func:`seed` makes a page repeatable.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__version__ = "0.1.0"

__all__ = ["__version__", "device", "seed"]


def device() -> torch.device:
    """Return the best available device: CUDA, then Apple's MPS, then the CPU.

    Set the environment variable ``DLBOOK_DEVICE`` (for example to ``cpu``) to
    override the choice, which helps when comparing a GPU run with a CPU run.

    >>> device().type in {"cuda", "mps", "cpu"}
    True
    """
    forced = os.environ.get("DLBOOK_DEVICE")
    if forced:
        return torch.device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed(n: int) -> torch.Generator:
    """Seed Python's, NumPy's and torch's random number generators with ``n``.

    Every page calls this once at the top, so two builds print the same numbers.
    Returns a fresh :class:`torch.Generator` seeded with ``n`` for code that
    prefers an explicit generator to the global one.

    Raises:
        TypeError: if ``n`` is not an ``int``.
        ValueError: if ``n`` is negative or does not fit in 64 bits.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"seed expects an int, got {type(n).__name__} ({n!r})")
    n = int(n)
    if not 0 <= n < 2**63:
        raise ValueError(f"seed expects 0 <= n < 2**63, got {n}")
    random.seed(n)
    np.random.seed(n % 2**32)
    torch.manual_seed(n)
    return torch.Generator().manual_seed(n)
