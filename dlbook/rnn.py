"""Recurrent cells and layers (Part 9, "Recurrent neural networks").

:class:`RNNCell`, :class:`LSTMCell` and :class:`GRUCell` are written from the
equations, with ``torch.nn.RNNCell``/``LSTMCell``/``GRUCell``'s parameter names,
shapes, gate order and initialization, so a state dict loads from one into the
other (the tests prove they compute the same thing). :class:`Recurrent` runs
any cell over a batch-first sequence. The chapter's character-level language
model (:class:`CharLM`, :func:`sample`, :func:`bits_per_char`) and its
count-based baseline (:class:`CharNGram`) are here too. The LSTM and GRU cells
are derived in the chapter "LSTM and GRU", which also trains
:class:`SequenceClassifier` (many-to-one) with :func:`chrono_init_`'s gate biases.

>>> cell = LSTMCell(3, 5)
>>> h, c = cell(torch.randn(2, 3))
>>> out, (h, c) = Recurrent(cell)(torch.randn(2, 7, 3))
>>> out.shape, h.shape
(torch.Size([2, 7, 5]), torch.Size([2, 5]))
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

from dlbook import _checks as check

__all__ = [
    "RNNCell", "LSTMCell", "GRUCell", "Recurrent", "CharLMConfig", "CharLM", "sample",
    "bits_per_char", "CharNGram", "SequenceClassifierConfig", "SequenceClassifier", "chrono_init_",
]

#: The state a cell carries from step to step: ``h`` alone, or ``(h, c)`` for an LSTM.
State = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]


class _Cell(nn.Module):
    """Parameters and input checks shared by the three cells (``gates`` blocks of rows)."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size = check.positive_int("input_size", input_size)
        self.hidden_size = check.positive_int("hidden_size", hidden_size)
        rows = self.gates * self.hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, self.input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, self.hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(rows))
        self.bias_hh = nn.Parameter(torch.empty(rows))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform on ``[-1/sqrt(hidden_size), 1/sqrt(hidden_size)]``, as torch does."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _input(self, x: object) -> torch.Tensor:
        x = check.as_float_like("x", x, self.weight_ih)
        check.expect_shape(x, "B input_size", "x", input_size=self.input_size)
        return x

    def _state(self, name: str, h: object, x: torch.Tensor) -> torch.Tensor:
        if h is None:
            return x.new_zeros(x.shape[0], self.hidden_size)
        h = check.as_float_like(name, h, self.weight_ih)
        check.expect_shape(h, "B hidden_size", name, B=x.shape[0], hidden_size=self.hidden_size)
        return h

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class RNNCell(_Cell):
    """One step of the vanilla (Elman) RNN: ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)``.

    Shapes: x (B, input_size), h (B, hidden_size) or None (zeros) -> h' (B, hidden_size).
    """

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh") -> None:
        self.nonlinearity = check.one_of("nonlinearity", nonlinearity, ["tanh", "relu"])
        super().__init__(input_size, hidden_size)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """The next hidden state; float64 input to a float32 cell is converted."""
        x = self._input(x)
        h = self._state("h", h, x)
        # a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
        a = x @ self.weight_ih.T + self.bias_ih + h @ self.weight_hh.T + self.bias_hh  # (B, H)
        # h_t = tanh(a_t)  (or relu)
        return torch.tanh(a) if self.nonlinearity == "tanh" else torch.relu(a)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, nonlinearity={self.nonlinearity!r}"


