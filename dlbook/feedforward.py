"""Feedforward networks built with ``torch.nn`` (Part 4, "Feedforward networks").

``mlp`` builds the network the chapter trains with ``dlbook.train.fit``, its activations
taken from ``dlbook.activations.TORCH_ACTIVATIONS``; ``relu_interpolant`` sets a
one-hidden-layer ReLU network's weights by hand, the constructive side of universal
approximation. ``count_parameters`` lives here because this chapter first counts a
network's parameters; later chapters import it from here.

>>> net = mlp([64, 32, 10])
>>> [type(m).__name__ for m in net], count_parameters(net)
(['Linear', 'ReLU', 'Linear'], 2410)
>>> knots, values = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.0, 1.0, 0.0])
>>> relu_interpolant(knots, values)(torch.tensor([[0.5], [1.5], [3.0]])).squeeze(1).tolist()
[0.5, 0.5, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dlbook import _checks as check
from dlbook.activations import TORCH_ACTIVATIONS

__all__ = ["count_parameters", "mlp", "relu_interpolant"]



def _widths(name: str, sizes: object) -> tuple[int, ...]:
    """``sizes`` as a tuple of at least two ints >= 1 (layer widths, input to output)."""
    if isinstance(sizes, (str, bytes, torch.Tensor)) or not isinstance(sizes, Sequence):
        raise TypeError(f"{name} must be a list or tuple of ints (input ... output), "
                        f"got {type(sizes).__name__}")
    if len(sizes) < 2:
        raise ValueError(f"{name} must hold at least two widths (input ... output), "
                         f"got {list(sizes)}")
    return tuple(check.positive_int(f"{name}[{i}]", s) for i, s in enumerate(sizes))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars in ``model``."""
    check.module("model", model)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def mlp(sizes: Sequence[int], activation: str = "relu") -> nn.Sequential:
    """A torch.nn MLP: linear layers of the given widths, the activation between, logits out."""
    sizes = _widths("sizes", sizes)
    check.one_of("activation", activation, TORCH_ACTIVATIONS)
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(d_in, d_out))  # weight (d_out, d_in): torch stores W transposed
        if i < len(sizes) - 2:  # no activation after the last layer
            layers.append(TORCH_ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def relu_interpolant(knots: torch.Tensor, values: torch.Tensor) -> nn.Sequential:
    """A one-hidden-layer ReLU network equal to the piecewise-linear interpolant of the points.

    Shapes: knots and values (N + 1,); the network maps (B, 1) to (B, 1).
    """
    n_hidden = check.expect_shape(check.finite("knots", knots), "N", "knots")["N"]
    values = check.as_float_like("values", check.finite("values", values), knots)
    check.expect_shape(values, "N", "values", N=n_hidden)
    _increasing("knots", knots)
    # m_k = (f_{k+1} - f_k) / (x_{k+1} - x_k), the slope on [x_k, x_{k+1}]
    slopes = (values[1:] - values[:-1]) / (knots[1:] - knots[:-1])  # (N,)
    # c_0 = m_0, c_k = m_k - m_{k-1}, c_N = -m_{N-1} (flat after the last knot)
    c = torch.cat([slopes[:1], slopes[1:] - slopes[:-1], -slopes[-1:]])  # (N + 1,)
    net = nn.Sequential(nn.Linear(1, n_hidden), nn.ReLU(), nn.Linear(n_hidden, 1))
    net = net.to(device=knots.device, dtype=knots.dtype)
    with torch.no_grad():
        net[0].weight.fill_(1.0)  # (N + 1, 1): every hinge has slope 1 in x
        net[0].bias.copy_(-knots)  # hinge k turns on at x = x_k
        net[2].weight.copy_(c[None, :])  # (1, N + 1)
        net[2].bias.fill_(float(values[0]))  # f_0, the value left of the first knot
    return net


def _increasing(name: str, x: torch.Tensor) -> None:
    """Raise unless ``x`` holds at least two strictly increasing numbers."""
    if len(x) < 2:
        raise ValueError(f"{name} must hold at least 2 points, got {len(x)}")
    if not bool((x[1:] > x[:-1]).all()):
        raise ValueError(f"{name} must be strictly increasing, got {x.tolist()}")
