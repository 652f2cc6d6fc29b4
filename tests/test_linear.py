"""Tests for dlbook.linear: hand-derived gradients vs autograd, closed form vs lstsq, learning."""

from __future__ import annotations

import pytest
import torch

import dlbook.data
from dlbook import linear as L
from tests.helpers import check_against_torch

SEEDS = [0, 1, 2]
SHAPES = [(1, 1), (7, 3), (32, 10)]


def _data(seed: int, B: int, D: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, D, generator=g, dtype=torch.float64), torch.randn(B, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("seed", SEEDS)
def test_stable_functions_match_torch(seed):
    z = 30 * torch.randn(50, generator=torch.Generator().manual_seed(seed))
    Z = 30 * torch.randn(6, 5, generator=torch.Generator().manual_seed(seed + 100))
    check_against_torch(L.sigmoid, torch.sigmoid, [z])
    check_against_torch(L.log_sigmoid, torch.nn.functional.logsigmoid, [z])
    check_against_torch(L.log_softmax, lambda t: torch.log_softmax(t, dim=1), [Z])
    check_against_torch(L.softmax, lambda t: torch.softmax(t, dim=1), [Z])
    assert torch.isfinite(L.log_softmax(torch.tensor([[1e4, -1e4, 0.0]]))).all()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_mse_gradient_matches_autograd(seed, shape):
    X, y = _data(seed, *shape)
    w = torch.randn(shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.randn((), dtype=torch.float64, requires_grad=True)
    loss = L.mse_loss(X, y, w, b)
    torch.testing.assert_close(loss, torch.nn.functional.mse_loss(X @ w + b, y))
    loss.backward()
    grad_w, grad_b = L.mse_gradient(X, y, w.detach(), b.detach())
    torch.testing.assert_close(grad_w, w.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad_b, b.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_logistic_gradient_is_p_minus_y(seed, shape):
    X, _ = _data(seed, *shape)
    y = (torch.rand(shape[0], generator=torch.Generator().manual_seed(seed)) > 0.5).double()
    w = (3 * torch.randn(shape[1], dtype=torch.float64)).requires_grad_()
    b = torch.randn((), dtype=torch.float64, requires_grad=True)
    loss = L.logistic_loss(X, y, w, b)
    torch.testing.assert_close(loss, torch.nn.functional.binary_cross_entropy_with_logits(X @ w + b, y))
    loss.backward()
    grad_w, grad_b = L.logistic_gradient(X, y, w.detach(), b.detach())
    torch.testing.assert_close(grad_w, w.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad_b, b.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("K", [2, 5])
def test_softmax_gradient_is_P_minus_Y(seed, shape, K):
    X, _ = _data(seed, *shape)
    y = torch.randint(0, K, (shape[0],), generator=torch.Generator().manual_seed(seed))
    W = torch.randn(shape[1], K, dtype=torch.float64, requires_grad=True)
    b = torch.randn(K, dtype=torch.float64, requires_grad=True)
    loss = L.softmax_loss(X, y, W, b)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(X @ W + b, y))
    loss.backward()
    grad_W, grad_b = L.softmax_gradient(X, y, W.detach(), b.detach())
    torch.testing.assert_close(grad_W, W.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad_b, b.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(5, 1), (40, 3), (100, 8)])
def test_closed_form_matches_lstsq(seed, shape):
    X, y = _data(seed, *shape)
    model = L.LinearRegression(shape[1], dtype=torch.float64, device="cpu").fit_closed_form(X, y)
    X_tilde = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], dim=1)
    theta = torch.linalg.lstsq(X_tilde, y[:, None]).solution[:, 0]
    torch.testing.assert_close(model.w, theta[:-1], rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(model.b, theta[-1], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_gradient_descent_converges_to_closed_form(seed):
    data, w_true, b_true = dlbook.data.linear_regression(200, n_features=3, seed=seed)
    X, y = data.train.X.double(), data.train.y.double()
    exact = L.LinearRegression(3, dtype=torch.float64, device="cpu").fit_closed_form(X, y)
    gd = L.LinearRegression(3, dtype=torch.float64, device="cpu")
    hist = L.fit_gd(gd, X, y, lr=0.1, epochs=300)
    assert hist["train_loss"][-1] <= hist["train_loss"][0]
    torch.testing.assert_close(gd.w, exact.w, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gd.b, exact.b, rtol=1e-6, atol=1e-6)
    # and both are near the truth that generated the data
    assert torch.allclose(exact.w, torch.as_tensor(w_true), atol=0.15)


def test_logistic_regression_learns_held_out():
    data = dlbook.data.breast_cancer()
    model = L.LogisticRegression(30, device="cpu")
    hist = L.fit_gd(model, data.train.X, data.train.y, lr=0.5, epochs=100, val=(data.val.X, data.val.y))
    assert hist["val_loss"][-1] < 0.5 * hist["val_loss"][0]
    accuracy = (model.predict(data.test.X) == data.test.y).float().mean()
    assert accuracy > 0.9  # the majority class alone scores about 0.63


def test_softmax_regression_learns_digits_held_out():
    data = dlbook.data.digits()
    model = L.SoftmaxRegression(64, 10, device="cpu")
    L.fit_gd(model, data.train.X, data.train.y, lr=0.5, epochs=30, batch_size=64, weight_decay=1e-4)
    accuracy = (model.predict(data.test.X) == data.test.y).float().mean()
    assert accuracy > 0.93


def test_errors_on_bad_input():
    model = L.SoftmaxRegression(4, 3, device="cpu")
    X, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    with pytest.raises(ValueError, match=r"expected X of shape \(B, 4\), got \(5, 3\)"):
        model.predict(torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"expected y of shape \(5,\)"):
        model.loss(X, y[:4])
    with pytest.raises(ValueError, match="labels in 0..2"):
        model.gradients(X, torch.tensor([0, 1, 3, 0, 1]))
    with pytest.raises(ValueError, match="binary targets"):
        L.LogisticRegression(4, device="cpu").loss(X, torch.tensor([0.0, 1.0, 2.0, 0.0, 1.0]))
    with pytest.raises(TypeError, match="floating-point"):
        L.LinearRegression(4, device="cpu").predict(torch.ones(5, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="singular"):
        L.LinearRegression(4, device="cpu").fit_closed_form(X[:2].double(), y[:2].double())
    with pytest.raises(ValueError, match="lr must be > 0"):
        L.fit_gd(model, X, y, lr=0.0, epochs=1)
    with pytest.raises(ValueError, match="too large"):
        L.fit_gd(L.LinearRegression(4, device="cpu"), 1e3 * X, y.float(), lr=10.0, epochs=20)
    with pytest.raises(ValueError, match="n_classes"):
        L.SoftmaxRegression(4, 0)
    with pytest.raises(ValueError, match=r"\(B, K\)"):
        L.log_softmax(torch.randn(3))
