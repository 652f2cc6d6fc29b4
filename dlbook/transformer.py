"""Layer normalization, the transformer and a small GPT (Part 11, "Multi-head attention and the transformer").

Bottom-up, in the order the chapter builds them: :class:`LayerNorm` (a drop-in
for ``torch.nn.LayerNorm``), :class:`CausalSelfAttention` (one fused query-key-value
projection and a key-value cache, around :func:`dlbook.attention.scaled_dot_product_attention`
or PyTorch's fused kernel), :class:`FeedForward`, the blocks (:class:`EncoderBlock`,
:class:`DecoderBlock`, :class:`GPTBlock`), :class:`Encoder`, :class:`Decoder` and
:class:`EncoderDecoder` (shaped like ``torch.nn.Transformer`` with ``batch_first=True``;
:meth:`EncoderDecoder.from_torch` copies one's weights), and :class:`GPT`, a
decoder-only character language model with :func:`generate` (temperature, top-k,
with or without the cache) and :func:`gpt_bits_per_char`. The chapter "A small
GPT" trains it.

>>> model = GPT(GPTConfig(vocab_size=10, block_size=8, embed_dim=16, num_heads=2, num_layers=1))
>>> logits, cache = model(torch.zeros(3, 5, dtype=torch.long))
>>> logits.shape, cache[0][0].shape
(torch.Size([3, 5, 10]), torch.Size([3, 2, 5, 8]))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dlbook import _checks as check
from dlbook.attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention, sinusoidal_positions

__all__ = [
    "LayerNorm", "CausalSelfAttention", "FeedForward", "TransformerConfig", "EncoderBlock", "DecoderBlock",
    "Encoder", "Decoder", "EncoderDecoder", "GPTConfig", "GPTBlock", "GPT", "generate",
    "gpt_bits_per_char",
]

#: One (keys, values) pair per layer, each (B, num_heads, T_past, head_dim).
_Cache = list[tuple[torch.Tensor, torch.Tensor]]


# ----- layer normalization -------------------------------------------------------


class LayerNorm(nn.Module):
    """Normalize each example over its last dimensions, then scale and shift (``weight``, ``bias``).

    Shapes: ``x`` of shape ``(..., *normalized_shape)`` keeps its shape.
    """

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5) -> None:
        super().__init__()
        shape = (normalized_shape,) if not isinstance(normalized_shape, Sequence) else tuple(normalized_shape)
        if not shape:
            raise ValueError("normalized_shape must name at least one dimension, got ()")
        self.normalized_shape = tuple(check.positive_int("normalized_shape", n) for n in shape)
        self.eps = check.nonnegative_float("eps", eps)
        self.weight = nn.Parameter(torch.ones(self.normalized_shape))
        self.bias = nn.Parameter(torch.zeros(self.normalized_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The normalized, scaled and shifted ``x``."""
        x = check.as_float_like("x", x, self.weight)
        n = len(self.normalized_shape)
        if tuple(x.shape[x.dim() - n:]) != self.normalized_shape:
            raise ValueError(f"expected x of shape (..., {', '.join(map(str, self.normalized_shape))}), "
                             f"got {tuple(x.shape)}")
        dims = tuple(range(-n, 0))
        # mu = (1/D) sum_j x_j, one per example
        mu = x.mean(dim=dims, keepdim=True)
        # sigma^2 = (1/D) sum_j (x_j - mu)^2  (the biased variance, as torch uses)
        var = (x - mu).square().mean(dim=dims, keepdim=True)
        # x_hat = (x - mu) / sqrt(sigma^2 + eps);  y = gamma * x_hat + beta
        x_hat = (x - mu) / torch.sqrt(var + self.eps)
        return self.weight * x_hat + self.bias

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"


# ----- attention as the blocks use it ---------------------------------------------


