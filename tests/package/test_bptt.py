"""Tests for dlbook.bptt: the hand-written backward pass through time against autograd,
truncation, clipping against torch, the spectral-radius helper."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlbook.bptt import RNNCache, clip_grad_norm_, rnn_backward, rnn_forward, with_spectral_radius
from dlbook.rnn import Recurrent, RNNCell
from tests.helpers import check_against_torch, check_bad_inputs, check_gradient

SIZES = [(1, 1, 1, 1), (2, 5, 3, 4), (3, 12, 2, 6), (4, 7, 5, 3), (2, 30, 4, 8)]


def _inputs(B, T, D, H, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, T, D, generator=g), 0.5 * torch.randn(B, H, generator=g),
            torch.randn(H, D, generator=g) / D**0.5, torch.randn(H, H, generator=g) / H**0.5,
            0.1 * torch.randn(H, generator=g), 0.1 * torch.randn(H, generator=g),
            torch.randn(B, T, H, generator=g)]  # the last is the weighting that makes the loss


def _grads(x, h0, W_ih, W_hh, b_ih, b_hh, weights, truncate=None):
    h, cache = rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh)
    g = rnn_backward(weights, cache, truncate=truncate)  # L = sum(weights * h): h_bar = weights
    return [g.x, g.h0, g.weight_ih, g.weight_hh, g.bias_ih, g.bias_hh]


def _loss(x, h0, W_ih, W_hh, b_ih, b_hh, weights, truncate=None):
    h_t, total = h0, 0.0
    for t in range(x.shape[1]):
        if truncate is not None and t > 0 and t % truncate == 0:
            h_t = h_t.detach()  # truncated BPTT: no gradient into the previous chunk
        h_t = torch.tanh(x[:, t] @ W_ih.T + b_ih + h_t @ W_hh.T + b_hh)
        total = total + (weights[:, t] * h_t).sum()
    return total


@pytest.mark.parametrize("B, T, D, H", SIZES)
def test_forward_equals_torch_rnn(B, T, D, H):
    x, h0, W_ih, W_hh, b_ih, b_hh, _ = _inputs(B, T, D, H, seed=B + T)
    reference = nn.RNN(D, H, batch_first=True).double()
    reference.load_state_dict({"weight_ih_l0": W_ih, "weight_hh_l0": W_hh, "bias_ih_l0": b_ih, "bias_hh_l0": b_hh})
    check_against_torch(lambda x, h0: rnn_forward(x, h0, W_ih.double(), W_hh.double(), b_ih.double(), b_hh.double())[0],
                        lambda x, h0: reference(x, h0[None])[0], [x, h0])


@pytest.mark.parametrize("B, T, D, H", SIZES)
def test_bptt_equals_autograd(B, T, D, H):
    inputs = _inputs(B, T, D, H, seed=T)
    check_gradient(_loss, _grads, inputs, wrt=range(6))


@pytest.mark.parametrize("truncate", [1, 2, 3, 5, 100])
def test_truncated_bptt_equals_autograd_with_detached_chunks(truncate):
    inputs = _inputs(3, 11, 2, 5, seed=truncate)
    check_gradient(lambda *a: _loss(*a, truncate=truncate), lambda *a: _grads(*a, truncate=truncate),
                   inputs, wrt=range(6))
    full = _grads(*[t.double() for t in inputs])
    cut = _grads(*[t.double() for t in inputs], truncate=truncate)
    if truncate < 11:  # a real cut changes the recurrent gradient
        assert not torch.allclose(full[3], cut[3])


def test_total_hidden_gradient_is_dL_dh():
    x, h0, W_ih, W_hh, b_ih, b_hh, w = [t.double() for t in _inputs(2, 6, 3, 4)]
    h, cache = rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh)
    ours = rnn_backward(w, cache).h
    # autograd: perturb each h_t by a zero-valued leaf and read its gradient
    eps = torch.zeros(2, 6, 4, dtype=torch.float64, requires_grad=True)
    h_t, total = h0, 0.0
    for t in range(6):
        h_t = torch.tanh(x[:, t] @ W_ih.T + b_ih + h_t @ W_hh.T + b_hh) + eps[:, t]
        total = total + (w[:, t] * h_t).sum()
    total.backward()
    torch.testing.assert_close(ours, eps.grad, atol=1e-12, rtol=1e-10)


def test_hand_forward_equals_our_recurrent_layer():
    torch.manual_seed(0)
    cell = RNNCell(3, 5).double()
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    ours, _ = Recurrent(cell)(x)
    p = {k: v.detach() for k, v in cell.named_parameters()}
    hand, _ = rnn_forward(x, torch.zeros(2, 5, dtype=torch.float64), p["weight_ih"], p["weight_hh"],
                          p["bias_ih"], p["bias_hh"])
    torch.testing.assert_close(hand, ours.detach(), atol=1e-14, rtol=0)


@pytest.mark.parametrize("max_norm, scale", [(1.0, 10.0), (1.0, 0.01), (0.3, 1.0), (5.0, 3.0)])
def test_clip_grad_norm_equals_torch(max_norm, scale):
    g = torch.Generator().manual_seed(1)
    grads = [scale * torch.randn(4, 3, generator=g, dtype=torch.float64), scale * torch.randn(7, generator=g, dtype=torch.float64)]
    params = [nn.Parameter(torch.zeros_like(t)) for t in grads]
    for p, t in zip(params, grads):
        p.grad = t.clone()
    torch_norm = nn.utils.clip_grad_norm_(params, max_norm)
    ours = [t.clone() for t in grads]
    our_norm = clip_grad_norm_(ours, max_norm)
    torch.testing.assert_close(our_norm, torch_norm)
    for a, p in zip(ours, params):
        torch.testing.assert_close(a, p.grad, atol=1e-15, rtol=1e-13)
    after = torch.linalg.vector_norm(torch.cat([t.flatten() for t in ours]))
    assert after <= max_norm + 1e-9
    if our_norm <= max_norm:
        for a, b in zip(ours, grads):
            assert torch.allclose(a, b, rtol=1e-5)  # nothing to clip: (almost) unchanged


@pytest.mark.parametrize("radius", [0.5, 1.0, 1.7])
def test_with_spectral_radius(radius):
    W = torch.randn(12, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    scaled = with_spectral_radius(W, radius)
    assert torch.linalg.eigvals(scaled).abs().max().item() == pytest.approx(radius, rel=1e-10)
    # the same directions: a positive multiple of W
    ratio = scaled / W
    assert torch.allclose(ratio, ratio[0, 0].expand_as(ratio)) and ratio[0, 0] > 0


def test_bad_inputs():
    x, h0, W_ih, W_hh, b_ih, b_hh, w = _inputs(2, 5, 3, 4)
    h, cache = rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh)
    check_bad_inputs([
        (lambda: rnn_forward(x[0], h0, W_ih, W_hh, b_ih, b_hh), ValueError, "x"),
        (lambda: rnn_forward(x.long(), h0, W_ih, W_hh, b_ih, b_hh), TypeError, "x"),
        (lambda: rnn_forward(x[:, :0], h0, W_ih, W_hh, b_ih, b_hh), ValueError, "x"),
        (lambda: rnn_forward(x.tolist(), h0, W_ih, W_hh, b_ih, b_hh), TypeError, "x"),
        (lambda: rnn_forward(x, h0[:1], W_ih, W_hh, b_ih, b_hh), ValueError, "h0"),
        (lambda: rnn_forward(x, None, W_ih, W_hh, b_ih, b_hh), TypeError, "h0"),
        (lambda: rnn_forward(x, h0, W_ih.T, W_hh, b_ih, b_hh), ValueError, "weight_ih"),
        (lambda: rnn_forward(x, h0, W_ih, W_hh[:3], b_ih, b_hh), ValueError, "weight_hh"),
        (lambda: rnn_forward(x, h0, W_ih, W_hh, b_ih[:3], b_hh), ValueError, "bias_ih"),
        (lambda: rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh[None]), ValueError, "bias_hh"),
        (lambda: rnn_backward(w[:, :4], cache), ValueError, "h_bar"),
        (lambda: rnn_backward(w.long(), cache), TypeError, "h_bar"),
        (lambda: rnn_backward(w, (h, x)), TypeError, "cache"),
        (lambda: rnn_backward(w, cache, truncate=0), ValueError, "truncate"),
        (lambda: rnn_backward(w, cache, truncate=2.0), TypeError, "truncate"),
        (lambda: clip_grad_norm_([], 1.0), TypeError, "grads"),
        (lambda: clip_grad_norm_(torch.ones(3), 1.0), TypeError, "grads"),
        (lambda: clip_grad_norm_([torch.ones(3, dtype=torch.long)], 1.0), TypeError, "grads[0]"),
        (lambda: clip_grad_norm_([torch.ones(3)], 0.0), ValueError, "max_norm"),
        (lambda: clip_grad_norm_([torch.ones(3)], float("inf")), ValueError, "max_norm"),
        (lambda: with_spectral_radius(torch.randn(3, 4), 1.0), ValueError, "W"),
        (lambda: with_spectral_radius(torch.full((3, 3), float("nan")), 1.0), ValueError, "W"),
        (lambda: with_spectral_radius(torch.randn(3, 3), -1.0), ValueError, "radius"),
        (lambda: with_spectral_radius(torch.triu(torch.ones(3, 3), diagonal=1), 1.0), ValueError, "W"),
    ])
    assert isinstance(cache, RNNCache)
