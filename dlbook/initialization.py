"""Initialization (Part 6, "Vanishing and exploding gradients; initialization").

The Xavier (Glorot) and He initializers, derived in the chapter from the
variance of a layer's output, with the same statistics (and, from the same
generator state, the same numbers) as ``torch.nn.init``; :func:`deep_mlp`, the
plain deep network the chapter measures; :func:`layer_signals`, which
measures the size of the forward and backward signal layer by layer; and, for
symmetry breaking, :func:`unit_spread`, which says how far a layer's units are
from being copies of each other, and :func:`collapse_copies`, the width-1
network that a network of copied units computes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn

from dlbook import _checks as check
from dlbook.feedforward import mlp

__all__ = [
    "xavier_std", "he_std", "xavier_uniform_", "xavier_normal_", "he_uniform_", "he_normal_",
    "deep_mlp", "layer_signals", "unit_spread", "collapse_copies",
]

Initializer = Callable[[torch.Tensor], torch.Tensor]


def _fans(tensor: torch.Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of shape ``(out, in, *kernel)``, as torch counts them."""
    check.floating("tensor", tensor)
    if tensor.ndim < 2:
        raise ValueError(
            "tensor must be a weight with at least 2 dimensions (out, in, ...), "
            f"got shape {tuple(tensor.shape)}"
        )
    receptive = math.prod(tensor.shape[2:])  # 1 for a dense layer, kh*kw for a 2-D conv
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def xavier_std(fan_in: int, fan_out: int, gain: float = 1.0) -> float:
    """Glorot and Bengio's standard deviation, gain * sqrt(2 / (fan_in + fan_out)).

    >>> round(xavier_std(100, 300), 6)
    0.070711
    """
    check.positive_int("fan_in", fan_in)
    check.positive_int("fan_out", fan_out)
    check.positive_float("gain", gain)
    # Var(w) = 2 / (n_in + n_out)
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


def he_std(fan: int, gain: float = math.sqrt(2.0)) -> float:
    """He et al.'s standard deviation for ReLU layers, sqrt(2 / fan).

    >>> round(he_std(200), 6)
    0.1
    """
    check.positive_int("fan", fan)
    check.positive_float("gain", gain)
    # Var(w) = 2 / n
    return gain / math.sqrt(fan)


