"""Numerical derivatives, the oracle for hand-derived gradients (Part 1, "Calculus and
automatic differentiation").

Central differences approximate a derivative with error O(h²). They are slow,
one or two function calls per input, but independent of any derivation, which
is exactly what a check needs. Use float64: in float32 the rounding error of
``f(x + h) - f(x - h)`` swamps the answer for small ``h``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["numerical_gradient", "numerical_jacobian", "max_relative_error"]


def _check_input(x: torch.Tensor, h: float) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    if not h > 0:
        raise ValueError(f"step h must be > 0, got {h}")


@torch.no_grad()
def numerical_gradient(
    f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, h: float = 1e-6
) -> torch.Tensor:
    r"""The gradient of a scalar function by central differences.

    .. math:: \frac{\partial f}{\partial x_i} \approx \frac{f(x + h e_i) - f(x - h e_i)}{2h}

    Returns a tensor shaped like ``x``.
    """
    _check_input(x, h)
    x = x.detach().clone()
    grad = torch.zeros_like(x)
    flat, g = x.view(-1), grad.view(-1)
    for i in range(flat.numel()):
        old = flat[i].item()
        flat[i] = old + h
        up = f(x)
        flat[i] = old - h
        down = f(x)
        flat[i] = old
        if up.numel() != 1:
            raise ValueError(f"f must return a scalar, got shape {tuple(up.shape)}")
        g[i] = (up - down).item() / (2 * h)
    return grad


@torch.no_grad()
def numerical_jacobian(
    f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, h: float = 1e-6
) -> torch.Tensor:
    r"""The Jacobian :math:`J_{ij} = \partial f_i / \partial x_j` by central differences.

    For ``x`` of shape ``(n,)`` and ``f(x)`` of shape ``(m,)`` it has shape ``(m, n)``.
    """
    _check_input(x, h)
    if x.ndim != 1:
        raise ValueError(f"expected x of shape (n,), got {tuple(x.shape)}")
    x = x.detach().clone()
    columns = []
    for j in range(len(x)):
        step = torch.zeros_like(x)
        step[j] = h
        columns.append((f(x + step) - f(x - step)).reshape(-1) / (2 * h))
    return torch.stack(columns, dim=1)  # (m, n): column j is df/dx_j


def max_relative_error(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12) -> float:
    r"""The largest :math:`|a - b| / \max(|a|, |b|, \epsilon)` over all entries.

    The number every "check the derivation" cell prints: about 1e-10 or below
    means two float64 computations agree; 1e-3 means a bug.
    """
    if a.shape != b.shape:
        raise ValueError(f"cannot compare shapes {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a.detach().double(), b.detach().double()
    scale = torch.maximum(a.abs(), b.abs()).clamp_min(eps)
    return float(((a - b).abs() / scale).max()) if a.numel() else 0.0
