"""Image captioning (Part 13): beam search against exhaustive search and greedy decoding, then the captioner."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlbook.captioning import (CaptionDecoder, Captioner, CaptionerConfig, ImageFeatures, beam_search,
                               caption_loss, decode, evaluate, greedy_decode, sequence_log_prob,
                               step_function, train_captioner)
from dlbook.data import caption_scenes
from dlbook.metrics import bleu
from tests.helpers import check_bad_inputs

BOS, EOS = 0, 1


def random_language_model(vocab: int, seed: int, *, peaked: float = 1.0):
    """A step_fn whose next-token log-probabilities depend on the whole prefix (a hash into a table)."""
    g = torch.Generator().manual_seed(seed)
    table = torch.log_softmax(peaked * torch.randn(997, vocab, generator=g, dtype=torch.float64), dim=1)
    calls = []

    def step_fn(prefixes: torch.Tensor) -> torch.Tensor:
        assert prefixes.dtype == torch.long and (prefixes[:, 0] == BOS).all()
        calls.append(prefixes.shape)
        weights = torch.tensor([31**i for i in range(prefixes.shape[1])])
        return table[(prefixes * weights).sum(1) % 997]

    step_fn.calls = calls
    return step_fn


def sequence_score(step_fn, tokens: list[int]) -> float:
    """Sum of log p(token | prefix) along ``tokens``, one call per token."""
    prefix, score = [BOS], 0.0
    for t in tokens:
        score += float(step_fn(torch.tensor([prefix]))[0, t])
        prefix.append(t)
    return score


def all_sequences(vocab: int, max_len: int):
    """Every sequence the search may return: ended by EOS, or max_len tokens without it."""
    words = [w for w in range(vocab) if w != EOS]
    for n in range(max_len):
        for body in itertools.product(words, repeat=n):
            yield [*body, EOS]
    yield from (list(body) for body in itertools.product(words, repeat=max_len))


def greedy(step_fn, max_len: int) -> list[int]:
    tokens: list[int] = []
    while len(tokens) < max_len and (not tokens or tokens[-1] != EOS):
        tokens.append(int(step_fn(torch.tensor([[BOS, *tokens]]))[0].argmax()))
    return tokens


@pytest.mark.parametrize("seed", range(6))
def test_a_beam_as_wide_as_all_prefixes_finds_the_most_probable_sequence(seed):
    vocab, max_len = 4, 4
    lm = random_language_model(vocab, seed)
    exhaustive = sorted(((s, sequence_score(lm, s)) for s in all_sequences(vocab, max_len)),
                        key=lambda h: h[1], reverse=True)
    found = beam_search(lm, bos=BOS, eos=EOS, beam_size=vocab**max_len, max_len=max_len)
    assert found[0][0] == exhaustive[0][0]
    assert found[0][1] == pytest.approx(exhaustive[0][1], abs=1e-12)
    # the whole ranking agrees, not only the best sequence
    assert [t for t, _ in found[:10]] == [t for t, _ in exhaustive[:10]]


@pytest.mark.parametrize("seed", range(10))
def test_beam_one_is_greedy_decoding(seed):
    lm = random_language_model(5, seed, peaked=0.5)
    [(tokens, score)] = beam_search(lm, bos=BOS, eos=EOS, beam_size=1, max_len=6)
    assert tokens == greedy(lm, 6)
    assert score == pytest.approx(sequence_score(lm, tokens), abs=1e-12)


def test_a_wider_beam_can_end_below_greedy():
    """Beam search is a heuristic: two confident prefixes can push the greedy prefix out
    of a beam of two, then end less probable than the greedy sentence."""
    A, B, D, E = 2, 3, 4, 5
    table = {  # next-token probabilities after each prefix (BOS left out); the rest is EOS
        (): {A: 0.45, B: 0.40},
        (A,): {D: 0.4, E: 0.3},  # greedy continues with D: 0.45 * 0.4 = 0.18 so far
        (B,): {D: 0.5, E: 0.5},  # 0.40 * 0.5 = 0.20 twice: both outrank the greedy prefix
        (A, D): {},  # then ends for sure: greedy's sentence A D EOS has probability 0.18
        (B, D): {A: 0.5}, (B, E): {A: 0.5},  # end with probability 0.5: 0.10 < 0.18
    }

    def step_fn(prefixes: torch.Tensor) -> torch.Tensor:
        rows = []
        for prefix in prefixes.tolist():
            probs = torch.full((6,), 1e-12, dtype=torch.float64)
            for token, p in table.get(tuple(prefix[1:]), {}).items():
                probs[token] = p
            probs[EOS] = max(1 - float(probs.sum()), 1e-12)
            rows.append((probs / probs.sum()).log())
        return torch.stack(rows)

    greedy_tokens, greedy_score = beam_search(step_fn, bos=BOS, eos=EOS, beam_size=1, max_len=4)[0]
    beam_tokens, beam_score = beam_search(step_fn, bos=BOS, eos=EOS, beam_size=2, max_len=4)[0]
    assert greedy_tokens == [A, D, EOS] and greedy_score == pytest.approx(math.log(0.18), abs=1e-9)
    assert beam_tokens[:2] in ([B, D], [B, E]) and beam_score < greedy_score
    # the widest beam finds the best sentence, which is greedy's here
    assert beam_search(step_fn, bos=BOS, eos=EOS, beam_size=6**4, max_len=4)[0][0] == [A, D, EOS]


def test_greedy_is_not_the_most_probable_sentence_somewhere():
    """The reason beam search exists: among random models, greedy often misses the best sequence."""
    misses = 0
    for seed in range(20):
        lm = random_language_model(4, seed)
        greedy_score = beam_search(lm, bos=BOS, eos=EOS, beam_size=1, max_len=4)[0][1]
        best_score = beam_search(lm, bos=BOS, eos=EOS, beam_size=256, max_len=4)[0][1]
        assert best_score >= greedy_score - 1e-12
        misses += best_score > greedy_score + 1e-9
    assert misses >= 3


def test_hypotheses_are_distinct_sorted_scored_and_well_formed():
    lm = random_language_model(6, 3)
    hyps = beam_search(lm, bos=BOS, eos=EOS, beam_size=5, max_len=5)
    # prefixes are batched: one call per step, never more rows than the beam
    assert len(lm.calls) <= 5 and all(k <= 5 for k, _ in lm.calls)
    assert len(hyps) == 5
    assert len({tuple(t) for t, _ in hyps}) == 5
    assert [s for _, s in hyps] == sorted((s for _, s in hyps), reverse=True)
    for tokens, score in hyps:
        assert tokens[-1] == EOS or len(tokens) == 5
        assert EOS not in tokens[:-1]
        assert score == pytest.approx(sequence_score(lm, tokens), abs=1e-12)


def test_max_len_stops_a_model_that_never_ends():
    def never_ends(prefixes):
        logp = torch.full((prefixes.shape[0], 3), -50.0)
        logp[:, 2] = 0.0
        return logp

    assert beam_search(never_ends, bos=BOS, eos=EOS, beam_size=2, max_len=3)[0] == ([2, 2, 2], 0.0)


def test_length_penalty_is_off_by_default_and_favours_longer_hypotheses_when_on():
    lm = random_language_model(4, 1)
    plain = beam_search(lm, bos=BOS, eos=EOS, beam_size=4, max_len=6)
    assert plain == beam_search(lm, bos=BOS, eos=EOS, beam_size=4, max_len=6, length_penalty=0.0)
    normalized = beam_search(lm, bos=BOS, eos=EOS, beam_size=4, max_len=6, length_penalty=1.0)
    mean = [s / len(t) for t, s in normalized]
    assert mean == sorted(mean, reverse=True)
    assert not math.isclose(plain[0][1], 0.0)


def test_beam_search_rejects_bad_input():
    lm = random_language_model(4, 0)
    check_bad_inputs([
        (lambda: beam_search("model", bos=0, eos=1, beam_size=2, max_len=3), TypeError, "step_fn"),
        (lambda: beam_search(lm, bos=-1, eos=1, beam_size=2, max_len=3), ValueError, "bos"),
        (lambda: beam_search(lm, bos=0, eos=1.5, beam_size=2, max_len=3), TypeError, "eos"),
        (lambda: beam_search(lm, bos=0, eos=9, beam_size=2, max_len=3), ValueError, "eos"),
        (lambda: beam_search(lm, bos=0, eos=1, beam_size=0, max_len=3), ValueError, "beam_size"),
        (lambda: beam_search(lm, bos=0, eos=1, beam_size=2, max_len=0), ValueError, "max_len"),
        (lambda: beam_search(lm, bos=0, eos=1, beam_size=2, max_len=3, length_penalty=-1.0),
         ValueError, "length_penalty"),
        (lambda: beam_search(lambda p: torch.zeros(p.shape[0] + 1, 4), bos=0, eos=1, beam_size=2, max_len=3),
         ValueError, "step_fn"),
        (lambda: beam_search(lambda p: torch.zeros(p.shape[0], 4, dtype=torch.long), bos=0, eos=1,
                             beam_size=2, max_len=3), TypeError, "step_fn"),
    ])


# ---------------------------------------------------------------------------
# The captioner: encoder, decoder interface, loss, training, decoding, BLEU
# ---------------------------------------------------------------------------

def _config(**changes) -> CaptionerConfig:
    sizes = dict(vocab_size=11, image_size=16, channels=(4, 6), feature_dim=7, embedding_dim=5, hidden_size=9)
    return CaptionerConfig(**{**sizes, **changes})


def _model(seed: int = 0, **changes) -> Captioner:
    torch.manual_seed(seed)
    model = Captioner(_config(**changes)).double()
    with torch.no_grad():  # a peaked, varied next-token distribution, so greedy and beam differ
        model.decoder.output.weight.mul_(4.0)
        model.decoder.output.bias[:2] = -30.0  # like a trained model, never write <pad> or <bos>
    return model.eval()


def _images(B: int, seed: int = 0, size: int = 16) -> torch.Tensor:
    return torch.rand(B, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _targets(B: int, T: int, seed: int = 0) -> torch.Tensor:
    """(B, T) word ids in [3, 11), each row ended by <eos> = 2 and right-padded with <pad> = 0."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(3, 11, (B, T), generator=g)
    lengths = torch.randint(1, T, (B,), generator=g)
    for b, n in enumerate(lengths.tolist()):
        y[b, n], y[b, n + 1:] = 2, 0
    return y


