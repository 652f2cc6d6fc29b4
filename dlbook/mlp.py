"""Multilayer perceptrons, with ``torch.nn`` and from scratch (Part 4, "Feedforward
networks", and Part 5, "Backpropagation through an MLP by hand").

:func:`mlp` builds the ``torch.nn`` network the feedforward chapter trains with
:func:`dlbook.train.fit`; :func:`relu_interpolant` sets the weights of a one-hidden-layer
ReLU network by hand, the constructive side of universal approximation.
:class:`ScratchMLP` is the same architecture assembled from
:class:`dlbook.layers.Dense` and :class:`dlbook.activations.Activation`, with the
backward pass written by hand; :func:`softmax_cross_entropy` supplies the gradient
that starts it, and :func:`sgd_epoch` trains it without autograd.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from dlbook.activations import ACTIVATIONS, Activation
from dlbook.layers import Dense

__all__ = [
    "mlp", "relu_interpolant", "MLPConfig", "ScratchMLP", "softmax_cross_entropy", "sgd_epoch",
]

_TORCH_ACTIVATIONS = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "gelu": nn.GELU,
}


def _check_sizes(sizes: Sequence[int]) -> None:
    if len(sizes) < 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(
            f"sizes must be at least two ints >= 1 (input ... output), got {list(sizes)}"
        )


def _check_activation(name: str) -> None:
    if name not in _TORCH_ACTIVATIONS:
        raise ValueError(
            f"unknown activation {name!r}; expected one of {sorted(_TORCH_ACTIVATIONS)}"
        )


def mlp(sizes: Sequence[int], activation: str = "relu") -> nn.Sequential:
    """A ``torch.nn`` MLP: linear layers of the given widths, the activation between them.

    The last layer has no activation: it returns logits (class scores).

    Args:
        sizes: widths from input to output, e.g. ``[64, 128, 10]``.
        activation: ``"relu"``, ``"tanh"``, ``"sigmoid"``, ``"leaky_relu"`` or ``"gelu"``.

    >>> mlp([64, 32, 10])
    Sequential(
      (0): Linear(in_features=64, out_features=32, bias=True)
      (1): ReLU()
      (2): Linear(in_features=32, out_features=10, bias=True)
    )
    """
    _check_sizes(sizes)
    _check_activation(activation)
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(sizes) - 2:
            layers.append(_TORCH_ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def relu_interpolant(knots: torch.Tensor, values: torch.Tensor) -> nn.Sequential:
    """A one-hidden-layer ReLU network equal to the piecewise-linear interpolant of the points.

    Hidden unit :math:`k` computes :math:`\\operatorname{relu}(x - x_k)`, a hinge at knot
    :math:`x_k`; the output adds the hinges weighted by the change of slope there,
    :math:`g(x) = f_0 + \\sum_k c_k \\operatorname{relu}(x - x_k)`, so :math:`g` is constant
    (:math:`f_0`, :math:`f_N`) outside the knots, like ``numpy.interp``.

    Args:
        knots: increasing :math:`x_0 < \\dots < x_N`, shape ``(N + 1,)``, ``N >= 1``.
        values: :math:`f_k` at the knots, the same shape.

    Returns:
        ``Sequential(Linear(1, N + 1), ReLU(), Linear(N + 1, 1))`` mapping ``(B, 1)`` to ``(B, 1)``.

    >>> net = relu_interpolant(torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.0, 1.0, 0.0]))
    >>> net(torch.tensor([[0.5], [1.5], [3.0]])).squeeze(1).tolist()
    [0.5, 0.5, 0.0]
    """
    if knots.ndim != 1 or values.shape != knots.shape or len(knots) < 2:
        raise ValueError(
            f"expected knots and values of the same shape (N + 1,) with N >= 1, "
            f"got {tuple(knots.shape)} and {tuple(values.shape)}"
        )
    if not bool((knots[1:] > knots[:-1]).all()):
        raise ValueError("knots must be strictly increasing")
    # m_k = (f_{k+1} - f_k) / (x_{k+1} - x_k), the slope on [x_k, x_{k+1}]
    slopes = (values[1:] - values[:-1]) / (knots[1:] - knots[:-1])  # (N,)
    # c_0 = m_0, c_k = m_k - m_{k-1}, c_N = -m_{N-1} (flat after the last knot)
    c = torch.cat([slopes[:1], slopes[1:] - slopes[:-1], -slopes[-1:]])  # (N + 1,)
    n_hidden = len(knots)
    net = nn.Sequential(nn.Linear(1, n_hidden), nn.ReLU(), nn.Linear(n_hidden, 1)).to(knots.dtype)
    with torch.no_grad():
        net[0].weight.fill_(1.0)  # (N + 1, 1): every hinge has slope 1 in x
        net[0].bias.copy_(-knots)  # hinge k turns on at x = x_k
        net[2].weight.copy_(c[None, :])  # (1, N + 1)
        net[2].bias.fill_(float(values[0]))
    return net


def softmax_cross_entropy(
    logits: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy of softmax(``logits``) against labels ``y``, and its gradient.

    Args:
        logits: class scores :math:`Z`, shape ``(B, K)``.
        y: integer labels in ``[0, K)``, shape ``(B,)``.

    Returns:
        ``(loss, dZ)``: the scalar loss and :math:`\\partial L/\\partial Z = (P - Y)/B`,
        shape ``(B, K)``, with :math:`P` the softmax probabilities and :math:`Y` one-hot.

    Raises:
        ValueError: if the shapes do not match.
    """
    if logits.ndim != 2 or y.shape != (logits.shape[0],):
        raise ValueError(
            "expected logits (B, K) and labels (B,), "
            f"got {tuple(logits.shape)} and {tuple(y.shape)}"
        )
    B = logits.shape[0]
    # log p_k = z_k - logsumexp(z), stable for large logits
    log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)  # (B, K)
    # L = -(1/B) sum_i log p_{i, y_i}
    loss = -log_p[torch.arange(B, device=logits.device), y].mean()
    # dL/dZ = (P - Y) / B
    dZ = log_p.exp()
    dZ[torch.arange(B, device=logits.device), y] -= 1
    return loss, dZ / B


