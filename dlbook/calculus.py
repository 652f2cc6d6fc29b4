"""Numerical derivatives for checks (Part 1, "Calculus and automatic differentiation").

Central differences, the oracle for every hand-derived gradient in the book,
approximate a derivative with error O(h^2). They are slow, two function calls
per input, but independent of any derivation, which is exactly what a check
needs. Use float64: in float32 the rounding error of
``f(x + h) - f(x - h)`` swamps the answer for small ``h``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from dlbook import _checks as check

__all__ = ["numerical_gradient", "numerical_jacobian", "max_relative_error"]


def _function(name: str, f: object) -> Callable[[torch.Tensor], torch.Tensor]:
    """``f`` if it can be called; a ``TypeError`` naming it otherwise."""
    if not callable(f):
        raise TypeError(f"{name} must be a function of a tensor, got {type(f).__name__} {f!r:.60}")
    return f


def _scalar(value: object) -> torch.Tensor:
    """``value`` if it is a one-element tensor, as ``f(x)`` must be for a gradient."""
    if check.tensor("f(x)", value).numel() != 1:
        raise ValueError(f"f must return a scalar, got f(x) of shape {tuple(value.shape)}")
    return value


@torch.no_grad()
def numerical_gradient(
    f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, h: float = 1e-6
) -> torch.Tensor:
    """The gradient of a scalar ``f`` at ``x`` by central differences, shaped like ``x``."""
    f, x, h = _function("f", f), check.finite("x", x), check.positive_float("h", h)
    x = x.detach().clone()
    grad = torch.zeros_like(x)
    flat, g = x.view(-1), grad.view(-1)
    for i in range(flat.numel()):
        old = flat[i].item()
        flat[i] = old + h
        up = _scalar(f(x))
        flat[i] = old - h
        down = _scalar(f(x))
        flat[i] = old
        # df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / 2h
        g[i] = (up - down).item() / (2 * h)
    return grad


@torch.no_grad()
def numerical_jacobian(
    f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, h: float = 1e-6
) -> torch.Tensor:
    """The Jacobian ``J_ij = df_i/dx_j`` by central differences: ``(n,) -> (m, n)``."""
    f, x, h = _function("f", f), check.finite("x", x), check.positive_float("h", h)
    check.expect_shape(x, "n", "x")
    x = x.detach().clone()
    columns = []
    for j in range(len(x)):
        step = torch.zeros_like(x)
        step[j] = h
        up, down = check.tensor("f(x)", f(x + step)), f(x - step)
        # column j: (f(x + h e_j) - f(x - h e_j)) / 2h
        columns.append((up - down).reshape(-1) / (2 * h))
    return torch.stack(columns, dim=1)  # (m, n)


def max_relative_error(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12) -> float:
    """The largest ``|a - b| / max(|a|, |b|, eps)`` over all entries (1e-10 or below: agreement)."""
    a, b, eps = check.tensor("a", a), check.tensor("b", b), check.positive_float("eps", eps)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a.detach().double(), b.detach().double()
    scale = torch.maximum(a.abs(), b.abs()).clamp_min(eps)
    return float(((a - b).abs() / scale).max()) if a.numel() else 0.0
