"""Backpropagation by hand (Part 5): the dense layer vs torch, the scratch MLP's backward vs
autograd, SGD without autograd vs torch.optim.SGD, and the computational-graphs chapter's
tiny network."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dlbook
import dlbook.linear
from dlbook.activations import TORCH_ACTIVATIONS
from dlbook.activations import sigmoid as scratch_sigmoid
from dlbook.backprop import Dense, MLPConfig, ScratchMLP, sgd_epoch, softmax_cross_entropy
from dlbook.data import digits
from tests.helpers import check_against_torch, check_bad_inputs, check_gradient


def _dense_as_function(layer: Dense):
    """The layer as an autograd.Function whose backward is ours."""

    class DenseFn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, A, W, b):  # type: ignore[override]
            layer.W, layer.b = W.detach(), b.detach()
            return layer.forward(A.detach())

        @staticmethod
        def backward(ctx, G):  # type: ignore[override]
            A_bar = layer.backward(G)
            return A_bar, layer.dW, layer.db

    return DenseFn.apply


@pytest.mark.parametrize("B, d_in, d_out", [(1, 1, 1), (5, 3, 4), (32, 64, 10), (7, 10, 2)])
def test_dense_equals_torch_linear(B: int, d_in: int, d_out: int) -> None:
    gen = torch.Generator().manual_seed(B + d_in)
    layer = Dense(d_in, d_out, generator=gen, dtype=torch.float64)
    A = torch.randn(B, d_in, generator=gen)
    # F.linear computes A V^T + b with V = W^T, torch's (D_out, D_in) layout
    check_against_torch(_dense_as_function(layer), lambda A, W, b: F.linear(A, W.T, b),
                        [A, layer.W.clone(), layer.b.clone()])


def test_dense_converts_float64_input_into_a_float32_layer() -> None:
    layer = Dense(3, 2, generator=torch.Generator().manual_seed(0))
    A = torch.randn(4, 3, dtype=torch.float64)
    Z = layer.forward(A)
    assert Z.dtype == torch.float32
    torch.testing.assert_close(Z, layer.forward(A.float()))
    assert layer.backward(torch.ones(4, 2, dtype=torch.float64)).dtype == torch.float32


def _autograd_loss(activation: str):
    """Softmax cross-entropy of the MLP with weights (W1, b1, W2, b2, ...), built from torch ops."""
    phi = TORCH_ACTIVATIONS[activation]()

    def loss(x: torch.Tensor, y: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        h = x
        for i in range(0, len(params), 2):
            h = h @ params[i] + params[i + 1]
            if i < len(params) - 2:
                h = phi(h)
        return F.cross_entropy(h, y)

    return loss


def _hand_gradients(net: ScratchMLP):
    def by_hand(x: torch.Tensor, y: torch.Tensor, *params: torch.Tensor) -> list[torch.Tensor]:
        for layer, (W, b) in zip(net.dense_layers(), zip(params[::2], params[1::2])):
            layer.W, layer.b = W, b
        _, G = softmax_cross_entropy(net.forward(x), y)
        return net.backward(G)

    return by_hand


@pytest.mark.parametrize("sizes", [(4, 3), (64, 32, 10), (5, 8, 7, 3)])
@pytest.mark.parametrize("activation", sorted(TORCH_ACTIVATIONS))
def test_scratch_backward_equals_autograd(sizes: tuple[int, ...], activation: str) -> None:
    config = MLPConfig(sizes=sizes, activation=activation, seed=len(sizes))
    net = ScratchMLP(config, dtype=torch.float64)
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(11, sizes[0], dtype=torch.float64, generator=gen)
    y = torch.randint(0, sizes[-1], (11,), generator=gen)
    params = net.parameters()
    check_gradient(_autograd_loss(activation), _hand_gradients(net), [x, y, *params],
                   wrt=range(2, 2 + len(params)))


@pytest.mark.parametrize("activation", sorted(TORCH_ACTIVATIONS))
def test_to_torch_computes_the_same_network(activation: str) -> None:
    net = ScratchMLP(MLPConfig(sizes=(6, 5, 4, 3), activation=activation), dtype=torch.float64)
    x = torch.randn(9, 6, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(net.to_torch()(x), net.forward(x), atol=1e-12, rtol=1e-12)


def test_scratch_mlp_converts_float64_batches() -> None:
    net = ScratchMLP(MLPConfig(sizes=(4, 3, 2)))
    x = torch.randn(5, 4, dtype=torch.float64)
    logits = net.forward(x)
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, net.forward(x.float()))


def test_the_loss_is_part_2s() -> None:
    assert softmax_cross_entropy is dlbook.linear.softmax_cross_entropy


def test_sgd_epoch_takes_the_steps_of_torch_optim_sgd() -> None:
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(40, 6, dtype=torch.float64, generator=gen)
    y = torch.randint(0, 3, (40,), generator=gen)
    batches = [(X[i:i + 8], y[i:i + 8]) for i in range(0, 40, 8)]
    net = ScratchMLP(MLPConfig(sizes=(6, 5, 3), activation="tanh"), dtype=torch.float64)
    twin = net.to_torch()
    optimizer = torch.optim.SGD(twin.parameters(), lr=0.3)
    mean_loss = sgd_epoch(net, batches, lr=0.3)
    losses = []
    for xb, yb in batches:
        optimizer.zero_grad()
        loss = F.cross_entropy(twin(xb), yb)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert mean_loss == pytest.approx(sum(losses) / len(losses), rel=1e-12)
    theirs = [t for m in twin if isinstance(m, nn.Linear) for t in (m.weight.T, m.bias)]
    for ours, ref in zip(net.parameters(), theirs):
        torch.testing.assert_close(ours, ref.detach(), atol=1e-12, rtol=1e-10)


@pytest.mark.slow
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


@pytest.mark.parametrize("seed", range(4))
def test_tiny_network_chain_rule(seed: int) -> None:
    """The scalar backward equations of "Computational graphs and the chain rule"."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(2,), (2, 2), (2,), (2,), ()]  # x, W1, b1, w2, b2
    inputs = [torch.randn(s, dtype=torch.float64, generator=gen) for s in shapes]
    y = torch.tensor(1.0, dtype=torch.float64)

    def loss(x, W1, b1, w2, b2):
        return 0.5 * (torch.sigmoid(w2 @ torch.sigmoid(W1 @ x + b1) + b2) - y) ** 2

    def by_hand(x, W1, b1, w2, b2):
        a1 = scratch_sigmoid(W1 @ x + b1)
        y_hat = scratch_sigmoid(w2 @ a1 + b2)
        delta2 = (y_hat - y) * y_hat * (1 - y_hat)
        delta1 = delta2 * w2 * a1 * (1 - a1)
        return [delta1[:, None] * x[None, :], delta1, delta2 * a1, delta2]

    check_gradient(loss, by_hand, inputs, wrt=[1, 2, 3, 4], atol=1e-12, rtol=1e-10)


