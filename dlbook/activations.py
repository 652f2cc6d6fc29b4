"""Activation functions and their hand-derived derivatives (Part 4, "Activation
functions").

Each activation comes as a pair: the function :math:`\\phi(z)` and its derivative
:math:`\\phi'(z)`, both elementwise. The derivatives are the ones derived on the page
and are tested against ``torch.autograd``. :class:`Activation` wraps a pair as a
layer with a hand-written backward pass, used by the from-scratch MLP of Part 5.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = [
    "step", "step_grad", "sigmoid", "sigmoid_grad", "tanh", "tanh_grad", "relu", "relu_grad",
    "leaky_relu", "leaky_relu_grad", "gelu", "gelu_grad", "ACTIVATIONS", "Activation",
]

Elementwise = Callable[[torch.Tensor], torch.Tensor]


def _check(z: torch.Tensor) -> None:
    if not isinstance(z, torch.Tensor) or not z.is_floating_point():
        got = getattr(z, "dtype", type(z).__name__)
        raise TypeError(f"expected a floating-point torch.Tensor, got {got}")


def step(z: torch.Tensor) -> torch.Tensor:
    """Heaviside step: 1 where :math:`z > 0`, else 0 (the perceptron's activation)."""
    _check(z)
    return (z > 0).to(z.dtype)


def step_grad(z: torch.Tensor) -> torch.Tensor:
    """Zero everywhere it exists (and undefined at 0): no gradient gets through."""
    _check(z)
    return torch.zeros_like(z)


def sigmoid(z: torch.Tensor) -> torch.Tensor:
    """:math:`\\sigma(z) = 1 / (1 + e^{-z})`, computed without overflow for large :math:`|z|`."""
    _check(z)
    # For z < 0 use e^z / (1 + e^z), so exp never sees a large positive argument.
    e = torch.exp(-z.abs())
    return torch.where(z >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_grad(z: torch.Tensor) -> torch.Tensor:
    """:math:`\\sigma'(z) = \\sigma(z)(1 - \\sigma(z))`."""
    s = sigmoid(z)
    return s * (1 - s)


def tanh(z: torch.Tensor) -> torch.Tensor:
    """:math:`\\tanh z = 2\\sigma(2z) - 1`."""
    _check(z)
    return 2 * sigmoid(2 * z) - 1


def tanh_grad(z: torch.Tensor) -> torch.Tensor:
    """:math:`\\tanh'(z) = 1 - \\tanh^2 z`."""
    t = tanh(z)
    return 1 - t * t


def relu(z: torch.Tensor) -> torch.Tensor:
    """:math:`\\max(0, z)`."""
    _check(z)
    return z.clamp_min(0)


def relu_grad(z: torch.Tensor) -> torch.Tensor:
    """1 where :math:`z > 0`, else 0 (PyTorch's choice at :math:`z = 0`)."""
    _check(z)
    return (z > 0).to(z.dtype)


def leaky_relu(z: torch.Tensor, slope: float = 0.01) -> torch.Tensor:
    """:math:`z` for :math:`z > 0`, else :math:`\\alpha z` with a small slope :math:`\\alpha`."""
    _check(z)
    return torch.where(z > 0, z, slope * z)


def leaky_relu_grad(z: torch.Tensor, slope: float = 0.01) -> torch.Tensor:
    """1 for :math:`z > 0`, else :math:`\\alpha`."""
    _check(z)
    return torch.where(z > 0, torch.ones_like(z), torch.full_like(z, slope))


def gelu(z: torch.Tensor) -> torch.Tensor:
    """:math:`z\\,\\Phi(z)`, with :math:`\\Phi` the standard normal CDF (the exact GELU)."""
    _check(z)
    # Phi(z) = (1 + erf(z / sqrt 2)) / 2
    Phi = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
    return z * Phi


def gelu_grad(z: torch.Tensor) -> torch.Tensor:
    """:math:`\\Phi(z) + z\\,\\varphi(z)`, with :math:`\\varphi` the standard normal density."""
    _check(z)
    Phi = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
    # phi(z) = exp(-z^2 / 2) / sqrt(2 pi)
    phi = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return Phi + z * phi


#: Name to (function, derivative), the pairs the page plots and the tests check.
ACTIVATIONS: dict[str, tuple[Elementwise, Elementwise]] = {
    "step": (step, step_grad),
    "sigmoid": (sigmoid, sigmoid_grad),
    "tanh": (tanh, tanh_grad),
    "relu": (relu, relu_grad),
    "leaky_relu": (leaky_relu, leaky_relu_grad),
    "gelu": (gelu, gelu_grad),
}


@dataclass
class Activation:
    """An elementwise activation as a layer with a hand-written backward pass.

    ``forward`` caches its input :math:`z`; ``backward`` applies the chain rule,
    :math:`\\partial L/\\partial z = \\partial L/\\partial a \\odot \\phi'(z)`.

    Args:
        name: a key of :data:`ACTIVATIONS`.

    >>> act = Activation("relu")
    >>> act.forward(torch.tensor([-1.0, 2.0])), act.backward(torch.tensor([5.0, 5.0]))
    (tensor([0., 2.]), tensor([0., 5.]))
    """

    name: str

    def __post_init__(self) -> None:
        if self.name not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.name!r}; expected one of {sorted(ACTIVATIONS)}"
            )
        self.fn, self.grad_fn = ACTIVATIONS[self.name]
        self._z: torch.Tensor | None = None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """:math:`a = \\phi(z)`, elementwise; any shape."""
        self._z = z
        return self.fn(z)

    def backward(self, grad_out: torch.Tensor) -> torch.Tensor:
        """Given :math:`\\partial L/\\partial a`, return :math:`\\partial L/\\partial z`."""
        if self._z is None:
            raise RuntimeError("backward called before forward")
        if grad_out.shape != self._z.shape:
            raise ValueError(
                f"expected grad_out of shape {tuple(self._z.shape)}, got {tuple(grad_out.shape)}"
            )
        # dL/dz = dL/da * phi'(z)
        return grad_out * self.grad_fn(self._z)
