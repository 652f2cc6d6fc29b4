"""Tests for dlbook.regularization: polynomial features, ridge (MAP) vs scikit-learn and
vs gradient descent, the L2 penalty's gradient, and weight decay as a shrinking update."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.polynomial import legendre
from scipy.optimize import minimize_scalar
from sklearn.linear_model import Lasso, Ridge
from sklearn.model_selection import KFold, cross_val_score

from dlbook.calculus import max_relative_error
from dlbook.optim import SGD, Adam
from dlbook.regularization import (
    bias_variance,
    cross_validate,
    curve_data,
    k_folds,
    l2_penalty,
    lasso,
    min_norm_least_squares,
    polynomial_features,
    random_features,
    ridge,
    soft_threshold,
    true_curve,
)
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


# ---- L1: soft thresholding and the lasso ----

def _sparse_problem(seed: int, N: int = 50, D: int = 20):
    """y depends on the first three of D standard normal features, plus noise."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(N, D, generator=gen, dtype=torch.float64)
    w_true = torch.zeros(D, dtype=torch.float64)
    w_true[:3] = torch.tensor([2.0, -1.5, 1.0], dtype=torch.float64)
    return X, X @ w_true + 0.5 * torch.randn(N, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("threshold", [0.0, 0.3, 1.0])
def test_soft_threshold_minimizes_the_1d_problem(threshold):
    """S(z) = argmin_w 1/2 (w - z)^2 + t |w|, against scipy's bounded scalar minimizer."""
    z = torch.linspace(-2.5, 2.5, 41, dtype=torch.float64)
    ours = soft_threshold(z, threshold)
    for zi, wi in zip(z.tolist(), ours.tolist()):
        res = minimize_scalar(lambda w: 0.5 * (w - zi) ** 2 + threshold * abs(w),
                              bounds=(-3, 3), method="bounded", options={"xatol": 1e-10})
        assert wi == pytest.approx(res.x, abs=1e-7)
    inside = z.abs() <= threshold
    assert torch.all(ours[inside] == 0) and torch.all(ours[~inside] != 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("omega", [0.01, 0.1, 0.5])
def test_lasso_matches_sklearn(seed, omega):
    """scikit-learn's Lasso minimizes 1/(2N) ||y - X w||^2 + alpha ||w||_1: alpha = omega."""
    X, y = _sparse_problem(seed)
    ours = lasso(X, y, omega)
    theirs = Lasso(alpha=omega, fit_intercept=False, tol=1e-14, max_iter=200_000).fit(X, y).coef_
    theirs = torch.from_numpy(theirs)
    assert (ours - theirs).abs().max() < 1e-7
    assert torch.equal(ours == 0, theirs == 0)  # the same exact zeros
    assert (ours == 0).any() and (ours != 0).any()


@pytest.mark.parametrize("seed", [0, 1])
def test_lasso_satisfies_the_optimality_conditions(seed):
    """Subgradient conditions: X_j^T (y - X w) / N = omega sign(w_j) where w_j != 0, and has
    magnitude at most omega where w_j = 0."""
    X, y = _sparse_problem(seed)
    omega = 0.1
    w = lasso(X, y, omega)
    c = X.T @ (y - X @ w) / len(y)  # (D,)
    nonzero = w != 0
    torch.testing.assert_close(c[nonzero], omega * torch.sign(w[nonzero]), rtol=0, atol=1e-8)
    assert torch.all(c[~nonzero].abs() <= omega + 1e-8)


def test_lasso_is_zero_beyond_omega_max():
    """w = 0 is optimal exactly when omega >= omega_max = max_j |X_j^T y| / N."""
    X, y = _sparse_problem(3)
    omega_max = (X.T @ y).abs().max().item() / len(y)
    assert torch.all(lasso(X, y, 1.01 * omega_max) == 0)
    assert (lasso(X, y, 0.99 * omega_max) != 0).sum() == 1


def test_lasso_without_penalty_is_least_squares():
    X, y = _sparse_problem(4)
    ours = lasso(X, y, 0.0, steps=20_000, tol=1e-13)
    assert max_relative_error(ours, ridge(X, y, 0.0)) < 1e-8


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_l1_gives_exact_zeros_and_l2_none(seed):
    X, y = _sparse_problem(seed)
    for omega in [0.05, 0.2]:
        assert (lasso(X, y, omega) == 0).sum() >= 5
        assert (ridge(X, y, omega) == 0).sum() == 0


# ---- k-fold cross-validation ----

@pytest.mark.parametrize(("N", "k"), [(20, 5), (23, 4), (7, 7), (10, 2)])
def test_k_folds_match_sklearn(N, k):
    ours = k_folds(N, k, shuffle=False)
    theirs = list(KFold(n_splits=k).split(np.zeros(N)))
    assert len(ours) == len(theirs) == k
    for (train, val), (train_sk, val_sk) in zip(ours, theirs):
        assert train.tolist() == train_sk.tolist() and val.tolist() == val_sk.tolist()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shuffled_k_folds_partition_the_data(seed):
    N, k = 23, 4
    folds = k_folds(N, k, seed=seed)
    vals = torch.cat([val for _, val in folds])
    assert sorted(vals.tolist()) == list(range(N))  # each index validated exactly once
    assert [len(v) for _, v in folds] == [len(v) for _, v in KFold(k).split(np.zeros(N))]
    for train, val in folds:
        assert sorted(train.tolist() + val.tolist()) == list(range(N))
    assert vals.tolist() != list(range(N))  # actually shuffled
    assert torch.equal(vals, torch.cat([v for _, v in k_folds(N, k, seed=seed)]))  # reproducible


@pytest.mark.parametrize("omega", [1e-4, 1e-2])
def test_cross_validate_matches_sklearn(omega):
    """Ridge with 1/(2N) scaling is sklearn's Ridge with alpha = N_train omega."""
    X, y = _sparse_problem(5, N=40, D=6)
    errors = cross_validate(X, y, lambda Xt, yt: ridge(Xt, yt, omega),
                            lambda w, Xv, yv: ((Xv @ w - yv) ** 2).mean().item(), k=5,
                            shuffle=False)
    theirs = -cross_val_score(Ridge(alpha=32 * omega, fit_intercept=False), X.numpy(), y.numpy(),
                              cv=KFold(5), scoring="neg_mean_squared_error")
    np.testing.assert_allclose(errors.numpy(), theirs, rtol=1e-10)


def test_cross_validation_picks_a_sensible_penalty():
    """On the overfitting degree-15 fit, the CV choice beats both extremes on fresh data."""
    data = curve_data(n_train=20, n_val=10, n_test=300, seed=1)
    Phi, Phi_test = polynomial_features(data.train.X, 15), polynomial_features(data.test.X, 15)
    omegas = [1e-9, 1e-5, 1e-3, 1e-2, 1e-1, 10.0]

    def mse(w, X, y):
        return ((X @ w - y) ** 2).mean().item()

    cv = [cross_validate(Phi, data.train.y, lambda X, y, o=o: ridge(X, y, o), mse).mean().item()
          for o in omegas]
    test = [mse(ridge(Phi, data.train.y, o), Phi_test, data.test.y) for o in omegas]
    best = min(range(len(omegas)), key=cv.__getitem__)
    assert 0 < best < len(omegas) - 1
    assert test[best] < min(test[0], test[-1])


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
        (lambda: soft_threshold([1.0], 0.1), TypeError, "z"),
        (lambda: soft_threshold(torch.ones(2), -0.1), ValueError, "threshold"),
        (lambda: lasso(X, y, -0.1), ValueError, "omega"),
        (lambda: lasso(X, y[:3], 0.1), ValueError, "y"),
        (lambda: lasso(X[:, 0], y, 0.1), ValueError, "X"),
        (lambda: lasso(X, y, 0.1, steps=0), ValueError, "steps"),
        (lambda: lasso(X, y, 0.1, tol=-1.0), ValueError, "tol"),
        (lambda: lasso(X.numpy(), y, 0.1), TypeError, "X"),
        (lambda: k_folds(10, 1), ValueError, "k"),
        (lambda: k_folds(3, 4), ValueError, "k must be at most N"),
        (lambda: k_folds(0, 2), ValueError, "N"),
        (lambda: k_folds(10, 2.5), TypeError, "k"),
        (lambda: k_folds(10, 2, shuffle=1), TypeError, "shuffle"),
        (lambda: k_folds(10, 2, seed=-1), ValueError, "seed"),
        (lambda: cross_validate(X, y[:3], ridge, ridge), ValueError, "X and y"),
        (lambda: cross_validate(X, y, "ridge", ridge), TypeError, "fit"),
        (lambda: cross_validate(X, y, ridge, None), TypeError, "error"),
    ])


