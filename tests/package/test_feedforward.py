"""Feedforward networks (Part 4): the torch.nn builder, the hand-set ReLU interpolant, the
parameter count."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dlbook.activations import TORCH_ACTIVATIONS
from dlbook.feedforward import (
    activation_patterns,
    count_linear_regions,
    count_parameters,
    mlp,
    relu_interpolant,
    sawtooth,
)
from tests.helpers import check_bad_inputs


@pytest.mark.parametrize("activation", sorted(TORCH_ACTIVATIONS))
def test_mlp_puts_the_activation_between_linear_layers(activation: str) -> None:
    net = mlp([8, 16, 16, 3], activation)
    kind = type(TORCH_ACTIVATIONS[activation]())
    assert [type(m) for m in net] == [nn.Linear, kind, nn.Linear, kind, nn.Linear]
    shapes = [(m.in_features, m.out_features) for m in net if isinstance(m, nn.Linear)]
    assert shapes == [(8, 16), (16, 16), (16, 3)]
    assert net(torch.zeros(5, 8)).shape == (5, 3)


@pytest.mark.parametrize("widths", [[4, 3], [64, 256, 10], [784, 512, 256, 10], [5, 1, 1, 7]])
def test_count_parameters_equals_the_formula(widths: list[int]) -> None:
    # N = sum_l (d_{l-1} + 1) d_l   (eq-param-count)
    formula = sum((d_in + 1) * d_out for d_in, d_out in zip(widths[:-1], widths[1:]))
    assert count_parameters(mlp(widths)) == formula


def test_count_parameters_skips_frozen_ones() -> None:
    net = mlp([4, 3, 2])
    net[0].requires_grad_(False)
    assert count_parameters(net) == (3 + 1) * 2


@pytest.mark.parametrize("n_knots", [2, 5, 33])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_relu_interpolant_equals_numpy_interp(n_knots: int, seed: int, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(seed)
    knots = torch.sort(torch.rand(n_knots, dtype=torch.float64, generator=gen) * 6 - 3).values
    values = torch.randn(n_knots, dtype=torch.float64, generator=gen)
    x = torch.linspace(-4, 4, 801, dtype=torch.float64)
    net = relu_interpolant(knots.to(dtype), values)  # float64 values follow the knots' dtype
    assert net[0].weight.dtype == dtype
    with torch.no_grad():
        ours = net(x[:, None].to(dtype)).squeeze(1).double()
    knots_np = knots.to(dtype).double().numpy()
    expected = torch.from_numpy(np.interp(x.numpy(), knots_np, values.numpy()))
    tol = 1e-10 if dtype == torch.float64 else 1e-3  # float32 sums up to 33 hinges
    torch.testing.assert_close(ours, expected, atol=tol, rtol=tol)


def _exact_breakpoints(net: nn.Sequential, a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Interior points of [0, 1] where a ReLU of ``net`` switches along a + t (b - a), exactly.

    Layer by layer: between the breakpoints found so far every pre-activation is
    affine in t, so its zero on an interval is where the line through its end values
    crosses zero.
    """
    points = np.array([0.0, 1.0])
    layers = list(net)
    for k, layer in enumerate(layers):
        if not isinstance(layer, nn.ReLU):
            continue
        front = nn.Sequential(*layers[:k])  # up to this ReLU's pre-activation
        t = torch.tensor(points, dtype=torch.float64)[:, None]
        with torch.no_grad():
            z = front(a + t * (b - a)).numpy()  # (P, d_l)
        new = []
        for i in range(len(points) - 1):
            z0, z1 = z[i], z[i + 1]
            crossing = z0 * z1 < 0
            # z(t) = z0 + (t - t0) (z1 - z0) / (t1 - t0) = 0
            new.extend(points[i] + (points[i + 1] - points[i]) * z0[crossing] / (z0 - z1)[crossing])
        points = np.unique(np.concatenate([points, new]))
    return points[1:-1]


@pytest.mark.parametrize("widths", [[3], [3, 3], [4, 3, 2], [2, 2, 2, 2]])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_count_linear_regions_matches_the_exact_breakpoints(widths: list[int], seed: int) -> None:
    torch.manual_seed(seed)
    net = mlp([2, *widths, 1]).double()
    a = torch.tensor([-3.0, -2.0], dtype=torch.float64)
    b = torch.tensor([3.0, 2.0], dtype=torch.float64)
    exact = _exact_breakpoints(net, a, b)
    n_points = 100_001
    counted = count_linear_regions(net, a, b, n_points=n_points)
    gaps = np.diff(np.concatenate([[0.0], exact, [1.0]]))
    if gaps.min() > 2 / (n_points - 1):  # every piece holds a grid point: the count is exact
        assert counted == len(exact) + 1
    else:  # a piece between two grid points can only be missed
        assert counted <= len(exact) + 1


