"""An MLP with its backward pass written by hand (Part 5, "Backpropagation through an MLP by hand").

``Dense`` is a fully connected layer that computes its own gradients; ``ScratchMLP``
stacks ``Dense`` layers with the ``Activation`` layers of Part 4 and runs the backward
pass layer by layer, without autograd; ``softmax_cross_entropy``, softmax regression's
loss from Part 2 (``dlbook.linear``), returns the loss with the gradient G = (P - Y) / B
that starts it, and ``sgd_epoch`` trains the network with them. The names follow the
page: a layer computes Z = A W + b, and ``backward`` takes G = dL/dZ and returns
A_bar = dL/dA. A float64 batch into a float32 network is converted to float32.

>>> net = ScratchMLP(MLPConfig(sizes=(4, 3, 2)))
>>> loss, G = softmax_cross_entropy(net.forward(torch.randn(5, 4)), torch.tensor([0, 1, 1, 0, 1]))
>>> [tuple(g.shape) for g in net.backward(G)]
[(4, 3), (3,), (3, 2), (2,)]
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

from dlbook import _checks as check
from dlbook.activations import ACTIVATIONS, Activation
from dlbook.feedforward import _widths, mlp
from dlbook.linear import softmax_cross_entropy

__all__ = ["Dense", "softmax_cross_entropy", "MLPConfig", "ScratchMLP", "sgd_epoch"]

T = TypeVar("T")


def _instance(name: str, value: object, cls: type[T]) -> T:
    """``value`` if it is an instance of ``cls``."""
    if not isinstance(value, cls):
        raise TypeError(f"{name} must be of type {cls.__name__}, got {type(value).__name__}")
    return value


_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class Dense:
    """A fully connected layer, Z = A W + b, with a hand-written backward pass (no autograd).

    Shapes: A (B, D_in), W (D_in, D_out) (the transpose of nn.Linear.weight), b (D_out,).
    """

    def __init__(self, d_in: int, d_out: int, *, generator: torch.Generator | None = None,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        self.d_in, self.d_out = check.positive_int("d_in", d_in), check.positive_int("d_out", d_out)
        check.one_of("dtype", dtype, _FLOAT_DTYPES)
        bound = 1.0 / math.sqrt(d_in)  # uniform in +-1/sqrt(D_in), as nn.Linear
        W = (torch.rand(d_in, d_out, generator=generator, dtype=dtype) * 2 - 1) * bound
        b = (torch.rand(d_out, generator=generator, dtype=dtype) * 2 - 1) * bound
        self.W, self.b = W.to(device), b.to(device)  # (D_in, D_out), (D_out,)
        self.dW, self.db = torch.zeros_like(self.W), torch.zeros_like(self.b)
        self._A: torch.Tensor | None = None

    def forward(self, A: torch.Tensor) -> torch.Tensor:
        """Z = A W + b, (B, D_in) -> (B, D_out); caches A. A of another float dtype is converted."""
        A = check.as_float_like("A", A, self.W)
        check.expect_shape(A, "B D_in", "A", D_in=self.d_in)
        self._A = A
        # Z = A W + b   (B, D_in) @ (D_in, D_out) -> (B, D_out), b added to every row
        return A @ self.W + self.b

    def backward(self, G: torch.Tensor) -> torch.Tensor:
        """Given G = dL/dZ (B, D_out), store dW and db and return A_bar = dL/dA (B, D_in)."""
        if self._A is None:
            raise RuntimeError("Dense.backward called before forward: run forward first")
        G = check.as_float_like("G", G, self.W)
        check.expect_shape(G, "B D_out", "G", B=len(self._A), D_out=self.d_out)
        # dL/dW = A^T G   (D_in, B) @ (B, D_out) -> (D_in, D_out)
        self.dW = self._A.T @ G
        # dL/db = G^T 1, the sum of G over the batch
        self.db = G.sum(dim=0)
        # A_bar = G W^T   (B, D_out) @ (D_out, D_in) -> (B, D_in)
        return G @ self.W.T

    def parameters(self) -> list[torch.Tensor]:
        """[W, b], in the order of ``gradients``."""
        return [self.W, self.b]

    def gradients(self) -> list[torch.Tensor]:
        """[dW, db] from the last ``backward``."""
        return [self.dW, self.db]


@dataclass
class MLPConfig:
    """Hyper-parameters of ``ScratchMLP``."""

    sizes: tuple[int, ...] = (64, 64, 10)  # widths from input to output
    activation: str = "relu"  # a key of dlbook.activations.ACTIVATIONS, for the hidden layers
    seed: int = 0  # seeds the initial weights

    def __post_init__(self) -> None:
        self.sizes = _widths("sizes", self.sizes)
        check.one_of("activation", self.activation, ACTIVATIONS)
        check.nonnegative_int("seed", self.seed)


class ScratchMLP:
    """An MLP with a hand-written backward pass: Dense, Activation, ..., Dense (logits)."""

    def __init__(self, config: MLPConfig, *, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        self.config = _instance("config", config, MLPConfig)
        gen = torch.Generator().manual_seed(config.seed)
        sizes = config.sizes
        self.layers: list[Dense | Activation] = []
        for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            self.layers.append(Dense(d_in, d_out, generator=gen, device=device, dtype=dtype))
            if i < len(sizes) - 2:  # the output layer returns logits
                self.layers.append(Activation(config.activation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, K) for inputs x (B, D); x of another float dtype is converted."""
        x = check.as_float_like("x", x, self.layers[0].W)
        check.expect_shape(x, "B D", "x", D=self.config.sizes[0])
        for layer in self.layers:
            x = layer.forward(x)
        return x

    __call__ = forward

    def backward(self, G: torch.Tensor) -> list[torch.Tensor]:
        """From G = dL/dZ at the logits, run each layer's backward, last to first; the gradients."""
        for layer in reversed(self.layers):
            G = layer.backward(G)  # each layer turns dL/d(output) into dL/d(input)
        return self.gradients()

    def dense_layers(self) -> list[Dense]:
        """The ``Dense`` layers, input to output."""
        return [layer for layer in self.layers if isinstance(layer, Dense)]

    def parameters(self) -> list[torch.Tensor]:
        """[W1, b1, W2, b2, ...]."""
        return [p for layer in self.dense_layers() for p in layer.parameters()]

    def gradients(self) -> list[torch.Tensor]:
        """[dW1, db1, dW2, db2, ...] from the last backward pass."""
        return [g for layer in self.dense_layers() for g in layer.gradients()]

    def to_torch(self) -> nn.Sequential:
        """A ``torch.nn`` copy with the same weights, for checking against autograd."""
        dense = self.dense_layers()
        net = mlp(self.config.sizes, self.config.activation).to(dense[0].W.device, dense[0].W.dtype)
        linears = [m for m in net if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for ours, theirs in zip(dense, linears):
                theirs.weight.copy_(ours.W.T)  # torch stores (D_out, D_in)
                theirs.bias.copy_(ours.b)
        return net


def sgd_epoch(model: ScratchMLP, loader: Iterable[tuple[torch.Tensor, torch.Tensor]], lr: float,
              device: torch.device | str | None = None) -> float:
    """One pass of plain SGD over ``loader`` with the hand-written backward; the mean loss."""
    _instance("model", model, ScratchMLP)
    _instance("loader", loader, Iterable)
    lr = check.positive_float("lr", lr)
    total, count = 0.0, 0
    for x, y in loader:
        x, y = (x.to(device), y.to(device)) if device is not None else (x, y)
        loss, G = softmax_cross_entropy(model.forward(x), y)
        model.backward(G)
        for theta, grad in zip(model.parameters(), model.gradients()):
            # theta <- theta - eta dL/dtheta
            theta -= lr * grad
        total, count = total + loss.item() * len(y), count + len(y)
    if count == 0:
        raise ValueError("loader is empty: sgd_epoch needs at least one (x, y) batch")
    return total / count
