"""Overfitting and regularization (Part 3, "Overfitting and regularization").

A one-dimensional regression problem whose true curve is known
(:func:`curve_data`), the polynomial features that let a linear model overfit it
(:func:`polynomial_features`), and weight decay in its two equivalent forms: the
closed-form ridge (MAP) solution (:func:`ridge`) and the penalty whose gradient
shrinks the weights at every step (:func:`l2_penalty`).
"""

from __future__ import annotations

import math

import torch

from dlbook.data import Dataset, Split

__all__ = ["true_curve", "curve_data", "polynomial_features", "ridge", "l2_penalty"]


def true_curve(x: torch.Tensor) -> torch.Tensor:
    r"""The noiseless target :math:`f(x) = \sin(\pi x) + x/2` on :math:`[-1, 1]`."""
    return torch.sin(math.pi * x) + 0.5 * x


def curve_data(
    n_train: int = 20, n_val: int = 100, n_test: int = 500, *, noise: float = 0.3, seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> Dataset:
    """Noisy samples of :func:`true_curve` at uniform random ``x`` in [-1, 1].

    Args:
        n_train, n_val, n_test: examples in each part; a small ``n_train`` makes
            overfitting easy to see.
        noise: standard deviation of the Gaussian noise added to the targets.
        seed: seeds the draw, so the data are the same in every run.
        dtype: the floating-point type of inputs and targets (float32 for training
            a network, float64 for closed-form fits).

    Returns:
        A :class:`~dlbook.data.Dataset` with inputs of shape ``(N, 1)`` and
        targets of shape ``(N,)``, of type ``dtype``.

    Raises:
        ValueError: if a size is below 1 or ``noise`` is negative.

    >>> d = curve_data(10, 5, 5)
    >>> d.train.X.shape, d.test.y.shape
    (torch.Size([10, 1]), torch.Size([5]))
    """
    for name, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if n < 1:
            raise ValueError(f"{name} must be >= 1, got {n}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    gen = torch.Generator().manual_seed(seed)

    def part(n: int) -> Split:
        x = 2 * torch.rand(n, 1, generator=gen, dtype=torch.float64) - 1  # (N, 1)
        y = true_curve(x[:, 0]) + noise * torch.randn(n, generator=gen, dtype=torch.float64)
        return Split(x.to(dtype), y.to(dtype))

    return Dataset("curve", part(n_train), part(n_val), part(n_test))


def polynomial_features(x: torch.Tensor, degree: int) -> torch.Tensor:
    r"""Legendre polynomials :math:`P_0(x), \dots, P_d(x)` of each input, as columns.

    Legendre polynomials span the same functions as :math:`1, x, \dots, x^d` but
    are nearly orthogonal on [-1, 1], so least squares on them stays well
    conditioned for high degrees. They follow the recurrence
    :math:`(k+1) P_{k+1} = (2k+1)\, x P_k - k P_{k-1}`.

    Args:
        x: inputs of shape ``(N,)`` or ``(N, 1)``, best in [-1, 1].
        degree: the highest degree :math:`d \ge 0`.

    Returns:
        A tensor of shape ``(N, degree + 1)``; column 0 is all ones.

    Raises:
        ValueError: for a negative degree or inputs of another shape.

    >>> polynomial_features(torch.tensor([0.5]), 2)
    tensor([[ 1.0000,  0.5000, -0.1250]])
    """
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
        raise ValueError(f"degree must be an int >= 0, got {degree!r}")
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 1:
        raise ValueError(f"expected x of shape (N,) or (N, 1), got {tuple(x.shape)}")
    columns = [torch.ones_like(x), x]
    for k in range(1, degree):
        # P_{k+1} = ((2k + 1) x P_k - k P_{k-1}) / (k + 1)
        columns.append(((2 * k + 1) * x * columns[k] - k * columns[k - 1]) / (k + 1))
    return torch.stack(columns[: degree + 1], dim=1)  # (N, degree + 1)


def ridge(X: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    r"""The weights minimizing :math:`\tfrac{1}{2N}\|Xw - y\|^2 + \tfrac{\lambda}{2} \|w\|^2`.

    Setting the gradient to zero gives the normal equations
    :math:`(X^\top X + N\lambda I)\, w = X^\top y`, solved here directly. Gradient
    descent on half the mean squared error with ``weight_decay=lam`` converges here. With
    :math:`\lambda = 0` this is ordinary least squares (then :math:`X` needs full
    column rank).

    Args:
        X: design matrix of shape ``(N, D)``.
        y: targets of shape ``(N,)``.
        lam: the penalty :math:`\lambda \ge 0`.

    Returns:
        The weights, shape ``(D,)``.

    Raises:
        ValueError: for mismatched shapes or a negative ``lam``.
    """
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"expected X of shape (N, D) and y of shape (N,), got {tuple(X.shape)} "
                         f"and {tuple(y.shape)}")
    if not lam >= 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    N, D = X.shape
    # (X^T X + N lambda I) w = X^T y
    A = X.T @ X + N * lam * torch.eye(D, dtype=X.dtype, device=X.device)  # (D, D)
    return torch.linalg.solve(A, X.T @ y)


def l2_penalty(parameters: list[torch.Tensor] | torch.Tensor, lam: float) -> torch.Tensor:
    r"""The weight-decay penalty :math:`\tfrac{\lambda}{2} \sum \|w\|^2` over tensors.

    Its gradient with respect to each :math:`w` is :math:`\lambda w`, which is what an
    optimizer's ``weight_decay=lambda`` adds to the gradient.

    Raises:
        ValueError: for a negative ``lam`` or no parameters.

    >>> l2_penalty([torch.tensor([3.0, 4.0])], 0.1)
    tensor(1.2500)
    """
    if not lam >= 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    if not params:
        raise ValueError("l2_penalty needs at least one tensor")
    # lambda / 2 * sum_j ||w_j||^2
    return 0.5 * lam * sum((w**2).sum() for w in params)
