"""Dropout (Part 6, "Dropout").

Inverted dropout as a function and as a module: during training each entry
is zeroed with probability ``p`` and the survivors are scaled by 1 / (1 - p),
so the expected output equals the input and evaluation needs no correction.
"""

from __future__ import annotations

import torch
from torch import nn

from dlbook import _checks as check

__all__ = ["dropout", "Dropout"]


def dropout(
    x: torch.Tensor,
    p: float = 0.5,
    *,
    training: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Inverted dropout: zero each entry with probability ``p``, scale the rest by 1 / (1 - p).

    >>> dropout(torch.ones(4), 0.5, training=False)
    tensor([1., 1., 1., 1.])
    """
    check.floating("x", x)
    check.fraction("p", p, closed="[]")
    if not check.one_of("training", training, (True, False)) or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    # m_i ~ Bernoulli(1 - p): 1 keeps the entry, 0 drops it
    mask = torch.empty_like(x).bernoulli_(1.0 - p, generator=generator)
    # y = m * x / (1 - p)
    return x * mask / (1.0 - p)


class Dropout(nn.Module):
    """Inverted dropout as a module: drops in ``train()`` mode, the identity in ``eval()`` mode."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = check.fraction("p", p, closed="[]")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, training=self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