class CausalSelfAttention(nn.Module):
    """Masked multi-head self-attention with one fused Q, K, V projection and a key-value cache.

    Shapes: x (B, T, E) and a cached (keys, values), each (B, heads, T_past, E / heads),
    or None -> output (B, T, E) and the (keys, values) of all T_past + T positions.
    """

    def __init__(self, embed_dim: int, num_heads: int, *, fused: bool = False) -> None:
        super().__init__()
        self.embed_dim = check.positive_int("embed_dim", embed_dim)
        self.num_heads = check.positive_int("num_heads", num_heads)
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim must be divisible by num_heads, got {embed_dim} and {num_heads}")
        if not isinstance(fused, bool):
            raise TypeError(f"fused must be a bool, got {type(fused).__name__}")
        self.fused = fused  # torch's fused kernel instead of the readable dlbook.attention path
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim)  # rows: W_Q, then W_K, then W_V
        self.proj = nn.Linear(embed_dim, embed_dim)  # W_O

    def forward(
        self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Each position attends to itself, the positions before it and the cached ones."""
        B, T, E = x.shape  # batch, time, embedding
        h = self.num_heads
        q, k, v = self.qkv(x).split(E, dim=2)  # each (B, T, E)
        q, k, v = (t.view(B, T, h, E // h).transpose(1, 2) for t in (q, k, v))  # each (B, h, T, d_k)
        if cache is not None:
            k = torch.cat([cache[0], k], dim=2)  # (B, h, T_past + T, d_k)
            v = torch.cat([cache[1], v], dim=2)
        T_past = k.shape[2] - T
        # query i sits at position T_past + i and may see keys 0 .. T_past + i
        mask = torch.ones(T, T_past + T, dtype=torch.bool, device=x.device).tril(diagonal=T_past)
        if self.fused:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, h, T, d_k)
        else:
            y, _ = scaled_dot_product_attention(q, k, v, mask=mask)  # (B, h, T, d_k)
        y = y.transpose(1, 2).reshape(B, T, E)  # heads side by side again: (B, T, E)
        return self.proj(y), (k, v)


class FeedForward(nn.Module):
    """The position-wise network: Linear, GELU, Linear, applied to every position alike.

    Shapes: x (..., E) -> (..., E).
    """

    def __init__(self, embed_dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        embed_dim, hidden_dim = check.positive_int("embed_dim", embed_dim), check.positive_int("hidden_dim", hidden_dim)
        self.linear1 = nn.Linear(embed_dim, hidden_dim)
        self.linear2 = nn.Linear(hidden_dim, embed_dim)
        self.dropout = nn.Dropout(check.fraction("dropout", dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """FFN(x) = W_2 gelu(W_1 x + b_1) + b_2."""
        return self.linear2(self.dropout(F.gelu(self.linear1(x))))


# ----- the encoder-decoder transformer ----------------------------------------------


@dataclass
class TransformerConfig:
    """Hyper-parameters of :class:`Encoder`, :class:`Decoder` and :class:`EncoderDecoder`."""

    embed_dim: int = 64
    num_heads: int = 4
    num_layers: int = 2  # blocks in the encoder, and in the decoder
    ff_dim: int | None = None  # hidden width of the feed-forward network; None: 4 * embed_dim
    dropout: float = 0.0
    norm_first: bool = True  # pre-norm x + f(LN(x)); False: post-norm LN(x + f(x)), as in the 2017 paper

    def __post_init__(self) -> None:
        check.positive_int("embed_dim", self.embed_dim)
        check.positive_int("num_heads", self.num_heads)
        check.positive_int("num_layers", self.num_layers)
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim must be divisible by num_heads, got {self.embed_dim} and {self.num_heads}")
        if self.ff_dim is None:
            self.ff_dim = 4 * self.embed_dim
        check.positive_int("ff_dim", self.ff_dim)
        check.fraction("dropout", self.dropout)
        if not isinstance(self.norm_first, bool):
            raise TypeError(f"norm_first must be a bool, got {type(self.norm_first).__name__}")


class _Residual(nn.Module):
    """Shared by the blocks: x + f(LN(x)) (pre-norm) or LN(x + f(x)) (post-norm)."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.norm_first = config.norm_first
        self.dropout = nn.Dropout(config.dropout)

    def sublayer(self, x: torch.Tensor, norm: LayerNorm, f: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """One sublayer f (attention or feed-forward) with its residual connection and norm."""
        if self.norm_first:
            # pre-norm: x + f(LN(x)), the residual path untouched
            return x + self.dropout(f(norm(x)))
        # post-norm: LN(x + f(x))
        return norm(x + self.dropout(f(x)))


class EncoderBlock(_Residual):
    """Self-attention, then the feed-forward network, each inside a residual connection.

    Shapes: x (B, S, E) -> (B, S, E); ``mask`` as :class:`dlbook.attention.MultiHeadAttention` takes it.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config)
        E = config.embed_dim
        self.self_attn = MultiHeadAttention(E, config.num_heads)
        self.ff = FeedForward(E, config.ff_dim, config.dropout)
        self.norm1, self.norm2 = LayerNorm(E), LayerNorm(E)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """One encoder layer."""
        x = self.sublayer(x, self.norm1, lambda z: self.self_attn(z, z, z, mask=mask))
        return self.sublayer(x, self.norm2, self.ff)


class DecoderBlock(_Residual):
    """Masked self-attention, cross-attention to the encoder's output, feed-forward; each residual.

    Shapes: x (B, T, E), memory (B, S, E) -> (B, T, E).
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config)
        E = config.embed_dim
        self.self_attn = MultiHeadAttention(E, config.num_heads)
        self.cross_attn = MultiHeadAttention(E, config.num_heads)
        self.ff = FeedForward(E, config.ff_dim, config.dropout)
        self.norm1, self.norm2, self.norm3 = LayerNorm(E), LayerNorm(E), LayerNorm(E)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None = None) -> torch.Tensor:
        """One decoder layer; position t sees target positions up to t and every source position."""
        mask = causal_mask(x.shape[1], device=x.device)  # (T, T), True on and below the diagonal
        x = self.sublayer(x, self.norm1, lambda z: self.self_attn(z, z, z, mask=mask))
        # queries from the decoder, keys and values from the encoder
        x = self.sublayer(x, self.norm2, lambda z: self.cross_attn(z, memory, memory, mask=memory_mask))
        return self.sublayer(x, self.norm3, self.ff)


