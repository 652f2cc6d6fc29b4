"""dlbook.dropout: inverted dropout keeps the expectation, scales survivors, and is off in eval mode."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlbook.dropout import Dropout, dropout
from tests.helpers import check_bad_inputs, check_gradient


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("seed", [0, 1])
def test_mask_rate_expectation_and_variance(p, seed):
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
    # the same drop rate as torch's dropout
    torch.manual_seed(seed)
    z = F.dropout(x, p, training=True)
    assert abs((z == 0).double().mean().item() - (~kept).double().mean().item()) < 10 * se


@pytest.mark.parametrize("p", [0.3, 0.6])
def test_gradient_is_mask_over_keep_probability(p):
    x = torch.randn(50, 20, dtype=torch.float64)
    weights = torch.randn(50, 20, dtype=torch.float64)
    mask_seed = 7

    def loss(x):
        return (dropout(x, p, generator=torch.Generator().manual_seed(mask_seed)) * weights).sum()

    def by_hand(x):
        # the same mask, drawn again: dL/dx = weights * m / (1 - p)
        kept = dropout(torch.ones_like(x), p, generator=torch.Generator().manual_seed(mask_seed)) != 0
        return weights * kept / (1 - p)

    check_gradient(loss, by_hand, [x])


def test_eval_mode_and_edge_probabilities():
    x = torch.randn(4, 5)
    module = Dropout(0.5)
    module.eval()
    assert torch.equal(module(x), x)
    assert torch.equal(dropout(x, 0.5, training=False), x)
    assert torch.equal(dropout(x, 0.0), x)
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    module.train()
    assert (module(torch.ones(1000)) == 0).any()
    assert repr(Dropout(0.25)) == "Dropout(p=0.25)"


def test_bad_inputs():
    x = torch.randn(4, 5)
    check_bad_inputs([
        (lambda: dropout(x, -0.1), ValueError, "p"),
        (lambda: dropout(x, 1.5), ValueError, "p"),
        (lambda: dropout(x, float("nan")), ValueError, "p"),
        (lambda: dropout(x, True), TypeError, "p"),  # a bool is not a probability
        (lambda: dropout(x, "0.5"), TypeError, "p"),
        (lambda: dropout(x.tolist(), 0.5), TypeError, "x"),  # a list where a tensor belongs
        (lambda: dropout(None, 0.5), TypeError, "x"),
        (lambda: dropout(x.long(), 0.5), TypeError, "x"),  # integer tensor: no scaling by 1/(1-p)
        (lambda: dropout(x, 0.5, training=None), ValueError, "training"),
        (lambda: Dropout(-0.1), ValueError, "p"),
        (lambda: Dropout(True), TypeError, "p"),
        (lambda: Dropout(None), TypeError, "p"),
        (lambda: Dropout(0.5)(x.tolist()), TypeError, "x"),
    ])