def _wide_or_tall(seed, N, D):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(N, D, generator=gen, dtype=torch.float64),
            torch.randn(N, generator=gen, dtype=torch.float64))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("shape", [(30, 8), (12, 12), (10, 25)])
def test_min_norm_least_squares_is_the_pseudoinverse_solution(seed, shape):
    X, y = _wide_or_tall(seed, *shape)
    w = min_norm_least_squares(X, y)
    assert max_relative_error(w, torch.linalg.pinv(X) @ y) < 1e-8
    assert max_relative_error(w, torch.from_numpy(np.linalg.lstsq(X.numpy(), y.numpy(), rcond=None)[0])) < 1e-8


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_min_norm_least_squares_equals_lstsq_when_tall(seed):
    X, y = _wide_or_tall(seed, 40, 7)
    reference = torch.linalg.lstsq(X, y[:, None], driver="gelsd").solution[:, 0]
    assert max_relative_error(min_norm_least_squares(X, y), reference) < 1e-10
    assert max_relative_error(min_norm_least_squares(X, y), ridge(X, y, 0.0)) < 1e-10


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_min_norm_interpolant_is_the_shortest(seed):
    """Wide X: w interpolates, and adding any null-space vector keeps X w = y but grows the norm."""
    X, y = _wide_or_tall(seed, 10, 30)
    w = min_norm_least_squares(X, y)
    assert (X @ w - y).abs().max() < 1e-10
    _, _, Vh = torch.linalg.svd(X)  # rows 10.. of Vh span the null space of X
    gen = torch.Generator().manual_seed(100 + seed)
    for _ in range(5):
        v = Vh[10:].T @ torch.randn(20, generator=gen, dtype=torch.float64)
        assert (X @ (w + v) - y).abs().max() < 1e-10
        assert (w + v).norm() > w.norm()
        # Pythagoras: w is orthogonal to the null space
        assert abs((w + v).norm() ** 2 - w.norm() ** 2 - v.norm() ** 2) < 1e-9
    # the limit of ridge as the penalty vanishes
    assert max_relative_error(ridge(X, y, 1e-7), w) < 1e-5