def test_encoder_gives_a_grid_and_a_summary():
    model = _model()
    features = model.encoder(_images(3))
    assert features.grid.shape == (3, 6, 4, 4) and features.summary.shape == (3, 7)
    assert _config().grid_size == 4


def test_fused_lstm_decoder_equals_its_step_loop():
    model = _model()
    features = model.encoder(_images(4))
    inputs = torch.randint(0, 11, (4, 7), generator=torch.Generator().manual_seed(1))
    fused = model.decoder(features, inputs)  # LSTMDecoder.forward: one nn.LSTM call
    looped = CaptionDecoder.forward(model.decoder, features, inputs)  # step by step
    assert fused.shape == (4, 7, 11)
    torch.testing.assert_close(fused, looped, atol=1e-12, rtol=0)


def test_decoder_step_is_an_lstm_cell_on_word_and_image():
    model = _model()
    dec = model.decoder
    features = model.encoder(_images(2))
    h, c = dec.init_state(features)
    torch.testing.assert_close(h, torch.tanh(dec.init_h(features.summary)))
    cell = nn.LSTMCell(5 + 7, 9).double()
    cell.load_state_dict({k.replace("_l0", ""): v for k, v in dec.rnn.state_dict().items()})
    token = torch.tensor([3, 4])
    h1, c1 = cell(torch.cat([dec.embedding(token), features.summary], 1), (h, c))
    logits, (h2, c2) = dec.step(token, (h, c), features)
    torch.testing.assert_close(h2, h1, atol=1e-12, rtol=0)
    torch.testing.assert_close(logits, dec.output(h1), atol=1e-12, rtol=0)


