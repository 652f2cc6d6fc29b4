"""BLEU (Part 13): dlbook.metrics.bleu against nltk's corpus_bleu and hand-computed cases."""

from __future__ import annotations

import math
import random
import warnings
from fractions import Fraction

import pytest

from dlbook.metrics import bleu
from tests.helpers import check_bad_inputs

nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")


def random_corpus(seed: int, vocab: int) -> tuple[list, list]:
    """Random hypotheses (some empty or shorter than 4) with 1 to 3 references each.

    Half the hypotheses are a reference with a few words replaced, dropped or
    repeated, so that long n-grams match often, as they do for a decent model.
    """
    rng = random.Random(seed)
    n = rng.randint(1, 6)
    refs = [[[rng.randrange(vocab) for _ in range(rng.randint(1, 10))] for _ in range(rng.randint(1, 3))]
            for _ in range(n)]
    hyps = []
    for r in refs:
        if rng.random() < 0.5:
            hyps.append([rng.randrange(vocab) for _ in range(rng.randint(0, 10))])
            continue
        hyp = []
        for w in rng.choice(r):
            edit = rng.random()
            hyp += [] if edit < 0.1 else [w, w] if edit < 0.2 else [rng.randrange(vocab)] if edit < 0.3 else [w]
        hyps.append(hyp)
    return refs, hyps


def nltk_corpus_bleu(refs, hyps, max_n: int = 4) -> float:
    with warnings.catch_warnings():  # nltk warns when an n-gram order has no match
        warnings.simplefilter("ignore")
        return nltk_bleu.corpus_bleu(refs, hyps, weights=(1 / max_n,) * max_n)


@pytest.mark.parametrize("vocab", [2, 4, 8])
def test_bleu_equals_nltk_corpus_bleu_on_random_corpora(vocab):
    positive = 0
    for seed in range(300):
        refs, hyps = random_corpus(seed, vocab)
        ours = bleu(refs, hyps)
        # nltk returns a tiny positive number (about 1e-77) where an order has no match; we return 0.
        assert ours == pytest.approx(nltk_corpus_bleu(refs, hyps), abs=1e-12, rel=1e-12)
        positive += ours > 0
    assert positive > 50  # the comparison covered non-zero scores, not only the 0.0 branch


@pytest.mark.parametrize("max_n", [1, 2, 3])
def test_bleu_with_fewer_orders_equals_nltk_with_uniform_weights(max_n):
    for seed in range(100):
        refs, hyps = random_corpus(seed, 5)
        assert bleu(refs, hyps, max_n=max_n) == pytest.approx(nltk_corpus_bleu(refs, hyps, max_n), rel=1e-12)


def test_bleu_by_hand_clips_counts_and_pools_over_the_corpus():
    refs = [[["the", "cat", "is", "on", "the", "mat"]], [["a", "dog", "runs"]]]
    hyps = [["the", "the", "the", "cat"], ["a", "dog", "runs"]]
    # unigrams: 'the' clipped to 2 of 3, 'cat' 1 -> 3 of 4; second sentence 3 of 3 -> 6/7 pooled
    # bigrams: 'the the' x2 unmatched, 'the cat' 1 -> 1 of 3; 'a dog', 'dog runs' -> 2 of 2 -> 3/5
    p = [Fraction(6, 7), Fraction(3, 5)]
    c, r = 4 + 3, 6 + 3
    expected = math.exp(1 - r / c) * math.exp((math.log(p[0]) + math.log(p[1])) / 2)
    assert bleu(refs, hyps, max_n=2) == pytest.approx(expected, rel=1e-14)


def test_bleu_is_one_for_an_exact_match_and_zero_without_a_four_gram_match():
    ref = "a red circle above a blue square".split()
    assert bleu([[ref]], [ref]) == 1.0
    assert bleu([[ref]], [ref[:3]]) == 0.0  # no 4-gram at all: unsmoothed BLEU-4 is 0
    assert bleu([[ref]], [ref[:3]], max_n=3) == pytest.approx(math.exp(1 - 7 / 3))


def test_brevity_penalty_uses_the_closest_reference_and_the_shorter_on_a_tie():
    hyp = ["a", "b", "c", "d"]
    # references of length 3 and 5 are both 1 away: the shorter (3) is used, so no penalty
    assert bleu([[["a", "b", "c"], ["a", "b", "c", "d", "e"]]], [hyp], max_n=1) == pytest.approx(1.0)
    # with only the 5-long reference, BP = exp(1 - 5/4)
    assert bleu([[["a", "b", "c", "d", "e"]]], [hyp], max_n=1) == pytest.approx(math.exp(1 - 5 / 4))


def test_corpus_bleu_is_not_the_mean_of_sentence_bleu():
    refs, hyps = [[["a", "b", "c", "d", "e"]], [["x", "y"]]], [["a", "b", "c", "d", "e"], ["x", "z"]]
    corpus = bleu(refs, hyps, max_n=2)
    mean = (bleu(refs[:1], hyps[:1], max_n=2) + bleu(refs[1:], hyps[1:], max_n=2)) / 2
    assert corpus == pytest.approx(math.sqrt(6 / 7 * 4 / 5))
    assert mean == pytest.approx(0.5)


def test_bleu_rejects_bad_input():
    ref = [["a", "b"]]
    check_bad_inputs([
        (lambda: bleu([ref, ref], [["a", "b"]]), ValueError, "same length"),
        (lambda: bleu([], []), ValueError, "hypotheses"),
        (lambda: bleu([[]], [["a"]]), ValueError, "references[0]"),
        (lambda: bleu([ref], ["a b"]), TypeError, "hypotheses[0]"),
        (lambda: bleu("a b", [["a"]]), TypeError, "references"),
        (lambda: bleu([["a b"]], [["a"]]), TypeError, "references[0][0]"),
        (lambda: bleu([ref], [["a"]], max_n=0), ValueError, "max_n"),
    ])
