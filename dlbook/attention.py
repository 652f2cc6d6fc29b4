"""Attention: soft look-up of values by query-key scores (Part 11, "Attention mechanisms").

The chapter starts from :func:`nadaraya_watson` kernel regression, attention with
a fixed score, then writes the two learned scores: :class:`AdditiveAttention`
(Bahdanau) and :func:`scaled_dot_product_attention`, which the tests prove equal to
``torch.nn.functional.scaled_dot_product_attention``. Masks are boolean and True
where a query may attend to a key (:func:`causal_mask`, :func:`length_mask`),
the convention of torch's functional attention. :class:`MultiHeadAttention` and
:func:`sinusoidal_positions` are the transformer's pieces; the later chapters of
this part use them, and ``MultiHeadAttention.from_torch`` loads the weights of a
``torch.nn.MultiheadAttention``.

A query whose mask row is all False attends to nothing: its weights are all zero
and its output is the zero vector (torch's functional attention does the same),
never NaN.

>>> q, k, v = torch.randn(2, 3, 8), torch.randn(2, 5, 8), torch.randn(2, 5, 4)
>>> out, weights = scaled_dot_product_attention(q, k, v, mask=causal_mask(5)[:3])
>>> out.shape, weights.shape
(torch.Size([2, 3, 4]), torch.Size([2, 3, 5]))
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dlbook import _checks as check

__all__ = [
    "masked_softmax", "scaled_dot_product_attention", "causal_mask", "length_mask",
    "nadaraya_watson", "AdditiveAttention", "MultiHeadAttention", "sinusoidal_positions",
]


def _mask(mask: object, scores_shape: torch.Size) -> torch.Tensor:
    """``mask`` if it is a bool tensor that broadcasts to the scores' shape (..., T_q, T_k)."""
    mask = check.tensor("mask", mask)
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor, True where a query may attend to a key, got {mask.dtype}")
    try:
        shape = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        shape = None
    if shape != scores_shape:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to the attention "
                         f"scores' shape (..., T_q, T_k) = {tuple(scores_shape)}")
    return mask


def _check_qkv(query: object, key: object, value: object, *, query_dim: int | None = None,
               key_dim: int | None = None, same_d_k: bool = False) -> None:
    """Floating tensors of shape (..., T, d), keys and values of one length T_k, and (for a
    dot product, same_d_k) queries and keys of one size d_k."""
    for name, x, dim in (("query", query, query_dim), ("key", key, key_dim), ("value", value, None)):
        check.floating(name, x)
        if x.dim() < 2 or (dim is not None and x.shape[-1] != dim):
            raise ValueError(f"expected {name} of shape (..., T, {dim or 'd'}), got {tuple(x.shape)}")
    if same_d_k and query.shape[-1] != key.shape[-1]:
        raise ValueError(f"query and key must share d_k: query {tuple(query.shape)}, key {tuple(key.shape)}")
    if value.shape[-2] != key.shape[-2]:
        raise ValueError(f"key and value must share T_k: key {tuple(key.shape)}, value {tuple(value.shape)}")


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax over the last axis, restricted to the entries where ``mask`` is True.

    Shapes: scores (..., T_q, T_k), mask bool broadcastable to it -> weights (..., T_q, T_k).
    A row with no True entry gets all-zero weights (and zero gradient), not NaN.
    """
    scores = check.floating("scores", scores)
    if mask is None:
        return torch.softmax(scores, dim=-1)
    mask = _mask(mask, scores.shape)
    # a_ij = exp(s_ij) / sum_{j' allowed} exp(s_ij'), and a_ij = 0 where j is not allowed
    scores = scores.masked_fill(~mask, float("-inf"))
    # a row of -inf would give 0/0: score it 0 and zero its weights afterwards
    anything = mask.any(dim=-1, keepdim=True)  # (..., T_q, 1)
    scores = scores.masked_fill(~anything, 0.0)
    return torch.softmax(scores, dim=-1) * anything


def scaled_dot_product_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(Q K^T / sqrt(d_k)) V, and the weights, the readable way.

    Shapes: query (..., T_q, d_k), key (..., T_k, d_k), value (..., T_k, d_v), mask bool
    broadcastable to (..., T_q, T_k), True where a query may attend to a key
    -> output (..., T_q, d_v), weights (..., T_q, T_k) with rows summing to 1
    (0 for a fully masked row).
    """
    _check_qkv(query, key, value, same_d_k=True)
    d_k = query.shape[-1]
    # s_ij = q_i . k_j / sqrt(d_k)
    scores = query @ key.transpose(-2, -1) / math.sqrt(d_k)  # (..., T_q, T_k)
    weights = masked_softmax(scores, mask)  # (..., T_q, T_k)
    # o_i = sum_j a_ij v_j
    return weights @ value, weights  # (..., T_q, d_v)


