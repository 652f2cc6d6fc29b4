"""Sequence tasks: many-to-one, one-to-many and encoder-decoder models (Part 9, "Sequence tasks").

Three shapes of problem share two parts. An :class:`Encoder` reads a padded
batch of token sequences (a bidirectional, optionally stacked GRU that skips the
padding) and sums it up in one vector; a :class:`Decoder` writes a sequence
token by token from such a vector. A classifier is an encoder and a linear
layer (many-to-one), a generator is a decoder fed an embedded condition
(one-to-many), and a translator is both (:class:`Seq2Seq`, many-to-many).
Training uses teacher forcing (:func:`shift_right`) and a loss that ignores
padding (:func:`sequence_loss`); :meth:`Seq2Seq.generate` decodes greedily.
The models use torch's fused ``nn.GRU``; ``dlbook.rnn`` shows it equals the
cells written from scratch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from dlbook import _checks as check

__all__ = [
    "Seq2SeqConfig", "padding_mask", "shift_right", "sequence_loss", "exact_match", "Encoder",
    "Decoder", "Seq2Seq", "SequenceClassifier", "ConditionalGenerator", "TrainingCurve",
    "train_teacher_forcing",
]


@dataclass
class Seq2SeqConfig:
    """Sizes of an encoder-decoder; the classifier and the generator use the parts they need."""

    source_vocab: int  # source tokens, padding included
    target_vocab: int  # target tokens, padding and begin/end tokens included
    embedding_dim: int = 32
    hidden_size: int = 64
    num_layers: int = 1  # stacked GRU layers, in the encoder and in the decoder
    bidirectional: bool = True  # the encoder reads left to right and right to left
    context_every_step: bool = True  # feed the encoder's summary to every decoder step
    pad_index: int = 0
    bos_index: int = 1

    def __post_init__(self) -> None:
        for name in ("source_vocab", "target_vocab", "embedding_dim", "hidden_size", "num_layers"):
            setattr(self, name, check.positive_int(name, getattr(self, name)))
        for name in ("bidirectional", "context_every_step"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        self.pad_index = check.nonnegative_int("pad_index", self.pad_index)
        self.bos_index = check.nonnegative_int("bos_index", self.bos_index)
        if self.pad_index >= self.target_vocab or self.bos_index >= self.target_vocab:
            raise ValueError(f"pad_index {self.pad_index} and bos_index {self.bos_index} must be "
                             f"< target_vocab {self.target_vocab}")


def _tokens(name: str, x: object, vocab: int | None = None) -> torch.Tensor:
    """``x`` if it is a non-empty ``(B, T)`` integer tensor of indices below ``vocab``."""
    x = check.tensor(name, x)
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer token indices, got a {x.dtype} tensor")
    check.expect_shape(x, "B T", name)
    if int(x.min()) < 0 or (vocab is not None and int(x.max()) >= vocab):
        raise ValueError(f"{name} must hold token indices in [0, {vocab}), got [{int(x.min())}, {int(x.max())}]")
    return x


def padding_mask(tokens: torch.Tensor, pad_index: int = 0) -> torch.Tensor:
    """True at real tokens, False at padding; ``(B, T)`` bool. Padding must come last in a row."""
    tokens = _tokens("tokens", tokens)
    mask = tokens != pad_index  # (B, T)
    if bool((mask[:, 1:] & ~mask[:, :-1]).any()):
        raise ValueError("tokens must be right-padded: a real token follows padding in some row")
    if not bool(mask[:, 0].all()):
        raise ValueError("tokens has an empty row: every sequence needs at least one real token")
    return mask


def shift_right(target: torch.Tensor, bos_index: int) -> torch.Tensor:
    """Teacher forcing's decoder input: the target delayed one step behind a begin token. (B, T)."""
    target = _tokens("target", target)
    bos_index = check.nonnegative_int("bos_index", bos_index)
    # input at step t is the true y_{t-1}; at t = 1 it is <bos>
    return torch.cat([torch.full_like(target[:, :1], bos_index), target[:, :-1]], dim=1)


