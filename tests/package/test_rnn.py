"""Tests for dlbook.rnn: the scratch cells and layer against torch.nn, the language model
and its n-gram baseline."""

from __future__ import annotations

import math
import random

import pytest
import torch
from torch import nn

from dlbook.rnn import (
    CharLM,
    CharLMConfig,
    CharNGram,
    GRUCell,
    LSTMCell,
    Recurrent,
    RNNCell,
    SequenceClassifier,
    SequenceClassifierConfig,
    bits_per_char,
    chrono_init_,
    sample,
)
from dlbook.data.memory import recall
from tests.helpers import check_against_torch, check_bad_inputs

# (ours, torch's, constructor kwargs): RNN with both non-linearities, LSTM, GRU
KINDS = [
    (RNNCell, nn.RNNCell, {"nonlinearity": "tanh"}),
    (RNNCell, nn.RNNCell, {"nonlinearity": "relu"}),
    (LSTMCell, nn.LSTMCell, {}),
    (GRUCell, nn.GRUCell, {}),
]
KIND_IDS = ["rnn-tanh", "rnn-relu", "lstm", "gru"]
SIZES = [(B, D, H) for B, D, H in [(1, 1, 1), (2, 3, 4), (5, 1, 7), (3, 8, 2), (7, 6, 6), (4, 13, 9)]]


def _pair(ours_cls, torch_cls, kwargs, D, H, seed=0):
    """Our cell and torch's with the same (float64) weights."""
    torch.manual_seed(seed)
    ours = ours_cls(D, H, **kwargs).double()
    theirs = torch_cls(D, H, **kwargs).double()
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


@pytest.mark.parametrize("ours_cls, torch_cls, kwargs", KINDS, ids=KIND_IDS)
@pytest.mark.parametrize("B, D, H", SIZES)
def test_cell_equals_torch_forward_and_gradients(ours_cls, torch_cls, kwargs, B, D, H):
    ours, theirs = _pair(ours_cls, torch_cls, kwargs, D, H, seed=B * 100 + D * 10 + H)
    g = torch.Generator().manual_seed(B + D + H)
    x, h, c = torch.randn(B, D, generator=g), torch.randn(B, H, generator=g), torch.randn(B, H, generator=g)
    names = [name for name, _ in ours.named_parameters()]
    params = [p.detach() for p in ours.parameters()]

    def run(cell):
        def fn(x, h, c, *weights):
            out = torch.func.functional_call(cell, dict(zip(names, weights)), (x, (h, c) if ours_cls is LSTMCell else h))
            if isinstance(out, tuple):
                return torch.cat(out, dim=1)  # (B, 2H): h' and c' together
            return out + 0 * c  # c unused: its gradient is zero on both sides
        return fn

    check_against_torch(run(ours), run(theirs), [x, h, c, *params])


@pytest.mark.parametrize("ours_cls, torch_cls, kwargs", KINDS, ids=KIND_IDS)
def test_cell_zero_state_default_matches_torch(ours_cls, torch_cls, kwargs):
    ours, theirs = _pair(ours_cls, torch_cls, kwargs, 3, 5)
    x = torch.randn(4, 3, dtype=torch.float64)
    a, b = ours(x), theirs(x)
    if isinstance(a, tuple):
        a, b = torch.cat(a, 1), torch.cat(b, 1)
    torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("ours_cls, torch_cls, kwargs", KINDS, ids=KIND_IDS)
def test_state_dicts_load_both_ways(ours_cls, torch_cls, kwargs):
    ours, theirs = ours_cls(4, 6, **kwargs), torch_cls(4, 6, **kwargs)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    ours.load_state_dict(theirs.state_dict())  # strict: same names, same shapes
    for k, v in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[k], v)
    fresh = ours_cls(4, 6, **kwargs)
    theirs.load_state_dict(fresh.state_dict())
    for k, v in fresh.state_dict().items():
        assert torch.equal(theirs.state_dict()[k], v)


@pytest.mark.parametrize("cls, gates", [(RNNCell, 1), (LSTMCell, 4), (GRUCell, 3)])
def test_initialization_is_uniform_like_torch(cls, gates):
    H = 64
    cell = cls(20, H)
    bound = 1 / math.sqrt(H)
    for p in cell.parameters():
        assert p.abs().max() <= bound
        # uniform on [-b, b]: the spread covers most of the interval, the mean is near 0
        assert p.max() > 0.9 * bound and p.min() < -0.9 * bound
    assert cell.weight_ih.shape == (gates * H, 20) and cell.weight_hh.shape == (gates * H, H)
    assert abs(cell.weight_hh.std().item() - bound / math.sqrt(3)) < 0.1 * bound


