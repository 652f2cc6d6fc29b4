"""dlbook.attention: scaled dot-product attention against torch's, masks, additive and
multi-head attention (against nn.MultiheadAttention), positions, kernel regression, bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlbook.attention import (AdditiveAttention, MultiHeadAttention, causal_mask, masked_softmax,
                              nadaraya_watson, length_mask, scaled_dot_product_attention,
                              sinusoidal_positions)
from tests.helpers import check_against_torch, check_bad_inputs


def _random_mask(shape, g, p=0.6):
    """A random bool mask (True = may attend) with at least one True per row."""
    mask = torch.rand(shape, generator=g) < p
    first = torch.zeros(shape, dtype=torch.bool)
    first[..., torch.randint(shape[-1], (), generator=g)] = True
    return mask | first


# (batch dims, T_q, T_k, d_k, d_v)
SHAPES = [((), 1, 1, 1, 1), ((2,), 3, 5, 4, 6), ((3, 2), 4, 4, 8, 2), ((2,), 6, 2, 3, 3), ((1, 2, 2), 5, 7, 2, 5)]


@pytest.mark.parametrize("batch, T_q, T_k, d_k, d_v", SHAPES)
@pytest.mark.parametrize("masking", ["none", "random", "causal", "broadcast"])
def test_attention_equals_torch_forward_and_gradients(batch, T_q, T_k, d_k, d_v, masking):
    g = torch.Generator().manual_seed(T_q * 100 + T_k * 10 + d_k)
    q, k, v = (torch.randn(*batch, T, d, generator=g) for T, d in ((T_q, d_k), (T_k, d_k), (T_k, d_v)))
    if masking == "none":
        mask = None
    elif masking == "random":
        mask = _random_mask((*batch, T_q, T_k), g)
    elif masking == "causal":  # query i sees keys j <= i + (T_k - T_q), never an empty row
        mask = torch.ones(T_q, T_k, dtype=torch.bool).tril(T_k - T_q) | (torch.arange(T_k) == 0)
    else:  # one key-padding row per batch entry, broadcast over the queries
        mask = _random_mask((*batch, 1, T_k), g)
    check_against_torch(
        lambda q, k, v: scaled_dot_product_attention(q, k, v, mask)[0],
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
        [q, k, v],
    )


def test_weights_are_a_distribution_that_respects_the_mask():
    g = torch.Generator().manual_seed(1)
    q, k, v = torch.randn(3, 4, 5, generator=g), torch.randn(3, 6, 5, generator=g), torch.randn(3, 6, 2, generator=g)
    mask = _random_mask((3, 4, 6), g, p=0.4)
    out, w = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 4))
    assert (w[~mask] == 0).all() and (w[mask] > 0).all()
    torch.testing.assert_close(out, w @ v)
    # masked keys do not matter: changing them leaves the output alone
    k2, v2 = k.clone(), v.clone()
    hidden = ~mask.any(1)  # keys no query of that batch entry may see, (3, 6)
    k2[hidden] += 100.0
    v2[hidden] -= 50.0
    torch.testing.assert_close(scaled_dot_product_attention(q, k2, v2, mask)[0], out)


def test_weights_equal_the_softmax_formula_by_hand():
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    v = torch.tensor([[1.0], [2.0], [3.0]])
    _, w = scaled_dot_product_attention(q, k, v)
    s = torch.tensor([1.0, 0.0, 2.0]) / math.sqrt(2)
    torch.testing.assert_close(w[0], torch.exp(s) / torch.exp(s).sum())


def test_fully_masked_row_gives_zeros_like_torch_and_no_nan_gradient():
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    mask = torch.ones(2, 3, 3, dtype=torch.bool)
    mask[0, 1] = False  # query 1 of batch entry 0 may attend to nothing
    out, w = scaled_dot_product_attention(q, k, v, mask)
    assert (w[0, 1] == 0).all() and (out[0, 1] == 0).all()
    torch.testing.assert_close(w[0, 0].sum(), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    out.sum().backward()
    for x in (q, k, v):
        assert torch.isfinite(x.grad).all()
    assert (q.grad[0, 1] == 0).all()
    assert (masked_softmax(torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.bool)) == 0).all()


def test_causal_mask_and_padding_mask():
    m = causal_mask(4)
    assert m.dtype == torch.bool and m.tolist() == [[i >= j for j in range(4)] for i in range(4)]
    p = length_mask(torch.tensor([3, 1, 0]), 4)
    assert p.tolist() == [[True] * 3 + [False], [True] + [False] * 3, [False] * 4]
    # causal self-attention: output at step t does not change when later steps change
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 6, 4, generator=g)
    y = x.clone()
    y[:, 4:] = torch.randn(1, 2, 4, generator=g)
    a = scaled_dot_product_attention(x, x, x, causal_mask(6))[0]
    b = scaled_dot_product_attention(y, y, y, causal_mask(6))[0]
    torch.testing.assert_close(a[:, :4], b[:, :4])
    assert not torch.allclose(a[:, 4:], b[:, 4:])


def test_additive_attention_scores_by_hand_and_masks():
    torch.manual_seed(0)
    att = AdditiveAttention(3, 5, 7).double()
    g = torch.Generator().manual_seed(4)
    q = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    k = torch.randn(2, 6, 5, generator=g, dtype=torch.float64)
    v = torch.randn(2, 6, 2, generator=g, dtype=torch.float64)
    mask = _random_mask((2, 1, 6), g)
    out, w = att(q, k, v, mask)
    assert out.shape == (2, 4, 2) and w.shape == (2, 4, 6)
    W_q, W_k, v_a = att.W_q.weight, att.W_k.weight, att.v.weight[0]
    for b in range(2):
        for i in range(4):
            s = torch.stack([v_a @ torch.tanh(W_q @ q[b, i] + W_k @ k[b, j]) for j in range(6)])
            s = s.masked_fill(~mask[b, 0], float("-inf"))
            torch.testing.assert_close(w[b, i], torch.softmax(s, 0))
    torch.testing.assert_close(out, w @ v)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, dtype=torch.float64))
    # gradients reach every parameter
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in att.parameters())


def _torch_mha(E, h, bias=True, seed=0):
    torch.manual_seed(seed)
    m = nn.MultiheadAttention(E, h, batch_first=True, bias=bias).double()
    with torch.no_grad():  # torch zeroes its biases at init: make them matter
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m


# (B, T_q, T_k, E, h, self-attention)
MHA_CASES = [(2, 5, 5, 8, 2, True), (3, 4, 7, 12, 3, False), (1, 1, 3, 4, 4, False), (2, 6, 6, 6, 1, True)]


@pytest.mark.parametrize("B, T_q, T_k, E, h, self_attention", MHA_CASES)
@pytest.mark.parametrize("masking", ["none", "causal", "padding", "per-head"])
@pytest.mark.parametrize("bias", [True, False])
def test_multi_head_equals_torch_forward_and_gradients(B, T_q, T_k, E, h, self_attention, masking, bias):
    theirs = _torch_mha(E, h, bias, seed=B + T_q + E)
    ours = MultiHeadAttention.from_torch(theirs)
    g = torch.Generator().manual_seed(B * 10 + T_k)
    x = torch.randn(B, T_q, E, generator=g)
    kv = x if self_attention else torch.randn(B, T_k, E, generator=g)
    if masking == "none":
        ours_mask = torch_kwargs = None
    elif masking == "causal":
        ours_mask = torch.ones(T_q, T_k, dtype=torch.bool).tril(T_k - T_q) | (torch.arange(T_k) == 0)
        torch_kwargs = {"attn_mask": ~ours_mask}  # torch: True = not allowed
    elif masking == "padding":
        keep = _random_mask((B, T_k), g)
        ours_mask = keep[:, None, None, :]  # (B, 1, 1, T_k)
        torch_kwargs = {"key_padding_mask": ~keep}
    else:
        ours_mask = _random_mask((B, h, T_q, T_k), g)
        torch_kwargs = {"attn_mask": ~ours_mask.reshape(B * h, T_q, T_k)}
    # values and input gradients; parameter gradients are compared below
    def theirs_fn(q, k):
        return theirs(q, k, k, need_weights=False, **(torch_kwargs or {}))[0]

    check_against_torch(lambda q, k: ours(q, k, k, ours_mask), theirs_fn, [x, kv])
    # parameter gradients: ours re-packed into torch's layout equal torch's
    q, k = x.double(), kv.double()
    ours.zero_grad()
    theirs.zero_grad()
    weights = torch.randn(B, T_q, E, generator=g, dtype=torch.float64)
    (ours(q, k, k, ours_mask) * weights).sum().backward()
    (theirs(q, k, k, **(torch_kwargs or {}))[0] * weights).sum().backward()
    grad_in = torch.cat([ours.q_proj.weight.grad, ours.k_proj.weight.grad, ours.v_proj.weight.grad])
    torch.testing.assert_close(grad_in, theirs.in_proj_weight.grad)
    torch.testing.assert_close(ours.out_proj.weight.grad, theirs.out_proj.weight.grad)
    if bias:
        grad_b = torch.cat([ours.q_proj.bias.grad, ours.k_proj.bias.grad, ours.v_proj.bias.grad])
        torch.testing.assert_close(grad_b, theirs.in_proj_bias.grad)
    # the kept weights are torch's per-head weights
    _, w = theirs(q, k, k, average_attn_weights=False, **(torch_kwargs or {}))
    torch.testing.assert_close(ours.last_weights, w.detach())
    assert ours.last_weights.shape == (B, h, T_q, T_k) and not ours.last_weights.requires_grad


def test_multi_head_shapes_and_from_torch_copies():
    theirs = nn.MultiheadAttention(8, 2, batch_first=True)
    ours = MultiHeadAttention.from_torch(theirs)
    assert ours.embed_dim == 8 and ours.num_heads == 2 and ours.head_dim == 4
    assert ours.q_proj.weight.data_ptr() != theirs.in_proj_weight.data_ptr()  # a copy, not a view
    y = MultiHeadAttention(8, 4)(torch.randn(3, 5, 8), torch.randn(3, 2, 8), torch.randn(3, 2, 8))
    assert isinstance(y, torch.Tensor) and y.shape == (3, 5, 8)


def test_sinusoidal_positions_equal_the_formula():
    length, dim = 50, 16
    pe = sinusoidal_positions(length, dim)
    assert pe.shape == (length, dim) and pe.dtype == torch.float32
    for p in (0, 1, 7, 49):
        for i in range(dim // 2):
            angle = p / 10000 ** (2 * i / dim)
            assert math.isclose(pe[p, 2 * i].item(), math.sin(angle), abs_tol=1e-6)
            assert math.isclose(pe[p, 2 * i + 1].item(), math.cos(angle), abs_tol=1e-6)
    # a fixed offset is a rotation: PE[p + k] is a linear function of PE[p], the same for every p
    pe64 = sinusoidal_positions(length, dim, dtype=torch.float64)
    k = 3
    # on each (sin, cos) pair the map is the rotation by k w_i, w_i = 10000^(-2i/dim):
    # [sin(a + k w), cos(a + k w)] = [sin a, cos a] @ [[cos k w, -sin k w], [sin k w, cos k w]]
    M = torch.zeros(dim, dim, dtype=torch.float64)
    for i in range(dim // 2):
        w = k / 10000 ** (2 * i / dim)
        M[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor(
            [[math.cos(w), -math.sin(w)], [math.sin(w), math.cos(w)]], dtype=torch.float64)
    torch.testing.assert_close(pe64[:-k] @ M, pe64[k:], atol=1e-12, rtol=0)


def test_nadaraya_watson_is_a_kernel_weighted_average():
    g = torch.Generator().manual_seed(5)
    x, y = torch.rand(20, generator=g, dtype=torch.float64), torch.randn(20, generator=g, dtype=torch.float64)
    xq = torch.linspace(0, 1, 7, dtype=torch.float64)
    pred, w = nadaraya_watson(xq, x, y, bandwidth=0.2)
    K = torch.exp(-((xq[:, None] - x[None, :]) / 0.2) ** 2 / 2)
    torch.testing.assert_close(pred, (K @ y) / K.sum(1))
    torch.testing.assert_close(w.sum(1), torch.ones(7, dtype=torch.float64))
    # a tiny bandwidth interpolates, a huge one predicts the mean
    torch.testing.assert_close(nadaraya_watson(x, x, y, bandwidth=1e-4)[0], y)
    torch.testing.assert_close(nadaraya_watson(xq, x, y, bandwidth=1e4)[0], y.mean().expand(7))
    # a learnable bandwidth gets a gradient; the leave-one-out mask removes the diagonal
    h = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    pred, w = nadaraya_watson(x, x, y, h, mask=~torch.eye(20, dtype=torch.bool))
    assert (w.diagonal() == 0).all()
    ((pred - y) ** 2).mean().backward()
    assert h.grad is not None and h.grad != 0


def test_bad_inputs():
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 6)
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(2, 3, 8)
    check_bad_inputs([
        (lambda: scaled_dot_product_attention(q, torch.randn(2, 5, 3), v), ValueError, "d_k"),
        (lambda: scaled_dot_product_attention(q, k, torch.randn(2, 4, 6)), ValueError, "T_k"),
        (lambda: scaled_dot_product_attention(q, k, v, torch.ones(2, 3, 4, dtype=torch.bool)), ValueError, "mask"),
        (lambda: scaled_dot_product_attention(q, k, v, torch.ones(3, 5)), TypeError, "mask"),
        (lambda: scaled_dot_product_attention(q.long(), k, v), TypeError, "query"),
        (lambda: scaled_dot_product_attention(torch.randn(4), k, v), ValueError, "query"),
        (lambda: causal_mask(0), ValueError, "T"),
        (lambda: length_mask(torch.tensor([1, 5]), 4), ValueError, "lengths"),
        (lambda: length_mask(torch.tensor([1.0]), 4), TypeError, "lengths"),
        (lambda: sinusoidal_positions(10, 7), ValueError, "dim"),
        (lambda: sinusoidal_positions(0, 8), ValueError, "length"),
        (lambda: MultiHeadAttention(10, 3), ValueError, "num_heads"),
        (lambda: mha(torch.randn(2, 3, 6), x, x), ValueError, "query"),
        (lambda: mha(x, torch.randn(2, 4, 8), x), ValueError, "value"),
        (lambda: mha(x, x, x, torch.ones(3, 3, 3, dtype=torch.bool)), ValueError, "mask"),
        (lambda: MultiHeadAttention.from_torch(nn.MultiheadAttention(8, 2)), ValueError, "batch_first"),
        (lambda: MultiHeadAttention.from_torch(nn.Linear(2, 2)), TypeError, "MultiheadAttention"),
        (lambda: AdditiveAttention(3, 4, 5)(torch.randn(2, 1, 4), k, v), ValueError, "query"),
        (lambda: nadaraya_watson(torch.rand(3), torch.rand(4), torch.rand(5)), ValueError, "y_train"),
        (lambda: nadaraya_watson(torch.rand(3), torch.rand(4), torch.rand(4), bandwidth=0.0), ValueError, "bandwidth"),
    ])
