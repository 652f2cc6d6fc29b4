"""Tests for dlbook.regularization: polynomial features, ridge (MAP) vs scikit-learn and
vs gradient descent, the L2 penalty's gradient, and weight decay as a shrinking update."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.polynomial import legendre
from sklearn.linear_model import Ridge

from dlbook.calculus import max_relative_error
from dlbook.optim import SGD, Adam
from dlbook.regularization import curve_data, l2_penalty, polynomial_features, ridge, true_curve
from tests.helpers import check_bad_inputs, check_gradient


@pytest.mark.parametrize("degree", [0, 1, 2, 5, 12])
def test_polynomial_features_are_legendre(degree):
    x = torch.linspace(-1, 1, 17, dtype=torch.float64)
    ours = polynomial_features(x, degree)
    reference = torch.from_numpy(legendre.legvander(x.numpy(), degree))
    assert ours.shape == (17, degree + 1)
    assert max_relative_error(ours, reference) < 1e-12


def test_polynomial_features_accepts_column():
    x = torch.rand(5, 1, dtype=torch.float64)
    assert torch.equal(polynomial_features(x, 3), polynomial_features(x[:, 0], 3))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("lam", [0.0, 1e-3, 0.1, 2.0])
def test_ridge_matches_sklearn(seed, lam):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(30, 6, generator=gen, dtype=torch.float64)
    y = torch.randn(30, generator=gen, dtype=torch.float64)
    # sklearn minimizes ||Xw - y||^2 + alpha ||w||^2, so alpha = N lambda
    reference = Ridge(alpha=30 * lam, fit_intercept=False, solver="cholesky").fit(X, y).coef_
    assert max_relative_error(ridge(X, y, lam), torch.from_numpy(reference)) < 1e-9


@pytest.mark.parametrize("seed", [0, 1])
def test_ridge_gradient_is_zero_at_solution(seed):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(25, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(25, generator=gen, dtype=torch.float64)
    w = ridge(X, y, 0.3).requires_grad_(True)
    objective = ((X @ w - y) ** 2).mean() + 2 * l2_penalty([w], 0.3)  # = mean sq. + lam ||w||^2
    objective.backward()
    assert w.grad.abs().max() < 1e-12


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_l2_penalty_gradient_is_lambda_w(seed):
    gen = torch.Generator().manual_seed(seed)
    ws = [torch.randn(3, 2, generator=gen, dtype=torch.float64),
          torch.randn(4, generator=gen, dtype=torch.float64)]
    check_gradient(lambda *ws: l2_penalty(list(ws), 0.7), lambda *ws: [0.7 * w for w in ws], ws)
    check_gradient(lambda w: l2_penalty(w, 0.7), lambda w: 0.7 * w, ws[:1])  # one tensor alone


@pytest.mark.parametrize("optimizer", [SGD, Adam])
def test_weight_decay_equals_explicit_penalty(optimizer):
    """weight_decay=lam takes the same steps as adding lam/2 ||w||^2 to the loss."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(20, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(20, generator=gen, dtype=torch.float64)
    w_a = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    w_b = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt_a = optimizer([w_a], lr=0.05, weight_decay=0.5)
    opt_b = optimizer([w_b], lr=0.05)
    for _ in range(50):
        opt_a.zero_grad(), opt_b.zero_grad()
        ((X @ w_a - y) ** 2).mean().backward()
        (((X @ w_b - y) ** 2).mean() + l2_penalty([w_b], 0.5)).backward()
        opt_a.step(), opt_b.step()
    assert max_relative_error(w_a, w_b) < 1e-12


def test_weight_decay_is_shrinkage():
    """Plain SGD with weight decay: w <- (1 - eta lam) w - eta grad L."""
    w = torch.tensor([2.0, -1.0], dtype=torch.float64, requires_grad=True)
    opt = SGD([w], lr=0.1, weight_decay=0.5)
    (w * torch.tensor([1.0, 3.0], dtype=torch.float64)).sum().backward()  # grad L = (1, 3)
    opt.step()
    w0 = torch.tensor([2.0, -1.0], dtype=torch.float64)
    grad = torch.tensor([1.0, 3.0], dtype=torch.float64)
    expected = (1 - 0.1 * 0.5) * w0 - 0.1 * grad
    assert max_relative_error(w, expected) < 1e-15


