"""dlbook.seq2seq: masks, teacher forcing, the masked loss and its gradient, decoding, learning."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlbook.data.dates import dates
from dlbook.seq2seq import (ConditionalGenerator, Decoder, Encoder, Seq2Seq, Seq2SeqConfig,
                            SequenceClassifier, exact_match, padding_mask, sequence_loss, shift_right,
                            train_teacher_forcing)
from tests.helpers import check_bad_inputs, check_gradient


def _config(**changes) -> Seq2SeqConfig:
    return Seq2SeqConfig(source_vocab=9, target_vocab=7, embedding_dim=5, hidden_size=6, **changes)


def _source(generator: torch.Generator) -> torch.Tensor:
    x = torch.randint(1, 9, (4, 6), generator=generator)
    x[1, 3:], x[2, 1:] = 0, 0  # rows of length 6, 3, 1, 6
    return x


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_encoder_ignores_padding_and_matches_each_row_alone(layers, bidirectional):
    torch.manual_seed(0)
    encoder = Encoder(_config(num_layers=layers, bidirectional=bidirectional)).double()
    x = _source(torch.Generator().manual_seed(1))
    outputs, summary = encoder(x)
    D = 2 if bidirectional else 1
    assert outputs.shape == (4, 6, D * 6) and summary.shape == (4, 6)
    for b in range(4):
        n = int((x[b] != 0).sum())
        out_b, summary_b = encoder(x[b:b + 1, :n])
        torch.testing.assert_close(summary[b], summary_b[0], atol=1e-12, rtol=0)
        torch.testing.assert_close(outputs[b, :n], out_b[0], atol=1e-12, rtol=0)
        if n < 6:
            assert outputs[b, n:].abs().max() == 0  # padded positions carry no state
    _, padded = encoder(F.pad(x, (0, 3)))
    torch.testing.assert_close(padded, summary, atol=1e-12, rtol=0)


def test_masked_loss_and_its_gradient_match_the_formula():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 4, dtype=torch.float64, generator=g)
    target = torch.randint(1, 4, (3, 5), generator=g)
    target[1, 2:] = 0

    def by_formula(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        m = (y != 0).double()
        return -(m * z.log_softmax(2).gather(2, y.unsqueeze(2)).squeeze(2)).sum() / m.sum()

    def gradient(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        m = (y != 0).double().unsqueeze(2)
        return m / m.sum() * (z.softmax(2) - F.one_hot(y, 4))

    torch.testing.assert_close(sequence_loss(logits, target), by_formula(logits, target))
    check_gradient(lambda z, y: sequence_loss(z, y), gradient, [logits, target])


def test_shift_right_exact_match_and_padding_mask():
    y = torch.tensor([[5, 6, 2], [4, 2, 0]])
    assert shift_right(y, 1).tolist() == [[1, 5, 6], [1, 4, 2]]
    assert padding_mask(y).tolist() == [[True] * 3, [True, True, False]]
    assert exact_match(torch.tensor([[5, 6, 2], [4, 2, 3]]), y) == 1.0  # padding is not scored
    assert exact_match(torch.tensor([[5, 6, 1], [4, 2, 3]]), y) == 0.5


def test_teacher_forcing_logits_equal_step_by_step_decoding():
    torch.manual_seed(0)
    model = Seq2Seq(_config()).double()
    g = torch.Generator().manual_seed(2)
    x, y = _source(g), torch.randint(3, 7, (4, 5), generator=g)
    logits = model(x, y)
    _, context = model.encoder(x)
    state, token = None, torch.full((4, 1), 1)
    for t in range(5):
        step, state = model.decoder(token, context, state)
        torch.testing.assert_close(step[:, 0], logits[:, t], atol=1e-12, rtol=0)
        token = y[:, t:t + 1]  # the true previous token
    greedy = model.generate(x, 5)
    assert greedy.shape == (4, 5) and greedy.dtype == torch.long


def test_classifier_and_generator_shapes():
    classifier = SequenceClassifier(_config(), num_classes=3)
    assert classifier(_source(torch.Generator().manual_seed(0))).shape == (4, 3)
    generator = ConditionalGenerator(_config(), num_conditions=5)
    condition = torch.tensor([0, 4])
    assert generator(condition, torch.ones(2, 3, dtype=torch.long)).shape == (2, 3, 7)
    assert generator.generate(condition, 4).shape == (2, 4)


@pytest.mark.slow
def test_translator_learns_unseen_dates():
    torch.manual_seed(0)
    pairs = dates(6000, 100, 300, seed=0, formats=["d Month yyyy", "dd.mm.yyyy"])
    model = Seq2Seq(Seq2SeqConfig(len(pairs.source_vocab), len(pairs.target_vocab), hidden_size=32))
    curve = train_teacher_forcing(model, pairs.train.X, pairs.train.y, steps=200, batch_size=64,
                                  optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
                                  val=(pairs.val.X, pairs.val.y), every=50,
                                  generator=torch.Generator().manual_seed(0))
    assert len(curve.steps) == 4 and curve.exact_match[-1] > curve.exact_match[0] + 0.15
    assert exact_match(model.generate(pairs.test.X, 10), pairs.test.y) > 0.25  # 0.46 when written


def test_bad_inputs():
    model = Seq2Seq(_config())
    x = torch.randint(1, 9, (2, 4))
    y = torch.randint(1, 7, (2, 3))
    logits = torch.randn(2, 3, 7)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    check_bad_inputs([
        (lambda: Seq2SeqConfig(source_vocab=0, target_vocab=5), ValueError, "source_vocab"),
        (lambda: Seq2SeqConfig(source_vocab=5, target_vocab=5.0), TypeError, "target_vocab"),
        (lambda: Seq2SeqConfig(5, 5, num_layers=True), TypeError, "num_layers"),
        (lambda: Seq2SeqConfig(5, 5, bidirectional=1), TypeError, "bidirectional"),
        (lambda: Seq2SeqConfig(5, 5, bos_index=5), ValueError, "bos_index"),
        (lambda: model(x.float(), y), TypeError, "source"),
        (lambda: model(x[0], y), ValueError, "source"),
        (lambda: model(x[:0], y[:0]), ValueError, "source"),
        (lambda: model(x + 20, y), ValueError, "source"),
        (lambda: model(x.tolist(), y), TypeError, "source"),
        (lambda: model(torch.tensor([[0, 3]]), y[:1]), ValueError, "right-padded"),
        (lambda: model(torch.tensor([[0, 0]]), y[:1]), ValueError, "empty row"),
        (lambda: model(x, y[:1]), ValueError, "context"),
        (lambda: model(x, -y), ValueError, "target"),
        (lambda: model.generate(x, 0), ValueError, "length"),
        (lambda: sequence_loss(logits, y.float()), TypeError, "target"),
        (lambda: sequence_loss(logits, y[:1]), ValueError, "target"),
        (lambda: sequence_loss(logits[0], y), ValueError, "logits"),
        (lambda: sequence_loss(logits, y + 10), ValueError, "target"),
        (lambda: sequence_loss(logits.long(), y), TypeError, "logits"),
        (lambda: exact_match(y[:, :2], y), ValueError, "prediction"),
        (lambda: exact_match(y, None), TypeError, "target"),
        (lambda: shift_right(y, -1), ValueError, "bos_index"),
        (lambda: SequenceClassifier(_config(), num_classes=0), ValueError, "num_classes"),
        (lambda: ConditionalGenerator(_config(), 3)(torch.tensor([3]), y[:1]), ValueError, "condition"),
        (lambda: ConditionalGenerator(_config(), 3)(torch.tensor([0.5]), y[:1]), TypeError, "condition"),
        (lambda: train_teacher_forcing(model, x, y[:1], steps=1, optimizer=opt), ValueError, "same length"),
        (lambda: train_teacher_forcing(model, x, y, steps=0, optimizer=opt), ValueError, "steps"),
        (lambda: train_teacher_forcing(model, x, y, steps=1, optimizer=None), TypeError, "optimizer"),
        (lambda: train_teacher_forcing(model, x, y, steps=1, optimizer=opt, batch_size=-2), ValueError, "batch_size"),
    ])
