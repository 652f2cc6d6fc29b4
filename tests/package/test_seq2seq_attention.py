"""dlbook.seq2seq_attention: weights and masks, teacher forcing against step-by-step decoding,
greedy decoding, learning on unseen dates, bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlbook.data.dates import dates
from dlbook.seq2seq import Seq2Seq, Seq2SeqConfig, exact_match, shift_right, train_teacher_forcing
from dlbook.seq2seq_attention import AttentionDecoder, AttentionSeq2SeqConfig, Seq2SeqAttention
from tests.helpers import check_bad_inputs
from tests.package.test_seq2seq import _source  # the same padded batch as Part 9's tests

SCORES = ["dot", "additive"]


def _config(**changes) -> AttentionSeq2SeqConfig:
    return AttentionSeq2SeqConfig(source_vocab=9, target_vocab=7, embedding_dim=5, hidden_size=6, **changes)


def _model(seed: int = 0, **changes) -> Seq2SeqAttention:
    torch.manual_seed(seed)
    return Seq2SeqAttention(_config(**changes)).double()


@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("layers, bidirectional", [(1, True), (2, False)])
def test_weights_are_a_distribution_over_real_source_tokens(score, layers, bidirectional):
    model = _model(score=score, num_layers=layers, bidirectional=bidirectional)
    g = torch.Generator().manual_seed(1)
    x, y = _source(g), torch.randint(3, 7, (4, 5), generator=g)
    memory, mask, state = model.encode(x)
    M = (2 if bidirectional else 1) * 6
    assert memory.shape == (4, 6, M) and mask.shape == (4, 6) and state.shape == (layers, 4, 6)
    logits, new_state, weights = model.decoder(shift_right(y, 1), memory, mask, state)
    assert logits.shape == (4, 5, 7) and new_state.shape == (layers, 4, 6) and weights.shape == (4, 5, 6)
    torch.testing.assert_close(weights.sum(dim=2), torch.ones(4, 5, dtype=torch.float64), atol=1e-12, rtol=0)
    assert (weights >= 0).all()
    assert weights[1, :, 3:].abs().max() == 0 and weights[2, :, 1:].abs().max() == 0  # padding: exactly 0
    torch.testing.assert_close(weights[2, :, 0], torch.ones(5, dtype=torch.float64))  # one real token: all on it
    # more padding columns change nothing, neither the logits nor the weights on real tokens
    padded = F.pad(x, (0, 4))
    logits_p, _, weights_p = model.decoder(shift_right(y, 1), *model.encode(padded))
    torch.testing.assert_close(logits_p, logits, atol=1e-12, rtol=0)
    torch.testing.assert_close(weights_p[:, :, :6], weights, atol=1e-12, rtol=0)
    assert weights_p[:, :, 6:].abs().max() == 0


def test_dot_weights_equal_a_softmax_written_out():
    model = _model(score="dot")
    g = torch.Generator().manual_seed(2)
    x, y = _source(g), torch.randint(3, 7, (4, 5), generator=g)
    memory, mask, state = model.encode(x)
    inputs = shift_right(y, 1)
    logits, _, weights = model.decoder(inputs, memory, mask, state)
    dec = model.decoder
    s, _ = dec.rnn(dec.embedding(inputs), state)  # (B, T, H)
    scores = torch.einsum("btm,bsm->bts", dec.query(s), memory) / math.sqrt(12)  # (B, T, S), M = 2H = 12
    alpha = scores.masked_fill(~mask.unsqueeze(1), -math.inf).softmax(dim=2)
    a = torch.einsum("bts,bsm->btm", alpha, memory)  # (B, T, M)
    torch.testing.assert_close(weights, alpha, atol=1e-12, rtol=0)
    torch.testing.assert_close(logits, dec.output(torch.cat([s, a], dim=2)), atol=1e-12, rtol=0)


@pytest.mark.parametrize("score", SCORES)
def test_teacher_forcing_equals_step_by_step_decoding(score):
    model = _model(score=score, num_layers=2)
    g = torch.Generator().manual_seed(3)
    x, y = _source(g), torch.randint(3, 7, (4, 5), generator=g)
    logits = model(x, y)
    memory, mask, state = model.encode(x)
    _, _, weights = model.decoder(shift_right(y, 1), memory, mask, state)
    token = torch.full((4, 1), 1)
    for t in range(5):
        step, state, alpha = model.decoder(token, memory, mask, state)
        torch.testing.assert_close(step[:, 0], logits[:, t], atol=1e-12, rtol=0)
        torch.testing.assert_close(alpha[:, 0], weights[:, t], atol=1e-12, rtol=0)
        token = y[:, t:t + 1]  # the true previous token


@pytest.mark.parametrize("score", SCORES)
def test_greedy_output_is_the_argmax_of_teacher_forcing_on_itself(score):
    # any model: feeding the greedy output back as the target reproduces it, weights included
    model = _model(seed=4, score=score)
    x = _source(torch.Generator().manual_seed(4))
    tokens, weights = model.translate(x, 5)
    assert tokens.shape == (4, 5) and tokens.dtype == torch.long and weights.shape == (4, 5, 6)
    assert torch.equal(model.generate(x, 5), tokens)
    assert torch.equal(model(x, tokens).argmax(dim=2), tokens)
    memory, mask, state = model.encode(x)
    _, _, tf_weights = model.decoder(shift_right(tokens, 1), memory, mask, state)
    torch.testing.assert_close(weights, tf_weights, atol=1e-12, rtol=0)


def test_memorized_set_greedy_equals_teacher_forced_argmax_equals_target():
    pairs = dates(16, 1, 1, seed=3)
    torch.manual_seed(0)
    model = Seq2SeqAttention(AttentionSeq2SeqConfig(len(pairs.source_vocab), len(pairs.target_vocab),
                                                    embedding_dim=16, hidden_size=32))
    X, Y = pairs.train.X, pairs.train.y
    train_teacher_forcing(model, X, Y, steps=90, batch_size=16,  # memorized after about 40 steps
                          optimizer=torch.optim.Adam(model.parameters(), lr=1e-2))
    model.eval()
    with torch.no_grad():
        forced = model(X, Y).argmax(dim=2)
    assert torch.equal(forced, Y)  # memorized under teacher forcing
    assert torch.equal(model.generate(X, 10), Y)  # so greedy decoding never leaves the true prefix


def test_encoder_starts_from_part_9_weights_under_one_seed():
    base = Seq2SeqConfig(source_vocab=9, target_vocab=7, embedding_dim=5, hidden_size=6)
    torch.manual_seed(5)
    part9 = Seq2Seq(base)
    model = _model(seed=5)
    for (name, p), (_, q) in zip(part9.encoder.named_parameters(), model.encoder.named_parameters()):
        assert torch.equal(p.double(), q), name


@pytest.mark.slow
def test_translator_learns_unseen_dates_faster_than_part_9():
    pairs = dates(4000, 200, 300, seed=0, formats=["d Month yyyy", "dd.mm.yyyy", "mm/dd/yy"])
    results = {}
    for name in ("part9", "attention"):
        torch.manual_seed(0)
        kw = dict(source_vocab=len(pairs.source_vocab), target_vocab=len(pairs.target_vocab), hidden_size=32)
        model = Seq2Seq(Seq2SeqConfig(**kw)) if name == "part9" else Seq2SeqAttention(AttentionSeq2SeqConfig(**kw))
        train_teacher_forcing(model, pairs.train.X, pairs.train.y, steps=150, batch_size=64,
                              optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
                              generator=torch.Generator().manual_seed(0))
        model.eval()
        results[name] = exact_match(model.generate(pairs.test.X, 10), pairs.test.y)
    # 0.99 and 0.25 when written
    assert results["attention"] > 0.9 and results["attention"] > results["part9"] + 0.2, results


def test_bad_inputs():
    model = Seq2SeqAttention(_config())
    x = torch.randint(1, 9, (2, 4))
    y = torch.randint(1, 7, (2, 3))
    memory, mask, state = model.encode(x)
    inputs = shift_right(y, 1)
    check_bad_inputs([
        (lambda: _config(score="general"), ValueError, "score"),
        (lambda: _config(score=1), TypeError, "score"),
        (lambda: AttentionSeq2SeqConfig(source_vocab=0, target_vocab=5), ValueError, "source_vocab"),
        (lambda: AttentionDecoder(Seq2SeqConfig(9, 7)), TypeError, "config"),
        (lambda: model(x.float(), y), TypeError, "source"),
        (lambda: model(torch.tensor([[0, 3]]), y[:1]), ValueError, "right-padded"),
        (lambda: model(x, y + 10), ValueError, "target"),
        (lambda: model(x, -y), ValueError, "target"),
        (lambda: model.decoder(inputs.float(), memory, mask, state), TypeError, "inputs"),
        (lambda: model.decoder(inputs, memory[:1], mask, state), ValueError, "memory"),
        (lambda: model.decoder(inputs, memory[..., :6], mask, state), ValueError, "memory"),
        (lambda: model.decoder(inputs, memory, mask[:, :2], state), ValueError, "mask"),
        (lambda: model.decoder(inputs, memory, mask.long(), state), TypeError, "mask"),
        (lambda: model.decoder(inputs, memory, mask, state[0]), ValueError, "state"),
        (lambda: model.translate(x, 0), ValueError, "length"),
        (lambda: model.generate(x, 2.5), TypeError, "length"),
    ])