def test_min_norm_drops_tiny_singular_values():
    X, y = _wide_or_tall(0, 20, 5)
    X = torch.cat([X, X[:, :1]], dim=1)  # a repeated column: rank 5, not 6
    w = min_norm_least_squares(X, y)
    assert max_relative_error(w, torch.linalg.pinv(X) @ y) < 1e-8
    assert abs(w[0] - w[5]) < 1e-10  # the norm is smallest when the copies share the weight


def test_bias_variance_sums_to_mean_squared_error():
    gen = torch.Generator().manual_seed(0)
    P = torch.randn(50, 7, generator=gen, dtype=torch.float64) + 2.0
    f = torch.randn(7, generator=gen, dtype=torch.float64)
    bias2, variance = bias_variance(P, f)
    assert torch.allclose(bias2 + variance, ((P - f) ** 2).mean(0), atol=1e-12)
    assert torch.allclose(variance, torch.from_numpy(np.var(P.numpy(), axis=0)), atol=1e-12)
    assert torch.allclose(bias2, (torch.from_numpy(np.mean(P.numpy(), axis=0)) - f) ** 2, atol=1e-12)


def test_bias_variance_monte_carlo_matches_fresh_test_error():
    """bias^2 + variance + sigma^2 equals a direct Monte Carlo estimate from other training sets."""
    sigma, x = 0.3, torch.linspace(-1, 1, 41, dtype=torch.float64)
    truth, X_test = true_curve(x), polynomial_features(x, 3)

    def predictions(seeds):
        fits = [curve_data(20, 1, 1, noise=sigma, seed=s) for s in seeds]
        return torch.stack([X_test @ ridge(polynomial_features(d.train.X, 3), d.train.y, 0.0)
                            for d in fits])

    P = predictions(range(200))
    bias2, variance = bias_variance(P, truth)
    gen = torch.Generator().manual_seed(1)
    other = predictions(range(1000, 1200))
    errors = ((other - truth - sigma * torch.randn(other.shape, generator=gen, dtype=torch.float64)) ** 2).mean(1)
    predicted = (bias2 + variance).mean().item() + sigma**2
    # both sides are means over 200 independent training sets: combine their standard errors
    se = ((errors.var() + ((P - truth) ** 2).mean(1).var()) / 200).sqrt().item()
    assert abs(errors.mean().item() - predicted) < 4 * se
    assert bias2.mean() < variance.mean()  # a cubic fits the curve; its error is mostly variance


