"""Linear algebra from scratch (Part 1, "Tensors and linear algebra").

Solving ``A x = b`` by Gaussian elimination with partial pivoting, and the
inverse by solving for every column of the identity. The book checks both
against ``torch.linalg``; real code should call ``torch.linalg.solve``, which
does the same thing (an LU factorization) in optimized, batched form.
"""

from __future__ import annotations

import math

import torch

from dlbook import _checks as check

__all__ = ["solve", "inverse", "lp_norm"]


def solve(A: torch.Tensor, b: torch.Tensor, *, tol: float | None = None) -> torch.Tensor:
    """Solve ``A x = b`` by Gaussian elimination with partial pivoting.

    Shapes: ``A`` is ``(n, n)``, ``b`` is ``(n,)`` or ``(n, k)`` (``k`` systems at
    once), and ``x`` has the shape of ``b``. A pivot no larger than ``tol`` times
    the largest entry of ``A`` (by default the machine epsilon of its dtype) means
    that ``A`` is singular, and raises a ``ValueError``.
    """
    n = check.expect_shape(check.finite("A", A), "n n", "A")["n"]
    check.expect_shape(check.finite("b", b), "n" if b.dim() == 1 else "n k", "b", n=n)
    tol = torch.finfo(A.dtype).eps if tol is None else check.nonnegative_float("tol", tol)
    vector = b.ndim == 1
    dtype = torch.promote_types(A.dtype, b.dtype)
    M = torch.cat([A, b.reshape(n, -1)], dim=1).to(dtype).clone()  # (n, n + k): [A | b]
    scale = A.abs().max().item() or 1.0
    for col in range(n):
        # Pivot: swap in the row with the largest entry in this column, which
        # keeps the multipliers below 1 in size and the rounding errors small.
        pivot = col + int(M[col:, col].abs().argmax())
        if M[pivot, col].abs() <= tol * scale:
            raise ValueError(f"A is singular (no usable pivot in column {col})")
        if pivot != col:
            M[[col, pivot]] = M[[pivot, col]]
        # Eliminate: row_i <- row_i - (m_ic / m_cc) row_c for every row below.
        factors = M[col + 1 :, col] / M[col, col]  # (n - col - 1,)
        M[col + 1 :] -= factors[:, None] * M[col]
    # Back substitution: x_i = (c_i - sum_{j > i} u_ij x_j) / u_ii, last row first.
    U, c = M[:, :n], M[:, n:]
    x = torch.zeros_like(c)
    for i in range(n - 1, -1, -1):
        x[i] = (c[i] - U[i, i + 1 :] @ x[i + 1 :]) / U[i, i]
    return x[:, 0] if vector else x


def inverse(A: torch.Tensor) -> torch.Tensor:
    """The inverse of ``A``, shape ``(n, n)``: the solution of ``A X = I``, column by column."""
    n = check.expect_shape(check.finite("A", A), "n n", "A")["n"]
    return solve(A, torch.eye(n, dtype=A.dtype, device=A.device))


def lp_norm(x: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """The l_p norm ``(sum_i |x_i|^p)^(1/p)`` of a flattened tensor, for ``p >= 1`` or ``inf``."""
    check.expect_shape(check.floating("x", x).reshape(-1), "n", "x")
    p = math.inf if p == math.inf else check.fraction("p", p, low=1.0, high=math.inf)
    x = x.reshape(-1).abs()  # (n,)
    if p == math.inf:
        # ||x||_inf = max_i |x_i|
        return x.max()
    # ||x||_p = (sum_i |x_i|^p)^(1/p)
    return (x**p).sum() ** (1.0 / p)
