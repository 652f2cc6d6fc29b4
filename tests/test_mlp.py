"""The dense layer and the from-scratch MLP (Part 5) against torch.nn and autograd."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dlbook
from dlbook.data import digits
from dlbook.layers import Dense
import numpy as np

from dlbook.mlp import (
    MLPConfig,
    ScratchMLP,
    mlp,
    relu_interpolant,
    sgd_epoch,
    softmax_cross_entropy,
)
from tests.helpers import check_against_torch


def _dense_as_function(layer: Dense):
    """Wrap a Dense layer in an autograd.Function whose backward is ours."""

    class DenseFn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, W, b):  # type: ignore[override]
            layer.W, layer.b = W.detach(), b.detach()
            return layer.forward(x.detach())

        @staticmethod
        def backward(ctx, g):  # type: ignore[override]
            grad_x = layer.backward(g)
            return grad_x, layer.dW, layer.db

    return DenseFn.apply


@pytest.mark.parametrize("B, d_in, d_out", [(1, 1, 1), (5, 3, 4), (32, 64, 10), (7, 10, 2)])
def test_dense_matches_linear(B: int, d_in: int, d_out: int) -> None:
    gen = torch.Generator().manual_seed(B + d_in)
    layer = Dense(d_in, d_out, generator=gen, dtype=torch.float64)
    x = torch.randn(B, d_in, generator=gen)
    W, b = layer.W.clone(), layer.b.clone()
    # torch.nn.functional.linear computes x W'^T + b with W' = W^T of shape (D_out, D_in).
    check_against_torch(_dense_as_function(layer), lambda x, W, b: F.linear(x, W.T, b), [x, W, b])


def test_dense_gradients_equal_nn_linear_module() -> None:
    gen = torch.Generator().manual_seed(3)
    layer = Dense(6, 4, generator=gen, dtype=torch.float64)
    linear = nn.Linear(6, 4).double()
    with torch.no_grad():
        linear.weight.copy_(layer.W.T)
        linear.bias.copy_(layer.b)
    x = torch.randn(9, 6, dtype=torch.float64, generator=gen, requires_grad=True)
    g = torch.randn(9, 4, dtype=torch.float64, generator=gen)
    out = layer.forward(x.detach())
    torch.testing.assert_close(out, linear(x))
    grad_x = layer.backward(g)
    linear(x).backward(g)
    torch.testing.assert_close(grad_x, x.grad, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(layer.dW, linear.weight.grad.T, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(layer.db, linear.bias.grad, atol=1e-12, rtol=1e-10)


def test_dense_shape_errors() -> None:
    layer = Dense(64, 10)
    with pytest.raises(ValueError, match=r"expected \(B, D_in\) with D_in=64, got \(32, 63\)"):
        layer.forward(torch.zeros(32, 63))
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(torch.zeros(32, 10))
    layer.forward(torch.zeros(32, 64))
    expected = r"expected grad_out of shape \(B, D_out\) = \(32, 10\), got \(32, 9\)"
    with pytest.raises(ValueError, match=expected):
        layer.backward(torch.zeros(32, 9))
    with pytest.raises(ValueError, match="d_in must be an int >= 1"):
        Dense(0, 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_softmax_cross_entropy_matches_torch(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    Z = 5 * torch.randn(8, 6, dtype=torch.float64, generator=gen)
    y = torch.randint(0, 6, (8,), generator=gen)
    Z_ref = Z.clone().requires_grad_()
    ref = F.cross_entropy(Z_ref, y)
    ref.backward()
    loss, dZ = softmax_cross_entropy(Z, y)
    torch.testing.assert_close(loss, ref.detach())
    torch.testing.assert_close(dZ, Z_ref.grad, atol=1e-12, rtol=1e-10)
    with pytest.raises(ValueError, match=r"expected logits \(B, K\) and labels \(B,\)"):
        softmax_cross_entropy(Z, y[:-1])


@pytest.mark.parametrize("sizes", [(4, 3), (64, 32, 10), (5, 8, 7, 3)])
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "gelu", "leaky_relu"])
def test_scratch_backward_equals_autograd(sizes: tuple[int, ...], activation: str) -> None:
    config = MLPConfig(sizes=sizes, activation=activation, seed=len(sizes))
    net = ScratchMLP(config, dtype=torch.float64)
    reference = net.to_torch()
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(11, sizes[0], dtype=torch.float64, generator=gen)
    y = torch.randint(0, sizes[-1], (11,), generator=gen)
    loss, dZ = softmax_cross_entropy(net.forward(x), y)
    ours = net.backward(dZ)
    ref_loss = F.cross_entropy(reference(x), y)
    ref_loss.backward()
    theirs = []
    for m in reference:
        if isinstance(m, nn.Linear):
            theirs += [m.weight.grad.T, m.bias.grad]
    torch.testing.assert_close(loss, ref_loss.detach(), atol=1e-12, rtol=1e-12)
    assert len(ours) == len(theirs)
    for g_ours, g_ref in zip(ours, theirs):
        torch.testing.assert_close(g_ours, g_ref, atol=1e-10, rtol=1e-10)


def test_mlp_builder_and_errors() -> None:
    net = mlp([8, 16, 16, 3], "tanh")
    assert [type(m).__name__ for m in net] == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]
    with pytest.raises(ValueError, match="unknown activation"):
        mlp([8, 3], "swish")
    with pytest.raises(ValueError, match="sizes must be"):
        mlp([8], "relu")
    with pytest.raises(ValueError, match="unknown activation"):
        ScratchMLP(MLPConfig(sizes=(4, 2), activation="swish"))


def test_scratch_mlp_learns_digits() -> None:
    dlbook.seed(0)
    data = digits()
    train, _, _ = data.loaders(32, seed=0)
    net = ScratchMLP(MLPConfig(sizes=(64, 64, 10), seed=0))
    losses = [sgd_epoch(net, train, lr=0.2) for _ in range(8)]
    assert losses[-1] < 0.5 * losses[0]
    with torch.no_grad():
        acc = (net.forward(data.test.X).argmax(1) == data.test.y).float().mean().item()
    assert acc > 0.9


@pytest.mark.parametrize("n_knots", [2, 5, 33])
@pytest.mark.parametrize("seed", [0, 1])
def test_relu_interpolant_equals_numpy_interp(n_knots: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    knots = torch.sort(torch.rand(n_knots, dtype=torch.float64, generator=gen) * 6 - 3).values
    values = torch.randn(n_knots, dtype=torch.float64, generator=gen)
    x = torch.linspace(-4, 4, 801, dtype=torch.float64)
    with torch.no_grad():
        ours = relu_interpolant(knots, values)(x[:, None]).squeeze(1)
    expected = torch.from_numpy(np.interp(x.numpy(), knots.numpy(), values.numpy()))
    torch.testing.assert_close(ours, expected, atol=1e-10, rtol=1e-10)


def test_relu_interpolant_errors() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        relu_interpolant(torch.tensor([0.0, 0.0]), torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"same shape \(N \+ 1,\)"):
        relu_interpolant(torch.tensor([0.0, 1.0]), torch.tensor([1.0]))


@pytest.mark.parametrize("seed", range(4))
def test_tiny_network_chain_rule(seed: int) -> None:
    """The scalar backward equations of "Computational graphs and the chain rule"."""
    from dlbook.activations import sigmoid

    gen = torch.Generator().manual_seed(seed)
    x, W1, b1, w2, b2 = (
        torch.randn(s, dtype=torch.float64, generator=gen) for s in [(2,), (2, 2), (2,), (2,), ()]
    )
    y = torch.tensor(1.0, dtype=torch.float64)
    a1 = sigmoid(W1 @ x + b1)
    y_hat = sigmoid(w2 @ a1 + b2)
    delta2 = (y_hat - y) * y_hat * (1 - y_hat)
    delta1 = delta2 * w2 * a1 * (1 - a1)
    ours = [delta1[:, None] * x[None, :], delta1, delta2 * a1, delta2]

    params = [t.clone().requires_grad_() for t in (W1, b1, w2, b2)]
    hidden = torch.sigmoid(params[0] @ x + params[1])
    loss = 0.5 * (torch.sigmoid(params[2] @ hidden + params[3]) - y) ** 2
    loss.backward()
    for g, p in zip(ours, params):
        torch.testing.assert_close(g, p.grad, atol=1e-12, rtol=1e-10)
