"""The one helper every "ours vs torch" test uses (STYLE.md, habit 6).

``check_against_torch`` runs a from-scratch function and its PyTorch reference
on the same float64 inputs, then compares the outputs and the gradients of a
random linear function of the output with respect to every input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

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
