"""Private one-line argument checks shared by every dlbook module.

Each check raises ``TypeError`` (wrong kind of object) or ``ValueError`` (right
kind, wrong value) with a message that names the argument, says what was
expected and what came, so that a public function validates its input in one
line per argument and the derivation stays on screen.

>>> import torch
>>> expect_shape(torch.zeros(2, 1, 28, 28), "B C H W", C=1)
{'B': 2, 'C': 1, 'H': 28, 'W': 28}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "positive_int", "nonnegative_int", "positive_float", "nonnegative_float", "fraction",
    "one_of", "module", "tensor", "floating", "finite", "expect_shape", "labels", "same_length",
    "optimizer_for", "as_float_like",
]


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def positive_int(name: str, value: object, *, minimum: int = 1) -> int:
    """``value`` as an ``int`` of at least ``minimum`` (bools are not ints here)."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an int >= {minimum}, got {_describe(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def nonnegative_int(name: str, value: object) -> int:
    """``value`` as an ``int`` of at least 0."""
    return positive_int(name, value, minimum=0)


def _real(name: str, value: object, expected: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.dtype == torch.bool:
            value = value.item()
        else:
            raise TypeError(f"{name} must be {expected}, got {_describe(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be {expected}, got {value}")
    return value


def positive_float(name: str, value: object) -> float:
    """``value`` as a finite ``float`` greater than 0."""
    out = _real(name, value, "a finite number > 0")
    if out <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {out}")
    return out


def nonnegative_float(name: str, value: object) -> float:
    """``value`` as a finite ``float`` of at least 0."""
    out = _real(name, value, "a finite number >= 0")
    if out < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {out}")
    return out


def fraction(name: str, value: object, *, low: float = 0.0, high: float = 1.0,
             closed: str = "[)") -> float:
    """``value`` as a ``float`` in an interval, ``[low, high)`` unless ``closed`` says otherwise."""
    expected = f"a number in {closed[0]}{low}, {high}{closed[1]}"
    out = _real(name, value, expected)
    ok_low = out >= low if closed[0] == "[" else out > low
    ok_high = out <= high if closed[1] == "]" else out < high
    if not (ok_low and ok_high):
        raise ValueError(f"{name} must be {expected}, got {out}")
    return out


def one_of(name: str, value: object, options: Iterable[Any]) -> Any:
    """``value`` if it is one of ``options``; else a ``ValueError`` listing them."""
    options = list(options)
    if not isinstance(value, str) and any(isinstance(o, str) for o in options):
        raise TypeError(f"{name} must be one of {options}, got {_describe(value)}")
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def tensor(name: str, x: object) -> torch.Tensor:
    """``x`` if it is a tensor; a ``TypeError`` for lists, arrays, ``None``, ..."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {_describe(x)}")
    return x


def module(name: str, model: object) -> torch.nn.Module:
    """``model`` if it is a ``torch.nn.Module``."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {_describe(model)}")
    return model


def floating(name: str, x: object) -> torch.Tensor:
    """``x`` if it is a floating-point tensor."""
    x = tensor(name, x)
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {_describe(x)}")
    return x


def finite(name: str, x: object) -> torch.Tensor:
    """``x`` if it is a floating-point tensor with no NaN or infinity."""
    x = floating(name, x)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite, got {_describe(x)} containing NaN or inf")
    return x


def expect_shape(x: object, spec: str, name: str = "x", *, allow_empty: bool = False,
                 **sizes: int) -> dict[str, int]:
    """Check ``x`` against a named shape such as ``"B C H W"`` and return the sizes.

    Keyword arguments fix sizes (``C=1``); a name repeated in ``spec`` must have
    equal sizes. Zero-sized dimensions (an empty batch) are rejected unless
    ``allow_empty``.
    """
    x = tensor(name, x)
    dims = spec.split()
    expected = "(" + ", ".join(str(sizes.get(d, d)) for d in dims) + ("," if len(dims) == 1 else "") + ")"
    if x.dim() != len(dims):
        raise ValueError(f"expected {name} of shape {expected}, got {tuple(x.shape)}")
    found: dict[str, int] = {}
    for dim, size in zip(dims, x.shape):
        want = sizes.get(dim, found.get(dim))
        if want is not None and size != want:
            raise ValueError(f"expected {name} of shape {expected}, got {tuple(x.shape)}")
        found[dim] = int(size)
    if not allow_empty and x.numel() == 0:
        raise ValueError(f"{name} is empty: expected a non-empty {expected} tensor, got {tuple(x.shape)}")
    return found


def labels(name: str, y: object, num_classes: int | None = None) -> torch.Tensor:
    """``y`` if it is a 1-D integer tensor of class indices in ``[0, num_classes)``."""
    y = tensor(name, y)
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class indices, got {_describe(y)}"
                        " (scores or probabilities where labels belong?)")
    expect_shape(y, "B", name)
    low, high = int(y.min()), int(y.max())
    if low < 0:
        raise ValueError(f"{name} must hold class indices >= 0, got {low}")
    if num_classes is not None and high >= num_classes:
        raise ValueError(f"{name} must hold class indices < {num_classes}, got {high}")
    return y


def same_length(**arrays: Sequence[Any] | torch.Tensor) -> int:
    """The common length of the arguments; a ``ValueError`` naming them if they differ."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise ValueError(f"{' and '.join(lengths)} must have the same length, got: {listed}")
    return next(iter(lengths.values()), 0)


def optimizer_for(name: str, optimizer: Any, model: torch.nn.Module) -> Any:
    """``optimizer`` if it updates at least one of ``model``'s parameters."""
    groups = getattr(optimizer, "param_groups", None)
    if groups is None:
        raise TypeError(f"{name} must be an optimizer with param_groups, got {_describe(optimizer)}")
    owned = {id(p) for p in model.parameters()}
    held = {id(p) for group in groups for p in group["params"]}
    if owned and not owned & held:
        raise ValueError(f"{name} holds none of the model's parameters: "
                         "build it from this model's .parameters()")
    return optimizer


def as_float_like(name: str, x: object, reference: torch.Tensor) -> torch.Tensor:
    """``x`` as a floating tensor in ``reference``'s dtype (float64 batches into a
    float32 model are converted, not rejected)."""
    x = floating(name, x)
    return x.to(reference.dtype) if x.dtype != reference.dtype else x