def test_caption_loss_is_cross_entropy_over_real_tokens_and_ignores_padding():
    model = _model()
    x, y = _images(5), _targets(5, 8)
    loss = caption_loss(model, x, y)
    inputs = torch.cat([torch.ones(5, 1, dtype=torch.long), y[:, :-1]], 1)  # <bos> = 1, then y shifted
    logp = model(x, inputs).log_softmax(2).gather(2, y.unsqueeze(2)).squeeze(2)  # (B, T)
    real = y != 0
    torch.testing.assert_close(loss, -(logp * real).sum() / real.sum(), atol=1e-12, rtol=0)
    # more padding columns change nothing
    torch.testing.assert_close(caption_loss(model, x, F.pad(y, (0, 3))), loss, atol=1e-12, rtol=0)
    # sequence_log_prob is the same sum per row
    torch.testing.assert_close(sequence_log_prob(model, x, y), (logp * real).sum(1), atol=1e-12, rtol=0)


def test_loss_over_all_references_equals_the_loss_of_each_image_repeated():
    model = _model().train()
    x = _images(3)
    y = torch.stack([_targets(3, 6, seed=s) for s in range(4)], dim=1)  # (B, R, T)
    together = caption_loss(model, x, y)
    model_copy = _model().train()  # batch norm statistics: the same images, each repeated R times
    apart = caption_loss(model_copy, x.repeat_interleave(4, 0), y.reshape(12, 6))
    # batch norm sees each image once vs four times: the same mean and variance either way
    torch.testing.assert_close(together, apart, atol=1e-10, rtol=0)