class LSTMCell(_Cell):
    """One step of the LSTM; gate rows in torch's order: input i, forget f, candidate g, output o.

    Shapes: x (B, input_size), (h, c) each (B, hidden_size), or None -> (h', c').
    """

    gates = 4

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The next ``(h, c)``; float64 input to a float32 cell is converted."""
        x = self._input(x)
        if state is None:
            state = (None, None)
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise TypeError(f"state must be a pair (h, c) or None, got {type(state).__name__}")
        h, c = self._state("h", state[0], x), self._state("c", state[1], x)
        gates = x @ self.weight_ih.T + self.bias_ih + h @ self.weight_hh.T + self.bias_hh  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=1)  # each (B, H)
        # i_t, f_t, o_t = sigmoid(...), g_t = tanh(...)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        # c_t = f_t * c_{t-1} + i_t * g_t
        c_next = f * c + i * g
        # h_t = o_t * tanh(c_t)
        h_next = o * torch.tanh(c_next)
        return h_next, c_next


class GRUCell(_Cell):
    """One step of the GRU as torch computes it: reset r, update z, candidate n.

    Shapes: x (B, input_size), h (B, hidden_size) or None (zeros) -> h' (B, hidden_size).
    """

    gates = 3

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """The next hidden state; float64 input to a float32 cell is converted."""
        x = self._input(x)
        h = self._state("h", h, x)
        x_r, x_z, x_n = (x @ self.weight_ih.T + self.bias_ih).chunk(3, dim=1)  # each (B, H)
        h_r, h_z, h_n = (h @ self.weight_hh.T + self.bias_hh).chunk(3, dim=1)  # each (B, H)
        # r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr), z_t likewise
        r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        # n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
        n = torch.tanh(x_n + r * h_n)
        # h_t = (1 - z_t) * n_t + z_t * h_{t-1}
        return (1 - z) * n + z * h


_CELLS = (RNNCell, LSTMCell, GRUCell, nn.RNNCell, nn.LSTMCell, nn.GRUCell)


class Recurrent(nn.Module):
    """Run a cell over a batch-first sequence, one step at a time (the unrolled network).

    Shapes: x (B, T, input_size) -> all hidden states (B, T, hidden_size) and the last state.
    """

    def __init__(self, cell: nn.Module) -> None:
        super().__init__()
        if not isinstance(cell, _CELLS):
            names = ", ".join(c.__name__ for c in _CELLS[:3])
            raise TypeError(f"cell must be one of {names} (ours or torch's), got {type(cell).__name__}")
        self.cell = cell

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """All hidden states and the last state (``(h, c)`` for an LSTM cell)."""
        x = check.as_float_like("x", x, self.cell.weight_ih)
        check.expect_shape(x, "B T D", "x", D=self.cell.input_size)
        outputs = []
        for t in range(x.shape[1]):
            # the same cell, so the same weights, at every step
            state = self.cell(x[:, t], state)
            outputs.append(state[0] if isinstance(state, tuple) else state)
        return torch.stack(outputs, dim=1), state  # (B, T, H)


# ----- a character-level language model -------------------------------------------

_LAYERS = {"rnn": (RNNCell, nn.RNN), "lstm": (LSTMCell, nn.LSTM), "gru": (GRUCell, nn.GRU)}


@dataclass
class CharLMConfig:
    """Hyper-parameters of :class:`CharLM`."""

    vocab_size: int
    hidden_size: int = 128
    cell: str = "rnn"  # "rnn", "lstm" or "gru"
    fused: bool = False  # torch's fused nn.RNN/LSTM/GRU instead of our Recurrent (faster)

    def __post_init__(self) -> None:
        check.positive_int("vocab_size", self.vocab_size)
        check.positive_int("hidden_size", self.hidden_size)
        check.one_of("cell", self.cell, list(_LAYERS))
        if not isinstance(self.fused, bool):
            raise TypeError(f"fused must be a bool, got {type(self.fused).__name__}")


def _tokens(name: str, tokens: object, vocab_size: int, spec: str) -> torch.Tensor:
    tokens = check.tensor(name, tokens)
    if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer character ids, got a {tokens.dtype} tensor")
    check.expect_shape(tokens, spec, name)
    low, high = int(tokens.min()), int(tokens.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(f"{name} must hold ids in [0, {vocab_size}), got values in [{low}, {high}]")
    return tokens


class CharLM(nn.Module):
    """Predict the next character: one-hot x_t -> recurrent layer -> logits y_t = W_hy h_t + b_y.

    Shapes: tokens (B, T) -> logits (B, T, vocab_size) and the last state
    (``h`` or ``(h, c)``, each (B, hidden_size)).
    """

    def __init__(self, config: CharLMConfig) -> None:
        super().__init__()
        self.config = config
        V, H = config.vocab_size, config.hidden_size
        cell, layer = _LAYERS[config.cell]
        self.rnn = layer(V, H, batch_first=True) if config.fused else Recurrent(cell(V, H))
        self.head = nn.Linear(H, V)

    def forward(self, tokens: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Logits for the character after each position, and the state to carry on with."""
        tokens = _tokens("tokens", tokens, self.config.vocab_size, "B T")
        x = F.one_hot(tokens, self.config.vocab_size).to(self.head.weight.dtype)  # (B, T, V)
        if self.config.fused:  # torch's layers keep a leading layer axis on the state
            h, state = self.rnn(x, _map_state(state, lambda s: s[None]))
            state = _map_state(state, lambda s: s[0])
        else:
            h, state = self.rnn(x, state)  # (B, T, H)
        return self.head(h), state  # (B, T, V)