def test_cells_use_no_torch_recurrent_module():
    import inspect

    import dlbook.rnn as rnn

    for cls in (RNNCell, LSTMCell, GRUCell, rnn._Cell):
        text = inspect.getsource(cls)
        for banned in ("nn.RNN", "nn.LSTM", "nn.GRU", "F.rnn", "_VF", "torch.lstm", "torch.gru", "torch.rnn"):
            assert banned not in text, f"{cls.__name__} uses {banned}"


TORCH_LAYERS = {RNNCell: nn.RNN, LSTMCell: nn.LSTM, GRUCell: nn.GRU}


@pytest.mark.parametrize("ours_cls, torch_cls, kwargs", KINDS, ids=KIND_IDS)
@pytest.mark.parametrize("B, T, D, H", [(1, 1, 2, 3), (3, 5, 4, 6), (2, 9, 1, 5)])
def test_recurrent_equals_torch_layer(ours_cls, torch_cls, kwargs, B, T, D, H):
    torch.manual_seed(B + T + D + H)
    cell = ours_cls(D, H, **kwargs).double()
    layer = Recurrent(cell)
    reference = TORCH_LAYERS[ours_cls](D, H, batch_first=True, **kwargs).double()
    reference.load_state_dict({f"{k}_l0": v for k, v in cell.state_dict().items()})
    is_lstm = ours_cls is LSTMCell
    g = torch.Generator().manual_seed(7)
    x, h0, c0 = torch.randn(B, T, D, generator=g), torch.randn(B, H, generator=g), torch.randn(B, H, generator=g)

    def ours(x, h0, c0):
        out, last = layer(x, (h0, c0) if is_lstm else h0)
        last = torch.cat(last, 1) if is_lstm else last
        return torch.cat([out.flatten(1), last], dim=1) + 0 * c0.sum()

    def theirs(x, h0, c0):
        out, last = reference(x, (h0[None], c0[None]) if is_lstm else h0[None])
        last = torch.cat([last[0][0], last[1][0]], 1) if is_lstm else last[0]
        return torch.cat([out.flatten(1), last], dim=1) + 0 * c0.sum()

    check_against_torch(ours, theirs, [x, h0, c0])


def test_recurrent_runs_torch_cells_too_and_default_state():
    torch.manual_seed(0)
    cell = nn.GRUCell(3, 4)
    out, last = Recurrent(cell)(torch.randn(2, 5, 3))
    assert out.shape == (2, 5, 4) and torch.equal(out[:, -1], last)


def test_float64_input_into_float32_cell_is_converted():
    cell = RNNCell(3, 4)
    out = cell(torch.randn(2, 3, dtype=torch.float64))
    assert out.dtype == torch.float32
    out, _ = Recurrent(LSTMCell(3, 4))(torch.randn(2, 5, 3, dtype=torch.float64))
    assert out.dtype == torch.float32


# ----- language model and n-gram baseline -----------------------------------------


def test_char_lm_shapes_state_and_cells():
    for kind in ("rnn", "lstm", "gru"):
        model = CharLM(CharLMConfig(vocab_size=11, hidden_size=8, cell=kind))
        tokens = torch.randint(0, 11, (3, 7))
        logits, state = model(tokens)
        assert logits.shape == (3, 7, 11)
        # feeding the sequence in two pieces with the carried state gives the same logits
        a, s = model(tokens[:, :4])
        b, _ = model(tokens[:, 4:], s)
        torch.testing.assert_close(torch.cat([a, b], 1), logits)


def test_char_lm_fused_equals_scratch():
    torch.manual_seed(1)
    for kind in ("rnn", "lstm", "gru"):
        scratch = CharLM(CharLMConfig(vocab_size=9, hidden_size=6, cell=kind)).double()
        fused = CharLM(CharLMConfig(vocab_size=9, hidden_size=6, cell=kind, fused=True)).double()
        fused.load_state_dict({k.replace("rnn.cell.", "rnn.").replace("_ih", "_ih_l0").replace("_hh", "_hh_l0"): v
                               for k, v in scratch.state_dict().items()})
        tokens = torch.randint(0, 9, (2, 10))
        torch.testing.assert_close(scratch(tokens)[0], fused(tokens)[0], atol=1e-12, rtol=0)