def test_greedy_decode_equals_a_beam_of_one_and_scores_its_tokens():
    model = _model(seed=2)
    x = _images(6, seed=3)
    greedy = greedy_decode(model, x, max_len=9)
    for i, (tokens, score) in enumerate(greedy):
        [(beam_tokens, beam_score)] = beam_search(step_function(model, x[i]), bos=1, eos=2, beam_size=1, max_len=9)
        assert tokens == beam_tokens and score == pytest.approx(beam_score, abs=1e-9)
        assert 2 not in tokens[:-1] and (tokens[-1] == 2 or len(tokens) == 9)
        y = torch.tensor([tokens + [0] * (9 - len(tokens))])
        assert score == pytest.approx(sequence_log_prob(model, x[i:i + 1], y).item(), abs=1e-9)


def test_step_function_matches_teacher_forcing_for_any_prefix_order():
    model = _model(seed=4)
    x = _images(1, seed=5)
    step_fn = step_function(model, x[0])
    g = torch.Generator().manual_seed(6)
    # long prefixes first (their parents are not cached yet), then a batch of mixed ones
    for prefixes in (torch.cat([torch.ones(3, 1, dtype=torch.long), torch.randint(3, 11, (3, 4), generator=g)], 1),
                     torch.tensor([[1], [1]]), torch.tensor([[1, 5, 6], [1, 7, 7]])):
        with torch.no_grad():
            logits = model(x.expand(len(prefixes), -1, -1, -1), prefixes)[:, -1]  # (K, V)
        torch.testing.assert_close(step_fn(prefixes), logits.log_softmax(1), atol=1e-12, rtol=0)