def _sequence(name: str, x: object, E: int, reference: torch.Tensor) -> torch.Tensor:
    x = check.as_float_like(name, x, reference)
    check.expect_shape(x, "B T E", name, E=E)
    return x


class Encoder(nn.Module):
    """A stack of encoder blocks and a final LayerNorm. Shapes: x (B, S, E) -> (B, S, E)."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(EncoderBlock(config) for _ in range(config.num_layers))
        self.norm = LayerNorm(config.embed_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Every position of ``x`` rewritten with what it learned from every other."""
        x = _sequence("x", x, self.config.embed_dim, self.norm.weight)
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)


class Decoder(nn.Module):
    """A stack of decoder blocks and a final LayerNorm. Shapes: x (B, T, E), memory (B, S, E) -> (B, T, E)."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(DecoderBlock(config) for _ in range(config.num_layers))
        self.norm = LayerNorm(config.embed_dim)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Target positions that see their own past and the whole source."""
        x = _sequence("x", x, self.config.embed_dim, self.norm.weight)
        memory = _sequence("memory", memory, self.config.embed_dim, self.norm.weight)
        if memory.shape[0] != x.shape[0]:
            raise ValueError(f"memory and x must have the same batch size, got {memory.shape[0]} and {x.shape[0]}")
        for layer in self.layers:
            x = layer(x, memory, memory_mask)
        return self.norm(x)


class EncoderDecoder(nn.Module):
    """The 2017 transformer's body, shaped like ``nn.Transformer(batch_first=True)``.

    Shapes: src (B, S, E), tgt (B, T, E) -> (B, T, E). Embeddings and positions are the caller's.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Encode ``src`` once; decode ``tgt`` (causally) against it."""
        memory = self.encoder(src, src_mask)  # (B, S, E)
        return self.decoder(tgt, memory, src_mask)  # (B, T, E)

    @classmethod
    def from_torch(cls, m: nn.Transformer) -> EncoderDecoder:
        """Ours with the weights of ``nn.Transformer(..., activation="gelu", batch_first=True)``."""
        if not isinstance(m, nn.Transformer):
            raise TypeError(f"m must be a torch.nn.Transformer, got {type(m).__name__}")
        first = m.encoder.layers[0]
        config = TransformerConfig(
            embed_dim=first.self_attn.embed_dim, num_heads=first.self_attn.num_heads,
            num_layers=len(m.encoder.layers), ff_dim=first.linear1.out_features, dropout=0.0,
            norm_first=bool(first.norm_first),
        )
        if len(m.decoder.layers) != config.num_layers:
            raise ValueError("m must have as many decoder layers as encoder layers")
        ours = cls(config).to(first.linear1.weight.dtype)

        def copy(layer: nn.Module, theirs: nn.Module, attn: dict[str, str], norms: int) -> None:
            for mine, name in attn.items():
                setattr(layer, mine, MultiHeadAttention.from_torch(getattr(theirs, name)))
            layer.ff.linear1.load_state_dict(theirs.linear1.state_dict())
            layer.ff.linear2.load_state_dict(theirs.linear2.state_dict())
            for i in range(1, norms + 1):
                getattr(layer, f"norm{i}").load_state_dict(getattr(theirs, f"norm{i}").state_dict())

        for mine, theirs in zip(ours.encoder.layers, m.encoder.layers):
            copy(mine, theirs, {"self_attn": "self_attn"}, 2)
        for mine, theirs in zip(ours.decoder.layers, m.decoder.layers):
            copy(mine, theirs, {"self_attn": "self_attn", "cross_attn": "multihead_attn"}, 3)
        ours.encoder.norm.load_state_dict(m.encoder.norm.state_dict())
        ours.decoder.norm.load_state_dict(m.decoder.norm.state_dict())
        return ours.to(first.linear1.weight.device)