def test_bits_per_char_of_uniform_model_is_log2_vocab():
    model = CharLM(CharLMConfig(vocab_size=16, hidden_size=4))
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    ids = torch.randint(0, 16, (500,))
    assert bits_per_char(model, ids, batch_size=4, chunk=20) == pytest.approx(4.0)


def test_bits_per_char_equals_direct_cross_entropy():
    torch.manual_seed(0)
    model = CharLM(CharLMConfig(vocab_size=7, hidden_size=5, cell="gru"))
    ids = torch.randint(0, 7, (61,))
    logits, _ = model(ids[None, :-1])
    direct = nn.functional.cross_entropy(logits[0], ids[1:]).item() / math.log(2)
    assert bits_per_char(model, ids, batch_size=1, chunk=13) == pytest.approx(direct, rel=1e-5)


def test_sample_is_reproducible_and_temperature_sharpens():
    torch.manual_seed(0)
    model = CharLM(CharLMConfig(vocab_size=5, hidden_size=8))
    prompt = torch.tensor([1, 2])
    a = sample(model, prompt, 30, temperature=1.0, generator=torch.Generator().manual_seed(3))
    b = sample(model, prompt, 30, temperature=1.0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (30,) and int(a.max()) < 5
    cold = sample(model, prompt, 30, temperature=1e-4, generator=torch.Generator().manual_seed(4))
    greedy = sample(model, prompt, 30, temperature=1e-4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(cold, greedy)  # near zero temperature: the argmax, whatever the seed


def test_ngram_counts_probabilities_and_bits():
    text = "abababababab"
    model = CharNGram(order=2, alpha=0.0, chars="ab").fit(text)
    assert model.probability("a", "b") == pytest.approx(1.0)
    assert model.bits_per_char("abab") == pytest.approx(0.0, abs=1e-12)
    smooth = CharNGram(order=3, alpha=1.0, chars="abc").fit(text)
    assert sum(smooth.probability("ab", ch) for ch in "abc") == pytest.approx(1.0)
    assert sum(smooth.probability("cc", ch) for ch in "abc") == pytest.approx(1.0)  # unseen context
    # by hand: 6 a's in 12 characters; "b" is followed by "a" 5 times of 5; "ab" by "a" 5 of 5
    p1 = (6 + 1 / 3) / (12 + 1)
    p2 = (5 + p1) / (5 + 1)
    p3 = (5 + p2) / (5 + 1)
    assert smooth.probability("ab", "a") == pytest.approx(p3)
    assert smooth.probability("cb", "a") == pytest.approx(p2)  # "cb" never seen: back to "b"


def test_ngram_order_one_is_unigram_and_matches_brute_force():
    rnd = random.Random(0)
    text = "".join(rnd.choice("xyz ") for _ in range(300))
    model = CharNGram(order=1, alpha=0.5, chars="xyz ").fit(text)
    counts = {ch: text.count(ch) for ch in "xyz "}
    held = "xy z zy"
    expected = -sum(math.log2((counts[ch] + 0.5 / 4) / (len(text) + 0.5)) for ch in held[1:]) / (len(held) - 1)
    assert model.bits_per_char(held) == pytest.approx(expected)


# ----- the memory task, the sequence classifier, chrono initialization -------------


def test_recall_task_layout_and_determinism():
    data = recall(7, n_train=50, n_val=5, n_test=9, num_symbols=3, seed=4)
    X, y = data.train
    assert X.shape == (50, 9, 5) and y.shape == (50,) and y.dtype == torch.long
    assert torch.equal(X[:, 0, :3].argmax(1), y)  # the target is the marked first symbol
    assert (X[:, 0, 3] == 1).all() and (X[:, 1:, 3] == 0).all()  # the marker only at step 0
    assert (X[:, -1, 4] == 1).all() and (X[:, :-1, 4] == 0).all()  # the query only at the end
    assert (X[:, 1:-1, :3].sum(2) == 1).all()  # every distractor step shows one symbol
    assert torch.equal(recall(7, n_train=50, n_val=5, n_test=9, num_symbols=3, seed=4).test.X, data.test.X)
    assert not torch.equal(recall(7, n_train=50, seed=5).train.X[:, 0], recall(7, n_train=50, seed=4).train.X[:, 0])
    big = recall(3, n_train=4000)
    assert abs(big.train.y.double().mean().item() - 1.5) < 0.1  # symbols uniform over 0..3
    assert len(recall(0).train.X[0]) == 2  # lag 0: the marked symbol, then the query


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_sequence_classifier_fused_equals_scratch(kind):
    torch.manual_seed(0)
    scratch = SequenceClassifier(SequenceClassifierConfig(6, 4, 5, kind, fused=False)).double()
    fused = SequenceClassifier(SequenceClassifierConfig(6, 4, 5, kind, fused=True)).double()
    fused.load_state_dict({k.replace("rnn.cell.", "rnn.").replace("_ih", "_ih_l0").replace("_hh", "_hh_l0"): v
                           for k, v in scratch.state_dict().items()})
    x = torch.randn(3, 8, 6, dtype=torch.float64)
    assert scratch(x).shape == (3, 4)
    torch.testing.assert_close(scratch(x), fused(x), atol=1e-12, rtol=0)


@pytest.mark.parametrize("make", [lambda: LSTMCell(3, 16), lambda: nn.LSTM(3, 16, batch_first=True),
                                  lambda: Recurrent(LSTMCell(3, 16)), lambda: GRUCell(3, 16),
                                  lambda: nn.GRU(3, 16), lambda: nn.GRUCell(3, 16)])
def test_chrono_init_sets_gate_biases(make):
    layer = make()
    chrono_init_(layer, 50, generator=torch.Generator().manual_seed(0))
    params = dict(layer.named_parameters())
    b_ih = next(v for k, v in params.items() if k.endswith("bias_ih") or k.endswith("bias_ih_l0"))
    b_hh = next(v for k, v in params.items() if k.endswith("bias_hh") or k.endswith("bias_hh_l0"))
    H = 16
    keep = b_ih[H:2 * H]  # the LSTM's forget gate, the GRU's update gate
    assert (keep >= 0).all() and (keep <= math.log(49) + 1e-6).all() and keep.std() > 0.3
    assert (b_hh[H:2 * H] == 0).all()
    if b_ih.shape[0] == 4 * H:
        torch.testing.assert_close(b_ih[:H], -keep)
        assert (b_hh[:H] == 0).all()


def test_bad_inputs():
    cell, lstm, gru = RNNCell(3, 4), LSTMCell(3, 4), GRUCell(3, 4)
    x = torch.randn(2, 3)
    model = CharLM(CharLMConfig(vocab_size=5, hidden_size=4))
    ngram = CharNGram(order=2, chars="ab").fit("abba")
    ids = torch.randint(0, 5, (50,))
    check_bad_inputs([
        (lambda: RNNCell(0, 4), ValueError, "input_size"),
        (lambda: RNNCell(3, -1), ValueError, "hidden_size"),
        (lambda: LSTMCell(True, 4), TypeError, "input_size"),
        (lambda: GRUCell(3, 2.5), TypeError, "hidden_size"),
        (lambda: RNNCell(3, 4, nonlinearity="sigmoid"), ValueError, "nonlinearity"),
        (lambda: cell([[0.0, 1.0, 2.0]]), TypeError, "x"),
        (lambda: cell(None), TypeError, "x"),
        (lambda: cell(torch.ones(2, 3, dtype=torch.long)), TypeError, "x"),
        (lambda: cell(torch.randn(3)), ValueError, "x"),
        (lambda: cell(torch.randn(2, 5)), ValueError, "x"),
        (lambda: cell(torch.randn(0, 3)), ValueError, "x"),
        (lambda: cell(x, torch.randn(3, 4)), ValueError, "h"),  # batch sizes differ
        (lambda: cell(x, torch.randn(2, 5)), ValueError, "h"),
        (lambda: gru(x, torch.randn(1, 4)), ValueError, "h"),
        (lambda: lstm(x, torch.randn(2, 4)), TypeError, "state"),
        (lambda: lstm(x, (torch.randn(2, 4), torch.randn(3, 4))), ValueError, "c"),
        (lambda: lstm(x, (torch.randn(2, 5), torch.randn(2, 4))), ValueError, "h"),
        (lambda: Recurrent(nn.Linear(3, 4)), TypeError, "cell"),
        (lambda: Recurrent(cell)(torch.randn(2, 3)), ValueError, "x"),
        (lambda: Recurrent(cell)(torch.randn(2, 5, 4)), ValueError, "x"),
        (lambda: Recurrent(cell)(torch.randn(2, 0, 3)), ValueError, "x"),
        (lambda: Recurrent(cell)(torch.randn(2, 5, 3), torch.randn(3, 4)), ValueError, "h"),
        (lambda: CharLMConfig(vocab_size=0), ValueError, "vocab_size"),
        (lambda: CharLMConfig(vocab_size=5, cell="transformer"), ValueError, "cell"),
        (lambda: CharLMConfig(vocab_size=5, hidden_size=0), ValueError, "hidden_size"),
        (lambda: model(torch.randn(2, 5)), TypeError, "tokens"),
        (lambda: model(torch.tensor([[1, 5]])), ValueError, "tokens"),
        (lambda: model(torch.tensor([[1, -1]])), ValueError, "tokens"),
        (lambda: model(torch.tensor([1, 2])), ValueError, "tokens"),
        (lambda: sample(model, torch.tensor([1]), 0), ValueError, "length"),
        (lambda: sample(model, torch.tensor([1]), 5, temperature=0.0), ValueError, "temperature"),
        (lambda: sample(model, torch.tensor([1]), 5, temperature=float("nan")), ValueError, "temperature"),
        (lambda: sample(model, torch.tensor([], dtype=torch.long), 5), ValueError, "prompt"),
        (lambda: sample(model, [1, 2], 5), TypeError, "prompt"),
        (lambda: sample(model, torch.tensor([7]), 5), ValueError, "prompt"),
        (lambda: bits_per_char(model, ids, batch_size=0), ValueError, "batch_size"),
        (lambda: bits_per_char(model, ids, chunk=-3), ValueError, "chunk"),
        (lambda: bits_per_char(model, ids, batch_size=40), ValueError, "ids"),  # too short for 40 streams
        (lambda: bits_per_char(model, torch.tensor([0.5, 1.5]), batch_size=1), TypeError, "ids"),
        (lambda: CharNGram(order=0, chars="ab"), ValueError, "order"),
        (lambda: CharNGram(order=2, alpha=-1.0, chars="ab"), ValueError, "alpha"),
        (lambda: CharNGram(order=2, chars=""), ValueError, "chars"),
        (lambda: CharNGram(order=2, chars="aab"), ValueError, "chars"),
        (lambda: CharNGram(order=2, chars="ab").fit(""), ValueError, "text"),
        (lambda: CharNGram(order=2, chars="ab").fit("abc"), ValueError, "text"),
        (lambda: CharNGram(order=2, chars="ab").bits_per_char("ab"), RuntimeError, "fit"),
        (lambda: ngram.bits_per_char("a"), ValueError, "text"),
        (lambda: ngram.bits_per_char(["a", "b"]), TypeError, "text"),
        (lambda: ngram.probability("a", "z"), ValueError, "char"),
        (lambda: CharNGram(order=2, alpha=0.0, chars="abc").fit("abab").bits_per_char("acb"), ValueError, "alpha"),
        (lambda: recall(-1), ValueError, "lag"),
        (lambda: recall(2.5), TypeError, "lag"),
        (lambda: recall(3, n_train=0), ValueError, "n_train"),
        (lambda: recall(3, n_test=True), TypeError, "n_test"),
        (lambda: recall(3, num_symbols=1), ValueError, "num_symbols"),
        (lambda: recall(3, seed=-2), ValueError, "seed"),
        (lambda: SequenceClassifierConfig(0, 4), ValueError, "input_size"),
        (lambda: SequenceClassifierConfig(6, 1), ValueError, "num_classes"),
        (lambda: SequenceClassifierConfig(6, 4, cell="tcn"), ValueError, "cell"),
        (lambda: SequenceClassifierConfig(6, 4, fused="yes"), TypeError, "fused"),
        (lambda: SequenceClassifier(SequenceClassifierConfig(6, 4))(torch.randn(2, 5, 7)), ValueError, "x"),
        (lambda: SequenceClassifier(SequenceClassifierConfig(6, 4))(torch.randn(2, 6)), ValueError, "x"),
        (lambda: SequenceClassifier(SequenceClassifierConfig(6, 4))(None), TypeError, "x"),
        (lambda: chrono_init_(RNNCell(3, 4), 10), TypeError, "layer"),
        (lambda: chrono_init_(nn.LSTM(3, 4, num_layers=2), 10), TypeError, "layer"),
        (lambda: chrono_init_(LSTMCell(3, 4), 2), ValueError, "t_max"),
        (lambda: chrono_init_(GRUCell(3, 4), 10.0), TypeError, "t_max"),
    ])