def _map_state(state: State | None, fn: Callable[[torch.Tensor], torch.Tensor]) -> State | None:
    """Apply ``fn`` to ``h``, or to both of ``(h, c)``."""
    if state is None:
        return None
    return tuple(fn(s) for s in state) if isinstance(state, tuple) else fn(state)


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def sample(
    model: CharLM,
    prompt: torch.Tensor,
    length: int,
    *,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw ``length`` characters after ``prompt``, each from softmax(logits / temperature).

    Shapes: prompt (P,) -> ids (length,). Draws on the CPU with ``generator``.
    """
    prompt = _tokens("prompt", prompt, model.config.vocab_size, "P")
    length = check.positive_int("length", length)
    temperature = check.positive_float("temperature", temperature)
    model.eval()
    logits, state = model(prompt[None].to(_device_of(model)))
    drawn = []
    for _ in range(length):
        # p(c) proportional to exp(y_c / temperature)
        probs = torch.softmax(logits[0, -1].double().cpu() / temperature, dim=0)  # (V,)
        nxt = torch.multinomial(probs, 1, generator=generator)  # (1,)
        drawn.append(nxt)
        logits, state = model(nxt[None].to(_device_of(model)), state)
    return torch.cat(drawn)


@torch.no_grad()
def bits_per_char(model: CharLM, ids: torch.Tensor, *, batch_size: int = 32, chunk: int = 256) -> float:
    """Average -log2 p(next character) over ``ids`` cut into ``batch_size`` contiguous streams.

    Each stream is read in pieces of ``chunk`` characters, the state carried across
    pieces; every character but each stream's first is predicted.
    """
    ids = _tokens("ids", ids, model.config.vocab_size, "N")
    batch_size = check.positive_int("batch_size", batch_size)
    chunk = check.positive_int("chunk", chunk)
    L = len(ids) // batch_size
    if L < 2:
        raise ValueError(f"ids has {len(ids)} characters, too few for {batch_size} streams of at least 2")
    streams = ids[: batch_size * L].view(batch_size, L).to(_device_of(model))  # (B, L)
    model.eval()
    state, nats = None, 0.0
    for start in range(0, L - 1, chunk):
        x = streams[:, start: start + chunk]  # (B, <=chunk)
        y = streams[:, start + 1: start + 1 + chunk]
        logits, state = model(x[:, : y.shape[1]], state)
        nats += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").item()
    return nats / (batch_size * (L - 1)) / math.log(2)


# ----- the count-based baseline ---------------------------------------------------


class CharNGram:
    """A character n-gram model with interpolated (Dirichlet) smoothing.

    p_k(c | h) = (N(h, c) + alpha p_{k-1}(c | h')) / (N(h) + alpha), where h holds the
    last k - 1 characters and h' drops the oldest; p_0 is uniform over ``chars``.
    """

    def __init__(self, order: int, *, alpha: float = 1.0, chars: Sequence[str]) -> None:
        self.order = check.positive_int("order", order)
        self.alpha = check.nonnegative_float("alpha", alpha)
        chars = list(chars)
        if not chars or len(set(chars)) != len(chars) or any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError(f"chars must be a non-empty sequence of distinct characters, got {chars[:10]!r}")
        self.chars = chars
        self._counts: list[dict[str, Counter]] | None = None

    def _text(self, name: str, text: object, minimum: int) -> str:
        if not isinstance(text, str):
            raise TypeError(f"{name} must be a str, got {type(text).__name__}")
        if len(text) < minimum:
            raise ValueError(f"{name} must have at least {minimum} characters, got {len(text)}")
        unknown = set(text) - set(self.chars)
        if unknown:
            raise ValueError(f"{name} holds characters outside chars: {sorted(unknown)[:10]!r}")
        return text

    def fit(self, text: str) -> CharNGram:
        """Count every k-gram of ``text`` for k = 1 .. order; returns ``self``."""
        text = self._text("text", text, 1)
        self._counts = []
        for k in range(self.order):  # k characters of context
            grams = Counter(text[i - k: i + 1] for i in range(k, len(text)))
            table: dict[str, Counter] = {}
            for gram, n in grams.items():
                table.setdefault(gram[:-1], Counter())[gram[-1]] = n
            self._counts.append(table)
        self._totals = [{h: sum(c.values()) for h, c in table.items()} for table in self._counts]
        return self

    def probability(self, context: str, char: str) -> float:
        """p(char | the last order - 1 characters of context)."""
        if self._counts is None:
            raise RuntimeError("call fit(text) before asking for probabilities")
        if char not in self.chars:
            raise ValueError(f"char must be one of chars, got {char!r}")
        p = 1.0 / len(self.chars)  # p_0: uniform
        for k in range(min(len(context), self.order - 1) + 1):
            h = context[len(context) - k:]
            seen = self._counts[k].get(h)
            if seen is None:  # an unseen context: longer ones are unseen too
                break
            # p_k(c | h) = (N(h, c) + alpha p_{k-1}(c | h')) / (N(h) + alpha)
            p = (seen.get(char, 0) + self.alpha * p) / (self._totals[k][h] + self.alpha)
        return p

    def bits_per_char(self, text: str) -> float:
        """Average -log2 p(c_t | c_{t-order+1} .. c_{t-1}) over every character of ``text`` but the first."""
        if self._counts is None:
            raise RuntimeError("call fit(text) before measuring bits per character")
        text = self._text("text", text, 2)
        total = 0.0
        for t in range(1, len(text)):
            p = self.probability(text[max(0, t - self.order + 1): t], text[t])
            if p == 0.0:
                raise ValueError(f"character {text[t]!r} has probability 0 after {text[:t][-5:]!r}: "
                                 "use alpha > 0 to smooth")
            total -= math.log2(p)
        return total / (len(text) - 1)


# ----- many-to-one: a sequence classifier (chapter "LSTM and GRU") ------------------


@dataclass
class SequenceClassifierConfig:
    """Hyper-parameters of :class:`SequenceClassifier`."""

    input_size: int
    num_classes: int
    hidden_size: int = 32
    cell: str = "lstm"  # "rnn", "lstm" or "gru"
    fused: bool = True  # torch's fused layer (fast); False runs our cell in Recurrent

    def __post_init__(self) -> None:
        check.positive_int("input_size", self.input_size)
        check.positive_int("num_classes", self.num_classes, minimum=2)
        check.positive_int("hidden_size", self.hidden_size)
        check.one_of("cell", self.cell, list(_LAYERS))
        if not isinstance(self.fused, bool):
            raise TypeError(f"fused must be a bool, got {type(self.fused).__name__}")


class SequenceClassifier(nn.Module):
    """Read a whole sequence, classify from the last hidden state: logits = W_hy h_T + b_y.

    Shapes: x (B, T, input_size) -> logits (B, num_classes).
    """

    def __init__(self, config: SequenceClassifierConfig) -> None:
        super().__init__()
        self.config = config
        cell, layer = _LAYERS[config.cell]
        D, H = config.input_size, config.hidden_size
        self.rnn = layer(D, H, batch_first=True) if config.fused else Recurrent(cell(D, H))
        self.head = nn.Linear(H, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits; float64 input to a float32 model is converted."""
        x = check.as_float_like("x", x, self.head.weight)
        check.expect_shape(x, "B T D", "x", D=self.config.input_size)
        h, _ = self.rnn(x)  # (B, T, H)
        return self.head(h[:, -1])  # (B, K)


def _gate_biases(layer: nn.Module) -> tuple[str, torch.Tensor, torch.Tensor]:
    """(kind, bias_ih, bias_hh) of an LSTM or GRU cell or single-layer module."""
    if isinstance(layer, Recurrent):
        layer = layer.cell
    if isinstance(layer, (LSTMCell, GRUCell, nn.LSTMCell, nn.GRUCell)):
        biases = layer.bias_ih, layer.bias_hh
    elif (isinstance(layer, (nn.LSTM, nn.GRU)) and layer.num_layers == 1
          and not layer.bidirectional and layer.bias):
        biases = layer.bias_ih_l0, layer.bias_hh_l0
    else:
        raise TypeError("layer must be an LSTM or GRU cell, or a one-layer nn.LSTM/nn.GRU, "
                        f"got {type(layer).__name__}")
    kind = "lstm" if isinstance(layer, (LSTMCell, nn.LSTMCell, nn.LSTM)) else "gru"
    return kind, *biases


@torch.no_grad()
def chrono_init_(layer: nn.Module, t_max: int, *, generator: torch.Generator | None = None) -> nn.Module:
    """Chrono initialization: gate biases that make the memory last about 1 .. t_max steps.

    LSTM: b_f ~ log U[1, t_max - 1], b_i = -b_f. GRU (torch's h' = (1 - z) n + z h): b_z ~ log U[1, t_max - 1].
    """
    kind, bias_ih, bias_hh = _gate_biases(layer)
    t_max = check.positive_int("t_max", t_max, minimum=3)
    H = bias_ih.shape[0] // (4 if kind == "lstm" else 3)
    # b = log(u), u uniform on [1, t_max - 1]: a forget rate 1 / (1 + u), a memory of about u steps
    b = torch.log(1 + torch.rand(H, generator=generator, dtype=torch.float64) * (t_max - 2)).to(bias_ih)
    if kind == "lstm":  # rows i, f, g, o
        bias_ih[:2 * H] = torch.cat([-b, b])
        bias_hh[:2 * H] = 0.0
    else:  # rows r, z, n
        bias_ih[H:2 * H] = b
        bias_hh[H:2 * H] = 0.0
    return layer
