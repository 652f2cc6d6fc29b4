"""Activation functions (Part 4): derivatives by hand vs autograd, the scratch table vs torch.nn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dlbook.linear
from dlbook.activations import (
    ACTIVATIONS, TORCH_ACTIVATIONS, Activation, gelu, leaky_relu, leaky_relu_grad, relu, sigmoid,
    step, step_grad, tanh,
)
from tests.helpers import check_against_torch, check_bad_inputs, check_gradient

SMOOTH = sorted(TORCH_ACTIVATIONS)  # every activation but the step


def _inputs(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    z = 3 * torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    # Keep clear of the kink at 0, where ReLU-like derivatives are a convention.
    return torch.where(z.abs() < 1e-3, z + 0.01, z)


def test_the_two_tables_name_the_same_activations() -> None:
    assert set(TORCH_ACTIVATIONS) == set(ACTIVATIONS) - {"step"}


@pytest.mark.parametrize("name", SMOOTH)
@pytest.mark.parametrize("shape", [(7, 5), (11,), (2, 3, 4)])
def test_scratch_function_equals_its_torch_module(name: str, shape: tuple[int, ...]) -> None:
    fn, _ = ACTIVATIONS[name]
    z = _inputs(sum(shape), shape)
    check_against_torch(fn, TORCH_ACTIVATIONS[name](), [z], atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("name", SMOOTH)
@pytest.mark.parametrize("shape", [(10,), (4, 6), (2, 3, 5)])
def test_derivative_equals_autograd(name: str, shape: tuple[int, ...]) -> None:
    fn, grad_fn = ACTIVATIONS[name]
    # phi acts elementwise, so d(sum phi(z))/dz_i = phi'(z_i)
    z = _inputs(sum(shape), shape)
    check_gradient(lambda z: fn(z).sum(), grad_fn, [z], atol=1e-12, rtol=1e-10)


def test_leaky_relu_slope_reaches_the_derivative() -> None:
    z = _inputs(4, (30,))
    check_gradient(lambda z: leaky_relu(z, 0.2).sum(), lambda z: leaky_relu_grad(z, 0.2), [z])


def test_step_is_a_threshold_with_zero_derivative() -> None:
    z = torch.tensor([-2.0, 0.0, 3.0])
    assert step(z).tolist() == [0.0, 0.0, 1.0]
    assert torch.equal(step_grad(_inputs(0, (20,))), torch.zeros(20, dtype=torch.float64))


@pytest.mark.parametrize("name", SMOOTH)
def test_activation_layer_backward_equals_torch(name: str) -> None:
    def ours(z: torch.Tensor) -> torch.Tensor:
        layer = Activation(name)

        class Fn(torch.autograd.Function):
            @staticmethod
            def forward(ctx, z):  # type: ignore[override]
                return layer.forward(z.detach())

            @staticmethod
            def backward(ctx, A_bar):  # type: ignore[override]
                return layer.backward(A_bar)

        return Fn.apply(z)

    check_against_torch(ours, TORCH_ACTIVATIONS[name](), [_inputs(3, (6, 4))])


def test_sigmoid_is_part_2s_and_stable() -> None:
    assert sigmoid is dlbook.linear.sigmoid
    z = torch.tensor([-1000.0, -50.0, 0.0, 50.0, 1000.0], dtype=torch.float64)
    torch.testing.assert_close(sigmoid(z), torch.sigmoid(z))
    torch.testing.assert_close(tanh(z), torch.tanh(z))


def test_bad_inputs() -> None:
    layer = Activation("tanh")
    fresh = Activation("relu")
    layer.forward(torch.zeros(2, 3))
    check_bad_inputs([
        (lambda: sigmoid([1.0]), TypeError, "z"),
        (lambda: sigmoid(torch.tensor([1, 2])), TypeError, "z"),
        (lambda: relu(torch.tensor([1, 2])), TypeError, "z"),
        (lambda: tanh(None), TypeError, "z"),
        (lambda: gelu(np.zeros(3)), TypeError, "z"),
        (lambda: step_grad([0.0]), TypeError, "z"),
        (lambda: leaky_relu(torch.zeros(3), slope=-0.1), ValueError, "slope"),
        (lambda: leaky_relu(torch.zeros(3), slope=True), TypeError, "slope"),
        (lambda: leaky_relu(torch.zeros(3), slope=float("nan")), ValueError, "slope"),
        (lambda: Activation("swish"), ValueError, "name"),
        (lambda: Activation("swish"), ValueError, "'leaky_relu'"),  # the valid names are listed
        (lambda: Activation(None), TypeError, "name"),
        (lambda: fresh.backward(torch.ones(3)), RuntimeError, "forward"),
        (lambda: layer.forward([0.0, 1.0]), TypeError, "z"),
        (lambda: layer.backward(torch.ones(3, 2)), ValueError, "A_bar"),
        (lambda: layer.backward(torch.ones(2, 3, dtype=torch.long)), TypeError, "A_bar"),
        (lambda: layer.backward([[1.0] * 3] * 2), TypeError, "A_bar"),
    ])