def test_gradient_descent_reaches_ridge_solution():
    gen = torch.Generator().manual_seed(3)
    X = torch.randn(40, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(40, generator=gen, dtype=torch.float64)
    w = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt = SGD([w], lr=0.1, momentum=0.5, weight_decay=2 * 0.2)  # penalty lam ||w||^2
    for _ in range(500):
        opt.zero_grad()
        ((X @ w - y) ** 2).mean().backward()
        opt.step()
    assert max_relative_error(w, ridge(X, y, 0.2)) < 1e-8


def test_ridge_shrinks_weights():
    d = curve_data(15, 5, 5, seed=1)
    X = polynomial_features(d.train.X, 12)
    norms = [ridge(X, d.train.y, lam).norm().item() for lam in (1e-6, 1e-3, 1e-1, 10.0)]
    assert all(a > b for a, b in zip(norms, norms[1:]))


def test_high_degree_overfits_and_ridge_helps():
    d = curve_data(15, 200, 200, seed=0)
    Xtr, Xva = polynomial_features(d.train.X, 14), polynomial_features(d.val.X, 14)

    def val_mse(lam: float) -> float:
        return ((Xva @ ridge(Xtr, d.train.y, lam) - d.val.y) ** 2).mean().item()

    assert val_mse(1e-3) < 0.5 * val_mse(0.0)


def test_curve_data_is_deterministic():
    a, b = curve_data(seed=4), curve_data(seed=4)
    assert torch.equal(a.train.X, b.train.X) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.train.X, curve_data(seed=5).train.X)
    assert np.all(np.abs(a.train.X.numpy()) <= 1)


def test_curve_data_has_the_requested_sizes_and_dtype():
    d = curve_data(7, 3, 2, dtype=torch.float32)
    assert (d.train.X.shape, d.val.X.shape, d.test.y.shape) == ((7, 1), (3, 1), (2,))
    assert d.train.X.dtype == d.test.y.dtype == torch.float32
    noiseless = curve_data(7, 3, 2, noise=0.0).train
    assert torch.equal(noiseless.y, true_curve(noiseless.X[:, 0]))


def test_bad_inputs():
    x = torch.zeros(3)
    X, y = torch.randn(4, 2, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    check_bad_inputs([
        (lambda: true_curve([0.0, 0.5]), TypeError, "x"),
        (lambda: true_curve(torch.arange(3)), TypeError, "x"),
        (lambda: polynomial_features(x, -1), ValueError, "degree"),
        (lambda: polynomial_features(x, 2.0), TypeError, "degree"),
        (lambda: polynomial_features(x, True), TypeError, "degree"),
        (lambda: polynomial_features(torch.zeros(3, 2), 2), ValueError, "x"),
        (lambda: polynomial_features(torch.zeros(0), 2), ValueError, "x"),
        (lambda: polynomial_features(torch.tensor([0.0, float("nan")]), 2), ValueError, "x"),
        (lambda: polynomial_features([0.0, 0.5], 2), TypeError, "x"),
        (lambda: polynomial_features(torch.arange(3), 2), TypeError, "x"),
        (lambda: ridge(torch.zeros(4, 2), torch.zeros(3), 0.1), ValueError, "y"),
        (lambda: ridge(torch.zeros(4), torch.zeros(4), 0.1), ValueError, "X"),
        (lambda: ridge(X, y, -0.1), ValueError, "lam"),
        (lambda: ridge(X, y, float("nan")), ValueError, "lam"),
        (lambda: ridge(X, y, None), TypeError, "lam"),
        (lambda: ridge(X.numpy(), y, 0.1), TypeError, "X"),
        (lambda: ridge(torch.zeros(4, 2, dtype=torch.float64), y, 0.0),
         ValueError, "X^T X is singular"),
        (lambda: ridge(X, y.long(), 0.1), TypeError, "y"),
        (lambda: l2_penalty([], 0.1), ValueError, "parameters"),
        (lambda: l2_penalty([torch.zeros(2)], -1.0), ValueError, "lam"),
        (lambda: l2_penalty([torch.zeros(2), [1.0]], 0.1), TypeError, "parameters[1]"),
        (lambda: l2_penalty(None, 0.1), TypeError, "parameters"),
        (lambda: l2_penalty(torch.zeros(2, dtype=torch.long), 0.1), TypeError, "parameters"),
        (lambda: curve_data(0), ValueError, "n_train"),
        (lambda: curve_data(5, n_val=-1), ValueError, "n_val"),
        (lambda: curve_data(5, 5, n_test=True), TypeError, "n_test"),
        (lambda: curve_data(noise=-1.0), ValueError, "noise"),
        (lambda: curve_data(seed=-3), ValueError, "seed"),
        (lambda: curve_data(dtype=torch.int32), ValueError, "dtype"),
    ])
