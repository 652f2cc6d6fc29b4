"""Feedforward networks built with ``torch.nn`` (Part 4, "Feedforward networks").

``mlp`` builds the network the chapter trains with ``dlbook.train.fit``, its activations
taken from ``dlbook.activations.TORCH_ACTIVATIONS``; ``relu_interpolant`` sets a
one-hidden-layer ReLU network's weights by hand, the constructive side of universal
approximation. ``count_linear_regions`` counts the pieces of a line on which a
ReLU network is linear, and ``sawtooth`` builds the deep, narrow network whose
pieces double with every layer. ``count_parameters`` lives here because this chapter first counts a
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

__all__ = [
    "count_parameters", "mlp", "relu_interpolant", "activation_patterns", "count_linear_regions",
    "sawtooth",
]



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


def activation_patterns(model: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Which ReLUs of ``model`` are on for each input: ``(B, d_in)`` -> bool ``(B, ReLU units)``."""
    relus = _relu_net_parameter("model", model)
    x = check.as_float_like("x", check.finite("x", x), relus[0])
    on = []
    h = x
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.ReLU):
                on.append(h > 0)  # (B, d_l): the unit passes its pre-activation on
            h = layer(h)
    return torch.cat(on, dim=1)


def count_linear_regions(
    model: nn.Sequential, start: torch.Tensor, end: torch.Tensor, n_points: int = 10_000
) -> int:
    """Pieces of the segment from ``start`` to ``end`` (each ``(d_in,)``) with one ReLU pattern.

    On each piece the network is one affine map. The segment is sampled at
    ``n_points`` evenly spaced points, so a piece shorter than the spacing can
    be missed: the count is exact once the grid is fine enough.
    """
    relus = _relu_net_parameter("model", model)
    start = check.as_float_like("start", check.finite("start", start), relus[0])
    end = check.as_float_like("end", check.finite("end", end), relus[0])
    check.expect_shape(start, "D", "start")
    check.expect_shape(end, "D", "end", D=len(start))
    n_points = check.positive_int("n_points", n_points, minimum=2)
    t = torch.linspace(0, 1, n_points, dtype=start.dtype, device=start.device)[:, None]  # (P, 1)
    # x(t) = start + t (end - start)
    patterns = activation_patterns(model, start + t * (end - start))  # (P, units)
    changes = (patterns[1:] != patterns[:-1]).any(dim=1)  # (P - 1,): a boundary between
    return int(changes.sum()) + 1


def sawtooth(depth: int) -> nn.Sequential:
    """A ReLU net of ``depth`` hidden layers of 2 units: the tent map composed ``depth`` times.

    On [0, 1] the tent map T(x) = 2 relu(x) - 4 relu(x - 1/2) has 2 linear
    pieces, and T composed ``depth`` times has 2^depth. The network maps (B, 1) to (B, 1).
    """
    depth = check.positive_int("depth", depth)
    net = mlp([1, *[2] * depth, 1])
    with torch.no_grad():
        for i, layer in enumerate(l for l in net if isinstance(l, nn.Linear)):
            # the layer's input is x (first layer) or T(...) = 2 h_1 - 4 h_2 of the layer below
            w_in = torch.tensor([[1.0]]) if i == 0 else torch.tensor([[2.0, -4.0]])  # (1, d_in)
            if i < depth:  # hidden units relu(t) and relu(t - 1/2) of the incoming t
                layer.weight.copy_(w_in.expand(2, -1))
                layer.bias.copy_(torch.tensor([0.0, -0.5]))
            else:
                layer.weight.copy_(w_in)
                layer.bias.zero_()
    return net


def _relu_net_parameter(name: str, model: object) -> nn.Module:
    """The first parameter of ``model``, an ``nn.Sequential`` with at least one ``nn.ReLU``."""
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"{name} must be an nn.Sequential, got {type(model).__name__}")
    if not any(isinstance(layer, nn.ReLU) for layer in model):
        layers = [type(m).__name__ for m in model]
        raise ValueError(f"{name} must contain an nn.ReLU, got layers {layers}")
    parameter = next(model.parameters(), None)
    if parameter is None:
        raise ValueError(f"{name} has no parameters")
    return parameter


def _increasing(name: str, x: torch.Tensor) -> None:
    """Raise unless ``x`` holds at least two strictly increasing numbers."""
    if len(x) < 2:
        raise ValueError(f"{name} must hold at least 2 points, got {len(x)}")
    if not bool((x[1:] > x[:-1]).all()):
        raise ValueError(f"{name} must be strictly increasing, got {x.tolist()}")
