"""Tests for dlbook.linear: hand-derived gradients vs autograd, closed form vs lstsq, learning."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import dlbook.data
from dlbook import linear as L
from tests.helpers import check_against_torch, check_bad_inputs, check_gradient

SEEDS = [0, 1, 2]
SHAPES = [(1, 1), (7, 3), (32, 10)]
f64 = torch.float64


def _data(seed: int, B: int, D: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, D, generator=g, dtype=f64), torch.randn(B, generator=g, dtype=f64)


def _params(seed: int, *shapes: tuple[int, ...], scale: float = 1.0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed + 1000)
    return [scale * torch.randn(shape, generator=g, dtype=f64) for shape in shapes]


@pytest.mark.parametrize("seed", SEEDS)
def test_stable_functions_match_torch(seed):
    z = 30 * torch.randn(50, generator=torch.Generator().manual_seed(seed))
    Z = 30 * torch.randn(6, 5, generator=torch.Generator().manual_seed(seed + 100))
    check_against_torch(L.sigmoid, torch.sigmoid, [z])
    check_against_torch(L.log_sigmoid, F.logsigmoid, [z])
    check_against_torch(L.log_softmax, lambda t: torch.log_softmax(t, dim=1), [Z])
    check_against_torch(L.softmax, lambda t: torch.softmax(t, dim=1), [Z])


def test_stable_functions_do_not_overflow():
    big = torch.tensor([-1e4, -1000.0, 0.0, 1000.0, 1e4])
    assert torch.isfinite(L.log_sigmoid(big)).all()
    assert torch.equal(L.sigmoid(big), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    assert torch.isfinite(L.log_softmax(torch.tensor([[1e4, -1e4, 0.0]]))).all()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("K", [2, 7])
def test_softmax_cross_entropy_and_its_gradient(seed, K):
    """The loss equals torch's; the gradient (P - Y) / B equals autograd's."""
    g = torch.Generator().manual_seed(seed)
    Z = 20 * torch.randn(9, K, generator=g, dtype=f64)
    y = torch.randint(0, K, (9,), generator=g)
    def loss(Z):
        return L.softmax_cross_entropy(Z, y)[0]

    check_against_torch(loss, lambda Z: F.cross_entropy(Z, y), [Z])
    check_gradient(loss, lambda Z: L.softmax_cross_entropy(Z, y)[1], [Z])
    assert torch.equal(L.softmax_cross_entropy_gradient(Z, y), L.softmax_cross_entropy(Z, y)[1])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_mse_loss_and_gradient(seed, shape):
    X, y = _data(seed, *shape)
    w, b = _params(seed, (shape[1],), ())
    check_against_torch(lambda X, w, b: L.mse_loss(X, y, w, b),
                        lambda X, w, b: F.mse_loss(X @ w + b, y), [X, w, b])
    check_gradient(L.mse_loss, L.mse_gradient, [X, y, w, b], wrt=[2, 3])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_logistic_loss_and_gradient_p_minus_y(seed, shape):
    X, _ = _data(seed, *shape)
    y = (torch.rand(shape[0], generator=torch.Generator().manual_seed(seed)) > 0.5).double()
    w, b = _params(seed, (shape[1],), (), scale=3.0)
    check_against_torch(lambda X, w, b: L.logistic_loss(X, y, w, b),
                        lambda X, w, b: F.binary_cross_entropy_with_logits(X @ w + b, y), [X, w, b])
    check_gradient(L.logistic_loss, L.logistic_gradient, [X, y, w, b], wrt=[2, 3])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("K", [2, 5])
def test_softmax_loss_and_gradient_P_minus_Y(seed, shape, K):
    X, _ = _data(seed, *shape)
    y = torch.randint(0, K, (shape[0],), generator=torch.Generator().manual_seed(seed))
    W, b = _params(seed, (shape[1], K), (K,))
    check_against_torch(lambda X, W, b: L.softmax_loss(X, y, W, b),
                        lambda X, W, b: F.cross_entropy(X @ W + b, y), [X, W, b])
    check_gradient(lambda X, W, b: L.softmax_loss(X, y, W, b),
                   lambda X, W, b: L.softmax_gradient(X, y, W, b), [X, W, b], wrt=[1, 2])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(5, 1), (40, 3), (100, 8)])
def test_closed_form_matches_lstsq(seed, shape):
    X, y = _data(seed, *shape)
    model = L.LinearRegression(shape[1], dtype=f64, device="cpu").fit_closed_form(X, y)
    X_tilde = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], dim=1)
    theta = torch.linalg.lstsq(X_tilde, y[:, None]).solution[:, 0]
    torch.testing.assert_close(model.w, theta[:-1], rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(model.b, theta[-1], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_gradient_descent_converges_to_closed_form(seed):
    data, w_true, b_true = dlbook.data.linear_regression(200, n_features=3, seed=seed)
    X, y = data.train.X.double(), data.train.y.double()
    exact = L.LinearRegression(3, dtype=f64, device="cpu").fit_closed_form(X, y)
    gd = L.LinearRegression(3, dtype=f64, device="cpu")
    hist = L.fit_gd(gd, X, y, lr=0.1, epochs=300)
    assert hist["train_loss"][-1] <= hist["train_loss"][0]
    torch.testing.assert_close(gd.w, exact.w, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gd.b, exact.b, rtol=1e-6, atol=1e-6)
    # and both are near the truth that generated the data
    assert torch.allclose(exact.w, torch.as_tensor(w_true), atol=0.15)


def test_fit_gd_spares_the_bias_from_weight_decay():
    """One full-batch step: theta <- theta - lr (grad + lambda theta) for w, no decay for b."""
    X, y = _data(0, 10, 2)
    model = L.LinearRegression(2, dtype=f64, device="cpu")
    model.w, model.b = torch.tensor([1.0, -2.0], dtype=f64), torch.tensor(0.5, dtype=f64)
    grad_w, grad_b = model.gradients(X, y)
    w0, b0 = model.w.clone(), model.b.clone()
    L.fit_gd(model, X, y, lr=0.1, epochs=1, weight_decay=0.3)
    torch.testing.assert_close(model.w, w0 - 0.1 * (grad_w + 0.3 * w0))
    torch.testing.assert_close(model.b, b0 - 0.1 * grad_b)


def test_a_float64_batch_meets_a_float32_model_by_conversion():
    model = L.SoftmaxRegression(4, 3, device="cpu")
    X, y = torch.randn(5, 4, dtype=f64), torch.tensor([0, 1, 2, 0, 1])
    assert model.logits(X).dtype == torch.float32
    assert torch.equal(model.predict(X), model.predict(X.float()))
    torch.testing.assert_close(model.loss(X, y), model.loss(X.float(), y))
    assert L.LogisticRegression(4, device="cpu").predict_proba(X).dtype == torch.float32


def test_fit_gd_stops_when_the_loss_diverges():
    X, y = _data(1, 20, 4)
    with pytest.raises(ValueError, match="lr=10.0 is too large"):
        model = L.LinearRegression(4, device="cpu")
        L.fit_gd(model, 1e3 * X.float(), y.float(), lr=10.0, epochs=20)


def test_logistic_regression_learns_held_out():
    data = dlbook.data.breast_cancer()
    model = L.LogisticRegression(30, device="cpu")
    hist = L.fit_gd(model, data.train.X, data.train.y, lr=0.5, epochs=100,
                    val=(data.val.X, data.val.y))
    assert hist["val_loss"][-1] < 0.5 * hist["val_loss"][0]
    accuracy = (model.predict(data.test.X) == data.test.y).float().mean()
    assert accuracy > 0.9  # the majority class alone scores about 0.63


def test_softmax_regression_learns_digits_held_out():
    data = dlbook.data.digits()
    model = L.SoftmaxRegression(64, 10, device="cpu")
    L.fit_gd(model, data.train.X, data.train.y, lr=0.5, epochs=30, batch_size=64, weight_decay=1e-4)
    accuracy = (model.predict(data.test.X) == data.test.y).float().mean()
    assert accuracy > 0.93


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_gaussian_nll_matches_torch_distributions(seed, shape):
    X, y = _data(seed, *shape)
    w, b = _params(seed, (shape[1],), ())
    var = torch.tensor(0.3 + seed, dtype=torch.float64)
    check_against_torch(
        lambda X, w, b, var: L.gaussian_nll(X, y, w, b, var),
        lambda X, w, b, var: -torch.distributions.Normal(X @ w + b, var.sqrt()).log_prob(y).sum(),
        [X, w, b, var])


def test_gaussian_nll_is_minimized_by_least_squares_and_the_mean_squared_residual():
    gen = torch.Generator().manual_seed(5)
    X = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    noise = torch.randn(40, generator=gen, dtype=torch.float64)
    y = X @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + 0.4 * noise
    model = L.LinearRegression(3, dtype=torch.float64, device="cpu").fit_closed_form(X, y)
    var = model.loss(X, y)
    best = L.gaussian_nll(X, y, model.w, model.b, var)
    for _ in range(20):  # any other (w, b, var) nearby has a larger NLL
        dw, db = torch.randn(4, generator=gen, dtype=torch.float64).split([3, 1])
        dv = torch.rand((), generator=gen, dtype=torch.float64)
        w, b, v = model.w + 0.01 * dw, model.b + 0.01 * db[0], var * (0.9 + 0.2 * dv)
        nearby = L.gaussian_nll(X, y, w, b, v)
        assert nearby > best
    # at the optimum, -log L = (N/2) (log(2 pi var) + 1)
    torch.testing.assert_close(best, 20 * (torch.log(2 * torch.pi * var) + 1))


def test_bad_inputs():
    X, y, w, b = torch.randn(5, 4), torch.randn(5), torch.zeros(4), torch.zeros(())
    labels, W, bK = torch.tensor([0, 1, 2, 0, 1]), torch.zeros(4, 3), torch.zeros(3)
    Z = torch.randn(5, 3)
    binary = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0])
    model = L.SoftmaxRegression(4, 3, device="cpu")
    linear = L.LinearRegression(4, device="cpu")
    nan_X = X.clone()
    nan_X[0, 0] = float("nan")
    check_bad_inputs([
        # building blocks
        (lambda: L.sigmoid([0.0, 1.0]), TypeError, "z"),
        (lambda: L.sigmoid(torch.tensor([0, 1])), TypeError, "z"),
        (lambda: L.log_sigmoid(None), TypeError, "z"),
        (lambda: L.log_softmax(torch.randn(3)), ValueError, "Z"),
        (lambda: L.softmax(torch.randn(2, 3, 4)), ValueError, "Z"),
        (lambda: L.softmax(torch.zeros(0, 3)), ValueError, "Z"),
        (lambda: L.softmax(torch.ones(2, 3, dtype=torch.long)), TypeError, "Z"),
        # softmax cross-entropy: labels negative, out of range, float, wrong length
        (lambda: L.softmax_cross_entropy(Z, torch.tensor([0, -1, 1, 2, 0])), ValueError, "y"),
        (lambda: L.softmax_cross_entropy(Z, torch.tensor([0, 3, 1, 2, 0])), ValueError, "y"),
        (lambda: L.softmax_cross_entropy(Z, torch.tensor([0.0, 1.0, 1.0, 2.0, 0.0])),
         TypeError, "y"),
        (lambda: L.softmax_cross_entropy(Z, torch.softmax(Z, 1)), TypeError, "y"),
        (lambda: L.softmax_cross_entropy(Z, labels[:4]), ValueError, "y"),
        (lambda: L.softmax_cross_entropy(Z, [0, 1, 2, 0, 1]), TypeError, "y"),
        (lambda: L.softmax_cross_entropy(Z[0], labels[:1]), ValueError, "logits"),
        (lambda: L.softmax_cross_entropy(torch.full((5, 3), float("nan")), labels),
         ValueError, "logits"),
        (lambda: L.softmax_cross_entropy_gradient(Z, labels + 1), ValueError, "y"),
        # Gaussian NLL: a variance that is not positive, or not a scalar
        (lambda: L.gaussian_nll(X, y, w, b, torch.tensor(0.0)), ValueError, "var"),
        (lambda: L.gaussian_nll(X, y, w, b, torch.ones(1)), ValueError, "var"),
        (lambda: L.gaussian_nll(X, y, w, b, 1.0), TypeError, "var"),
        # mean squared error: a (D, 1) column for w, wrong lengths, NaN, wrong dtype
        (lambda: L.mse_loss(X, y, torch.zeros(4, 1), b), ValueError, "w"),
        (lambda: L.mse_gradient(X, y, torch.zeros(4, 1), b), ValueError, "w"),
        (lambda: L.mse_loss(X, y, torch.zeros(3), b), ValueError, "X"),
        (lambda: L.mse_loss(X, y, w, torch.zeros(1)), ValueError, "b"),
        (lambda: L.mse_loss(X, y, w, 0.0), TypeError, "b"),
        (lambda: L.mse_loss(X, y[:4], w, b), ValueError, "y"),
        (lambda: L.mse_loss(X, y[:, None], w, b), ValueError, "y"),
        (lambda: L.mse_loss(nan_X, y, w, b), ValueError, "X"),
        (lambda: L.mse_loss(X.long(), y, w, b), TypeError, "X"),
        (lambda: L.mse_loss(X[:0], y[:0], w, b), ValueError, "X"),
        (lambda: L.mse_loss(X.tolist(), y, w, b), TypeError, "X"),
        (lambda: L.mse_loss(X, y, w.long(), b), TypeError, "w"),
        # logistic regression: targets must be 0 or 1
        (lambda: L.logistic_loss(X, torch.tensor([0.0, 1.0, 2.0, 0.0, 1.0]), w, b),
         ValueError, "y"),
        (lambda: L.logistic_gradient(X, binary * 0.5, w, b), ValueError, "y"),
        (lambda: L.logistic_loss(X, binary[:3], w, b), ValueError, "y"),
        # softmax regression
        (lambda: L.softmax_loss(X, labels, W, torch.zeros(4)), ValueError, "b"),
        (lambda: L.softmax_loss(X, labels, torch.zeros(3, 3), bK), ValueError, "X"),
        (lambda: L.softmax_gradient(X, labels.float(), W, bK), TypeError, "y"),
        (lambda: L.softmax_gradient(X, labels - 1, W, bK), ValueError, "y"),
        (lambda: L.softmax_gradient(X, labels[:-1], W, bK), ValueError, "y"),
        # models
        (lambda: model.predict(torch.randn(5, 3)), ValueError, "X"),
        (lambda: model.loss(X, labels[:4]), ValueError, "y"),
        (lambda: model.gradients(X, torch.tensor([0, 1, 3, 0, 1])), ValueError, "y"),
        (lambda: model.predict(None), TypeError, "X"),
        (lambda: L.LogisticRegression(4, device="cpu").loss(X, binary * 2), ValueError, "y"),
        (lambda: L.LogisticRegression(4, device="cpu").predict(X, threshold=1.5),
         ValueError, "threshold"),
        (lambda: linear.predict(torch.ones(5, 4, dtype=torch.long)), TypeError, "X"),
        (lambda: linear.fit_closed_form(X[:2].double(), y[:2].double()), ValueError, "singular"),
        (lambda: L.SoftmaxRegression(4, 0), ValueError, "n_classes"),
        (lambda: L.SoftmaxRegression(4, True), TypeError, "n_classes"),
        (lambda: L.SoftmaxRegression(-4, 3), ValueError, "n_features"),
        (lambda: L.LinearRegression(2.5), TypeError, "n_features"),
        (lambda: L.LinearRegression(2, dtype=torch.long), ValueError, "dtype"),
        (lambda: L.LinearRegression(2, device="gpu"), ValueError, "device"),
        # the training loop
        (lambda: L.fit_gd(model, X, labels, lr=0.0, epochs=1), ValueError, "lr"),
        (lambda: L.fit_gd(model, X, labels, lr=-0.1, epochs=1), ValueError, "lr"),
        (lambda: L.fit_gd(model, X, labels, lr=float("nan"), epochs=1), ValueError, "lr"),
        (lambda: L.fit_gd(model, X, labels, lr=0.1, epochs=0), ValueError, "epochs"),
        (lambda: L.fit_gd(model, X, labels, lr=0.1, epochs=True), TypeError, "epochs"),
        (lambda: L.fit_gd(model, X, labels, lr=0.1, epochs=1, batch_size=0),
         ValueError, "batch_size"),
        (lambda: L.fit_gd(model, X, labels, lr=0.1, epochs=1, batch_size=2.0),
         TypeError, "batch_size"),
        (lambda: L.fit_gd(model, X, labels, lr=0.1, epochs=1, weight_decay=-1.0),
         ValueError, "weight_decay"),
        (lambda: L.fit_gd(model, X, labels[:4], lr=0.1, epochs=1), ValueError, "y"),
        (lambda: L.fit_gd(model, X, labels, lr=0.1, epochs=1, val=(X,)), TypeError, "val"),
        (lambda: L.fit_gd(model, X, labels, lr=0.1, epochs=1, val=(X, labels[:2])),
         ValueError, "y_val"),
        (lambda: L.fit_gd(model, X, labels, lr=0.1, epochs=1, seed=-1), ValueError, "seed"),
        (lambda: L.fit_gd(torch.nn.Linear(4, 3), X, labels, lr=0.1, epochs=1), TypeError, "model"),
        (lambda: L.fit_gd(model, X.tolist(), labels, lr=0.1, epochs=1), TypeError, "X"),
    ])
