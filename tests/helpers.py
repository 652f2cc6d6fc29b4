"""The one helper every "ours vs torch" test uses (STYLE.md, habit 6).

``check_against_torch`` runs a from-scratch function and its PyTorch reference
on the same float64 inputs, then compares the outputs and the gradients of a
random linear function of the output with respect to every input.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import torch

# What a reader must never see in shown package code: reST roles and directives,
# and TeX commands (equations in comments are written in plain text).
RAW_MARKUP = re.compile(
    r"(\.\. math::|:(?:math|func|class|meth|data|mod|attr):`|``"
    r"|\\(?:frac|sum|prod|partial|mathbf|mathcal|mathrm|operatorname|odot|cdot|sqrt|nabla|left|right"
    r"|hat|tilde|top|log|exp|text|begin|end|alpha|beta|gamma|sigma|lambda|epsilon|eta|theta)\b)"
)

Fn = Callable[..., torch.Tensor]


def check_against_torch(
    ours: Fn,
    reference: Fn,
    inputs: Sequence[torch.Tensor],
    *,
    atol: float = 1e-10,
    rtol: float = 1e-8,
    grad: bool = True,
    seed: int = 0,
) -> None:
    """Assert ``ours(*inputs)`` equals ``reference(*inputs)``, values and gradients.

    Inputs are cast to float64 (integer tensors are left alone) and cloned for
    each side, so neither function can see the other's graph.
    """
    def prepare() -> list[torch.Tensor]:
        out = []
        for t in inputs:
            t = t.detach().clone()
            if t.is_floating_point():
                t = t.double().requires_grad_(grad)
            out.append(t)
        return out

    a_in, b_in = prepare(), prepare()
    a, b = ours(*a_in), reference(*b_in)
    assert a.shape == b.shape, f"output shapes differ: ours {tuple(a.shape)}, torch {tuple(b.shape)}"
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol, msg=lambda m: f"forward differs: {m}")
    if not grad:
        return
    # A random weighting of the outputs exercises every output's gradient path.
    weights = torch.randn(a.shape, dtype=a.dtype, generator=torch.Generator().manual_seed(seed))
    (a * weights).sum().backward()
    (b * weights).sum().backward()
    for i, (x, y) in enumerate(zip(a_in, b_in)):
        if x.is_floating_point():
            assert x.grad is not None, f"no gradient reached input {i} in our version"
            torch.testing.assert_close(
                x.grad, y.grad, atol=atol, rtol=rtol, msg=lambda m, i=i: f"gradient of input {i} differs: {m}"
            )


def check_gradient(
    loss: Callable[..., torch.Tensor],
    by_hand: Callable[..., torch.Tensor | Sequence[torch.Tensor]],
    inputs: Sequence[torch.Tensor],
    *,
    wrt: Sequence[int] | None = None,
    atol: float = 1e-10,
    rtol: float = 1e-8,
) -> None:
    """Assert a hand-derived gradient equals autograd's, in float64.

    ``loss(*inputs)`` returns a scalar; ``by_hand(*inputs)`` returns its gradient
    with respect to ``inputs[i]`` for each ``i`` in ``wrt`` (all floating inputs by
    default), one tensor or a sequence in that order.
    """
    cast = [t.detach().clone().double() if t.is_floating_point() else t for t in inputs]
    if wrt is None:
        wrt = [i for i, t in enumerate(cast) if t.is_floating_point()]
    leaves = [t.requires_grad_(i in wrt) if t.is_floating_point() else t for i, t in enumerate(cast)]
    value = loss(*leaves)
    assert value.dim() == 0, f"loss must return a scalar, got shape {tuple(value.shape)}"
    autograd = torch.autograd.grad(value, [leaves[i] for i in wrt])
    with torch.no_grad():
        hand = by_hand(*[t.detach() for t in leaves])
    hand = [hand] if isinstance(hand, torch.Tensor) else list(hand)
    assert len(hand) == len(autograd), f"by_hand gave {len(hand)} gradients, expected {len(autograd)}"
    for i, a, h in zip(wrt, autograd, hand):
        assert h.shape == a.shape, f"gradient of input {i}: shape {tuple(h.shape)} by hand, {tuple(a.shape)} by autograd"
        torch.testing.assert_close(h.double(), a, atol=atol, rtol=rtol,
                                   msg=lambda m, i=i: f"hand gradient of input {i} differs from autograd: {m}")


def check_bad_inputs(cases: Sequence[tuple[Callable[[], object], type[Exception], str]]) -> None:
    """Assert each ``call()`` raises ``error`` with ``name`` in its message.

    The table form keeps one bad-input test per module readable: a row is
    ``(lambda: f(bad), ValueError, "argument name")``.
    """
    import pytest

    for call, error, name in cases:
        with pytest.raises(error) as info:
            call()
        assert name in str(info.value), f"message {str(info.value)!r} does not name {name!r}"