def test_forced_prefix_is_kept_and_scored():
    model = _model(seed=2)
    x = _images(4, seed=7)
    free = greedy_decode(model, x, max_len=8)
    prefix = torch.tensor([[t[0] for t, _ in free]]).T  # (4, 1): greedy's own first word
    forced = greedy_decode(model, x, max_len=8, prefix=prefix)
    assert [t for t, _ in forced] == [t for t, _ in free]
    assert [s for _, s in forced] == pytest.approx([s for _, s in free], abs=1e-12)
    wrong = torch.full((4, 2), 5)
    for (tokens, score), row in zip(greedy_decode(model, x, max_len=8, prefix=wrong), x):
        assert tokens[:2] == [5, 5]
        y = torch.tensor([tokens + [0] * (8 - len(tokens))])
        assert score == pytest.approx(sequence_log_prob(model, row[None], y).item(), abs=1e-9)


def test_beams_are_at_least_greedy_on_average_and_decode_returns_the_best():
    model = _model(seed=8)
    x = _images(6, seed=9)
    greedy = decode(model, x, beam_size=1, max_len=8)
    beam = decode(model, x, beam_size=4, max_len=8)
    for i in range(6):
        assert beam[i] == beam_search(step_function(model, x[i]), bos=1, eos=2, beam_size=4, max_len=8)[0]
    assert sum(s for _, s in beam) >= sum(s for _, s in greedy)


class GRUDecoder(CaptionDecoder):
    """A second decoder written only against the interface: init_state and step."""

    def __init__(self, config: CaptionerConfig) -> None:
        super().__init__()
        self.embedding = nn.Embedding(config.vocab_size, 8)
        self.init = nn.Linear(config.feature_dim, 16)
        self.cell = nn.GRUCell(8 + config.channels[-1], 16)
        self.output = nn.Linear(16, config.vocab_size)

    def init_state(self, features: ImageFeatures):
        return (torch.tanh(self.init(features.summary)),)

    def step(self, token, state, features):
        context = features.grid.mean((2, 3))  # (B, C): reads the grid, as an attention decoder would
        h = self.cell(torch.cat([self.embedding(token), context], 1), state[0])
        return self.output(h), (h,)


def test_any_decoder_that_follows_the_interface_trains_and_decodes():
    config = _config()
    torch.manual_seed(0)
    model = Captioner(config, GRUDecoder(config)).double()
    x, y = _images(6), _targets(6, 5).unsqueeze(1)  # (N, 1, T): one reference each
    losses = train_captioner(model, x, y, steps=40, batch_size=6,
                             optimizer=torch.optim.Adam(model.parameters(), lr=0.03),
                             generator=torch.Generator().manual_seed(0))
    assert losses[-1] < 0.5 * losses[0]
    greedy = greedy_decode(model, x, max_len=6)
    for i in range(6):
        assert greedy[i][0] == beam_search(step_function(model, x[i]), bos=1, eos=2, beam_size=1, max_len=6)[0][0]


@pytest.mark.slow
def test_captioner_learns_to_describe_held_out_scenes():
    torch.manual_seed(0)
    data = caption_scenes(1000, 10, 100, 10, seed=0)
    model = Captioner(CaptionerConfig(vocab_size=len(data.vocab)))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    train_captioner(model, data.train.images, data.train.targets, steps=250, optimizer=optimizer, batch_size=32,
                    scheduler=torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.01, total_steps=250),
                    generator=torch.Generator().manual_seed(0))
    result = evaluate(model, data.test.images, data.test.references, data.vocab)
    # one caption for every image, the most common training caption, is the baseline to beat
    first = [refs[0] for refs in data.train.references]
    constant = max(set(first), key=first.count)
    baseline = bleu([list(map(list, r)) for r in data.test.references], [list(constant)] * 100)
    assert result.bleu > baseline + 0.2, (result.bleu, baseline)
    assert result.bleu == pytest.approx(bleu([list(map(list, r)) for r in data.test.references], result.captions))
    colours = sum(any(c in words for c in ("red", "green", "blue", "yellow") if c in sum(map(list, refs), []))
                  for words, refs in zip(result.captions, data.test.references))
    assert colours >= 90  # names a colour that is in the picture


