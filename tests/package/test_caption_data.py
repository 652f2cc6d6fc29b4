"""dlbook.data.caption_scenes (module dlbook.data.scenes): reference captions, vocabulary, the compositional split."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from dlbook.data import CaptionVocab, caption_scenes
from dlbook.data.scenes import CAPTION_VOCAB, COLORS, HELD_OUT, SHAPES, describe
from tests.helpers import check_bad_inputs

COLOR_NAMES = tuple(COLORS)
NUMBERS = {"a": 1, "one": 1, "single": 1, "two": 2, "pair": 2, "three": 3}


def _objects(scenes, i: int) -> list[tuple[str, str]]:
    """The (colour, shape) names of scene i's objects, sorted."""
    k = int(scenes.counts[i])
    return sorted((COLOR_NAMES[c], SHAPES[s]) for s, c in zip(scenes.shapes[i, :k].tolist(), scenes.colors[i, :k].tolist()))


def _mentioned(words: tuple[str, ...]) -> list[tuple[str, str]]:
    """The objects a caption names: each "colour shape(s)" counted by the number word before it."""
    found = []
    for j in range(len(words) - 1):
        if words[j] in COLOR_NAMES and words[j + 1].rstrip("s") in SHAPES:
            number = next(NUMBERS[w] for w in reversed(words[:j]) if w in NUMBERS)
            assert (number > 1) == words[j + 1].endswith("s"), words  # plural agrees with the count
            found += [(words[j], words[j + 1].rstrip("s"))] * number
    return sorted(found)


@pytest.fixture(scope="module")
def data():
    return caption_scenes(300, 50, 50, 100, seed=3)


def test_same_seed_same_scenes_and_references():
    a, b = caption_scenes(30, 10, 10, 10, seed=5), caption_scenes(30, 10, 10, 10, seed=5)
    for part in ("train", "val", "test", "compositional"):
        pa, pb = getattr(a, part), getattr(b, part)
        assert torch.equal(pa.images, pb.images) and torch.equal(pa.targets, pb.targets)
        assert pa.references == pb.references
    c = caption_scenes(30, 10, 10, 10, seed=6)
    assert not torch.equal(a.train.images, c.train.images)
    # a part does not depend on the sizes of the others
    assert torch.equal(caption_scenes(30, 20, 10, 5, seed=5).train.images, a.train.images)


def test_references_describe_the_scene(data):
    for part in ("train", "test", "compositional"):
        split = getattr(data, part)
        for i, refs in enumerate(split.references):
            assert len(refs) == 4 and len(set(refs)) == 4  # four different phrasings
            for words in refs:
                assert _mentioned(words) == _objects(split.scenes, i), (words, _objects(split.scenes, i))


def test_relations_match_the_boxes(data):
    scenes, checked = data.train.scenes, 0
    for i, refs in enumerate(data.train.references):
        text = " ".join(refs[0])
        m = re.fullmatch(r"a \w+ \w+ (above|below|left of|right of) a \w+ \w+", text)
        if m is None:
            continue
        a, b = scenes.boxes[i, 0].float(), scenes.boxes[i, 1].float()
        dx = (a[0] + a[2] - b[0] - b[2]).item() / 2  # centre of a minus centre of b
        dy = (a[1] + a[3] - b[1] - b[3]).item() / 2
        expected = ("above" if dy < 0 else "below") if abs(dy) >= abs(dx) else ("left of" if dx < 0 else "right of")
        assert m.group(1) == expected, (text, dx, dy)
        checked += 1
    assert checked > 50


def test_counts_range_over_one_to_three_objects(data):
    assert set(data.train.scenes.counts.tolist()) == {1, 2, 3}
    assert data.train.images.shape == (300, 3, 32, 32) and data.train.targets.shape[:2] == (300, 4)


def test_compositional_split_holds_out_its_pairs(data):
    held = set(data.held_out)
    assert held == set(HELD_OUT)
    for part in ("train", "val", "test"):
        split = getattr(data, part)
        for i in range(len(split)):
            assert not held & set(_objects(split.scenes, i)), (part, i)
    for i in range(len(data.compositional)):
        assert held & set(_objects(data.compositional.scenes, i))
    # every word of every compositional caption is a word of the training captions
    train_words = {w for refs in data.train.references for r in refs for w in r}
    assert {w for refs in data.compositional.references for r in refs for w in r} <= train_words
    # and each held-out colour and shape is seen in training, with other partners
    seen = {pair for i in range(len(data.train)) for pair in _objects(data.train.scenes, i)}
    for colour, shape in held:
        assert any(c == colour for c, _ in seen) and any(s == shape for _, s in seen)