def test_random_features_are_reproducible_relus():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    F = random_features(x, 10, seed=4)
    assert F.shape == (6, 10) and (F >= 0).all()
    assert torch.equal(F, random_features(x, 10, seed=4))
    assert not torch.equal(F, random_features(x, 10, seed=5))
    # one example at a time gives the same features: they depend on the seed, not the batch
    assert torch.allclose(torch.cat([random_features(x[i:i + 1], 10, seed=4) for i in range(6)]), F)
    # positively homogeneous: phi(c x) = c phi(x) for c > 0
    assert torch.allclose(random_features(2.5 * x, 10, seed=4), 2.5 * F)
    assert random_features(torch.linspace(-1, 1, 5), 3).shape == (5, 3)


def test_random_features_have_the_right_scale():
    """With a ~ N(0, I/d0) and x ~ N(0, I), a^T x ~ N(0, |x|^2/d0), so E phi^2 = 1/2."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 20, generator=gen, dtype=torch.float64)
    assert abs((random_features(x, 200, seed=1) ** 2).mean().item() - 0.5) < 0.05


def test_double_descent_peak_and_ridge_removes_it():
    """Min-norm test error on random features peaks where D = N; a ridge penalty flattens it."""
    N, d0 = 30, 8
    gen = torch.Generator().manual_seed(0)
    beta = torch.randn(d0, generator=gen, dtype=torch.float64) / d0**0.5
    x, x_test = (torch.randn(n, d0, generator=gen, dtype=torch.float64) for n in (N, 500))
    y = x @ beta + 0.3 * torch.randn(N, generator=gen, dtype=torch.float64)

    def error(D, fit):
        w = fit(random_features(x, D, seed=1), y)
        return ((random_features(x_test, D, seed=1) @ w - x_test @ beta) ** 2).mean().item()

    min_norm = {D: error(D, min_norm_least_squares) for D in (10, 30, 300)}
    ridged = {D: error(D, lambda F, y: ridge(F, y, 0.1)) for D in (10, 30, 300)}
    assert min_norm[30] > 3 * max(min_norm[10], min_norm[300])
    assert ridged[30] < max(ridged[10], ridged[300])  # no peak at D = N
    assert ridged[30] < min_norm[30] / 3


def test_new_functions_bad_inputs():
    X, y = torch.randn(4, 6, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    check_bad_inputs([
        (lambda: min_norm_least_squares(X, y[:3]), ValueError, "y"),
        (lambda: min_norm_least_squares(X[0], y), ValueError, "X"),
        (lambda: min_norm_least_squares(X.numpy(), y), TypeError, "X"),
        (lambda: min_norm_least_squares(X, y, rcond=-1.0), ValueError, "rcond"),
        (lambda: min_norm_least_squares(X, y.long()), TypeError, "y"),
        (lambda: random_features(X, 0), ValueError, "D"),
        (lambda: random_features(X, 3.0), TypeError, "D"),
        (lambda: random_features(X, 3, seed=-1), ValueError, "seed"),
        (lambda: random_features(torch.zeros(2, 2, 2), 3), ValueError, "x"),
        (lambda: random_features(torch.arange(3), 3), TypeError, "x"),
        (lambda: bias_variance(X, torch.zeros(5)), ValueError, "truth"),
        (lambda: bias_variance(X[0], torch.zeros(6)), ValueError, "predictions"),
        (lambda: bias_variance(X, torch.full((6,), float("nan"))), ValueError, "truth"),
    ])