def sequence_loss(logits: torch.Tensor, target: torch.Tensor, pad_index: int = 0) -> torch.Tensor:
    """Mean cross-entropy over the real (non-padding) target tokens.

    Shapes: logits (B, T, V), target (B, T).
    """
    sizes = check.expect_shape(logits, "B T V", "logits")
    check.floating("logits", logits)
    _tokens("target", target, sizes["V"])
    check.expect_shape(target, "B T", "target", B=sizes["B"], T=sizes["T"])
    # L = - sum over real tokens of log p(y_t | ...) / number of real tokens
    return F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=pad_index)


def exact_match(prediction: torch.Tensor, target: torch.Tensor, pad_index: int = 0) -> float:
    """Fraction of rows whose every real target token is predicted; (B, T) and (B, T)."""
    _tokens("target", target)
    _tokens("prediction", prediction)
    check.expect_shape(prediction, "B T", "prediction", **check.expect_shape(target, "B T", "target"))
    real = target != pad_index  # (B, T)
    return float(((prediction == target) | ~real).all(dim=1).float().mean())


class Encoder(nn.Module):
    """Reads padded token sequences; returns every step's states and one summary vector.

    Shapes: source (B, S) -> outputs (B, S, D * H), summary (B, H), D = 2 if bidirectional.
    """

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = config
        D = 2 if config.bidirectional else 1
        self.embedding = nn.Embedding(config.source_vocab, config.embedding_dim, padding_idx=config.pad_index)
        self.rnn = nn.GRU(config.embedding_dim, config.hidden_size, config.num_layers,
                          batch_first=True, bidirectional=config.bidirectional)
        self.summarize = nn.Linear(D * config.hidden_size, config.hidden_size)

    def forward(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        source = _tokens("source", source, self.config.source_vocab)
        lengths = padding_mask(source, self.config.pad_index).sum(dim=1)  # (B,)
        x = self.embedding(source)  # (B, S, E)
        # packing makes the GRU stop at each row's last real token, in both directions
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, h_n = self.rnn(packed)  # h_n: (L * D, B, H)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=source.shape[1])
        D = 2 if self.config.bidirectional else 1
        last = h_n[-D:].transpose(0, 1).flatten(1)  # (B, D * H): top layer, both directions
        # c = tanh(W [h_T(forward); h_1(backward)] + b)
        summary = torch.tanh(self.summarize(last))  # (B, H)
        return outputs, summary


class Decoder(nn.Module):
    """Writes a sequence from a context vector, one token per step.

    Shapes: inputs (B, T) previous tokens, context (B, H) -> logits (B, T, V), state (L, B, H).
    """

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = config
        H, E = config.hidden_size, config.embedding_dim
        self.embedding = nn.Embedding(config.target_vocab, E, padding_idx=config.pad_index)
        extra = H if config.context_every_step else 0
        self.rnn = nn.GRU(E + extra, H, config.num_layers, batch_first=True)
        self.output = nn.Linear(H + extra, config.target_vocab)

    def forward(self, inputs: torch.Tensor, context: torch.Tensor,
                state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = _tokens("inputs", inputs, self.config.target_vocab)
        check.expect_shape(context, "B H", "context", B=inputs.shape[0], H=self.config.hidden_size)
        if state is None:
            # s_0 = c in every layer
            state = context.unsqueeze(0).repeat(self.config.num_layers, 1, 1).contiguous()  # (L, B, H)
        x = self.embedding(inputs)  # (B, T, E)
        if self.config.context_every_step:
            # s_t = GRU([e(y_{t-1}); c], s_{t-1})
            x = torch.cat([x, context.unsqueeze(1).expand(-1, x.shape[1], -1)], dim=2)  # (B, T, E + H)
        s, state = self.rnn(x, state)  # s: (B, T, H)
        if self.config.context_every_step:
            # p(y_t | y_<t, c) = softmax(W_o [s_t; c] + b_o)
            s = torch.cat([s, context.unsqueeze(1).expand(-1, s.shape[1], -1)], dim=2)  # (B, T, 2H)
        return self.output(s), state

    def generate(self, context: torch.Tensor, length: int) -> torch.Tensor:
        """Greedy decoding: feed back the most likely token, ``length`` steps. (B, length)."""
        length = check.positive_int("length", length)
        token = torch.full((context.shape[0], 1), self.config.bos_index, dtype=torch.long, device=context.device)
        state, out = None, []
        for _ in range(length):
            logits, state = self(token, context, state)  # (B, 1, V)
            # y_t = argmax_v p(v | y_<t, c)
            token = logits.argmax(dim=2)  # (B, 1)
            out.append(token)
        return torch.cat(out, dim=1)


class Seq2Seq(nn.Module):
    """Encoder-decoder (many-to-many): source tokens in, target-token logits out.

    Shapes: source (B, S), target (B, T) -> logits (B, T, V).
    """

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: the decoder sees the true previous target token."""
        _, context = self.encoder(source)  # (B, H)
        logits, _ = self.decoder(shift_right(target, self.config.bos_index), context)
        return logits  # (B, T, V)

    @torch.no_grad()
    def generate(self, source: torch.Tensor, length: int) -> torch.Tensor:
        """Greedy translation of ``source`` into ``length`` target tokens. (B, length)."""
        _, context = self.encoder(source)
        return self.decoder.generate(context, length)


class SequenceClassifier(nn.Module):
    """Many-to-one: the encoder's summary, then a linear layer. (B, S) -> (B, K) logits."""

    def __init__(self, config: Seq2SeqConfig, num_classes: int) -> None:
        super().__init__()
        self.encoder = Encoder(config)
        self.head = nn.Linear(config.hidden_size, check.positive_int("num_classes", num_classes))

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        _, summary = self.encoder(source)  # (B, H)
        return self.head(summary)


class ConditionalGenerator(nn.Module):
    """One-to-many: an embedded condition is the decoder's context. (B,) conditions -> (B, T, V)."""

    def __init__(self, config: Seq2SeqConfig, num_conditions: int) -> None:
        super().__init__()
        self.config = config
        self.num_conditions = check.positive_int("num_conditions", num_conditions)
        self.condition = nn.Embedding(num_conditions, config.hidden_size)
        self.decoder = Decoder(config)

    def _context(self, condition: torch.Tensor) -> torch.Tensor:
        check.labels("condition", condition, self.num_conditions)
        return torch.tanh(self.condition(condition))  # (B, H)

    def forward(self, condition: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Teacher forcing, as in :class:`Seq2Seq`."""
        logits, _ = self.decoder(shift_right(target, self.config.bos_index), self._context(condition))
        return logits

    @torch.no_grad()
    def generate(self, condition: torch.Tensor, length: int) -> torch.Tensor:
        """Greedy generation of ``length`` tokens per condition. (B, length)."""
        return self.decoder.generate(self._context(condition), length)


@dataclass
class TrainingCurve:
    """Exact match on the validation set as training goes on."""

    steps: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # training time only, evaluation excluded
    exact_match: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # mean training loss since the last point


def train_teacher_forcing(
    model: Seq2Seq | ConditionalGenerator,
    X: torch.Tensor,
    Y: torch.Tensor,
    *,
    steps: int,
    optimizer: torch.optim.Optimizer,
    batch_size: int = 128,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    every: int = 100,
    generator: torch.Generator | None = None,
) -> TrainingCurve:
    """Train with teacher forcing for ``steps`` mini-batches; every ``every`` steps record the
    exact match of greedy decoding on ``val`` (X, Y).

    Shapes: X (N, S) tokens or (N,) conditions, Y (N, T).
    """
    check.tensor("X", X)
    _tokens("Y", Y)
    check.same_length(X=X, Y=Y)
    steps, every = check.positive_int("steps", steps), check.positive_int("every", every)
    batch_size = check.positive_int("batch_size", batch_size)
    check.optimizer_for("optimizer", optimizer, model)
    device = next(model.parameters()).device
    pad = model.config.pad_index
    curve, running, seconds = TrainingCurve(), [], 0.0
    order = torch.randperm(len(X), generator=generator)
    position = 0
    for step in range(1, steps + 1):
        start = time.perf_counter()
        if position + batch_size > len(X):
            order, position = torch.randperm(len(X), generator=generator), 0
        idx = order[position:position + batch_size]
        position += batch_size
        x, y = X[idx].to(device), Y[idx].to(device)
        model.train()
        loss = sequence_loss(model(x, y), y, pad)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        running.append(loss.item())
        seconds += time.perf_counter() - start
        if val is not None and (step % every == 0 or step == steps):
            model.eval()
            prediction = model.generate(val[0].to(device), val[1].shape[1])
            curve.steps.append(step)
            curve.seconds.append(seconds)
            curve.exact_match.append(exact_match(prediction, val[1].to(device), pad))
            curve.losses.append(sum(running) / len(running))
            running = []
    return curve
