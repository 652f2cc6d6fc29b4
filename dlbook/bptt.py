"""Backpropagation through time by hand (Part 9, "Backpropagation through time").

:func:`rnn_forward` unrolls the vanilla tanh RNN of :class:`dlbook.rnn.RNNCell`
over a sequence and keeps what the backward pass needs; :func:`rnn_backward`
walks the sequence backwards, without autograd, and returns the gradient of
every input and weight (optionally truncated to chunks of ``truncate`` steps).
:func:`clip_grad_norm_` rescales gradients by their global norm, as
``torch.nn.utils.clip_grad_norm_`` does, and :func:`with_spectral_radius`
scales a recurrent matrix for the vanishing/exploding experiment. The names
follow the page: ``h_bar`` is the adjoint dL/dh.

>>> x, h0 = torch.randn(2, 5, 3), torch.zeros(2, 4)
>>> W_ih, W_hh, b_ih, b_hh = torch.randn(4, 3), torch.randn(4, 4), torch.zeros(4), torch.zeros(4)
>>> h, cache = rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh)
>>> rnn_backward(torch.ones_like(h), cache).weight_hh.shape
torch.Size([4, 4])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dlbook import _checks as check

__all__ = ["RNNCache", "RNNGradients", "rnn_forward", "rnn_backward", "clip_grad_norm_",
           "with_spectral_radius"]


@dataclass
class RNNCache:
    """What the backward pass needs from the forward pass."""

    x: torch.Tensor  # (B, T, D) the inputs
    h0: torch.Tensor  # (B, H) the initial state
    h: torch.Tensor  # (B, T, H) every hidden state h_1 .. h_T
    weight_ih: torch.Tensor  # (H, D) W_ih
    weight_hh: torch.Tensor  # (H, H) W_hh


@dataclass
class RNNGradients:
    """dL/d(every input of rnn_forward), and dL/dh_t in total (through later steps too)."""

    x: torch.Tensor  # (B, T, D)
    h0: torch.Tensor  # (B, H)
    weight_ih: torch.Tensor  # (H, D)
    weight_hh: torch.Tensor  # (H, H)
    bias_ih: torch.Tensor  # (H,)
    bias_hh: torch.Tensor  # (H,)
    h: torch.Tensor  # (B, T, H)


def rnn_forward(
    x: torch.Tensor,
    h0: torch.Tensor,
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_ih: torch.Tensor,
    bias_hh: torch.Tensor,
) -> tuple[torch.Tensor, RNNCache]:
    """Every hidden state of the tanh RNN, and the cache for :func:`rnn_backward`.

    Shapes: x (B, T, D), h0 (B, H), weight_ih (H, D), weight_hh (H, H), biases (H,) -> h (B, T, H).
    """
    B, T, D = check.expect_shape(check.floating("x", x), "B T D", "x").values()
    H = check.expect_shape(weight_hh, "H H", "weight_hh")["H"]
    check.expect_shape(h0, "B H", "h0", B=B, H=H)
    check.expect_shape(weight_ih, "H D", "weight_ih", H=H, D=D)
    check.expect_shape(bias_ih, "H", "bias_ih", H=H)
    check.expect_shape(bias_hh, "H", "bias_hh", H=H)
    h_t, states = h0, []
    for t in range(T):
        # h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
        h_t = torch.tanh(x[:, t] @ weight_ih.T + bias_ih + h_t @ weight_hh.T + bias_hh)  # (B, H)
        states.append(h_t)
    h = torch.stack(states, dim=1)  # (B, T, H)
    return h, RNNCache(x, h0, h, weight_ih, weight_hh)


def rnn_backward(h_bar: torch.Tensor, cache: RNNCache, *, truncate: int | None = None) -> RNNGradients:
    """Backpropagation through time: all gradients, given h_bar = dL/dh_t through the outputs at step t.

    With ``truncate=k`` the gradient stops at the chunk boundaries t = k, 2k, ...
    (as if h_{t-1} were detached there): truncated BPTT.
    Shapes: h_bar (B, T, H), like cache.h.
    """
    if not isinstance(cache, RNNCache):
        raise TypeError(f"cache must be the RNNCache from rnn_forward, got {type(cache).__name__}")
    check.expect_shape(check.floating("h_bar", h_bar), "B T H", "h_bar", **dict(zip("BTH", cache.h.shape)))
    if truncate is not None:
        truncate = check.positive_int("truncate", truncate)
    T = cache.h.shape[1]
    a_bar = torch.zeros_like(cache.h)  # (B, T, H): dL/da_t, a_t the pre-activation
    h_total = torch.zeros_like(cache.h)  # (B, T, H): dL/dh_t through every path
    carry = torch.zeros_like(cache.h0)  # (B, H): dL/dh_t arriving from step t + 1
    for t in reversed(range(T)):
        # dL/dh_t = h_bar_t + (dL/da_{t+1}) W_hh
        h_total[:, t] = h_bar[:, t] + carry
        # dL/da_t = dL/dh_t * (1 - h_t^2), since tanh' = 1 - tanh^2
        a_bar[:, t] = h_total[:, t] * (1 - cache.h[:, t] ** 2)
        # the part of dL/dh_{t-1} that passes through step t
        carry = a_bar[:, t] @ cache.weight_hh  # (B, H) @ (H, H)
        if truncate is not None and t % truncate == 0 and t > 0:
            carry = torch.zeros_like(carry)
    h_prev = torch.cat([cache.h0[:, None], cache.h[:, :-1]], dim=1)  # (B, T, H): h_{t-1}
    return RNNGradients(
        x=a_bar @ cache.weight_ih,  # dL/dx_t = (dL/da_t) W_ih   (B, T, H) @ (H, D)
        h0=carry,
        weight_ih=torch.einsum("bth,btd->hd", a_bar, cache.x),  # sum_t (dL/da_t)^T x_t
        weight_hh=torch.einsum("bth,btk->hk", a_bar, h_prev),  # sum_t (dL/da_t)^T h_{t-1}
        bias_ih=a_bar.sum(dim=(0, 1)),  # sum_t dL/da_t
        bias_hh=a_bar.sum(dim=(0, 1)),
        h=h_total,
    )


def clip_grad_norm_(grads: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale ``grads`` in place so their global L2 norm is at most ``max_norm``; return the norm before.

    The same rule as ``torch.nn.utils.clip_grad_norm_``: g <- g * min(1, max_norm / (norm + 1e-6)).
    """
    if isinstance(grads, torch.Tensor) or not isinstance(grads, Sequence) or not grads:
        raise TypeError(f"grads must be a non-empty list of tensors, got {type(grads).__name__}")
    for i, g in enumerate(grads):
        check.floating(f"grads[{i}]", g)
    max_norm = check.positive_float("max_norm", max_norm)
    # ||g|| = sqrt(sum over every tensor of its squared norm)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale)
    return norm


def with_spectral_radius(W: torch.Tensor, radius: float) -> torch.Tensor:
    """``W`` scaled so that its largest absolute eigenvalue is ``radius``. Shapes: (H, H) -> (H, H)."""
    check.expect_shape(check.finite("W", W), "H H", "W")
    radius = check.positive_float("radius", radius)
    current = torch.linalg.eigvals(W).abs().max().item()
    if current == 0:
        raise ValueError("W has spectral radius 0 (it is nilpotent): it cannot be rescaled")
    return W * (radius / current)