# ----- a small GPT -------------------------------------------------------------------


@dataclass
class GPTConfig:
    """Hyper-parameters of :class:`GPT`."""

    vocab_size: int
    block_size: int = 128  # the longest context: positions 0 .. block_size - 1
    embed_dim: int = 64
    num_heads: int = 4
    num_layers: int = 2
    dropout: float = 0.0
    positions: str = "learned"  # "learned" (GPT-2) or "sinusoidal" (the 2017 paper)
    fused: bool = False  # torch's fused attention kernel instead of the readable path (same outputs)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "embed_dim", "num_heads", "num_layers"):
            check.positive_int(name, getattr(self, name))
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim must be divisible by num_heads, got {self.embed_dim} and {self.num_heads}")
        check.fraction("dropout", self.dropout)
        check.one_of("positions", self.positions, ["learned", "sinusoidal"])
        if not isinstance(self.fused, bool):
            raise TypeError(f"fused must be a bool, got {type(self.fused).__name__}")


class GPTBlock(nn.Module):
    """Pre-norm decoder block without cross-attention: x + attn(LN(x)), then x + FFN(LN(x)).

    Shapes: x (B, T, E) and this layer's cache -> (B, T, E) and its new cache.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        E = config.embed_dim
        self.norm1, self.norm2 = LayerNorm(E), LayerNorm(E)
        self.attn = CausalSelfAttention(E, config.num_heads, fused=config.fused)
        self.ff = FeedForward(E, 4 * E, config.dropout)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One layer of the GPT."""
        a, cache = self.attn(self.norm1(x), cache)
        x = x + self.dropout(a)
        return x + self.dropout(self.ff(self.norm2(x))), cache


