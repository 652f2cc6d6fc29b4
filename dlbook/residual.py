"""Skip connections for fully connected networks (Part 6, "Skip connections").

:class:`DenseResidualBlock` is the pre-activation residual block on ``(B, D)``
inputs, y = x + F(x). Its convolutional counterpart for images is
``dlbook.cnn.ConvResidualBlock`` (Part 8).
"""

from __future__ import annotations

import torch
from torch import nn

from dlbook import _checks as check
from dlbook.normalization import BatchNorm1d

__all__ = ["DenseResidualBlock"]


class DenseResidualBlock(nn.Module):
    """A pre-activation residual block on ``(B, D)``: y = x + F(x), F(x) = W2 relu(W1 relu(x)).

    ``norm`` puts a batch normalization before each ReLU; ``skip=False`` returns
    F(x) alone, a plain block with the same layers and parameters.
    """

    def __init__(
        self, dim: int, hidden: int | None = None, *, skip: bool = True, norm: bool = False
    ):
        super().__init__()
        self.dim = check.positive_int("dim", dim)
        hidden = dim if hidden is None else check.positive_int("hidden", hidden)
        self.skip = bool(check.one_of("skip", skip, (True, False)))
        norm = bool(check.one_of("norm", norm, (True, False)))
        self.branch = nn.Sequential(
            BatchNorm1d(dim) if norm else nn.Identity(),
            nn.ReLU(),
            nn.Linear(dim, hidden),
            BatchNorm1d(hidden) if norm else nn.Identity(),
            nn.ReLU(),
            nn.Linear(hidden, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x`` (B, D) to (B, D); a float64 batch into a float32 block is converted."""
        check.expect_shape(x, "B D", "x", D=self.dim)
        x = check.as_float_like("x", x, self.branch[2].weight)
        # y = x + F(x); dy/dx = I + dF/dx
        return x + self.branch(x) if self.skip else self.branch(x)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, skip={self.skip}"