def causal_mask(T: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """True on and below the diagonal: position i may attend to positions j <= i. (T, T) bool."""
    T = check.positive_int("T", T)
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def _check_lengths(lengths: object, T: int) -> None:
    """A 1-D integer tensor of lengths in [0, T]."""
    lengths = check.tensor("lengths", lengths)
    if lengths.is_floating_point() or lengths.dtype == torch.bool or lengths.is_complex():
        raise TypeError(f"lengths must be an integer tensor, got {lengths.dtype}")
    check.expect_shape(lengths, "B", "lengths")
    if int(lengths.min()) < 0 or int(lengths.max()) > T:
        raise ValueError(f"lengths must lie in [0, T] = [0, {T}], got values from "
                         f"{int(lengths.min())} to {int(lengths.max())}")


def length_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """True at the first lengths[b] positions of row b (real tokens), False at padding. (B, T) bool.

    For attention over keys, index it as ``mask[:, None, :]`` (B, 1, T_k), or
    ``mask[:, None, None, :]`` for multi-head scores (B, h, T_q, T_k).
    """
    T = check.positive_int("T", T)
    _check_lengths(lengths, T)
    positions = torch.arange(T, device=lengths.device)  # (T,)
    return positions[None, :] < lengths[:, None]  # (B, T)


def _check_regression(x_query: object, x_train: object, y_train: object,
                      bandwidth: object) -> float | torch.Tensor:
    """1-D floating x_query (Q,), x_train and y_train (N,); the bandwidth, positive."""
    for name, x in (("x_query", x_query), ("x_train", x_train), ("y_train", y_train)):
        check.floating(name, x)
    check.expect_shape(x_query, "Q", "x_query")
    N = check.expect_shape(x_train, "N", "x_train")["N"]
    check.expect_shape(y_train, "N", "y_train", N=N)
    if isinstance(bandwidth, torch.Tensor):
        if bandwidth.dim() != 0 or not bool(bandwidth > 0):
            raise ValueError(f"bandwidth must be a positive number or 0-d tensor, got {check._describe(bandwidth)}")
        return bandwidth
    return check.positive_float("bandwidth", bandwidth)


def nadaraya_watson(
    x_query: torch.Tensor, x_train: torch.Tensor, y_train: torch.Tensor,
    bandwidth: float | torch.Tensor = 1.0, mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian-kernel regression: each prediction a softmax-weighted average of the targets.

    Shapes: x_query (Q,), x_train (N,), y_train (N,), bandwidth a number or a 0-d tensor
    (so it can be learned), mask bool broadcastable to (Q, N) -> prediction (Q,), weights (Q, N).
    """
    bandwidth = _check_regression(x_query, x_train, y_train, bandwidth)
    # score(x, x_i) = -(x - x_i)^2 / (2 h^2): a Gaussian kernel, normalized by the softmax
    scores = -(x_query[:, None] - x_train[None, :]) ** 2 / (2 * bandwidth**2)  # (Q, N)
    weights = masked_softmax(scores, mask)  # (Q, N)
    # f(x) = sum_i a_i(x) y_i
    return weights @ y_train, weights  # (Q,)


class AdditiveAttention(nn.Module):
    """Bahdanau's additive attention: score(q, k) = v^T tanh(W_q q + W_k k).

    Shapes: query (..., T_q, query_dim), key (..., T_k, key_dim), value (..., T_k, d_v),
    mask bool broadcastable to (..., T_q, T_k) -> output (..., T_q, d_v), weights (..., T_q, T_k).
    """

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.query_dim = check.positive_int("query_dim", query_dim)
        self.key_dim = check.positive_int("key_dim", key_dim)
        self.hidden_dim = check.positive_int("hidden_dim", hidden_dim)
        self.W_q = nn.Linear(self.query_dim, self.hidden_dim, bias=False)
        self.W_k = nn.Linear(self.key_dim, self.hidden_dim, bias=False)
        self.v = nn.Linear(self.hidden_dim, 1, bias=False)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The attended values and the weights; see the class docstring for shapes."""
        _check_qkv(query, key, value, query_dim=self.query_dim, key_dim=self.key_dim)
        q = self.W_q(query).unsqueeze(-2)  # (..., T_q, 1, hidden)
        k = self.W_k(key).unsqueeze(-3)  # (..., 1, T_k, hidden)
        # s_ij = v^T tanh(W_q q_i + W_k k_j), every (i, j) pair by broadcasting
        scores = self.v(torch.tanh(q + k)).squeeze(-1)  # (..., T_q, T_k)
        weights = masked_softmax(scores, mask)  # (..., T_q, T_k)
        return weights @ value, weights  # (..., T_q, d_v)

    def extra_repr(self) -> str:
        return f"query_dim={self.query_dim}, key_dim={self.key_dim}, hidden_dim={self.hidden_dim}"


class MultiHeadAttention(nn.Module):
    """num_heads scaled dot-product attentions on learned projections, batch-first.

    Shapes: query (B, T_q, embed_dim), key and value (B, T_k, embed_dim), mask bool
    broadcastable to (B, num_heads, T_q, T_k), True where a query may attend to a key
    -> output (B, T_q, embed_dim). The weights of the last call are kept in
    ``last_weights`` (B, num_heads, T_q, T_k), detached, for plotting.
    """

    def __init__(self, embed_dim: int, num_heads: int, *, bias: bool = True) -> None:
        super().__init__()
        self.embed_dim = check.positive_int("embed_dim", embed_dim)
        self.num_heads = check.positive_int("num_heads", num_heads)
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim must be divisible by num_heads, got embed_dim={embed_dim}, "
                             f"num_heads={num_heads}")
        self.head_dim = embed_dim // num_heads  # d_k = d_v per head
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)  # the heads' W_q, stacked
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)  # W_o
        self.last_weights: torch.Tensor | None = None

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, h, T, d_k)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The attended output (B, T_q, embed_dim); see the class docstring."""
        sizes = check.expect_shape(query, "B T_q E", "query", E=self.embed_dim)
        check.expect_shape(key, "B T_k E", "key", B=sizes["B"], E=self.embed_dim)
        check.expect_shape(value, "B T_k E", "value", B=sizes["B"], T_k=key.shape[1], E=self.embed_dim)
        q = self._split(self.q_proj(query))  # (B, h, T_q, d_k)
        k = self._split(self.k_proj(key))  # (B, h, T_k, d_k)
        v = self._split(self.v_proj(value))  # (B, h, T_k, d_k)
        # head_i = Attention(Q W_q^i, K W_k^i, V W_v^i)
        heads, weights = scaled_dot_product_attention(q, k, v, mask)  # (B, h, T_q, d_k)
        self.last_weights = weights.detach()
        B, T_q = sizes["B"], sizes["T_q"]
        # MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W_o
        concat = heads.transpose(1, 2).reshape(B, T_q, self.embed_dim)  # (B, T_q, h d_k)
        return self.out_proj(concat)  # (B, T_q, embed_dim)

    @classmethod
    def from_torch(cls, m: nn.MultiheadAttention) -> MultiHeadAttention:
        """One with the weights of ``m``, a ``torch.nn.MultiheadAttention(batch_first=True)``.

        Outputs equal ``m``'s (with its mask inverted: torch's boolean ``attn_mask`` is True
        where attention is NOT allowed), in evaluation mode or with ``dropout=0``.
        """
        if not isinstance(m, nn.MultiheadAttention):
            raise TypeError(f"m must be a torch.nn.MultiheadAttention, got {type(m).__name__}")
        if not m.batch_first:
            raise ValueError("m must be built with batch_first=True")
        if not m._qkv_same_embed_dim or m.bias_k is not None or m.add_zero_attn:
            raise ValueError("m must have kdim = vdim = embed_dim, add_bias_kv=False and add_zero_attn=False")
        bias = m.in_proj_bias is not None
        ours = cls(m.embed_dim, m.num_heads, bias=bias).to(m.in_proj_weight)
        with torch.no_grad():
            # torch stacks W_q, W_k, W_v as the rows of in_proj_weight (3E, E)
            for proj, w in zip((ours.q_proj, ours.k_proj, ours.v_proj), m.in_proj_weight.chunk(3)):
                proj.weight.copy_(w)
            ours.out_proj.weight.copy_(m.out_proj.weight)
            if bias:
                for proj, b in zip((ours.q_proj, ours.k_proj, ours.v_proj), m.in_proj_bias.chunk(3)):
                    proj.bias.copy_(b)
                ours.out_proj.bias.copy_(m.out_proj.bias)
        return ours

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"


def sinusoidal_positions(
    length: int, dim: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """The sine-cosine position codes of Vaswani et al. (2017). (length, dim).

    PE[p, 2i] = sin(p / 10000^(2i/dim)) and PE[p, 2i+1] = cos(p / 10000^(2i/dim)).
    """
    length = check.positive_int("length", length)
    dim = check.positive_int("dim", dim)
    if dim % 2:
        raise ValueError(f"dim must be even (a sine and a cosine per frequency), got {dim}")
    p = torch.arange(length, dtype=torch.float64)[:, None]  # (length, 1)
    two_i = torch.arange(0, dim, 2, dtype=torch.float64)[None, :]  # (1, dim/2)
    # angle = p / 10000^(2i/dim)
    angle = p / 10000.0 ** (two_i / dim)  # (length, dim/2)
    pe = torch.empty(length, dim, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe.to(dtype=dtype, device=device)