def test_activation_patterns_fix_an_affine_map() -> None:
    torch.manual_seed(0)
    net = mlp([2, 5, 5, 1]).double()
    x = torch.randn(2000, 2, dtype=torch.float64)
    patterns = activation_patterns(net, x)
    assert patterns.shape == (2000, 10)
    # on the inputs sharing the most common pattern the net is one affine map: fit and compare
    common, counts = torch.unique(patterns, dim=0, return_counts=True)
    same = (patterns == common[counts.argmax()]).all(dim=1)
    X = torch.cat([x[same], torch.ones(int(same.sum()), 1, dtype=torch.float64)], dim=1)
    with torch.no_grad():
        y = net(x[same])
    fit = torch.linalg.lstsq(X, y).solution
    torch.testing.assert_close(X @ fit, y, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("depth", [1, 2, 3, 6])
def test_sawtooth_is_the_composed_tent_map_with_2_to_the_depth_pieces(depth: int) -> None:
    net = sawtooth(depth).double()
    x = torch.rand(500, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(depth))
    tent = x.clone()
    for _ in range(depth):
        tent = torch.minimum(2 * tent, 2 - 2 * tent)  # T(x) = 2x left of 1/2, 2 - 2x right of it
    with torch.no_grad():
        torch.testing.assert_close(net(x), tent)
    start = torch.tensor([1e-5], dtype=torch.float64)
    end = torch.tensor([1 - 1e-5], dtype=torch.float64)
    assert count_linear_regions(net, start, end, n_points=20_002) == 2**depth


def test_bad_inputs() -> None:
    knots, values = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.0, 1.0, 0.0])
    nan, inf = float("nan"), float("inf")
    net, start, end = sawtooth(2), torch.zeros(1), torch.ones(1)
    check_bad_inputs([
        (lambda: mlp([8]), ValueError, "sizes"),
        (lambda: mlp([8, 0]), ValueError, "sizes[1]"),
        (lambda: mlp([-8, 3]), ValueError, "sizes[0]"),
        (lambda: mlp([8, True]), TypeError, "sizes[1]"),
        (lambda: mlp([8, 3.0]), TypeError, "sizes[1]"),
        (lambda: mlp("83"), TypeError, "sizes"),
        (lambda: mlp(None), TypeError, "sizes"),
        (lambda: mlp(torch.tensor([8, 3])), TypeError, "sizes"),
        (lambda: mlp([8, 3], "swish"), ValueError, "activation"),
        (lambda: mlp([8, 3], "swish"), ValueError, "'relu'"),  # the valid names are listed
        (lambda: mlp([8, 3], "step"), ValueError, "activation"),  # no gradient: not trainable
        (lambda: mlp([8, 3], None), TypeError, "activation"),
        (lambda: count_parameters([nn.Linear(2, 2)]), TypeError, "model"),
        (lambda: count_parameters(None), TypeError, "model"),
        (lambda: relu_interpolant([0.0, 1.0], values[:2]), TypeError, "knots"),
        (lambda: relu_interpolant(torch.tensor([0, 1]), values[:2]), TypeError, "knots"),
        (lambda: relu_interpolant(knots, None), TypeError, "values"),
        (lambda: relu_interpolant(knots, values[:2]), ValueError, "values"),
        (lambda: relu_interpolant(knots[:, None], values[:, None]), ValueError, "knots"),
        (lambda: relu_interpolant(knots[:1], values[:1]), ValueError, "knots"),
        (lambda: relu_interpolant(knots[:0], values[:0]), ValueError, "knots"),
        (lambda: relu_interpolant(torch.tensor([0.0, 2.0, 1.0]), values), ValueError, "knots"),
        (lambda: relu_interpolant(torch.tensor([0.0, 0.0]), values[:2]), ValueError, "knots"),
        (lambda: relu_interpolant(torch.tensor([0.0, nan]), values[:2]), ValueError, "knots"),
        (lambda: relu_interpolant(knots, torch.tensor([0.0, inf, 1.0])), ValueError, "values"),
        (lambda: count_linear_regions(nn.Linear(1, 1), start, end), TypeError, "model"),
        (lambda: count_linear_regions(mlp([1, 1], "relu"), start, end), ValueError, "ReLU"),
        (lambda: count_linear_regions(net, start[None], end), ValueError, "start"),
        (lambda: count_linear_regions(net, start, torch.zeros(2)), ValueError, "end"),
        (lambda: count_linear_regions(net, start, end, n_points=1), ValueError, "n_points"),
        (lambda: count_linear_regions(net, [0.0], end), TypeError, "start"),
        (lambda: activation_patterns(net, torch.full((3, 1), nan)), ValueError, "x"),
        (lambda: sawtooth(0), ValueError, "depth"),
    ])