@dataclass
class MLPConfig:
    """Hyper-parameters of :class:`ScratchMLP`.

    Attributes:
        sizes: widths from input to output, e.g. ``(64, 64, 10)``.
        activation: a key of :data:`dlbook.activations.ACTIVATIONS` for the hidden layers.
        seed: seeds the initial weights.
    """

    sizes: tuple[int, ...] = (64, 64, 10)
    activation: str = "relu"
    seed: int = 0


class ScratchMLP:
    """An MLP whose backward pass is written out by hand, layer by layer.

    Hidden layers are ``Dense`` followed by an ``Activation``; the output layer is a
    ``Dense`` that returns logits. Nothing calls autograd.

    Args:
        config: the architecture.
        device: where the parameters live.
        dtype: their floating-point type (float64 for gradient checks).

    >>> net = ScratchMLP(MLPConfig(sizes=(4, 3, 2)))
    >>> logits = net.forward(torch.randn(5, 4))
    >>> [tuple(g.shape) for g in net.backward(torch.ones(5, 2))]
    [(4, 3), (3,), (3, 2), (2,)]
    """

    def __init__(
        self,
        config: MLPConfig,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        _check_sizes(config.sizes)
        if config.activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {config.activation!r}; "
                f"expected one of {sorted(ACTIVATIONS)}"
            )
        self.config = config
        gen = torch.Generator().manual_seed(config.seed)
        sizes = config.sizes
        self.layers: list[Dense | Activation] = []
        for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            self.layers.append(Dense(d_in, d_out, generator=gen, device=device, dtype=dtype))
            if i < len(sizes) - 2:
                self.layers.append(Activation(config.activation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(B, K)`` for inputs of shape ``(B, D)``; caches what backward needs."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    __call__ = forward

    def backward(self, grad_logits: torch.Tensor) -> list[torch.Tensor]:
        """Propagate :math:`\\partial L/\\partial Z` from the output back to the input.

        Each layer turns the gradient with respect to its output into the gradient
        with respect to its input (and, for ``Dense``, stores ``dW`` and ``db``).

        Returns:
            The parameter gradients, in the order of :meth:`parameters`.
        """
        grad = grad_logits
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return self.gradients()

    def dense_layers(self) -> list[Dense]:
        """The ``Dense`` layers, input to output."""
        return [layer for layer in self.layers if isinstance(layer, Dense)]

    def parameters(self) -> list[torch.Tensor]:
        """``[W1, b1, W2, b2, ...]``."""
        return [p for layer in self.dense_layers() for p in layer.parameters()]

    def gradients(self) -> list[torch.Tensor]:
        """``[dW1, db1, dW2, db2, ...]`` from the last backward pass."""
        return [g for layer in self.dense_layers() for g in layer.gradients()]

    def to_torch(self) -> nn.Sequential:
        """A ``torch.nn`` copy with the same weights, for checking against autograd."""
        if self.config.activation not in _TORCH_ACTIVATIONS:
            raise ValueError(f"no torch.nn counterpart for activation {self.config.activation!r}")
        dense = self.dense_layers()
        net = mlp(self.config.sizes, self.config.activation).to(dense[0].W.device, dense[0].W.dtype)
        linears = [m for m in net if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for ours, theirs in zip(dense, linears):
                theirs.weight.copy_(ours.W.T)  # torch stores (D_out, D_in)
                theirs.bias.copy_(ours.b)
        return net


def sgd_epoch(
    model: ScratchMLP, loader: Iterable[tuple[torch.Tensor, torch.Tensor]], lr: float,
    device: torch.device | str | None = None,
) -> float:
    """One pass of plain SGD over ``loader`` using the hand-written backward.

    Returns:
        The mean training loss over the epoch, each batch weighted by its size.
    """
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    total, count = 0.0, 0
    for x, y in loader:
        if device is not None:
            x, y = x.to(device), y.to(device)
        loss, grad_logits = softmax_cross_entropy(model.forward(x), y)
        model.backward(grad_logits)
        for p, g in zip(model.parameters(), model.gradients()):
            # theta <- theta - eta * dL/dtheta
            p -= lr * g
        total += loss.item() * len(y)
        count += len(y)
    if count == 0:
        raise ValueError("sgd_epoch got an empty loader")
    return total / count
