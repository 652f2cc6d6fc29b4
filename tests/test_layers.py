"""Tests for Part 6 of dlbook.layers: initializers, batch norm, dropout, residual block."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlbook.layers import (
    BatchNorm1d,
    Dropout,
    ResidualBlock,
    batch_norm,
    deep_mlp,
    dropout,
    he_normal_,
    he_uniform_,
    layer_signals,
    xavier_normal_,
    xavier_uniform_,
)
from tests.helpers import check_against_torch

# ----- initializers ---------------------------------------------------------------

INITS = [
    (xavier_uniform_, lambda w, g: nn.init.xavier_uniform_(w, generator=g)),
    (xavier_normal_, lambda w, g: nn.init.xavier_normal_(w, generator=g)),
    (he_uniform_, lambda w, g: nn.init.kaiming_uniform_(w, nonlinearity="relu", generator=g)),
    (he_normal_, lambda w, g: nn.init.kaiming_normal_(w, nonlinearity="relu", generator=g)),
]


@pytest.mark.parametrize("ours, theirs", INITS)
@pytest.mark.parametrize("shape", [(30, 50), (8, 3, 5, 5)])
def test_initializer_equals_torch_with_same_generator(ours, theirs, shape):
    a, b = torch.empty(shape), torch.empty(shape)
    ours(a, generator=torch.Generator().manual_seed(3))
    theirs(b, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.parametrize("fan_in, fan_out", [(400, 100), (100, 900)])
@pytest.mark.parametrize("seed", [0, 1])
def test_initializer_variance_matches_formula(fan_in, fan_out, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.empty(fan_out, fan_in, dtype=torch.float64)
    expected = {
        xavier_uniform_: 2 / (fan_in + fan_out), xavier_normal_: 2 / (fan_in + fan_out),
        he_uniform_: 2 / fan_in, he_normal_: 2 / fan_in,
    }
    for init, var in expected.items():
        init(w, generator=g)
        # 40k draws: the sample variance is within a few percent of the truth
        assert abs(w.var().item() / var - 1) < 0.05, init.__name__
        assert abs(w.mean().item()) < 0.05 * math.sqrt(var)
    bound = math.sqrt(6 / (fan_in + fan_out))
    xavier_uniform_(w, generator=g)
    assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound
    he_normal_(w, mode="fan_out", generator=g)
    assert abs(w.var().item() / (2 / fan_out) - 1) < 0.05


def test_initializer_errors():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        xavier_uniform_(torch.empty(5))
    with pytest.raises(ValueError, match="mode must be"):
        he_uniform_(torch.empty(3, 3), mode="fan_avg")
    with pytest.raises(TypeError, match="torch.Tensor"):
        he_normal_([[1.0]])


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_deep_mlp_and_layer_signals_agree_with_autograd(activation):
    torch.manual_seed(0)
    model = deep_mlp(7, 16, 4, 3, activation).double()
    x, y = torch.randn(5, 7, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1])
    forward, backward = layer_signals(model, x, y, F.cross_entropy)
    assert len(forward) == len(backward) == 5
    # the first Linear's output and its gradient, computed independently
    z1 = model[0](x).detach().requires_grad_()
    F.cross_entropy(model[1:](z1), y).backward()
    assert math.isclose(forward[0], z1.pow(2).mean().sqrt().item(), rel_tol=1e-12)
    assert math.isclose(backward[0], z1.grad.pow(2).mean().sqrt().item(), rel_tol=1e-12)
    assert model[0].weight.grad is not None
    with pytest.raises(ValueError, match="activation must be"):
        deep_mlp(7, 16, 4, 3, "gelu")
    with pytest.raises(TypeError, match="nn.Sequential"):
        layer_signals(nn.Linear(7, 3), x, y, F.cross_entropy)


def test_he_init_keeps_relu_signal_xavier_shrinks_it():
    torch.manual_seed(0)
    x = torch.randn(512, 256)
    # He keeps E[h^2] layer to layer (the last, linear layer doubles it); Xavier halves it per ReLU layer
    for init, lo, hi in [(he_normal_, 0.5, 5.0), (xavier_normal_, 0.0, 0.01)]:
        model = deep_mlp(256, 256, 20, 256, "relu")
        for m in model:
            if isinstance(m, nn.Linear):
                init(m.weight)
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            ratio = model(x).pow(2).mean().item() / x.pow(2).mean().item()
        assert lo < ratio < hi, (init.__name__, ratio)


# ----- batch normalization --------------------------------------------------------


def _bn_inputs(B, D, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, D, generator=g, dtype=torch.float64) * 3 + 1
    gamma = torch.rand(D, generator=g, dtype=torch.float64) + 0.5
    beta = torch.randn(D, generator=g, dtype=torch.float64)
    return x, gamma, beta


@pytest.mark.parametrize("B, D", [(2, 1), (8, 5), (64, 32)])
@pytest.mark.parametrize("seed", [0, 1])
def test_batch_norm_backward_equals_autograd(B, D, seed):
    check_against_torch(
        lambda x, g, b: batch_norm(x, g, b, training=True),
        lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True, eps=1e-5),
        _bn_inputs(B, D, seed),
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_batch_norm_without_affine_equals_autograd(seed):
    x, _, _ = _bn_inputs(16, 4, seed)
    check_against_torch(
        lambda x: batch_norm(x, training=True),
        lambda x: F.batch_norm(x, None, None, training=True, eps=1e-5),
        [x],
    )


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("momentum", [0.1, 0.5])
def test_batch_norm_module_matches_torch_train_and_eval(affine, momentum):
    D = 6
    ours = BatchNorm1d(D, momentum=momentum, affine=affine).double()
    theirs = nn.BatchNorm1d(D, momentum=momentum, affine=affine).double()
    if affine:
        with torch.no_grad():
            ours.weight.uniform_(0.5, 1.5)
            ours.bias.normal_()
        theirs.load_state_dict(ours.state_dict())
    g = torch.Generator().manual_seed(0)
    for step in range(4):
        x = torch.randn(10 + step, D, generator=g, dtype=torch.float64) * 2 + 3
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = ours(xa), theirs(xb)
        torch.testing.assert_close(ya, yb, atol=1e-10, rtol=1e-8)
        w = torch.randn(ya.shape, generator=g, dtype=torch.float64)
        (ya * w).sum().backward()
        (yb * w).sum().backward()
        torch.testing.assert_close(xa.grad, xb.grad, atol=1e-10, rtol=1e-8)
        if affine:
            torch.testing.assert_close(ours.weight.grad, theirs.weight.grad, atol=1e-10, rtol=1e-8)
            torch.testing.assert_close(ours.bias.grad, theirs.bias.grad, atol=1e-10, rtol=1e-8)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(ours, name), getattr(theirs, name), atol=1e-12, rtol=1e-10)
    ours.eval()
    theirs.eval()
    x = torch.randn(3, D, generator=g, dtype=torch.float64, requires_grad=True)
    check_against_torch(ours, theirs, [x])
    torch.testing.assert_close(ours(x[:1]), ours(x)[:1])  # eval: no dependence on the batch


def test_batch_norm_normalizes_columns():
    x, gamma, beta = _bn_inputs(50, 3, 0)
    y = batch_norm(x, gamma, beta)
    torch.testing.assert_close(y.mean(0), beta, atol=1e-10, rtol=0)
    torch.testing.assert_close(y.std(0, unbiased=False), gamma, atol=1e-5, rtol=1e-5)


def test_batch_norm_errors():
    bn = BatchNorm1d(64)
    with pytest.raises(ValueError, match=r"expected x of shape \(B, D\) with D=64, got \(32, 63\)"):
        bn(torch.randn(32, 63))
    with pytest.raises(ValueError, match="at least 2"):
        bn(torch.randn(1, 64))
    assert bn.num_batches_tracked.item() == 0  # a refused batch leaves the statistics alone
    x = torch.randn(8, 64, requires_grad=True)
    (dx,) = torch.autograd.grad(bn(x).pow(3).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):  # the hand-written backward refuses a second derivative
        dx.sum().backward()
    with pytest.raises(ValueError, match="running_mean"):
        batch_norm(torch.randn(4, 3), training=False)
    with pytest.raises(ValueError, match=r"weight of shape \(3,\)"):
        batch_norm(torch.randn(4, 3), torch.ones(2))
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm1d(3, momentum=1.5)


# ----- dropout --------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("seed", [0, 1])
def test_dropout_mask_rate_expectation_and_variance(p, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.full((400_000,), 2.0, dtype=torch.float64)
    y = dropout(x, p, generator=g)
    kept = y != 0
    # survivors are scaled by exactly 1/(1-p)
    torch.testing.assert_close(y[kept], x[kept] / (1 - p))
    # the drop rate is p, within 5 standard errors
    se = math.sqrt(p * (1 - p) / len(x))
    assert abs((~kept).double().mean().item() - p) < 5 * se
    # E[y] = x and Var[y] = x^2 p / (1 - p)
    assert abs(y.mean().item() - 2.0) < 5 * 2.0 * math.sqrt(p / (1 - p) / len(x))
    assert abs(y.var().item() / (4.0 * p / (1 - p)) - 1) < 0.03
    # the same statistics as torch's dropout
    torch.manual_seed(seed)
    z = F.dropout(x, p, training=True)
    assert abs((z == 0).double().mean().item() - (~kept).double().mean().item()) < 10 * se


@pytest.mark.parametrize("p", [0.3, 0.6])
def test_dropout_gradient_is_mask_over_keep_probability(p):
    x = torch.randn(50, 20, dtype=torch.float64, requires_grad=True)
    y = dropout(x, p, generator=torch.Generator().manual_seed(0))
    y.sum().backward()
    expected = (y != 0).double() / (1 - p)
    torch.testing.assert_close(x.grad, expected, atol=1e-12, rtol=0)


def test_dropout_eval_and_edge_cases():
    x = torch.randn(4, 5)
    module = Dropout(0.5)
    module.eval()
    assert torch.equal(module(x), x)
    assert torch.equal(dropout(x, 0.0), x)
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    module.train()
    assert (module(torch.ones(1000)) == 0).any()
    for bad in (-0.1, 1.5, True):
        with pytest.raises(ValueError, match=r"p must be a number in \[0, 1\]"):
            Dropout(bad)
        with pytest.raises(ValueError, match=r"p must be a number in \[0, 1\]"):
            dropout(x, bad)


# ----- residual block -------------------------------------------------------------


@pytest.mark.parametrize("dim, hidden", [(4, 4), (6, 10)])
@pytest.mark.parametrize("seed", [0, 1])
def test_residual_jacobian_is_identity_plus_branch_jacobian(dim, hidden, seed):
    torch.manual_seed(seed)
    block = ResidualBlock(dim, hidden).double()
    x = torch.randn(dim, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda v: block(v[None])[0], x)
    J_F = torch.autograd.functional.jacobian(lambda v: block.branch(v[None])[0], x)
    torch.testing.assert_close(J, torch.eye(dim, dtype=torch.float64) + J_F, atol=1e-12, rtol=0)


def test_residual_block_forward_and_plain_twin():
    torch.manual_seed(0)
    block = ResidualBlock(5, 7)
    plain = ResidualBlock(5, 7, skip=False)
    plain.load_state_dict(block.state_dict())  # same parameters, only the shortcut differs
    x = torch.randn(3, 5)
    W1, b1, W2, b2 = block.branch[2].weight, block.branch[2].bias, block.branch[5].weight, block.branch[5].bias
    branch = F.linear(F.relu(F.linear(F.relu(x), W1, b1)), W2, b2)
    torch.testing.assert_close(block(x), x + branch)
    torch.testing.assert_close(plain(x), branch)
    with pytest.raises(ValueError, match=r"expected x of shape \(B, D\) with D=5, got \(3, 4\)"):
        block(torch.randn(3, 4))


def test_residual_block_with_norm_runs_in_train_and_eval():
    block = ResidualBlock(8, norm=True)
    x = torch.randn(16, 8)
    assert block(x).shape == (16, 8)
    block.eval()
    assert block(x[:1]).shape == (1, 8)


def test_deep_residual_net_learns_where_plain_net_does_not():
    """A 12-block net on a small task: the residual one fits, the plain one stalls."""
    torch.manual_seed(0)
    X = torch.randn(256, 16)
    y = (X[:, :8].sum(1) > 0).long()
    Xv = torch.randn(256, 16)
    yv = (Xv[:, :8].sum(1) > 0).long()
    accs = {}
    for skip in (True, False):
        torch.manual_seed(1)
        net = nn.Sequential(nn.Linear(16, 16), *[ResidualBlock(16, skip=skip) for _ in range(12)],
                            nn.ReLU(), nn.Linear(16, 2))
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        for _ in range(80):
            opt.zero_grad()
            F.cross_entropy(net(X), y).backward()
            opt.step()
        with torch.no_grad():
            accs[skip] = (net(Xv).argmax(1) == yv).float().mean().item()
    assert accs[True] > 0.85, accs
    assert accs[False] < 0.7, accs
