"""Activation functions and hand-derived derivatives (Part 4) against torch float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlbook.activations import ACTIVATIONS, Activation, gelu, leaky_relu, sigmoid, step, tanh
from tests.helpers import check_against_torch

REFERENCE = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": F.relu,
    "leaky_relu": lambda z: F.leaky_relu(z, 0.01),
    "gelu": F.gelu,
}


def _inputs(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    z = 3 * torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    # Keep clear of the kink at 0, where ReLU-like derivatives are a convention.
    return torch.where(z.abs() < 1e-3, z + 0.01, z)


@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forward_matches_torch(name: str, seed: int) -> None:
    fn, _ = ACTIVATIONS[name]
    check_against_torch(fn, REFERENCE[name], [_inputs(seed, (7, 5))], atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.parametrize("shape", [(10,), (4, 6), (2, 3, 5)])
def test_derivative_matches_autograd(name: str, shape: tuple[int, ...]) -> None:
    fn, grad_fn = ACTIVATIONS[name]
    z = _inputs(sum(shape), shape).requires_grad_()
    fn(z).sum().backward()  # elementwise, so d(sum phi)/dz_i = phi'(z_i)
    torch.testing.assert_close(grad_fn(z.detach()), z.grad, atol=1e-12, rtol=1e-10)


def test_step_derivative_is_zero_away_from_the_jump() -> None:
    # The step is piecewise constant; autograd cannot differentiate a comparison.
    z = _inputs(0, (20,))
    _, grad_fn = ACTIVATIONS["step"]
    assert torch.equal(grad_fn(z), torch.zeros_like(z))


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_activation_layer_backward_matches_torch(name: str) -> None:
    def ours(z: torch.Tensor) -> torch.Tensor:
        layer = Activation(name)

        class Fn(torch.autograd.Function):
            @staticmethod
            def forward(ctx, z):  # type: ignore[override]
                return layer.forward(z.detach())

            @staticmethod
            def backward(ctx, g):  # type: ignore[override]
                return layer.backward(g)

        return Fn.apply(z)

    check_against_torch(ours, REFERENCE[name], [_inputs(3, (6, 4))])


def test_sigmoid_is_stable_for_large_inputs() -> None:
    z = torch.tensor([-1000.0, -50.0, 0.0, 50.0, 1000.0], dtype=torch.float64)
    s = sigmoid(z)
    assert torch.isfinite(s).all()
    torch.testing.assert_close(s, torch.sigmoid(z))
    torch.testing.assert_close(tanh(z), torch.tanh(z))


def test_step_and_leaky_values() -> None:
    z = torch.tensor([-2.0, 0.0, 3.0])
    assert step(z).tolist() == [0.0, 0.0, 1.0]
    torch.testing.assert_close(leaky_relu(z, 0.1), torch.tensor([-0.2, 0.0, 3.0]))
    assert gelu(torch.tensor([0.0])).item() == 0.0


def test_bad_inputs_raise() -> None:
    with pytest.raises(TypeError, match="floating-point"):
        sigmoid(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        Activation("swish")
    layer = Activation("tanh")
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(torch.ones(3))
    layer.forward(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"expected grad_out of shape \(2, 3\), got \(3, 2\)"):
        layer.backward(torch.ones(3, 2))