def test_a_chosen_held_out_pair():
    d = caption_scenes(100, 5, 5, 30, held_out=(("yellow", "square"),), seed=0)
    assert all(("yellow", "square") in _objects(d.compositional.scenes, i) for i in range(30))
    assert all(("yellow", "square") not in _objects(d.train.scenes, i) for i in range(100))


def test_targets_encode_the_references(data):
    vocab = data.vocab
    for i in range(0, 300, 7):
        for r, words in enumerate(data.train.references[i]):
            row = data.train.targets[i, r]  # (T,)
            n = len(words)
            assert row[n].item() == vocab.eos and (row[n + 1:] == vocab.pad).all()
            assert vocab.decode(row) == list(words)


def test_vocabulary_round_trip_and_specials():
    v = CAPTION_VOCAB
    assert v.tokens[:3] == ("<pad>", "<bos>", "<eos>") and (v.pad, v.bos, v.eos) == (0, 1, 2)
    ids = v.encode("a red circle above a blue square")
    assert ids[-1].item() == v.eos and len(ids) == 8
    assert v.decode(ids) == "a red circle above a blue square".split()
    assert v.decode([v.bos, *ids.tolist(), 5, 6]) == v.decode(ids)  # <bos> skipped, stops at <eos>
    assert v.encode(["two", "red", "circles"]).tolist() == v.encode("two red circles").tolist()
    # the vocabulary is every word describe() can write, and nothing else
    words = set()
    for refs in caption_scenes(400, 1, 1, 200, seed=1).train.references:
        words |= {w for r in refs for w in r}
    assert words == set(v.tokens[3:])


def test_describe_counts_and_relations():
    box = torch.tensor([[2, 2, 8, 8], [2, 20, 8, 26], [20, 2, 26, 8]])
    assert describe([0], [0], box[:1])[0] == "a red circle"
    assert describe([0, 0], [0, 0], box[:2])[3] == "two red circles one above the other"
    assert describe([0, 0], [0, 0], box[[0, 2]])[3] == "two red circles side by side"
    assert describe([1, 1, 1], [2, 2, 2], box)[0] == "three blue squares"
    assert describe([0, 0], [0, 2], box[:2])[3] == "one red circle and one blue circle with the red one on top"
    assert describe([2, 1, 2], [1, 3, 1], box)[0] == "two green triangles and a yellow square"


def test_bad_inputs():
    box = np.array([[2, 2, 8, 8], [2, 20, 8, 26], [20, 2, 26, 8], [20, 20, 26, 26]])
    check_bad_inputs([
        (lambda: caption_scenes(0), ValueError, "n_train"),
        (lambda: caption_scenes(5, 0, 5, 5), ValueError, "n_val"),
        (lambda: caption_scenes(5, 5, 5, 2.0), TypeError, "n_compositional"),
        (lambda: caption_scenes(5, 5, 5, 5, size=16), ValueError, "size"),
        (lambda: caption_scenes(5, 5, 5, 5, seed=-1), ValueError, "seed"),
        (lambda: caption_scenes(5, 5, 5, 5, held_out=("red", "triangle")), TypeError, "held_out"),
        (lambda: caption_scenes(5, 5, 5, 5, held_out=(("pink", "circle"),)), ValueError, "held_out colour"),
        (lambda: caption_scenes(5, 5, 5, 5, held_out=(("red", "star"),)), ValueError, "held_out shape"),
        (lambda: caption_scenes(5, 5, 5, 5, held_out=tuple((c, "circle") for c in COLORS)), ValueError,
         "no colour for the shape 'circle'"),
        (lambda: describe([0, 1, 2, 0], [0, 0, 0, 0], box), ValueError, "one to three objects"),
        (lambda: describe([0, 1, 2], [0, 0, 0], box[:3]), ValueError, "at most two different"),
        (lambda: describe([0, 1], [0], box[:2]), ValueError, "shape_ids and color_ids and boxes"),
        (lambda: describe([4], [0], box[:1]), ValueError, "shape_ids"),
        (lambda: CAPTION_VOCAB.encode("a purple circle"), ValueError, "'purple'"),
        (lambda: CAPTION_VOCAB.encode("a <eos>"), ValueError, "'<eos>'"),
        (lambda: CAPTION_VOCAB.encode(3), TypeError, "words"),
        (lambda: CAPTION_VOCAB.decode([0, 99]), ValueError, "ids must be in [0, 43)"),
        (lambda: CAPTION_VOCAB.decode(torch.zeros(2, 2, dtype=torch.long)), TypeError, "ids"),
        (lambda: CAPTION_VOCAB.decode([1.5]), TypeError, "ids"),
        (lambda: CaptionVocab(("a", "b")), ValueError, "tokens must start with"),
    ])
