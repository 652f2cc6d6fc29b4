"""Linear algebra from scratch (Part 1, "Tensors and linear algebra").

Solving ``A x = b`` by Gaussian elimination with partial pivoting, and the
inverse by solving for every column of the identity. The book checks both
against ``torch.linalg``; real code should call ``torch.linalg.solve``, which
does the same thing (an LU factorization) in optimized, batched form. Last,
the best rank-k approximation of a matrix by its truncated SVD. Before all
that, how a tensor lies in memory: the row-major strides of a shape, and the
shape that broadcasting gives to tensors of several shapes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from dlbook import _checks as check

__all__ = ["solve", "inverse", "lp_norm", "low_rank", "row_major_strides", "broadcast_shapes"]


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


def low_rank(A: torch.Tensor, k: int) -> torch.Tensor:
    """The best rank-k approximation of ``A``, shape ``(m, n)``, by the truncated SVD."""
    sizes = check.expect_shape(check.finite("A", A), "m n", "A")
    r = min(sizes["m"], sizes["n"])
    k = check.positive_int("k", k)
    if k > r:
        raise ValueError(f"k must be at most min(m, n) = {r} for A of shape {tuple(A.shape)}, "
                         f"got {k}")
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)  # (m, r), (r,), (r, n)
    # A_k = sum_{i <= k} sigma_i u_i v_i^T = U_k diag(sigma_1, ..., sigma_k) V_k^T
    return (U[:, :k] * S[:k]) @ Vh[:k]  # (m, k) scaled per column, @ (k, n) -> (m, n)


def _shape(name: str, shape: object) -> tuple[int, ...]:
    """``shape`` as a tuple of non-negative ints (a tuple, list or ``torch.Size``)."""
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of ints, got {type(shape).__name__} {shape!r}")
    return tuple(check.nonnegative_int(f"{name}[{axis}]", size) for axis, size in enumerate(shape))


def row_major_strides(shape: Sequence[int]) -> tuple[int, ...]:
    """The strides, in elements, of a contiguous (row-major) tensor of this shape."""
    shape = _shape("shape", shape)
    strides = [1] * len(shape)
    for j in range(len(shape) - 2, -1, -1):
        # s_j = n_(j+1) s_(j+1): the product of the sizes of all later axes (a size 0
        # counts as 1, as in PyTorch, so that the strides of an empty tensor stay positive)
        strides[j] = max(shape[j + 1], 1) * strides[j + 1]
    return tuple(strides)


def broadcast_shapes(*shapes: Sequence[int]) -> tuple[int, ...]:
    """The shape that tensors of the given shapes broadcast to (sizes aligned from the right)."""
    result: tuple[int, ...] = ()
    for number, shape in enumerate(shapes):
        shape = _shape(f"shapes[{number}]", shape)
        k = max(len(result), len(shape))
        # missing leading axes count as size 1
        a = (1,) * (k - len(result)) + result
        b = (1,) * (k - len(shape)) + shape
        sizes = []
        for axis, (n_a, n_b) in enumerate(zip(a, b)):
            if n_a != n_b and 1 not in (n_a, n_b):
                before = "shapes[0]" if number == 1 else f"shapes[0] to shapes[{number - 1}] together"
                raise ValueError(
                    f"shapes[{number}] = {shape} does not broadcast with {result} (the shape of "
                    f"{before}): axis {axis - k} has sizes {n_b} and {n_a}, which must be equal or "
                    f"one of them 1")
            # equal sizes stay; otherwise the size that is not 1 wins
            sizes.append(n_b if n_a == 1 else n_a)
        result = tuple(sizes)
    return result