def test_captioner_rejects_bad_input():
    model = _model()
    x, y = _images(2), _targets(2, 4)
    opt = torch.optim.Adam(model.parameters())
    check_bad_inputs([
        (lambda: CaptionerConfig(vocab_size=0), ValueError, "vocab_size"),
        (lambda: CaptionerConfig(vocab_size=10, image_size=30), ValueError, "image_size must be divisible by"),
        (lambda: CaptionerConfig(vocab_size=10, channels=8), TypeError, "channels"),
        (lambda: CaptionerConfig(vocab_size=10, eos_index=10), ValueError, "eos_index must be < vocab_size"),
        (lambda: CaptionerConfig(vocab_size=10, eos_index=0), ValueError, "must differ"),
        (lambda: Captioner(_config(), decoder=nn.Linear(2, 2)), TypeError, "CaptionDecoder"),
        (lambda: model.encoder(_images(2, size=32)), ValueError, "images of shape (B, 3, 16, 16)"),
        (lambda: model.encoder(torch.zeros(2, 3, 16, 16, dtype=torch.long)), TypeError, "images"),
        (lambda: caption_loss(model, x, y.double()), TypeError, "targets"),
        (lambda: caption_loss(model, x, y + 20), ValueError, "targets must hold token ids in [0, 11)"),
        (lambda: model(x, y[:1]), ValueError, "images and inputs"),
        (lambda: train_captioner(model, x, y, steps=1, optimizer=opt), ValueError, "targets of shape (N, R, T)"),
        (lambda: train_captioner(model, x, y[:, None], steps=0, optimizer=opt), ValueError, "steps"),
        (lambda: train_captioner(model, x[:1], y[:, None], steps=1, optimizer=opt), ValueError, "images and targets"),
        (lambda: greedy_decode(model, x, max_len=0), ValueError, "max_len"),
        (lambda: greedy_decode(model, x, max_len=5, prefix=torch.tensor([[2], [3]])), ValueError, "prefix"),
        (lambda: greedy_decode(model, x, max_len=5, prefix=torch.tensor([[3]])), ValueError, "prefix of shape (2, P)"),
        (lambda: step_function(model, x), ValueError, "image of shape (3, H, W)"),
        (lambda: step_function(model, x[0])(torch.tensor([[1, 99]])), ValueError, "prefixes"),
        (lambda: decode(model, x, beam_size=0), ValueError, "beam_size"),
        (lambda: evaluate(model, x, [[["a"]]], None), ValueError, "images and references"),
        (lambda: evaluate(model, x, [[["a"]]] * 2, None), TypeError, "vocab must be a CaptionVocab"),
    ])


def test_every_model_argument_must_be_a_captioner():
    from dlbook.captioning import (caption_loss, decode, evaluate, greedy_decode, sequence_log_prob, step_function,
                                   train_captioner)

    images, targets = torch.zeros(2, 3, 16, 16), torch.ones(2, 4, dtype=torch.long)
    check_bad_inputs([
        (lambda: caption_loss(torch.nn.Linear(2, 2), images, targets), TypeError, "model"),
        (lambda: sequence_log_prob("model", images, targets), TypeError, "model"),
        (lambda: train_captioner(None, images, targets[:, None], steps=1, optimizer=None), TypeError, "model"),
        (lambda: greedy_decode(torch.nn.Linear(2, 2), images, max_len=3), TypeError, "model"),
        (lambda: step_function(torch.nn.Linear(2, 2), images[0]), TypeError, "model"),
        (lambda: decode(torch.nn.Linear(2, 2), images, beam_size=1, max_len=3), TypeError, "model"),
        (lambda: evaluate(torch.nn.Linear(2, 2), images, [[["a"]], [["b"]]], None), TypeError, "model"),
    ])
