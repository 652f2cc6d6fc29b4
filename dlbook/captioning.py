"""Image captioning: an encoder-decoder captioner, greedy and beam search (Part 13, "Image captioning").

A convolutional encoder turns an image into a grid of features, a recurrent
decoder turns those features into a sentence one token at a time, and a search
over the decoder's next-token distributions picks the sentence. ``beam_search``
knows nothing about images: it searches any model that can score the next token
of a batch of prefixes.

The captioner is an :class:`ImageEncoder` (a small CNN: images (B, 3, S, S) to
``ImageFeatures(grid (B, C, h, w), summary (B, F))``) and a decoder. Any decoder
that subclasses :class:`CaptionDecoder` and writes two methods works with
everything here (:class:`Captioner`, :func:`caption_loss`,
:func:`train_captioner`, :func:`greedy_decode`, :func:`step_function`,
:func:`decode`, :func:`evaluate`):

- ``init_state(features) -> state``: the recurrent state before the first word,
  a tuple of tensors, each with the batch on its first axis;
- ``step(token, state, features) -> (logits, state)``: token (B,) is the previous
  word (``<bos>`` first), logits (B, V) score the next one.

``CaptionDecoder.forward(features, inputs)`` is teacher forcing, the loop of
``step`` over inputs (B, T) to logits (B, T, V); a decoder may override it with a
faster equivalent, as :class:`LSTMDecoder` does with a fused LSTM. The attention
decoder, :class:`SoftAttentionDecoder` (derived in Part 13's "Captioning with
attention", where ``dlbook.captioning_attention`` adds its tools), reads
``features.grid`` in ``step``; the LSTM decoder reads only ``features.summary``. Captions come from ``dlbook.data.caption_scenes``, whose
``CaptionVocab`` has ``<pad>`` = 0, ``<bos>`` = 1 and ``<eos>`` = 2, the
defaults of :class:`CaptionerConfig`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from dlbook import _checks as check
from dlbook.attention import AdditiveAttention
from dlbook.data.scenes import CaptionVocab
from dlbook.metrics import bleu
from dlbook.seq2seq import sequence_loss, shift_right

__all__ = [
    "beam_search", "CaptionerConfig", "ImageFeatures", "ImageEncoder", "CaptionDecoder", "LSTMDecoder",
    "AttentionCaptionerConfig", "SoftAttentionDecoder",
    "Captioner", "caption_loss", "sequence_log_prob", "train_captioner", "greedy_decode", "step_function",
    "decode", "CaptionResult", "evaluate",
]

StepFn = Callable[[torch.Tensor], torch.Tensor]


def _step_scores(step_fn: StepFn, prefixes: torch.Tensor) -> torch.Tensor:
    """Call ``step_fn`` on ``prefixes`` (K, t) and check it returns log-probabilities (K, V)."""
    out = step_fn(prefixes)
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        raise TypeError(
            f"step_fn must return a floating tensor of log-probabilities (K, V), got {check._describe(out)}"
        )
    if out.dim() != 2 or out.shape[0] != prefixes.shape[0]:
        raise ValueError(
            f"step_fn must return log-probabilities of shape (K, V) = ({prefixes.shape[0]}, V) "
            f"for prefixes of shape {tuple(prefixes.shape)}, got shape {tuple(out.shape)}"
        )
    return out.detach().double().cpu()


def beam_search(
    step_fn: StepFn,
    *,
    bos: int,
    eos: int,
    beam_size: int,
    max_len: int,
    length_penalty: float = 0.0,
) -> list[tuple[list[int], float]]:
    """Search for the token sequences of highest total log-probability under ``step_fn``.

    ``step_fn(prefixes)`` takes a LongTensor ``(K, t)`` of prefixes (on the CPU;
    move them to the model's device inside), each starting with ``bos``, and
    returns the log-probabilities ``(K, V)`` of the next token. At every step the
    search extends each unfinished prefix by every token and keeps the
    ``beam_size`` best of those extensions and of the hypotheses already finished.

    Returns up to ``beam_size`` distinct hypotheses, best first, as
    ``(tokens, score)``: ``tokens`` leave out ``bos`` and end with ``eos``, or stop
    after ``max_len`` tokens without it; ``score`` is the sum of the tokens'
    log-probabilities. ``beam_size=1`` is greedy decoding; a beam as wide as the
    number of possible prefixes returns the sequence of highest total
    log-probability. ``length_penalty`` alpha > 0 ranks hypotheses by their score divided
    by their length to the power alpha (the returned score stays the plain sum); 0, the default,
    ranks by the sum itself.
    """
    if not callable(step_fn):
        raise TypeError(f"step_fn must be callable, got {check._describe(step_fn)}")
    bos = check.nonnegative_int("bos", bos)
    eos = check.nonnegative_int("eos", eos)
    beam_size = check.positive_int("beam_size", beam_size)
    max_len = check.positive_int("max_len", max_len)
    alpha = check.nonnegative_float("length_penalty", length_penalty)

    def rank(hyp: tuple[list[int], float]) -> float:
        tokens, score = hyp
        return score / len(tokens) ** alpha if alpha else score

    finished: list[tuple[list[int], float]] = []
    alive: list[tuple[list[int], float]] = [([], 0.0)]
    for _ in range(max_len):
        prefixes = torch.tensor([[bos, *tokens] for tokens, _ in alive], dtype=torch.long)  # (K, t)
        logp = _step_scores(step_fn, prefixes)  # (K, V)
        if eos >= logp.shape[1]:
            raise ValueError(f"eos must be a token id below the vocabulary size {logp.shape[1]}, got {eos}")
        # Only the beam_size best extensions of one prefix can survive the cut below.
        top, idx = logp.topk(min(beam_size, logp.shape[1]), dim=1)  # (K, k)
        candidates = [
            (tokens + [int(j)], score + float(lp))
            for (tokens, score), lps, ids in zip(alive, top.tolist(), idx.tolist())
            for lp, j in zip(lps, ids)
        ]
        # score(prefix + [w]) = score(prefix) + log p(w | prefix); keep the best beam_size
        # of the finished hypotheses and the new extensions (sorted() is stable, so ties
        # keep their order and the search is deterministic).
        kept = sorted(finished + candidates, key=rank, reverse=True)[:beam_size]
        finished = [h for h in kept if h in finished or h[0][-1] == eos]
        alive = [h for h in kept if h not in finished]
        if not alive:
            break
    return sorted(finished + alive, key=rank, reverse=True)[:beam_size]


# ---------------------------------------------------------------------------
# The captioner: encoder, decoder interface, LSTM decoder, training, decoding
# ---------------------------------------------------------------------------

# a decoder's recurrent state: tensors whose first axis is the batch
State = tuple[torch.Tensor, ...]


@dataclass
class CaptionerConfig:
    """Sizes of the CNN encoder and the LSTM decoder."""

    vocab_size: int  # caption tokens, <pad>, <bos> and <eos> included
    image_size: int = 32  # side of the square RGB input
    channels: tuple[int, ...] = (16, 32, 32)  # one block each: stride-2 conv, batch norm, ReLU
    feature_dim: int = 64  # the image summary, which starts the decoder and is fed to every step
    embedding_dim: int = 32
    hidden_size: int = 64
    pad_index: int = 0
    bos_index: int = 1
    eos_index: int = 2

    def __post_init__(self) -> None:
        for name in ("vocab_size", "image_size", "feature_dim", "embedding_dim", "hidden_size"):
            setattr(self, name, check.positive_int(name, getattr(self, name)))
        channels = self.channels
        if (isinstance(channels, (str, bytes)) or not isinstance(channels, (tuple, list))
                or not channels):
            raise TypeError(
                f"channels must be a non-empty tuple of ints, got {check._describe(channels)}")
        self.channels = tuple(check.positive_int("channels", c) for c in self.channels)
        if self.image_size % 2 ** len(self.channels):
            raise ValueError(f"image_size must be divisible by 2**len(channels) = "
                             f"{2 ** len(self.channels)}, got image_size={self.image_size}")
        for name in ("pad_index", "bos_index", "eos_index"):
            index = check.nonnegative_int(name, getattr(self, name))
            if index >= self.vocab_size:
                raise ValueError(f"{name} must be < vocab_size = {self.vocab_size}, got {index}")
        if len({self.pad_index, self.bos_index, self.eos_index}) < 3:
            raise ValueError("pad_index, bos_index and eos_index must differ")

    @property
    def grid_size(self) -> int:
        """Side h = w of the encoder's feature grid."""
        return self.image_size // 2 ** len(self.channels)


class ImageFeatures(NamedTuple):
    """What the encoder gives the decoder: a grid (B, C, h, w) and a summary vector (B, F)."""

    grid: torch.Tensor
    summary: torch.Tensor


class ImageEncoder(nn.Module):
    """A small CNN: images (B, 3, S, S) -> ImageFeatures(grid (B, C, h, w), summary (B, F)).

    Each block halves the side, so h = w = S / 2^len(channels).

    The summary is a linear map of the whole flattened grid, not an average over it:
    averaging would throw away where the objects are, and the captions say where.
    """

    def __init__(self, config: CaptionerConfig) -> None:
        super().__init__()
        self.config = config
        blocks: list[nn.Module] = []
        previous = 3
        for c in config.channels:
            # a 4x4 kernel at stride 2 halves the side and still covers every pixel
            blocks += [nn.Conv2d(previous, c, 4, stride=2, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
            previous = c
        self.cnn = nn.Sequential(*blocks)
        self.summarize = nn.Linear(previous * config.grid_size ** 2, config.feature_dim)

    def forward(self, images: torch.Tensor) -> ImageFeatures:
        S = self.config.image_size
        check.expect_shape(images, "B C H W", "images", C=3, H=S, W=S)
        grid = self.cnn(check.floating("images", images))  # (B, C, h, w)
        # v = ReLU(W_v flatten(grid) + b_v)
        summary = torch.relu(self.summarize(grid.flatten(1)))  # (B, F)
        return ImageFeatures(grid, summary)


class CaptionDecoder(nn.Module):
    """The interface every caption decoder follows; subclasses write init_state and step.

    ``init_state(features) -> state`` and ``step(token (B,), state, features) -> (logits
    (B, V), state)``; a state is a tuple of tensors with the batch first. ``forward``
    (teacher forcing) is the loop over ``step``: (features, inputs (B, T)) -> logits (B, T, V).
    """

    def init_state(self, features: ImageFeatures) -> State:
        """The state before the first word, from the image's features."""
        raise NotImplementedError

    def step(
        self, token: torch.Tensor, state: State, features: ImageFeatures
    ) -> tuple[torch.Tensor, State]:
        """One word: previous token (B,) and state -> next-token logits (B, V) and the new state."""
        raise NotImplementedError

    def forward(self, features: ImageFeatures, inputs: torch.Tensor) -> torch.Tensor:
        state = self.init_state(features)
        logits = []
        for t in range(inputs.shape[1]):
            # teacher forcing: the input at step t is the true y_(t-1), whatever the model predicted
            out, state = self.step(inputs[:, t], state, features)  # (B, V)
            logits.append(out)
        return torch.stack(logits, dim=1)  # (B, T, V)


class LSTMDecoder(CaptionDecoder):
    """An LSTM started from the image summary, which it also reads at every step.

    Shapes: step: token (B,) -> logits (B, V); forward: inputs (B, T) -> logits (B, T, V).
    """

    def __init__(self, config: CaptionerConfig) -> None:
        super().__init__()
        self.config = config
        F_, E, H = config.feature_dim, config.embedding_dim, config.hidden_size
        self.embedding = nn.Embedding(config.vocab_size, E, padding_idx=config.pad_index)
        self.init_h = nn.Linear(F_, H)
        self.init_c = nn.Linear(F_, H)
        self.rnn = nn.LSTM(E + F_, H, batch_first=True)  # one LSTM cell, run over a whole sequence
        self.output = nn.Linear(H, config.vocab_size)

    def init_state(self, features: ImageFeatures) -> State:
        v = features.summary  # (B, F)
        # h_0 = tanh(W_h v + b_h), c_0 = tanh(W_c v + b_c)
        return torch.tanh(self.init_h(v)), torch.tanh(self.init_c(v))

    def _run(
        self, inputs: torch.Tensor, state: State, features: ImageFeatures
    ) -> tuple[torch.Tensor, State]:
        """The LSTM over inputs (B, T) from state ((B, H), (B, H)): logits (B, T, V), last state."""
        v = features.summary.unsqueeze(1).expand(-1, inputs.shape[1], -1)  # (B, T, F)
        # x_t = [e(y_(t-1)); v]: the previous word and the image
        x = torch.cat([self.embedding(inputs), v], dim=2)  # (B, T, E + F)
        h, (h_T, c_T) = self.rnn(x, (state[0].unsqueeze(0), state[1].unsqueeze(0)))  # h: (B, T, H)
        # p(y_t | y_<t, image) = softmax(W_o h_t + b_o)
        return self.output(h), (h_T[0], c_T[0])

    def step(
        self, token: torch.Tensor, state: State, features: ImageFeatures
    ) -> tuple[torch.Tensor, State]:
        logits, state = self._run(token.unsqueeze(1), state, features)  # (B, 1, V)
        return logits[:, 0], state

    def forward(self, features: ImageFeatures, inputs: torch.Tensor) -> torch.Tensor:
        # the same as the step loop of CaptionDecoder.forward, in one fused call
        return self._run(inputs, self.init_state(features), features)[0]


@dataclass
class AttentionCaptionerConfig(CaptionerConfig):
    """The captioner's sizes, and the attention's."""

    attention_dim: int = 64  # d_a: hidden size of the additive score w . tanh(W_q h + W_k a_i)
    gate: bool = True  # scale the context by beta_t = sigmoid(w_beta . h_(t-1) + b_beta)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.attention_dim = check.positive_int("attention_dim", self.attention_dim)
        if not isinstance(self.gate, bool):
            raise TypeError(f"gate must be True or False, got {check._describe(self.gate)}")


class SoftAttentionDecoder(CaptionDecoder):
    """An LSTM that reads a weighted mean of the grid cells before every word.

    Shapes: token (B,), state (h, c) each (B, H), features.grid (B, C, h, w),
    features.summary (B, F) -> logits (B, V), state, weights (B, h w) summing to 1.
    """

    def __init__(self, config: AttentionCaptionerConfig) -> None:
        super().__init__()
        if not isinstance(config, AttentionCaptionerConfig):
            raise TypeError(f"config must be an AttentionCaptionerConfig, got {check._describe(config)}")
        self.config = config
        C, F_, E, H = config.channels[-1], config.feature_dim, config.embedding_dim, config.hidden_size
        self.embedding = nn.Embedding(config.vocab_size, E, padding_idx=config.pad_index)
        self.init_h = nn.Linear(F_, H)  # W_h, b_h: the same start as LSTMDecoder's
        self.init_c = nn.Linear(F_, H)
        self.attention = AdditiveAttention(H, C, config.attention_dim)
        self.beta = nn.Linear(H, 1) if config.gate else None
        self.cell = nn.LSTMCell(E + C, H)
        self.output = nn.Linear(H + C, config.vocab_size)

    def init_state(self, features: ImageFeatures) -> State:
        """(h_0, c_0), each (B, H), from the image summary (B, F)."""
        if not isinstance(features, ImageFeatures):
            raise TypeError(f"features must be an ImageFeatures, got {check._describe(features)}")
        cfg = self.config
        B = check.expect_shape(features.grid, "B C h w", "features.grid", C=cfg.channels[-1])["B"]
        check.expect_shape(features.summary, "B F", "features.summary", B=B, F=cfg.feature_dim)
        v = features.summary  # (B, F)
        # h_0 = tanh(W_h v + b_h), c_0 = tanh(W_c v + b_c)
        return torch.tanh(self.init_h(v)), torch.tanh(self.init_c(v))

    def step_with_weights(self, token: torch.Tensor, state: State,
                          features: ImageFeatures) -> tuple[torch.Tensor, State, torch.Tensor]:
        """One word: logits (B, V), the new state and the weights (B, L) it read the grid with."""
        h, c = state  # (B, H) each
        a = features.grid.flatten(2).transpose(1, 2)  # (B, L, C): a_i, cells in row-major order
        # e_ti = w . tanh(W_q h_(t-1) + W_k a_i) (w is the attention's v); alpha_t = softmax_i(e_t)
        context, alpha = self.attention(h.unsqueeze(1), a, a)  # (B, 1, C), (B, 1, L)
        z = context.squeeze(1)  # (B, C)
        if self.beta is not None:
            # z_t = beta_t sum_i alpha_ti a_i, beta_t = sigmoid(w_beta . h_(t-1) + b_beta)
            z = torch.sigmoid(self.beta(h)) * z
        # (h_t, c_t) = LSTM([E y_(t-1); z_t], (h_(t-1), c_(t-1)))
        h, c = self.cell(torch.cat([self.embedding(token), z], dim=1), (h, c))
        # p(y_t | y_<t, image) = softmax(W_o [h_t; z_t] + b_o)
        return self.output(torch.cat([h, z], dim=1)), (h, c), alpha.squeeze(1)

    def step(self, token: torch.Tensor, state: State, features: ImageFeatures) -> tuple[torch.Tensor, State]:
        """One word: logits (B, V) and the new state."""
        logits, state, _ = self.step_with_weights(token, state, features)
        return logits, state


class Captioner(nn.Module):
    """Encoder and decoder: images (B, 3, S, S), decoder inputs (B, T) -> logits (B, T, V).

    The decoder is an ``LSTMDecoder`` unless another ``CaptionDecoder`` is given.
    """

    def __init__(self, config: CaptionerConfig, decoder: CaptionDecoder | None = None) -> None:
        super().__init__()
        self.config = config
        self.encoder = ImageEncoder(config)
        if decoder is not None and not isinstance(decoder, CaptionDecoder):
            raise TypeError(f"decoder must be a CaptionDecoder, got {check._describe(decoder)}")
        self.decoder = LSTMDecoder(config) if decoder is None else decoder

    def forward(self, images: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        _tokens("inputs", inputs, self.config.vocab_size)
        check.same_length(images=images, inputs=inputs)
        return self.decoder(self.encoder(images), inputs)


def _tokens(name: str, x: object, vocab_size: int, spec: str = "B T") -> torch.Tensor:
    """``x`` if it is an integer tensor of shape ``spec`` holding ids below ``vocab_size``."""
    x = check.tensor(name, x)
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer token ids, got {check._describe(x)}")
    check.expect_shape(x, spec, name)
    if int(x.min()) < 0 or int(x.max()) >= vocab_size:
        raise ValueError(f"{name} must hold token ids in [0, {vocab_size}), "
                         f"got [{int(x.min())}, {int(x.max())}]")
    return x


def _captioner(model: object) -> Captioner:
    """``model`` if it is a ``Captioner``, else a ``TypeError`` naming the argument."""
    if not isinstance(model, Captioner):
        raise TypeError(f"model must be a dlbook.captioning.Captioner, got {check._describe(model)}")
    return model


def caption_loss(model: Captioner, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Teacher-forced cross-entropy per real target token, padding ignored.

    Targets (B, T) are one caption per image, each ending in <eos>; targets (B, R, T)
    are R references per image, and each image is encoded once for all R of them.
    """
    model = _captioner(model)
    cfg = model.config
    if check.tensor("targets", targets).dim() == 3:
        B, R, T = check.expect_shape(targets, "B R T", "targets").values()
        check.same_length(images=images, targets=targets)
        features = model.encoder(images)
        # every reference of image b reads image b's features: repeat each image R times
        features = ImageFeatures(*(f.repeat_interleave(R, dim=0) for f in features))
        targets = targets.reshape(B * R, T)  # (B R, T)
        _tokens("targets", targets, cfg.vocab_size)
        logits = model.decoder(features, shift_right(targets, cfg.bos_index))  # (B R, T, V)
    else:
        _tokens("targets", targets, cfg.vocab_size)
        inputs = shift_right(targets, cfg.bos_index)  # (B, T): <bos>, y_1, ..., y_(T-1)
        logits = model(images, inputs)  # (B, T, V)
    return sequence_loss(logits, targets, cfg.pad_index)


def sequence_log_prob(
    model: Captioner, images: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """log p(targets | image) summed over the real tokens, padding skipped; (B,). Sets eval mode."""
    model = _captioner(model)
    _tokens("targets", targets, model.config.vocab_size)
    model.eval()
    device = next(model.parameters()).device
    images, targets = images.to(device), targets.to(device)
    with torch.no_grad():
        logits = model(images, shift_right(targets, model.config.bos_index))  # (B, T, V)
        # log p(y | x) = sum_t log p(y_t | y_<t, x)
        token_logp = logits.log_softmax(2).gather(2, targets.unsqueeze(2)).squeeze(2)  # (B, T)
        return (token_logp * (targets != model.config.pad_index)).sum(1)


def train_captioner(
    model: Captioner,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    steps: int,
    optimizer: torch.optim.Optimizer,
    batch_size: int = 64,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    generator: torch.Generator | None = None,
) -> list[float]:
    """Teacher forcing for ``steps`` mini-batches; returns each step's training loss.

    Each step takes ``batch_size`` scenes at random and all their references (so
    the decoder sees batch_size * R captions and the encoder batch_size images);
    ``scheduler``, if given, steps after every optimizer step. Shapes: images
    (N, 3, S, S), targets (N, R, T) (references, <eos>, then <pad>).
    """
    model = _captioner(model)
    check.module("model", model)
    check.floating("images", images)
    _tokens("targets", targets, model.config.vocab_size, "N R T")
    check.same_length(images=images, targets=targets)
    steps = check.positive_int("steps", steps)
    batch_size = check.positive_int("batch_size", batch_size)
    check.optimizer_for("optimizer", optimizer, model)
    device = next(model.parameters()).device
    pad = model.config.pad_index
    N = len(targets)
    losses = []
    model.train()
    for _ in range(steps):
        idx = torch.randint(N, (batch_size,), generator=generator)  # (B,)
        y = targets[idx]  # (B, R, T)
        y = y[:, :, : int((y != pad).sum(2).max())]  # drop columns that are padding in every row
        loss = caption_loss(model, images[idx].to(device), y.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(loss.item())
    return losses


def greedy_decode(
    model: Captioner, images: torch.Tensor, *, max_len: int, prefix: torch.Tensor | None = None,
) -> list[tuple[list[int], float]]:
    """Greedy decoding of a batch: per image (tokens, score) as ``beam_search`` returns them.

    The tokens leave out <bos> and end with <eos> (or stop after ``max_len``); the score
    is their summed log-probability. With ``prefix`` (B, P), the first P tokens are
    forced (and scored) and greedy decoding continues from them. Images (B, 3, S, S).
    Puts the model in eval mode (the encoder's batch norm uses its running statistics).
    """
    model = _captioner(model)
    max_len = check.positive_int("max_len", max_len)
    cfg = model.config
    B = check.expect_shape(images, "B C H W", "images", C=3)["B"]
    forced = 0
    if prefix is not None:
        forced = _tokens("prefix", prefix, cfg.vocab_size).shape[1]
        check.expect_shape(prefix, "B P", "prefix", B=B)
        if bool((prefix == cfg.eos_index).any()) or forced >= max_len:
            raise ValueError(f"prefix must hold no <eos> and be shorter than max_len = {max_len}, "
                             f"got {forced} tokens")
    model.eval()
    images = images.to(next(model.parameters()).device)
    if prefix is not None:
        prefix = prefix.to(images.device)
    with torch.no_grad():
        features = model.encoder(images)
        state = model.decoder.init_state(features)
        token = torch.full((B,), cfg.bos_index, dtype=torch.long, device=images.device)
        done = torch.zeros(B, dtype=torch.bool, device=images.device)
        score = torch.zeros(B, dtype=torch.float64, device=images.device)
        out = []
        for t in range(max_len):
            logits, state = model.decoder.step(token, state, features)  # (B, V)
            logp = logits.log_softmax(1)  # (B, V)
            if t < forced:
                token = prefix[:, t]  # type: ignore[index]
            else:
                # y_t = argmax_v log p(v | y_<t, image)
                token = logp.argmax(1)  # (B,)
            score += torch.where(done, 0.0, logp.gather(1, token.unsqueeze(1))[:, 0].double())
            out.append(token)
            done = done | (token == cfg.eos_index)
            if bool(done.all()):
                break
    tokens = torch.stack(out, 1).tolist()  # (B, t)
    result = []
    for row, s in zip(tokens, score.tolist()):
        end = row.index(cfg.eos_index) + 1 if cfg.eos_index in row else len(row)
        result.append((row[:end], s))
    return result


def step_function(model: Captioner, image: torch.Tensor) -> StepFn:
    """A ``step_fn`` for ``beam_search``: prefixes (K, t) -> log p(next | prefix, image) (K, V).

    It remembers the decoder state after every prefix it has seen, so extending a
    prefix by one token costs one decoder step, not a pass over the whole prefix.
    Image (3, S, S).
    """
    model = _captioner(model)
    check.expect_shape(image, "C H W", "image", C=3)
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        features = model.encoder(image.unsqueeze(0).to(device))  # batch of one
        root = model.decoder.init_state(features)
    cache: dict[tuple[int, ...], tuple[State, torch.Tensor | None]] = {(): (root, None)}

    def extend(prefixes: list[tuple[int, ...]]) -> None:
        """One decoder step for each prefix, from its parent's state (the prefix minus a token)."""
        missing = [p[:-1] for p in prefixes if p[:-1] not in cache]
        if missing:
            extend(list(dict.fromkeys(missing)))
        parents = [cache[p[:-1]][0] for p in prefixes]
        state = tuple(torch.cat(parts) for parts in zip(*parents))  # (K, ...) each
        token = torch.tensor([p[-1] for p in prefixes], device=device)  # (K,)
        K = len(prefixes)
        grid = ImageFeatures(features.grid.expand(K, -1, -1, -1), features.summary.expand(K, -1))
        with torch.no_grad():
            logits, state = model.decoder.step(token, state, grid)  # (K, V)
            logp = logits.log_softmax(1)
        for k, p in enumerate(prefixes):
            cache[p] = (tuple(s[k : k + 1] for s in state), logp[k])

    def step_fn(prefixes: torch.Tensor) -> torch.Tensor:
        _tokens("prefixes", prefixes, model.config.vocab_size)
        keys = [tuple(row) for row in prefixes.tolist()]
        new = list(dict.fromkeys(k for k in keys if k not in cache))
        if new:
            extend(new)
        return torch.stack([cache[k][1] for k in keys])  # type: ignore[misc]

    return step_fn


def decode(
    model: Captioner, images: torch.Tensor, *, beam_size: int = 1, max_len: int = 20,
    length_penalty: float = 0.0,
) -> list[tuple[list[int], float]]:
    """The best (tokens, score) per image: batched greedy for beam_size 1, else ``beam_search``."""
    model = _captioner(model)
    check.expect_shape(images, "B C H W", "images", C=3)
    beam_size = check.positive_int("beam_size", beam_size)
    if beam_size == 1 and not length_penalty:
        return greedy_decode(model, images, max_len=max_len)
    cfg = model.config
    return [beam_search(step_function(model, image), bos=cfg.bos_index, eos=cfg.eos_index,
                        beam_size=beam_size, max_len=max_len, length_penalty=length_penalty)[0]
            for image in images]


@dataclass
class CaptionResult:
    """Captions of a set of images and their corpus BLEU against the references."""

    bleu: float
    captions: list[list[str]]  # words, <eos> removed
    log_probs: list[float]  # the model's summed log-probability of each caption, <eos> included


def evaluate(
    model: Captioner,
    images: torch.Tensor,
    references: Sequence[Sequence[Sequence[str]]],
    vocab: CaptionVocab,
    *,
    beam_size: int = 1,
    max_len: int = 20,
    max_n: int = 4,
    length_penalty: float = 0.0,
) -> CaptionResult:
    """Caption ``images`` (greedy or beam) and score the captions with corpus BLEU-``max_n``.

    ``references[i]`` holds the reference captions (lists of words) of ``images[i]``.
    """
    model = _captioner(model)
    check.same_length(images=images, references=references)
    if not isinstance(vocab, CaptionVocab):
        raise TypeError(f"vocab must be a CaptionVocab, got {check._describe(vocab)}")
    best = decode(model, images, beam_size=beam_size, max_len=max_len,
                  length_penalty=length_penalty)
    captions = [vocab.decode(tokens) for tokens, _ in best]
    refs = [[list(r) for r in refs_i] for refs_i in references]
    return CaptionResult(bleu(refs, captions, max_n=max_n), captions, [s for _, s in best])