def _tokens(name: str, tokens: object, vocab_size: int, spec: str) -> torch.Tensor:
    tokens = check.tensor(name, tokens)
    if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer token ids, got a {tokens.dtype} tensor")
    check.expect_shape(tokens, spec, name)
    low, high = int(tokens.min()), int(tokens.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(f"{name} must hold ids in [0, {vocab_size}), got values in [{low}, {high}]")
    return tokens


class GPT(nn.Module):
    """A decoder-only transformer language model: embeddings + positions, GPT blocks, LayerNorm, logits.

    Shapes: tokens (B, T) and a cache of T_past positions -> logits (B, T, vocab_size) and the
    cache of T_past + T positions. The output layer shares the token embedding's weights.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        V, E = config.vocab_size, config.embed_dim
        self.token_embedding = nn.Embedding(V, E)
        if config.positions == "learned":
            self.position_embedding = nn.Embedding(config.block_size, E)
        else:
            self.register_buffer("position_table", sinusoidal_positions(config.block_size, E), persistent=False)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(GPTBlock(config) for _ in range(config.num_layers))
        self.norm = LayerNorm(E)
        self.head = nn.Linear(E, V, bias=False)
        self.head.weight = self.token_embedding.weight  # tied: logits are scores against the embeddings
        self.apply(self._init)
        for block in self.blocks:  # GPT-2: shrink what each residual branch adds, by depth
            for layer in (block.attn.proj, block.ff.linear2):
                nn.init.normal_(layer.weight, std=0.02 / math.sqrt(2 * config.num_layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor, cache: _Cache | None = None) -> tuple[torch.Tensor, _Cache]:
        """Logits for the token after each position, and the key-value cache to continue from."""
        tokens = _tokens("tokens", tokens, self.config.vocab_size, "B T")
        B, T = tokens.shape  # batch, time
        if cache is not None and (not isinstance(cache, list) or len(cache) != len(self.blocks)):
            raise TypeError(f"cache must be the list of {len(self.blocks)} (keys, values) pairs that GPT returned")
        start = 0 if cache is None else cache[0][0].shape[2]
        if start + T > self.config.block_size:
            raise ValueError(f"tokens reach position {start + T}, beyond block_size {self.config.block_size}")
        if cache is not None and cache[0][0].shape[0] != B:
            raise ValueError(f"cache holds a batch of {cache[0][0].shape[0]}, tokens a batch of {B}")
        positions = torch.arange(start, start + T, device=tokens.device)  # (T,)
        if self.config.positions == "learned":
            p = self.position_embedding(positions)  # (T, E)
        else:
            p = self.position_table[positions]
        x = self.dropout(self.token_embedding(tokens) + p)  # (B, T, E)
        new_cache: _Cache = []
        for i, block in enumerate(self.blocks):
            x, layer_cache = block(x, None if cache is None else cache[i])
            new_cache.append(layer_cache)
        return self.head(self.norm(x)), new_cache  # (B, T, V)


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def generate(
    model: GPT,
    prompt: torch.Tensor,
    length: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """Draw ``length`` tokens after ``prompt`` from softmax(logits / temperature), kept to the top k.

    With ``use_cache`` each step feeds only the newest token and reuses the keys and values
    of the others; without it each step reruns the whole sequence. Shapes: prompt (P,) -> (length,).
    """
    check.module("model", model)
    prompt = _tokens("prompt", prompt, model.config.vocab_size, "P")
    length = check.positive_int("length", length)
    temperature = check.positive_float("temperature", temperature)
    if top_k is not None:
        top_k = check.positive_int("top_k", top_k)
    if len(prompt) + length - 1 > model.config.block_size:
        raise ValueError(f"prompt ({len(prompt)}) + length ({length}) - 1 exceeds block_size {model.config.block_size}")
    model.eval()
    tokens = prompt[None].to(_device_of(model))  # (1, P)
    logits, cache = model(tokens)
    drawn = []
    for step in range(length):
        y = logits[0, -1].double().cpu() / temperature  # (V,)
        if top_k is not None and top_k < len(y):
            # keep the k largest logits; the rest get probability 0
            y = y.masked_fill(y < torch.topk(y, top_k).values[-1], -math.inf)
        nxt = torch.multinomial(torch.softmax(y, dim=0), 1, generator=generator)  # (1,)
        drawn.append(nxt)
        if step == length - 1:
            break
        nxt = nxt[None].to(tokens.device)  # (1, 1)
        if use_cache:
            logits, cache = model(nxt, cache)
        else:
            tokens = torch.cat([tokens, nxt], dim=1)  # (1, P + step + 1)
            logits, _ = model(tokens)
    return torch.cat(drawn)


@torch.no_grad()
def gpt_bits_per_char(model: GPT, ids: torch.Tensor, *, stride: int | None = None, batch_size: int = 64) -> float:
    """Average -log2 p(next character) over ``ids`` with windows of block_size, moved by ``stride``.

    The first window scores all its predictions; each later one only its last ``stride``
    (default block_size / 2), so every character after the first is scored once, with at
    least block_size - stride characters of context after the first window.
    """
    check.module("model", model)
    T = model.config.block_size
    ids = _tokens("ids", ids, model.config.vocab_size, "N")
    stride = check.positive_int("stride", T // 2 if stride is None else stride)
    if stride > T:
        raise ValueError(f"stride must be at most block_size {T}, got {stride}")
    batch_size = check.positive_int("batch_size", batch_size)
    N = len(ids)
    if N < 2:
        raise ValueError(f"ids has {N} characters, need at least 2")
    T = min(T, N - 1)
    starts = list(range(0, N - 1 - T + 1, stride))
    if starts[-1] + T < N - 1:
        starts.append(N - 1 - T)
    first_scored, done = [], 0  # position in each window of its first new target
    for s in starts:
        first_scored.append(done - s)  # targets s+1+i with s+1+i > done
        done = s + T
    model.eval()
    device = _device_of(model)
    nats, count = 0.0, 0
    offsets = torch.arange(T + 1)
    for b in range(0, len(starts), batch_size):
        s = torch.tensor(starts[b: b + batch_size])
        window = ids[s[:, None] + offsets].to(device)  # (b, T + 1)
        logits, _ = model(window[:, :-1])  # (b, T, V)
        nll = F.cross_entropy(logits.transpose(1, 2), window[:, 1:], reduction="none")  # (b, T)
        first = torch.tensor(first_scored[b: b + batch_size], device=device)  # (b,)
        keep = torch.arange(T, device=device)[None] >= first[:, None]  # (b, T): the new targets
        nats += nll[keep].sum().item()
        count += int(keep.sum())
    return nats / count / math.log(2)
