"""Tests for dlbook.data.text: the Python-documentation corpus, its split and vocabularies."""

from __future__ import annotations

import pytest
import torch
from pydoc_data.topics import topics as raw

from dlbook.data.text import PARTS, Vocabulary, _to_ascii, corpus, tokenize
from tests.helpers import check_bad_inputs


@pytest.fixture(scope="module")
def c():
    return corpus()


def test_split_by_topic_covers_every_topic_once(c):
    names = [name for p in PARTS for name in c.topics[p]]
    assert sorted(names) == sorted(raw) and len(names) == len(set(names))
    for p in PARTS:
        for name in c.topics[p]:
            assert _to_ascii(raw[name]).strip() in c.part(p)


def test_fractions_are_respected(c):
    total = sum(len(c.part(p)) for p in PARTS)
    assert 0.08 < len(c.validation) / total <= 0.1 + 1e-3
    assert 0.08 < len(c.test) / total <= 0.1 + 1e-3
    small = corpus(val_fraction=0.05, test_fraction=0.2)
    assert len(small.validation) < len(c.validation) < len(small.test)


def test_no_held_out_paragraph_appears_in_training(c):
    train_paragraphs = {p.strip() for p in c.train.split("\n\n") if len(p.strip()) > 40}
    for part in ("validation", "test"):
        held = {p.strip() for p in c.part(part).split("\n\n") if len(p.strip()) > 40}
        assert not held & train_paragraphs, part


def test_deterministic_per_seed_and_seeds_differ(c):
    assert corpus(seed=0).test == c.test
    assert corpus(seed=1).test != c.test


def test_encode_decode_round_trip_and_vocabulary(c):
    assert c.vocab_size == len(c.chars) == len(set(c.chars))
    assert all(ord(ch) < 256 for ch in c.chars)  # typographic quotes and dashes became ASCII
    ids = c.encode(c.test[:2000])
    assert ids.dtype == torch.long and ids.shape == (2000,)
    assert c.decode(ids) == c.test[:2000]
    assert c.decode([0, 1]) == "".join(c.chars[:2])
    assert c.encode("it\u2019s") .tolist() == c.encode("it's").tolist()


def test_words_and_word_vocabulary(c):
    assert tokenize("Don't call __init__ twice, x2!") == ["don't", "call", "init", "twice", "x"]
    words = c.words("train")
    vocab = c.vocabulary("train", min_count=3)
    assert vocab.tokens[0] == "<unk>" and vocab.tokens[1] == "the"
    assert sum(vocab.counts) == len(words)
    assert all(n >= 3 for n in vocab.counts[1:])
    assert list(vocab.counts[1:]) == sorted(vocab.counts[1:], reverse=True)
    ids = vocab.encode(words[:50])
    assert vocab.decode(ids) == [w if w in vocab.tokens else "<unk>" for w in words[:50]]
    assert len(c.vocabulary(max_size=100)) == 100
    assert vocab.encode(["zzzznotaword"]).tolist() == [0]


def test_bad_inputs(c):
    vocab = Vocabulary(("<unk>", "a"), (0, 3))
    check_bad_inputs([
        (lambda: corpus(val_fraction=0.0), ValueError, "val_fraction"),
        (lambda: corpus(test_fraction=0.7), ValueError, "test_fraction"),
        (lambda: corpus(test_fraction="0.1"), TypeError, "test_fraction"),
        (lambda: corpus(val_fraction=float("nan")), ValueError, "val_fraction"),
        (lambda: corpus(seed=-1), ValueError, "seed"),
        (lambda: corpus(seed=1.5), TypeError, "seed"),
        (lambda: c.encode(None), TypeError, "text"),
        (lambda: c.encode("snowman \u2603"), ValueError, "text"),
        (lambda: c.decode([0, c.vocab_size]), ValueError, "ids"),
        (lambda: c.decode([-1]), ValueError, "ids"),
        (lambda: c.decode(torch.tensor([0.5])), TypeError, "ids"),
        (lambda: c.decode("abc"), TypeError, "ids"),
        (lambda: c.words("dev"), ValueError, "split"),
        (lambda: c.vocabulary(min_count=0), ValueError, "min_count"),
        (lambda: c.vocabulary(max_size=1), ValueError, "max_size"),
        (lambda: tokenize(["a", "b"]), TypeError, "text"),
        (lambda: vocab.encode("a b"), TypeError, "words"),
        (lambda: vocab.decode([2]), ValueError, "ids"),
    ])
