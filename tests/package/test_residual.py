"""dlbook.residual: the dense pre-activation residual block y = x + F(x)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlbook.residual import DenseResidualBlock
from tests.helpers import check_against_torch, check_bad_inputs


@pytest.mark.parametrize("dim, hidden", [(4, 4), (6, 10)])
@pytest.mark.parametrize("seed", [0, 1])
def test_jacobian_is_identity_plus_branch_jacobian(dim, hidden, seed):
    torch.manual_seed(seed)
    block = DenseResidualBlock(dim, hidden).double()
    x = torch.randn(dim, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda v: block(v[None])[0], x)
    J_F = torch.autograd.functional.jacobian(lambda v: block.branch(v[None])[0], x)
    torch.testing.assert_close(J, torch.eye(dim, dtype=torch.float64) + J_F, atol=1e-12, rtol=0)


@pytest.mark.parametrize("skip", [True, False])
def test_block_equals_torch_functional_formula(skip):
    """Forward and gradients against F.linear / F.relu, with and without the shortcut."""
    torch.manual_seed(0)
    block = DenseResidualBlock(5, 7, skip=skip).double()
    W1, b1, W2, b2 = (t.detach() for t in (block.branch[2].weight, block.branch[2].bias,
                                          block.branch[5].weight, block.branch[5].bias))

    def reference(x):
        branch = F.linear(F.relu(F.linear(F.relu(x), W1, b1)), W2, b2)
        return x + branch if skip else branch

    check_against_torch(block, reference, [torch.randn(3, 5, dtype=torch.float64)])


def test_plain_twin_has_the_same_parameters():
    torch.manual_seed(0)
    block = DenseResidualBlock(5, 7)
    plain = DenseResidualBlock(5, 7, skip=False)
    plain.load_state_dict(block.state_dict())  # same parameters, only the shortcut differs
    x = torch.randn(3, 5)
    torch.testing.assert_close(block(x), x + plain(x))


def test_with_norm_runs_in_train_and_eval_and_converts_float64():
    block = DenseResidualBlock(8, norm=True)
    x = torch.randn(16, 8)
    assert block(x).shape == (16, 8)
    assert block(x.double()).dtype == torch.float32
    block.eval()
    assert block(x[:1]).shape == (1, 8)


@pytest.mark.slow
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
        net = nn.Sequential(nn.Linear(16, 16), *[DenseResidualBlock(16, skip=skip) for _ in range(12)],
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


def test_bad_inputs():
    block = DenseResidualBlock(5)
    check_bad_inputs([
        (lambda: DenseResidualBlock(0), ValueError, "dim"),
        (lambda: DenseResidualBlock(-3), ValueError, "dim"),
        (lambda: DenseResidualBlock(True), TypeError, "dim"),
        (lambda: DenseResidualBlock(4.0), TypeError, "dim"),
        (lambda: DenseResidualBlock(4, hidden=0), ValueError, "hidden"),
        (lambda: DenseResidualBlock(4, skip="yes"), ValueError, "skip"),
        (lambda: DenseResidualBlock(4, norm=None), ValueError, "norm"),
        (lambda: block(torch.randn(3, 4)), ValueError, "x"),  # wrong width
        (lambda: block(torch.randn(5)), ValueError, "x"),  # wrong ndim
        (lambda: block(torch.randn(0, 5)), ValueError, "x"),  # empty batch
        (lambda: block(torch.randn(3, 5).tolist()), TypeError, "x"),
        (lambda: block(None), TypeError, "x"),
        (lambda: block(torch.ones(3, 5, dtype=torch.long)), TypeError, "x"),
    ])