def xavier_uniform_(
    tensor: torch.Tensor, gain: float = 1.0, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill a weight ``(out, in, *kernel)`` in place from U(-a, a) with Xavier's variance.

    Same numbers as ``torch.nn.init.xavier_uniform_`` from the same generator state.
    """
    fan_in, fan_out = _fans(tensor)
    # Var U(-a, a) = a^2 / 3, so a = sqrt(3) * std gives the wanted variance
    a = math.sqrt(3.0) * xavier_std(fan_in, fan_out, gain)
    with torch.no_grad():
        return tensor.uniform_(-a, a, generator=generator)


def xavier_normal_(
    tensor: torch.Tensor, gain: float = 1.0, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill a weight in place from N(0, 2 gain^2 / (fan_in + fan_out)), like torch's ``xavier_normal_``."""
    fan_in, fan_out = _fans(tensor)
    with torch.no_grad():
        return tensor.normal_(0.0, xavier_std(fan_in, fan_out, gain), generator=generator)


def _he_fan(tensor: torch.Tensor, mode: str) -> int:
    fan_in, fan_out = _fans(tensor)
    check.one_of("mode", mode, ("fan_in", "fan_out"))
    return fan_in if mode == "fan_in" else fan_out


def he_uniform_(
    tensor: torch.Tensor, mode: str = "fan_in", *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill a weight in place from U(-a, a) with He's variance 2 / n (n: fan-in or fan-out).

    Same numbers as ``torch.nn.init.kaiming_uniform_(tensor, mode=mode, nonlinearity="relu")``.
    """
    # a = sqrt(3) * sqrt(2 / n)
    a = math.sqrt(3.0) * he_std(_he_fan(tensor, mode))
    with torch.no_grad():
        return tensor.uniform_(-a, a, generator=generator)


def he_normal_(
    tensor: torch.Tensor, mode: str = "fan_in", *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill a weight in place from N(0, 2 / n), like torch's ``kaiming_normal_`` for ReLU."""
    std = he_std(_he_fan(tensor, mode))
    with torch.no_grad():
        return tensor.normal_(0.0, std, generator=generator)


def deep_mlp(
    in_features: int,
    width: int,
    depth: int,
    out_features: int,
    activation: str = "relu",
    *,
    init: Initializer | float | None = None,
) -> nn.Sequential:
    """A plain MLP ``(B, in_features) -> (B, out_features)``: ``depth`` hidden layers of ``width``.

    The layers come from :func:`dlbook.feedforward.mlp` with torch's default
    initialization; ``init``, an initializer such as :func:`he_normal_` or a
    standard deviation, redraws every weight and zeroes every bias.
    """
    in_features = check.positive_int("in_features", in_features)
    width = check.positive_int("width", width)
    depth = check.positive_int("depth", depth)
    out_features = check.positive_int("out_features", out_features)
    init = init if init is None or callable(init) else check.positive_float("init", init)
    net = mlp([in_features, *[width] * depth, out_features], activation)
    if init is None:
        return net
    for layer in net:
        if isinstance(layer, nn.Linear):
            if callable(init):
                init(layer.weight)
            else:
                nn.init.normal_(layer.weight, 0.0, init)
            nn.init.zeros_(layer.bias)
    return net


def layer_signals(
    model: nn.Sequential,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    record: tuple[type[nn.Module], ...] = (nn.Linear,),
) -> tuple[list[float], list[float]]:
    """Root mean square of each recorded layer's output h_l and of dL/dh_l, input side first.

    Runs ``model`` one child at a time on ``x`` (converted to the model's dtype),
    keeps the output of every child whose type is in ``record``, and
    backpropagates ``loss_fn(model(x), y)``; parameter gradients stay in ``.grad``.
    """
    _sequential("model", model)
    x = _like_model("x", x, model)
    check.tensor("y", y)
    _callable("loss_fn", loss_fn)
    _module_types("record", record)
    outputs = []
    h = x
    for child in model:
        h = child(h)
        if isinstance(child, record):
            h.retain_grad()
            outputs.append(h)
    if not outputs:
        raise ValueError(f"record={record} matched no layer of the model")
    model.zero_grad(set_to_none=True)
    loss_fn(h, y).backward()
    # RMS(v) = sqrt(mean(v^2))
    forward = [o.detach().pow(2).mean().sqrt().item() for o in outputs]
    backward = [o.grad.pow(2).mean().sqrt().item() for o in outputs]
    return forward, backward


def unit_spread(weight: torch.Tensor) -> float:
    """Largest difference between two rows (units) of a weight ``(d_out, d_in)``; 0 for copies."""
    check.expect_shape(check.floating("weight", weight), "O I", "weight")
    # max_{j, j', i} |W_ji - W_j'i| = max_i (max_j W_ji - min_j W_ji)
    return (weight.amax(dim=0) - weight.amin(dim=0)).max().item()


def collapse_copies(model: nn.Sequential, atol: float = 1e-12) -> nn.Sequential:
    """The width-1 MLP that computes what ``model`` does when each hidden layer's units are copies.

    ``model`` alternates ``nn.Linear`` layers and element-wise activations, as
    :func:`deep_mlp` builds it; every hidden unit must equal the first (weights
    and bias within ``atol``), or the collapse would change the function.
    """
    _sequential("model", model)
    atol = check.nonnegative_float("atol", atol)
    linears = [i for i, layer in enumerate(model) if isinstance(layer, nn.Linear)]
    if not linears:
        raise ValueError("model has no nn.Linear layer to collapse")
    layers: list[nn.Module] = []
    copied_input = False  # True once the layer below has been cut to its first unit
    for i, layer in enumerate(model):
        if not isinstance(layer, nn.Linear):
            layers.append(copy.deepcopy(layer))
            continue
        W = layer.weight.detach()  # (d_out, d_in)
        b = layer.bias.detach() if layer.bias is not None else None  # (d_out,)
        if copied_input:
            # d_in copies of one input h: sum_j W_kj h = (sum_j W_kj) h
            W = W.sum(dim=1, keepdim=True)  # (d_out, 1)
        hidden = i != linears[-1]
        if hidden:
            spread = max(unit_spread(W), 0.0 if b is None else unit_spread(b[:, None]))
            if spread > atol:
                raise ValueError(f"the units of layer {i} are not copies: they differ by "
                                 f"{spread:.1e} (atol={atol:.1e})")
            W, b = W[:1], None if b is None else b[:1]  # (1, d_in'), (1,)
        new = nn.Linear(W.shape[1], W.shape[0], bias=b is not None, device=W.device, dtype=W.dtype)
        with torch.no_grad():
            new.weight.copy_(W)
            if b is not None:
                new.bias.copy_(b)
        layers.append(new)
        copied_input = hidden
    return nn.Sequential(*layers)


def _sequential(name: str, model: object) -> nn.Sequential:
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"{name} must be an nn.Sequential, got {type(model).__name__}")
    return model


def _like_model(name: str, x: object, model: nn.Module) -> torch.Tensor:
    """``x`` in the dtype of the model's first parameter (float64 into float32 is converted)."""
    reference = next(model.parameters(), None)
    return check.floating(name, x) if reference is None else check.as_float_like(name, x, reference)


def _callable(name: str, fn: object) -> Callable:
    if not callable(fn):
        raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
    return fn


def _module_types(name: str, types: object) -> tuple[type, ...]:
    if (not isinstance(types, tuple) or not types
            or not all(isinstance(t, type) and issubclass(t, nn.Module) for t in types)):
        raise TypeError(f"{name} must be a non-empty tuple of nn.Module classes, got {types!r}")
    return types
