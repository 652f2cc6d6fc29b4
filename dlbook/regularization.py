"""Overfitting and regularization (Part 3, "Overfitting and regularization").

A one-dimensional regression problem whose true curve is known
(``curve_data``), the polynomial features that let a linear model overfit it
(``polynomial_features``), and weight decay in its two equivalent forms: the
closed-form ridge (MAP) solution (``ridge``) and the penalty whose gradient
shrinks the weights at every step (``l2_penalty``). L1 regularization: its
proximal step, soft thresholding (``soft_threshold``), and the lasso fitted by
proximal gradient descent (``lasso``), which sets weights exactly to zero.
Choosing the penalty without a validation set: k-fold cross-validation
(``k_folds``, ``cross_validate``). Measuring generalization: the bias and
variance of a model's predictions over many training sets (``bias_variance``),
and double descent with the minimum-norm least-squares solution
(``min_norm_least_squares``) on random ReLU features (``random_features``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from dlbook import _checks as check
from dlbook.data import Dataset, Split

__all__ = [
    "true_curve", "curve_data", "polynomial_features", "ridge", "l2_penalty",
    "soft_threshold", "lasso", "k_folds", "cross_validate", "bias_variance",
    "random_features", "min_norm_least_squares",
]


def true_curve(x: torch.Tensor) -> torch.Tensor:
    """The noiseless target ``f(x) = sin(pi x) + x / 2`` on [-1, 1], elementwise."""
    x = check.floating("x", x)
    return torch.sin(math.pi * x) + 0.5 * x


def curve_data(
    n_train: int = 20, n_val: int = 100, n_test: int = 500, *, noise: float = 0.3, seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> Dataset:
    """Noisy samples of ``true_curve`` at uniform random ``x`` in [-1, 1], fixed by ``seed``.

    Inputs have shape ``(N, 1)`` and targets ``(N,)``, of type ``dtype`` (float32
    for training a network, float64 for closed-form fits); a small ``n_train``
    makes overfitting easy to see.

    >>> d = curve_data(10, 5, 5)
    >>> d.train.X.shape, d.test.y.shape
    (torch.Size([10, 1]), torch.Size([5]))
    """
    sizes = [check.positive_int(name, n) for name, n in
             (("n_train", n_train), ("n_val", n_val), ("n_test", n_test))]
    noise, seed = check.nonnegative_float("noise", noise), check.nonnegative_int("seed", seed)
    dtype = check.one_of("dtype", dtype, [torch.float32, torch.float64])
    gen = torch.Generator().manual_seed(seed)

    def part(n: int) -> Split:
        x = 2 * torch.rand(n, 1, generator=gen, dtype=torch.float64) - 1  # (N, 1)
        y = true_curve(x[:, 0]) + noise * torch.randn(n, generator=gen, dtype=torch.float64)
        return Split(x.to(dtype), y.to(dtype))

    return Dataset("curve", *(part(n) for n in sizes))


def polynomial_features(x: torch.Tensor, degree: int) -> torch.Tensor:
    """Legendre polynomials ``P_0(x), ..., P_degree(x)`` of each input, as columns.

    Shapes: ``x`` ``(N,)`` or ``(N, 1)``, best in [-1, 1]; the result ``(N, degree + 1)``.

    >>> polynomial_features(torch.tensor([0.5]), 2)
    tensor([[ 1.0000,  0.5000, -0.1250]])
    """
    degree = check.nonnegative_int("degree", degree)
    x = check.finite("x", x)
    x = x[:, 0] if x.dim() == 2 and x.shape[1] == 1 else x  # (N, 1) -> (N,)
    check.expect_shape(x, "N", "x")
    columns = [torch.ones_like(x), x]
    for k in range(1, degree):
        # P_{k+1} = ((2k + 1) x P_k - k P_{k-1}) / (k + 1)
        columns.append(((2 * k + 1) * x * columns[k] - k * columns[k - 1]) / (k + 1))
    return torch.stack(columns[: degree + 1], dim=1)  # (N, degree + 1)


def ridge(X: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    """The weights minimizing ``1/(2N) ||X w - y||^2 + lam/2 ||w||^2``: ``(N, D), (N,) -> (D,)``."""
    N, D = check.expect_shape(check.finite("X", X), "N D", "X").values()
    check.expect_shape(check.finite("y", y), "N", "y", N=N)
    lam = check.nonnegative_float("lam", lam)
    # (X^T X + N omega I) w = X^T y
    A = X.T @ X + N * lam * torch.eye(D, dtype=X.dtype, device=X.device)  # (D, D)
    try:
        return torch.linalg.solve(A, X.T @ y.to(X.dtype))
    except RuntimeError:  # torch.linalg.LinAlgError: X^T X is singular and lam = 0
        raise ValueError(f"X^T X is singular (X has rank below D = {D}): use lam > 0") from None


def l2_penalty(parameters: list[torch.Tensor] | torch.Tensor, lam: float) -> torch.Tensor:
    """The weight-decay penalty ``lam/2 sum_j ||w_j||^2`` over one tensor or a list of them.

    >>> l2_penalty([torch.tensor([3.0, 4.0])], 0.1)
    tensor(1.2500)
    """
    lam = check.nonnegative_float("lam", lam)
    params = _tensors("parameters", parameters)
    # omega / 2 * sum_j ||w_j||^2
    return 0.5 * lam * sum((w**2).sum() for w in params)


def _tensors(name: str, value: object) -> list[torch.Tensor]:
    """``value`` as a non-empty list of floating-point tensors."""
    if isinstance(value, torch.Tensor):
        return [check.floating(name, value)]
    if not isinstance(value, (list, tuple)) and not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a tensor or a list of tensors, got {type(value).__name__}")
    params = [check.floating(f"{name}[{i}]", w) for i, w in enumerate(value)]
    if not params:
        raise ValueError(f"{name} is empty: l2_penalty needs at least one tensor")
    return params


def soft_threshold(z: torch.Tensor, threshold: float) -> torch.Tensor:
    """The minimizer of ``1/2 (w - z)^2 + threshold |w|`` for each entry of ``z`` (any shape).

    >>> soft_threshold(torch.tensor([-3.0, 0.5, 2.0]), 1.0)
    tensor([-2.,  0.,  1.])
    """
    z = check.floating("z", z)
    threshold = check.nonnegative_float("threshold", threshold)
    # S(z) = sign(z) max(|z| - threshold, 0): every |z| <= threshold becomes exactly 0
    return torch.sign(z) * torch.clamp(z.abs() - threshold, min=0.0)


def lasso(
    X: torch.Tensor, y: torch.Tensor, omega: float, *, steps: int = 5000, tol: float = 1e-10,
) -> torch.Tensor:
    """The weights minimizing ``1/(2N) ||X w - y||^2 + omega ||w||_1`` (the lasso), ``(D,)``.

    Shapes: ``X`` ``(N, D)``, ``y`` ``(N,)``. Proximal gradient descent (ISTA) from
    zero: a gradient step on the squared error, then soft thresholding; it stops
    after ``steps`` steps or when no weight moves by more than ``tol``.
    """
    N, D = check.expect_shape(check.finite("X", X), "N D", "X").values()
    check.expect_shape(check.finite("y", y), "N", "y", N=N)
    omega = check.nonnegative_float("omega", omega)
    steps = check.positive_int("steps", steps)
    tol = check.nonnegative_float("tol", tol)
    y = y.to(X.dtype)
    # the gradient X^T (X w - y) / N is Lipschitz with constant lambda_max(X^T X / N);
    # and eta = 1 / lambda_max guarantees that every step lowers the objective
    lam_max = torch.linalg.eigvalsh(X.T @ X / N)[-1].item()
    eta = 1.0 / lam_max if lam_max > 0 else 1.0
    w = torch.zeros(D, dtype=X.dtype, device=X.device)
    for _ in range(steps):
        grad = X.T @ (X @ w - y) / N  # (D,)
        # w <- S_{eta omega}(w - eta grad)
        w_next = soft_threshold(w - eta * grad, eta * omega)
        moved = (w_next - w).abs().max().item()
        w = w_next
        if moved <= tol:
            break
    return w


def k_folds(
    N: int, k: int, *, shuffle: bool = True, seed: int = 0,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Split ``range(N)`` into ``k`` folds; for each fold, (training indices, validation indices).

    Folds are consecutive blocks of the (shuffled, if ``shuffle``) indices, the
    first ``N % k`` of them one longer, as in ``sklearn.model_selection.KFold``;
    training indices are sorted. Every index is in exactly one validation fold.

    >>> [v.tolist() for _, v in k_folds(5, 2, shuffle=False)]
    [[0, 1, 2], [3, 4]]
    """
    N, k = check.positive_int("N", N), check.positive_int("k", k, minimum=2)
    if k > N:
        raise ValueError(f"k must be at most N = {N} (each fold needs an example), got {k}")
    seed = check.nonnegative_int("seed", seed)
    if not isinstance(shuffle, bool):
        raise TypeError(f"shuffle must be True or False, got {type(shuffle).__name__}")
    order = (torch.randperm(N, generator=torch.Generator().manual_seed(seed)) if shuffle
             else torch.arange(N))
    sizes = [N // k + (1 if i < N % k else 0) for i in range(k)]
    folds = []
    for val in torch.split(order, sizes):
        in_val = torch.zeros(N, dtype=torch.bool)
        in_val[val] = True
        folds.append((torch.nonzero(~in_val).flatten(), val))
    return folds


def cross_validate(
    X: torch.Tensor, y: torch.Tensor, fit: Callable[[torch.Tensor, torch.Tensor], Any],
    error: Callable[[Any, torch.Tensor, torch.Tensor], float], k: int = 5, *,
    shuffle: bool = True, seed: int = 0,
) -> torch.Tensor:
    """The validation error of each of ``k`` folds, ``(k,)``: fit on the others, score on it.

    ``fit(X_train, y_train)`` returns a model (for a linear model, its weights) and
    ``error(model, X_val, y_val)`` its mean error on the held-out fold; the
    cross-validation estimate is the mean of the result.
    """
    N = check.same_length(X=check.tensor("X", X), y=check.tensor("y", y))
    for name, f in (("fit", fit), ("error", error)):
        if not callable(f):
            raise TypeError(f"{name} must be callable, got {type(f).__name__}")
    errors = []
    for train, val in k_folds(N, k, shuffle=shuffle, seed=seed):
        model = fit(X[train], y[train])
        errors.append(float(error(model, X[val], y[val])))
    # CV = 1/k sum_i error on fold i of the model fitted without fold i
    return torch.tensor(errors, dtype=torch.float64)


def bias_variance(predictions: torch.Tensor, truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared bias and variance at each test point of predictions from many training sets.

    Shapes: ``predictions`` ``(S, M)``, one row per training set, one column per
    test point; ``truth`` ``(M,)``, the noiseless target there. Returns two ``(M,)``
    tensors whose sum is the mean over the rows of the squared error against ``truth``.

    >>> bias_variance(torch.tensor([[1.0, 2.0], [3.0, 2.0]]), torch.tensor([1.0, 1.0]))
    (tensor([1., 1.]), tensor([1., 0.]))
    """
    S, M = check.expect_shape(check.finite("predictions", predictions), "S M", "predictions").values()
    check.expect_shape(check.finite("truth", truth), "M", "truth", M=M)
    mean = predictions.mean(dim=0)  # (M,): the average model over training sets
    # bias^2 = (mean_s f_s(x) - f(x))^2
    bias2 = (mean - truth.to(predictions.dtype)) ** 2
    # variance = mean_s (f_s(x) - mean_s f_s(x))^2, over S, not S - 1
    variance = ((predictions - mean) ** 2).mean(dim=0)
    return bias2, variance


def random_features(x: torch.Tensor, D: int, *, seed: int = 0) -> torch.Tensor:
    """``D`` random ReLU features ``relu(a_j^T x)`` of each input, fixed by ``seed``.

    Shapes: ``x`` ``(N, d0)`` (or ``(N,)`` for one input), the result ``(N, D)``.
    The directions ``a_j`` have independent normal entries of variance ``1/d0``;
    the same ``seed`` gives the same features for training and test inputs, the
    hidden layer of a two-layer network frozen at its random initialization.
    """
    x = check.finite("x", x)
    x = x[:, None] if x.dim() == 1 else x  # (N,) -> (N, 1)
    N, d0 = check.expect_shape(x, "N d0", "x").values()
    D = check.positive_int("D", D)
    seed = check.nonnegative_int("seed", seed)
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(d0, D, generator=gen, dtype=torch.float64) / math.sqrt(d0)  # (d0, D)
    # phi_j(x) = max(0, a_j^T x)
    return torch.relu(x @ A.to(dtype=x.dtype, device=x.device))  # (N, D)


def min_norm_least_squares(X: torch.Tensor, y: torch.Tensor, *, rcond: float | None = None) -> torch.Tensor:
    """The least-squares weights of smallest norm, ``X^+ y`` by the SVD: ``(N, D), (N,) -> (D,)``.

    With independent columns (``D <= N``) it is the ordinary least-squares
    solution; with ``D > N`` and independent rows it interpolates (``X w = y``)
    and is the interpolant of smallest norm. Singular values below ``rcond``
    times the largest are treated as zero (default: ``max(N, D)`` times the
    machine epsilon of the dtype, as ``torch.linalg.pinv`` does).
    """
    N, D = check.expect_shape(check.finite("X", X), "N D", "X").values()
    check.expect_shape(check.finite("y", y), "N", "y", N=N)
    if rcond is None:
        rcond = max(N, D) * torch.finfo(X.dtype).eps
    rcond = check.nonnegative_float("rcond", rcond)
    U, s, Vh = torch.linalg.svd(X, full_matrices=False)  # (N, r), (r,), (r, D) with r = min(N, D)
    keep = s > rcond * s[0]
    # w = sum over kept i of (u_i^T y / s_i) v_i
    coefficients = torch.where(keep, (U.T @ y.to(X.dtype)) / torch.where(keep, s, 1.0), 0.0)  # (r,)
    return Vh.T @ coefficients  # (D,)
