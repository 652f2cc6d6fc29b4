"""Activation functions and their hand-derived derivatives (Part 4, "Activation functions").

Each activation comes as a pair, the function phi(z) and its derivative phi'(z), both
elementwise; the derivatives are the ones derived on the page and are tested against
``torch.autograd``. ``ACTIVATIONS`` maps a name to its pair; ``TORCH_ACTIVATIONS`` maps
the same names to their ``torch.nn`` modules, the table ``dlbook.feedforward.mlp``
builds its activations from. ``Activation`` wraps a pair as a layer with a hand-written
backward pass, used by the from-scratch MLP of Part 5. The sigmoid is the
one defined for logistic regression in Part 2, ``dlbook.linear.sigmoid``.

>>> act = Activation("relu")
>>> act.forward(torch.tensor([-1.0, 2.0])), act.backward(torch.tensor([5.0, 5.0]))
(tensor([0., 2.]), tensor([0., 5.]))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from dlbook import _checks as check
from dlbook.linear import sigmoid

__all__ = [
    "step", "step_grad", "sigmoid", "sigmoid_grad", "tanh", "tanh_grad", "relu", "relu_grad",
    "leaky_relu", "leaky_relu_grad", "gelu", "gelu_grad", "ACTIVATIONS", "TORCH_ACTIVATIONS",
    "Activation",
]

Elementwise = Callable[[torch.Tensor], torch.Tensor]


def step(z: torch.Tensor) -> torch.Tensor:
    """Heaviside step: 1 where z > 0, else 0 (the perceptron's activation)."""
    check.floating("z", z)
    return (z > 0).to(z.dtype)


def step_grad(z: torch.Tensor) -> torch.Tensor:
    """Zero wherever it exists (it does not at 0): no gradient gets through."""
    check.floating("z", z)
    return torch.zeros_like(z)


def sigmoid_grad(z: torch.Tensor) -> torch.Tensor:
    """The sigmoid's derivative, sigma(z) (1 - sigma(z))."""
    s = sigmoid(check.floating("z", z))
    # sigma'(z) = sigma(z) (1 - sigma(z))
    return s * (1 - s)


def tanh(z: torch.Tensor) -> torch.Tensor:
    """tanh z, written as the stretched sigmoid 2 sigma(2z) - 1."""
    check.floating("z", z)
    return 2 * sigmoid(2 * z) - 1


def tanh_grad(z: torch.Tensor) -> torch.Tensor:
    """tanh'(z) = 1 - tanh(z)^2."""
    t = tanh(z)
    return 1 - t * t


def relu(z: torch.Tensor) -> torch.Tensor:
    """max(0, z)."""
    check.floating("z", z)
    return z.clamp_min(0)


def relu_grad(z: torch.Tensor) -> torch.Tensor:
    """1 where z > 0, else 0 (PyTorch's choice at z = 0)."""
    check.floating("z", z)
    return (z > 0).to(z.dtype)


def leaky_relu(z: torch.Tensor, slope: float = 0.01) -> torch.Tensor:
    """z for z > 0, else slope * z."""
    check.floating("z", z)
    slope = check.fraction("slope", slope, low=0.0, high=1.0, closed="[)")
    return torch.where(z > 0, z, slope * z)


def leaky_relu_grad(z: torch.Tensor, slope: float = 0.01) -> torch.Tensor:
    """1 for z > 0, else slope."""
    check.floating("z", z)
    slope = check.fraction("slope", slope, low=0.0, high=1.0, closed="[)")
    return torch.where(z > 0, torch.ones_like(z), torch.full_like(z, slope))


def gelu(z: torch.Tensor) -> torch.Tensor:
    """z Phi(z), with Phi the standard normal CDF (the exact GELU)."""
    check.floating("z", z)
    # Phi(z) = (1 + erf(z / sqrt 2)) / 2
    Phi = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
    return z * Phi


def gelu_grad(z: torch.Tensor) -> torch.Tensor:
    """GELU's derivative, Phi(z) + z phi(z), with phi the standard normal density."""
    check.floating("z", z)
    Phi = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
    # phi(z) = exp(-z^2 / 2) / sqrt(2 pi)
    phi = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return Phi + z * phi


def _same_shape(name: str, x: object, like: torch.Tensor) -> torch.Tensor:
    """``x`` if it is a floating tensor of ``like``'s shape (an upstream gradient)."""
    x = check.floating(name, x)
    if x.shape != like.shape:
        raise ValueError(f"expected {name} of shape {tuple(like.shape)}, got {tuple(x.shape)}")
    return x


#: The (function, derivative) pairs by name, as the page plots them and the tests check them.
ACTIVATIONS: dict[str, tuple[Elementwise, Elementwise]] = {
    "step": (step, step_grad),
    "sigmoid": (sigmoid, sigmoid_grad),
    "tanh": (tanh, tanh_grad),
    "relu": (relu, relu_grad),
    "leaky_relu": (leaky_relu, leaky_relu_grad),
    "gelu": (gelu, gelu_grad),
}

#: The same names to their ``torch.nn`` module (the step has none: it cannot be trained).
TORCH_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "gelu": nn.GELU,
}


@dataclass
class Activation:
    """An elementwise activation as a layer with a hand-written backward pass."""

    name: str  # a key of ACTIVATIONS

    def __post_init__(self) -> None:
        check.one_of("name", self.name, ACTIVATIONS)
        self.fn, self.grad_fn = ACTIVATIONS[self.name]
        self._z: torch.Tensor | None = None  # the input of the last forward

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """a = phi(z), elementwise; any shape. Caches z."""
        self._z = check.floating("z", z)
        return self.fn(z)

    def backward(self, A_bar: torch.Tensor) -> torch.Tensor:
        """Given A_bar = dL/da, return G = dL/dz, of the shape of z."""
        if self._z is None:
            raise RuntimeError("Activation.backward called before forward: run forward first")
        _same_shape("A_bar", A_bar, self._z)
        # G = A_bar * phi'(z), entry by entry
        return A_bar * self.grad_fn(self._z)
