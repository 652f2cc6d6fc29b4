"""Feedforward networks (Part 4): the torch.nn builder, the hand-set ReLU interpolant, the
parameter count."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dlbook.activations import TORCH_ACTIVATIONS
from dlbook.feedforward import count_parameters, mlp, relu_interpolant
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


def test_bad_inputs() -> None:
    knots, values = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.0, 1.0, 0.0])
    nan, inf = float("nan"), float("inf")
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
    ])
