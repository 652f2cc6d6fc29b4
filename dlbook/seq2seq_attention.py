"""A decoder that attends to every encoder state (Part 11, "Sequence-to-sequence with attention").

Part 9's translator (:mod:`dlbook.seq2seq`) hands its decoder one summary vector
``c`` of the whole source. Here the decoder keeps Part 9's encoder, loss and
training loop, but at every output step ``t`` it compares its state ``s_t`` with
every encoder state ``h_s``, turns the scores into weights ``alpha_ts`` over the
real (non-padding) source positions, and reads their weighted mean ``a_t`` in
place of ``c`` (Bahdanau et al., 2015; Luong et al., 2015). The weights
come back with the translation, so they can be drawn as an alignment.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dlbook import _checks as check
from dlbook.attention import AdditiveAttention, scaled_dot_product_attention
from dlbook.seq2seq import Encoder, Seq2SeqConfig, padding_mask, shift_right

__all__ = ["AttentionSeq2SeqConfig", "AttentionDecoder", "Seq2SeqAttention"]

SCORES = ("dot", "additive")


@dataclass
class AttentionSeq2SeqConfig(Seq2SeqConfig):
    """Part 9's sizes and the attention score (``context_every_step`` is unused: a_t replaces c)."""

    score: str = "dot"  # "dot": (W_q s_t) . h_s / sqrt(M); "additive": v . tanh(W_q s_t + W_k h_s)

    def __post_init__(self) -> None:
        super().__post_init__()
        check.one_of("score", self.score, SCORES)


def _check_tokens(name: str, x: object, vocab: int) -> torch.Tensor:
    """``x`` if it is a ``(B, T)`` integer tensor of indices in ``[0, vocab)``."""
    x = check.tensor(name, x)
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer token indices, got a {x.dtype} tensor")
    check.expect_shape(x, "B T", name)
    if int(x.min()) < 0 or int(x.max()) >= vocab:
        raise ValueError(f"{name} must hold token indices in [0, {vocab}), "
                         f"got [{int(x.min())}, {int(x.max())}]")
    return x


class AttentionDecoder(nn.Module):
    """A GRU decoder that reads a weighted mean of the encoder states at every step.

    Shapes: inputs (B, T) previous tokens, memory (B, S, M) encoder states, mask (B, S) True at
    real source tokens, state (L, B, H) -> logits (B, T, V), state (L, B, H), weights (B, T, S).
    """

    def __init__(self, config: AttentionSeq2SeqConfig) -> None:
        super().__init__()
        if not isinstance(config, AttentionSeq2SeqConfig):
            raise TypeError(f"config must be an AttentionSeq2SeqConfig, "
                            f"got {type(config).__name__}")
        self.config = config
        H, E = config.hidden_size, config.embedding_dim
        M = (2 if config.bidirectional else 1) * H  # features of an encoder state
        self.embedding = nn.Embedding(config.target_vocab, E, padding_idx=config.pad_index)
        self.rnn = nn.GRU(E, H, config.num_layers, batch_first=True)
        if config.score == "dot":
            self.query = nn.Linear(H, M, bias=False)  # W_q: decoder state into the encoder's space
        else:
            self.additive = AdditiveAttention(H, M, H)
        self.output = nn.Linear(H + M, config.target_vocab)

    def attend(self, s: torch.Tensor, memory: torch.Tensor,
               mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Context vectors and weights for decoder states s (B, T, H): (B, T, M) and (B, T, S)."""
        allowed = mask.unsqueeze(1)  # (B, 1, S): the same real source positions for every step t
        if self.config.score == "dot":
            # alpha_t = softmax over real s of ((W_q s_t) . h_s / sqrt(M)); a_t = sum_s alpha_ts h_s
            return scaled_dot_product_attention(self.query(s), memory, memory, mask=allowed)
        # alpha_t = softmax over real s of (v . tanh(W_q s_t + W_k h_s)); a_t = sum_s alpha_ts h_s
        return self.additive(s, memory, memory, mask=allowed)

    def forward(self, inputs: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor,
                state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cfg = self.config
        inputs = _check_tokens("inputs", inputs, cfg.target_vocab)
        M = (2 if cfg.bidirectional else 1) * cfg.hidden_size
        sizes = check.expect_shape(memory, "B S M", "memory", B=inputs.shape[0], M=M)
        check.expect_shape(mask, "B S", "mask", B=sizes["B"], S=sizes["S"])
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor, True at real source tokens, got {mask.dtype}")
        check.expect_shape(state, "L B H", "state", L=cfg.num_layers, B=sizes["B"],
                           H=cfg.hidden_size)
        # s_t = GRU(e(y_{t-1}), s_{t-1}): no summary in the input, the state carries the prefix
        s, state = self.rnn(self.embedding(inputs), state)  # s: (B, T, H)
        a, weights = self.attend(s, memory, mask)  # (B, T, M), (B, T, S)
        # p(y_t | y_<t, x) = softmax(W_o [s_t; a_t] + b_o)
        logits = self.output(torch.cat([s, a], dim=2))  # (B, T, V)
        return logits, state, weights


class Seq2SeqAttention(nn.Module):
    """Part 9's encoder, an attention decoder: source (B, S), target (B, T) -> logits (B, T, V)."""

    def __init__(self, config: AttentionSeq2SeqConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)  # built first: a seed gives it Part 9's initial weights
        self.decoder = AttentionDecoder(config)

    def encode(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encoder states (B, S, M), source mask (B, S) and the decoder's first state (L, B, H)."""
        memory, summary = self.encoder(source)  # (B, S, M), (B, H)
        mask = padding_mask(source, self.config.pad_index)  # (B, S)
        # s_0 = c in every layer, as in Part 9
        state = summary.unsqueeze(0).repeat(self.config.num_layers, 1, 1).contiguous()  # (L, B, H)
        return memory, mask, state

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: the decoder sees the true previous target token."""
        memory, mask, state = self.encode(source)
        target = _check_tokens("target", target, self.config.target_vocab)
        logits, _, _ = self.decoder(shift_right(target, self.config.bos_index), memory, mask, state)
        return logits  # (B, T, V)

    @torch.no_grad()
    def translate(self, source: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy decoding and its attention weights: (B, length) tokens, (B, length, S)."""
        length = check.positive_int("length", length)
        memory, mask, state = self.encode(source)
        token = torch.full((source.shape[0], 1), self.config.bos_index, dtype=torch.long,
                           device=source.device)  # (B, 1): <bos>
        tokens, weights = [], []
        for _ in range(length):
            logits, state, alpha = self.decoder(token, memory, mask, state)  # (B, 1, V), (B, 1, S)
            # y_t = argmax_v p(v | y_<t, x)
            token = logits.argmax(dim=2)  # (B, 1)
            tokens.append(token)
            weights.append(alpha)
        return torch.cat(tokens, dim=1), torch.cat(weights, dim=1)

    @torch.no_grad()
    def generate(self, source: torch.Tensor, length: int) -> torch.Tensor:
        """Greedy translation of ``source`` into ``length`` target tokens. (B, length)."""
        return self.translate(source, length)[0]