def test_bad_inputs() -> None:
    layer = Dense(3, 2)
    fresh = Dense(3, 2)
    layer.forward(torch.zeros(4, 3))
    net = ScratchMLP(MLPConfig(sizes=(4, 3, 2)))
    net.forward(torch.zeros(5, 4))
    Z, labels = torch.zeros(4, 3), torch.tensor([0, 1, 2, 1])
    batch = [(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))]
    stepper = ScratchMLP(MLPConfig(sizes=(4, 3, 2), activation="step"))
    check_bad_inputs([
        (lambda: Dense(0, 3), ValueError, "d_in"),
        (lambda: Dense(3, True), TypeError, "d_out"),
        (lambda: Dense(3, 2.0), TypeError, "d_out"),
        (lambda: Dense(3, 2, dtype=torch.int64), ValueError, "dtype"),
        (lambda: layer.forward(torch.zeros(4, 2)), ValueError, "A"),
        (lambda: layer.forward(torch.zeros(4)), ValueError, "A"),
        (lambda: layer.forward(torch.zeros(0, 3)), ValueError, "A"),
        (lambda: layer.forward([[0.0, 0.0, 0.0]]), TypeError, "A"),
        (lambda: layer.forward(None), TypeError, "A"),
        (lambda: layer.forward(torch.zeros(4, 3, dtype=torch.long)), TypeError, "A"),
        (lambda: fresh.backward(torch.zeros(4, 2)), RuntimeError, "forward"),
        (lambda: layer.backward(torch.zeros(4, 3)), ValueError, "G"),
        (lambda: layer.backward(torch.zeros(5, 2)), ValueError, "G"),
        (lambda: layer.backward([[0.0, 0.0]] * 4), TypeError, "G"),
        (lambda: MLPConfig(sizes=(4,)), ValueError, "sizes"),
        (lambda: MLPConfig(sizes=(4, -1)), ValueError, "sizes[1]"),
        (lambda: MLPConfig(sizes=(4, True)), TypeError, "sizes[1]"),
        (lambda: MLPConfig(sizes=None), TypeError, "sizes"),
        (lambda: MLPConfig(activation="swish"), ValueError, "activation"),
        (lambda: MLPConfig(activation="swish"), ValueError, "'gelu'"),  # the valid names are listed
        (lambda: MLPConfig(seed=-1), ValueError, "seed"),
        (lambda: ScratchMLP({"sizes": (4, 2)}), TypeError, "config"),
        (lambda: ScratchMLP(MLPConfig(sizes=(4, 2)), dtype=torch.long), ValueError, "dtype"),
        (lambda: net.forward(torch.zeros(5, 3)), ValueError, "x"),
        (lambda: net.forward(torch.zeros(0, 4)), ValueError, "x"),
        (lambda: net.forward(None), TypeError, "x"),
        (lambda: net.forward([[0.0] * 4]), TypeError, "x"),
        (lambda: net.backward(torch.zeros(5, 3)), ValueError, "G"),
        (lambda: stepper.to_torch(), ValueError, "activation"),  # step has no torch module
        (lambda: softmax_cross_entropy(Z, torch.tensor([0, -1, 1, 2])), ValueError, "y"),
        (lambda: softmax_cross_entropy(Z, torch.tensor([0, 3, 1, 2])), ValueError, "y"),
        (lambda: softmax_cross_entropy(Z, torch.tensor([0.0, 1.0, 1.0, 2.0])), TypeError, "y"),
        (lambda: softmax_cross_entropy(Z, labels[:3]), ValueError, "y"),
        (lambda: softmax_cross_entropy(torch.full((4, 3), float("nan")), labels), ValueError,
         "logits"),
        (lambda: sgd_epoch(None, batch, lr=0.1), TypeError, "model"),
        (lambda: sgd_epoch(net, [], lr=0.1), ValueError, "loader"),
        (lambda: sgd_epoch(net, None, lr=0.1), TypeError, "loader"),
        (lambda: sgd_epoch(net, batch, lr=0.0), ValueError, "lr"),
        (lambda: sgd_epoch(net, batch, lr=-1.0), ValueError, "lr"),
        (lambda: sgd_epoch(net, batch, lr=True), TypeError, "lr"),
        (lambda: sgd_epoch(net, [(torch.zeros(2, 4), torch.zeros(2))], lr=0.1), TypeError, "y"),
    ])
