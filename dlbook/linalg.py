"""Linear algebra from scratch (Part 1, "Tensors and linear algebra").

Solving ``A x = b`` by Gaussian elimination with partial pivoting, and the
inverse by solving for every column of the identity. The book checks both
against ``torch.linalg``; real code should call ``torch.linalg.solve``, which
does the same thing (an LU factorization) in optimized, batched form.
"""

from __future__ import annotations

import torch

__all__ = ["solve", "inverse", "lp_norm"]


def _check_square(A: torch.Tensor, name: str = "A") -> int:
    if not isinstance(A, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(A).__name__}")
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"expected a square matrix {name} of shape (n, n), got {tuple(A.shape)}")
    if not A.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got {A.dtype}")
    return A.shape[0]


def solve(A: torch.Tensor, b: torch.Tensor, *, tol: float | None = None) -> torch.Tensor:
    """Solve ``A x = b`` by Gaussian elimination with partial pivoting.

    Args:
        A: square matrix, shape ``(n, n)``.
        b: right-hand side, shape ``(n,)`` or ``(n, k)`` for ``k`` systems at once.
        tol: a pivot no larger than ``tol`` times the largest entry of ``A``
            means ``A`` is (numerically) singular; by default the machine
            epsilon of ``A``'s dtype.

    Raises:
        ValueError: on mismatched shapes or a singular matrix.
    """
    n = _check_square(A)
    if not isinstance(b, torch.Tensor) or b.ndim not in (1, 2) or b.shape[0] != n:
        shape = tuple(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__
        raise ValueError(f"expected b of shape ({n},) or ({n}, k) to match A {tuple(A.shape)}, got {shape}")
    vector = b.ndim == 1
    M = torch.cat([A, b.reshape(n, -1)], dim=1).to(torch.promote_types(A.dtype, b.dtype)).clone()  # (n, n + k)
    scale = A.abs().max().item() or 1.0
    tol = torch.finfo(M.dtype).eps if tol is None else tol
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
    """The inverse of ``A``: the solution ``X`` of ``A X = I``, column by column."""
    n = _check_square(A)
    return solve(A, torch.eye(n, dtype=A.dtype, device=A.device))


def lp_norm(x: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    r"""The :math:`\ell_p` norm :math:`\|x\|_p = (\sum_i |x_i|^p)^{1/p}` of a flattened tensor.

    ``p = float("inf")`` gives the largest absolute entry. ``p`` must be >= 1
    (below 1 the formula is not a norm: the triangle inequality fails).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not p >= 1:
        raise ValueError(f"p must be >= 1 for a norm, got {p}")
    x = x.reshape(-1).abs()
    if p == float("inf"):
        return x.max()
    return (x**p).sum() ** (1.0 / p)
