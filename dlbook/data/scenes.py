"""Shape scenes with boxes and captions (every chapter; introduced in the preface).

Coloured circles, squares and triangles on a small RGB canvas, with bounding
boxes and template captions. Generated from a seed, so nothing is downloaded and
the same seed gives the same scenes. Used for object localization in Part 8 (CNN
applications) and for image captioning in Part 13. Objects never overlap, so
every box is the exact extent of one object's pixels.

For captioning, ``caption_scenes`` draws scenes of one to three objects with
four reference captions each (``describe``), in different words and word orders,
a shared ``CaptionVocab`` and, besides train, validation and test, a
compositional split whose every scene shows a colour-shape pair that the other
splits never show.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from dlbook import _checks as check

__all__ = [
    "SHAPES", "COLORS", "ShapeScenes", "shapes", "caption",
    "PAD", "BOS", "EOS", "HELD_OUT", "describe",
    "CaptionVocab", "CAPTION_VOCAB", "CaptionSplit", "CaptionScenes", "caption_scenes",
]

#: Shape names; ``ShapeScenes.shapes`` holds indices into this tuple.
SHAPES = ("circle", "square", "triangle")
#: Colour names and their RGB values in [0, 1].
COLORS = {
    "red": (0.9, 0.15, 0.15),
    "green": (0.15, 0.75, 0.2),
    "blue": (0.2, 0.35, 0.95),
    "yellow": (0.95, 0.85, 0.1),
}
_COLOR_NAMES = tuple(COLORS)


@dataclass(frozen=True)
class ShapeScenes:
    """A batch of generated scenes.

    Attributes:
        images: ``(N, 3, S, S)`` float RGB in [0, 1], black background.
        boxes: ``(N, K, 4)`` boxes ``(x_min, y_min, x_max, y_max)`` in pixels,
            max exclusive (an object filling columns 3..7 has ``x_min=3, x_max=8``);
            rows past ``counts[i]`` are zero.
        shapes: ``(N, K)`` indices into ``SHAPES`` (``-1`` where there is no object).
        colors: ``(N, K)`` indices into ``COLORS`` (``-1`` where there is no object).
        counts: ``(N,)`` number of objects in each scene.
        captions: one sentence per scene, such as ``"a red circle above a blue square"``.
    """

    images: torch.Tensor
    boxes: torch.Tensor
    shapes: torch.Tensor
    colors: torch.Tensor
    counts: torch.Tensor
    captions: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.captions)


def _relation(a: np.ndarray, b: np.ndarray) -> str:
    """Where box ``a`` sits relative to box ``b``, along the axis with the larger gap."""
    dx = (a[0] + a[2]) / 2 - (b[0] + b[2]) / 2
    dy = (a[1] + a[3]) / 2 - (b[1] + b[3]) / 2
    if abs(dy) >= abs(dx):
        return "above" if dy < 0 else "below"
    return "left of" if dx < 0 else "right of"


def caption(shape_ids: list[int], color_ids: list[int], boxes: np.ndarray | torch.Tensor) -> str:
    """The template caption of a scene with one or two objects.

    >>> caption([0, 1], [0, 2], torch.tensor([[2, 2, 8, 8], [2, 20, 8, 26]]))
    'a red circle above a blue square'
    """
    check.same_length(shape_ids=shape_ids, color_ids=color_ids, boxes=boxes)
    for s, c in zip(shape_ids, color_ids):
        check.one_of("shape_ids", int(s), range(len(SHAPES)))
        check.one_of("color_ids", int(c), range(len(_COLOR_NAMES)))
    boxes = np.asarray(boxes, dtype=float)
    names = [f"a {_COLOR_NAMES[c]} {SHAPES[s]}" for s, c in zip(shape_ids, color_ids)]
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} {_relation(boxes[0], boxes[1])} {names[1]}"
    raise ValueError(f"captions describe one or two objects, got {len(names)}")


@functools.lru_cache(maxsize=None)
def _mask(shape: int, side: int) -> np.ndarray:
    """Boolean ``(side, side)`` mask of one shape inscribed in a square of that side (read-only,
    cached: scenes draw the same few masks thousands of times)."""
    y, x = np.mgrid[0:side, 0:side].astype(float) + 0.5  # pixel centres
    if shape == 0:  # circle: distance to the centre at most side / 2
        mask = (x - side / 2) ** 2 + (y - side / 2) ** 2 <= (side / 2) ** 2
    elif shape == 1:
        mask = np.ones((side, side), dtype=bool)
    else:  # triangle with its apex at the top centre: |x - side/2| <= y / 2
        mask = np.abs(x - side / 2) <= y / 2
    mask.setflags(write=False)
    return mask


def _draw(
    layout: list[tuple[int, int, int, int, int]], palette: np.ndarray, image: np.ndarray,
    boxes: np.ndarray, shape_ids: np.ndarray, color_ids: np.ndarray,
) -> None:
    """Paint ``layout`` into ``image`` (3, S, S) and write each object's box, shape and colour."""
    for k, (side, top, left, shape, color) in enumerate(layout):
        mask = _mask(shape, side)  # (side, side)
        window = image[:, top : top + side, left : left + side]  # (3, side, side)
        window[:, mask] = palette[color][:, None]
        rows, cols = np.nonzero(mask)
        # the tight box of the ink, max exclusive
        boxes[k] = (left + cols.min(), top + rows.min(),
                    left + cols.max() + 1, top + rows.max() + 1)
        shape_ids[k], color_ids[k] = shape, color


_TRIES_PER_OBJECT = 1000  # random placements tried for one object before the scene starts over
_RESTARTS = 20  # times a scene may start over before shapes() gives up


def _layout(
    rng: np.random.Generator, count: int, size: int, min_side: int, max_side: int,
    kinds: list[tuple[int, int]] | None = None,
) -> list[tuple[int, int, int, int, int]] | None:
    """``(side, top, left, shape, color)`` of ``count`` non-touching objects, or ``None``
    when an object found no room in ``_TRIES_PER_OBJECT`` tries. ``kinds`` fixes each
    object's ``(shape, color)``; by default they are drawn at random."""
    placed: list[tuple[int, int, int, int, int]] = []
    for j in range(count):
        for _ in range(_TRIES_PER_OBJECT):
            side = int(rng.integers(min_side, max_side + 1))
            top, left = (int(v) for v in rng.integers(0, size - side + 1, size=2))
            if kinds is None:
                shape, color = int(rng.integers(len(SHAPES))), int(rng.integers(len(COLORS)))
            else:
                shape, color = kinds[j]
            # Squares at least one pixel apart hold shapes that neither overlap nor touch.
            if not any(left <= l0 + s0 and l0 <= left + side and top <= t0 + s0 and t0 <= top + side
                       for s0, t0, l0, _, _ in placed):
                placed.append((side, top, left, shape, color))
                break
        else:
            return None
    return placed


def shapes(
    n: int,
    *,
    size: int = 32,
    max_objects: int = 2,
    min_side: int | None = None,
    max_side: int | None = None,
    seed: int = 0,
) -> ShapeScenes:
    """Generate ``n`` scenes of 1 to ``max_objects`` non-overlapping coloured shapes.

    Args:
        n: number of scenes.
        size: canvas side in pixels (at least 16).
        max_objects: 1 or 2; each scene holds between 1 and this many objects.
        min_side, max_side: range of an object's side in pixels; by default
            ``size // 4`` and ``size // 2``.
        seed: the same seed gives the same scenes.

    Returns:
        A ``ShapeScenes``.

    Raises:
        ValueError: on a non-positive ``n``, a canvas smaller than 16 pixels,
            ``max_objects`` other than 1 or 2, or object sides that do not fit.

    >>> s = shapes(4, seed=1)
    >>> s.images.shape, s.boxes.shape, len(s.captions)
    (torch.Size([4, 3, 32, 32]), torch.Size([4, 2, 4]), 4)
    """
    check.positive_int("n", n)
    check.positive_int("size", size, minimum=16)
    check.one_of("max_objects", max_objects, (1, 2))  # captions describe at most two
    min_side = size // 4 if min_side is None else min_side
    max_side = size // 2 if max_side is None else max_side
    check.positive_int("min_side", min_side, minimum=3)
    check.positive_int("max_side", max_side, minimum=3)
    check.nonnegative_int("seed", seed)
    if not min_side <= max_side <= size // max_objects:
        raise ValueError(
            f"expected 3 <= min_side <= max_side <= size // max_objects = {size // max_objects}, "
            f"got min_side={min_side}, max_side={max_side}"
        )
    if max_objects == 2 and 2 * min_side + 1 > size:
        raise ValueError(
            f"two objects of side >= min_side={min_side} cannot fit on a canvas of size={size}: "
            f"they may not touch, so they need size >= 2 * min_side + 1 = {2 * min_side + 1}"
        )
    rng = np.random.default_rng(seed)
    palette = np.array([COLORS[c] for c in _COLOR_NAMES], dtype=np.float32)  # (4, 3)
    images = np.zeros((n, 3, size, size), dtype=np.float32)
    boxes = np.zeros((n, max_objects, 4), dtype=np.int64)
    shape_ids = np.full((n, max_objects), -1, dtype=np.int64)
    color_ids = np.full((n, max_objects), -1, dtype=np.int64)
    counts = rng.integers(1, max_objects + 1, size=n)
    captions = []
    for i in range(n):
        layout = None
        for _ in range(_RESTARTS):
            layout = _layout(rng, int(counts[i]), size, min_side, max_side)
            if layout is not None:
                break
        if layout is None:
            raise ValueError(
                f"could not place {counts[i]} non-touching objects of side {min_side} to "
                f"{max_side} on a {size}×{size} canvas in {_RESTARTS * _TRIES_PER_OBJECT} "
                "tries; use a smaller max_side or a larger size"
            )
        _draw(layout, palette, images[i], boxes[i], shape_ids[i], color_ids[i])
        k = len(layout)
        captions.append(caption(list(shape_ids[i, :k]), list(color_ids[i, :k]), boxes[i, :k]))
    return ShapeScenes(
        torch.from_numpy(images), torch.from_numpy(boxes), torch.from_numpy(shape_ids),
        torch.from_numpy(color_ids), torch.from_numpy(counts), tuple(captions),
    )


# ---------------------------------------------------------------------------
# Scenes with several reference captions, for image captioning (Part 13)
# ---------------------------------------------------------------------------

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
#: The colour-shape pairs that ``caption_scenes`` keeps out of its train, validation and
#: test scenes by default; every compositional scene holds at least one of them.
HELD_OUT = (("red", "triangle"), ("blue", "circle"), ("green", "square"))
_NUMBER = {1: "one", 2: "two", 3: "three"}
# the other phrasings of a relation: (inverse, synonym, where the first object sits)
_RELATIONS = {
    "above": ("below", "over", "on top"),
    "below": ("above", "under", "at the bottom"),
    "left of": ("right of", "to the left of", "on the left"),
    "right of": ("left of", "to the right of", "on the right"),
}
# Scene layouts as group sizes: (2, 1) is a pair of identical objects and one other.
# Each group has its own colour-shape pair.
_GROUPS = ((1,), (2,), (3,), (1, 1), (2, 1))
_GROUP_WEIGHTS = (0.15, 0.15, 0.1, 0.4, 0.2)
_SIDES = (7, 11)  # object sides in pixels on the default 32-pixel canvas


def describe(
    shape_ids: list[int], color_ids: list[int], boxes: np.ndarray | torch.Tensor
) -> list[str]:
    """Four reference captions of a scene of one to three objects, in different words.

    Objects with the same shape and colour are counted ("two red circles"); two
    different objects are related by where they sit ("a red circle above a blue
    square", "a blue square below a red circle", ...). At most two different
    colour-shape pairs, and at most three objects.

    >>> describe([0, 1], [0, 2], torch.tensor([[2, 2, 8, 8], [2, 20, 8, 26]]))[:2]
    ['a red circle above a blue square', 'a blue square below a red circle']
    """
    check.same_length(shape_ids=shape_ids, color_ids=color_ids, boxes=boxes)
    for s, c in zip(shape_ids, color_ids):
        check.one_of("shape_ids", int(s), range(len(SHAPES)))
        check.one_of("color_ids", int(c), range(len(_COLOR_NAMES)))
    boxes = np.asarray(boxes, dtype=float)
    if not 1 <= len(boxes) <= 3:
        raise ValueError(f"references describe one to three objects, got {len(boxes)}")
    kinds = [(int(s), int(c)) for s, c in zip(shape_ids, color_ids)]
    distinct = list(dict.fromkeys(kinds))  # in order of first appearance
    if len(distinct) > 2:
        raise ValueError(
            f"references describe at most two different colour-shape pairs, got {len(distinct)}")

    def name(kind: tuple[int, int], count: int = 1) -> str:
        s, c = kind
        return f"{_COLOR_NAMES[c]} {SHAPES[s]}" + ("s" if count > 1 else "")

    if len(distinct) == 1:
        n, thing = len(kinds), name(kinds[0], len(kinds))
        if n == 1:
            return [f"a {thing}", f"there is a {thing}", f"one {thing}",
                    f"a single {thing} in the picture"]
        if n == 2:
            vertical = _relation(boxes[0], boxes[1]) in ("above", "below")
            return [f"two {thing}", f"there are two {thing}", f"a pair of {thing}",
                    f"two {thing} " + ("one above the other" if vertical else "side by side")]
        return [f"three {thing}", f"there are three {thing}", f"a group of three {thing}",
                f"three {thing} in the picture"]
    if len(kinds) == 2:
        a, b = kinds
        relation = _relation(boxes[0], boxes[1])
        inverse, synonym, where = _RELATIONS[relation]
        # name the first object by its shape, or by its colour when both share a shape
        which = SHAPES[a[0]] if a[0] != b[0] else f"{_COLOR_NAMES[a[1]]} one"
        return [f"a {name(a)} {relation} a {name(b)}", f"a {name(b)} {inverse} a {name(a)}",
                f"there is a {name(a)} {synonym} a {name(b)}",
                f"one {name(a)} and one {name(b)} with the {which} {where}"]
    pair = next(k for k in distinct if kinds.count(k) == 2)
    single = next(k for k in distinct if k != pair)
    return [f"two {name(pair, 2)} and a {name(single)}",
            f"a {name(single)} and two {name(pair, 2)}",
            f"there are two {name(pair, 2)} and one {name(single)}",
            f"one {name(single)} and a pair of {name(pair, 2)}"]


def _caption_words() -> tuple[str, ...]:
    """Every word ``describe`` can write, sorted."""
    words: set[str] = set()
    boxes = {"above": [[0, 0, 4, 4], [0, 10, 4, 14]], "below": [[0, 10, 4, 14], [0, 0, 4, 4]],
             "left of": [[0, 0, 4, 4], [10, 0, 14, 4]], "right of": [[10, 0, 14, 4], [0, 0, 4, 4]]}
    kinds = [(s, c) for s in range(len(SHAPES)) for c in range(len(_COLOR_NAMES))]
    for a in kinds:
        for b in kinds:
            for box in boxes.values():
                layouts = [[a], [a, a], [a, a, a]] if a == b else [[a, b], [a, a, b]]
                for layout in layouts:
                    ids = list(zip(*layout))
                    for text in describe(list(ids[0]), list(ids[1]), (box * 2)[:len(layout)]):
                        words.update(text.split())
    return tuple(sorted(words))


@dataclass(frozen=True)
class CaptionVocab:
    """The caption words and their ids: ``<pad>`` is 0, ``<bos>`` 1, ``<eos>`` 2, then words."""

    tokens: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.tokens[:3] != (PAD, BOS, EOS) or len(set(self.tokens)) != len(self.tokens):
            raise ValueError(f"tokens must start with {PAD}, {BOS}, {EOS} and hold no repeats, "
                             f"got {self.tokens[:5]}")
        object.__setattr__(self, "_ids", {w: i for i, w in enumerate(self.tokens)})

    pad, bos, eos = 0, 1, 2

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, words: str | list[str] | tuple[str, ...]) -> torch.Tensor:
        """Ids of a caption's words and ``<eos>``, ``(T + 1,)`` long; a str is split on spaces."""
        if isinstance(words, str):
            words = words.split()
        if not isinstance(words, (list, tuple)) or not all(isinstance(w, str) for w in words):
            raise TypeError(f"words must be a str or a list of str, got {check._describe(words)}")
        ids = self._ids  # type: ignore[attr-defined]
        unknown = [w for w in words if w not in ids or w in (PAD, BOS, EOS)]
        if unknown:
            raise ValueError(f"words must be caption words of the vocabulary, got {unknown[0]!r}")
        return torch.tensor([ids[w] for w in words] + [self.eos], dtype=torch.long)

    def decode(self, ids: torch.Tensor | list[int] | tuple[int, ...]) -> list[str]:
        """The words of ``ids`` up to the first ``<eos>``, skipping ``<pad>`` and ``<bos>``."""
        if isinstance(ids, torch.Tensor):
            if ids.is_floating_point() or ids.dtype == torch.bool or ids.dim() != 1:
                raise TypeError(f"ids must be a 1-D integer tensor or a list of ints, "
                                f"got {check._describe(ids)}")
            ids = ids.tolist()
        if not isinstance(ids, (list, tuple)) or any(not check._is_int(i) for i in ids):
            raise TypeError(f"ids must be a 1-D integer tensor or a list of ints, "
                            f"got {check._describe(ids)}")
        words = []
        for i in ids:
            if not 0 <= i < len(self.tokens):
                raise ValueError(f"ids must be in [0, {len(self.tokens)}), got {i}")
            if i == self.eos:
                break
            if i not in (self.pad, self.bos):
                words.append(self.tokens[i])
        return words


#: The one caption vocabulary: every word ``describe`` can write, so every split shares it.
CAPTION_VOCAB = CaptionVocab((PAD, BOS, EOS, *_caption_words()))


@dataclass(frozen=True)
class CaptionSplit:
    """Scenes with their reference captions.

    Attributes:
        scenes: the ``ShapeScenes`` (images, boxes, shapes, colours, counts; ``captions``
            holds each scene's first reference).
        references: per scene, its reference captions as lists of words.
        targets: ``(N, R, T)`` long: reference ``r`` of scene ``i`` encoded by
            ``CAPTION_VOCAB`` (words then ``<eos>``), right-padded with ``<pad>``.
    """

    scenes: ShapeScenes
    references: tuple[tuple[tuple[str, ...], ...], ...]
    targets: torch.Tensor

    @property
    def images(self) -> torch.Tensor:
        """``(N, 3, S, S)`` float RGB in [0, 1]."""
        return self.scenes.images

    def __len__(self) -> int:
        return len(self.references)


@dataclass(frozen=True)
class CaptionScenes:
    """Caption data split four ways; see ``caption_scenes``.

    Attributes:
        train, val, test: scenes made only of the colour-shape pairs not in ``held_out``.
        compositional: scenes that each hold at least one pair of ``held_out``.
        vocab: the shared ``CaptionVocab``.
        held_out: the held-out ``(colour, shape)`` pairs.
    """

    train: CaptionSplit
    val: CaptionSplit
    test: CaptionSplit
    compositional: CaptionSplit
    vocab: CaptionVocab
    held_out: tuple[tuple[str, str], ...]

    def __repr__(self) -> str:
        parts = ("train", "val", "test", "compositional")
        sizes = ", ".join(f"{p}={len(getattr(self, p))}" for p in parts)
        return f"CaptionScenes({sizes}, vocab={len(self.vocab)}, held_out={self.held_out})"


def _caption_split(
    rng: np.random.Generator, n: int, size: int, allowed: list[tuple[int, int]],
    required: list[tuple[int, int]] | None,
) -> CaptionSplit:
    """``n`` scenes whose colour-shape pairs come from ``allowed``; with ``required``, each
    scene holds at least one pair of it (and the rest of the scene may use any pair)."""
    palette = np.array([COLORS[c] for c in _COLOR_NAMES], dtype=np.float32)  # (4, 3)
    min_side, max_side = (max(3, round(s * size / 32)) for s in _SIDES)
    images = np.zeros((n, 3, size, size), dtype=np.float32)
    boxes = np.zeros((n, 3, 4), dtype=np.int64)
    shape_ids = np.full((n, 3), -1, dtype=np.int64)
    color_ids = np.full((n, 3), -1, dtype=np.int64)
    counts = np.zeros(n, dtype=np.int64)
    references = []
    for i in range(n):
        groups = _GROUPS[rng.choice(len(_GROUPS), p=_GROUP_WEIGHTS)]
        pool = allowed if required is None else required
        first = pool[rng.integers(len(pool))]
        others = [k for k in allowed if k != first]
        kinds_of_groups = [first]
        if len(groups) == 2:
            kinds_of_groups.append(others[rng.integers(len(others))])
        if len(groups) == 2 and rng.random() < 0.5:  # the required pair is not always named first
            kinds_of_groups.reverse()
            groups = groups[::-1]
        kinds = [k for k, g in zip(kinds_of_groups, groups) for _ in range(g)]
        layout = None
        for _ in range(_RESTARTS):
            layout = _layout(rng, len(kinds), size, min_side, max_side, kinds)
            if layout is not None:
                break
        if layout is None:
            raise ValueError(
                f"could not place {len(kinds)} objects on a {size}×{size} canvas; "
                "use a larger size")
        _draw(layout, palette, images[i], boxes[i], shape_ids[i], color_ids[i])
        k = counts[i] = len(layout)
        references.append(describe(list(shape_ids[i, :k]), list(color_ids[i, :k]), boxes[i, :k]))
    ids = CAPTION_VOCAB._ids  # type: ignore[attr-defined]
    encoded = [[[ids[w] for w in r.split()] + [CAPTION_VOCAB.eos] for r in refs]
               for refs in references]
    T = max(len(e) for refs in encoded for e in refs)
    # (N, R, T): each reference, <eos>, then <pad> = 0
    targets = torch.tensor([[e + [CAPTION_VOCAB.pad] * (T - len(e)) for e in refs]
                            for refs in encoded])
    scenes = ShapeScenes(
        torch.from_numpy(images), torch.from_numpy(boxes), torch.from_numpy(shape_ids),
        torch.from_numpy(color_ids), torch.from_numpy(counts),
        tuple(refs[0] for refs in references),
    )
    words = tuple(tuple(tuple(r.split()) for r in refs) for refs in references)
    return CaptionSplit(scenes, words, targets)


def caption_scenes(
    n_train: int = 2000,
    n_val: int = 200,
    n_test: int = 200,
    n_compositional: int = 200,
    *,
    size: int = 32,
    held_out: tuple[tuple[str, str], ...] = HELD_OUT,
    seed: int = 0,
) -> CaptionScenes:
    """Scenes of one to three shapes with four reference captions each, split four ways.

    Train, validation and test scenes never show a colour-shape pair of
    ``held_out`` (a red triangle, a blue circle or a green square by default);
    every compositional scene shows at least one. Each held-out colour and shape
    still appears in training with other partners, so every word of a
    compositional caption is known: the split tests whether a captioner composes
    words it knows in a combination it never saw. Each part is generated from its
    own stream of ``seed``, so the same seed gives the same scenes and references.

    >>> d = caption_scenes(20, 5, 5, 5, seed=0)
    >>> d.train.images.shape, len(d.train.references[0])
    (torch.Size([20, 3, 32, 32]), 4)
    """
    named = (("n_train", n_train), ("n_val", n_val), ("n_test", n_test),
             ("n_compositional", n_compositional))
    sizes = [check.positive_int(k, v) for k, v in named]
    size = check.positive_int("size", size, minimum=24)
    seed = check.nonnegative_int("seed", seed)
    if (isinstance(held_out, (str, bytes)) or not isinstance(held_out, (list, tuple))
            or not held_out):
        raise TypeError("held_out must be a non-empty tuple of (colour, shape) pairs, "
                        f"got {check._describe(held_out)}")
    pairs = []
    for pair in held_out:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise TypeError(
                f"held_out must hold (colour, shape) pairs, got {check._describe(pair)}")
        colour = check.one_of("held_out colour", pair[0], _COLOR_NAMES)
        shape = check.one_of("held_out shape", pair[1], SHAPES)
        pairs.append((SHAPES.index(shape), _COLOR_NAMES.index(colour)))
    every = [(s, c) for s in range(len(SHAPES)) for c in range(len(_COLOR_NAMES))]
    allowed = [k for k in every if k not in pairs]
    for s in range(len(SHAPES)):
        if not any(k[0] == s for k in allowed):
            raise ValueError(f"held_out leaves no colour for the shape {SHAPES[s]!r}, "
                             "so its word is never trained")
    for c in range(len(_COLOR_NAMES)):
        if not any(k[1] == c for k in allowed):
            raise ValueError(f"held_out leaves no shape for the colour {_COLOR_NAMES[c]!r}, "
                             "so its word is never trained")
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]
    parts = [_caption_split(rng, n, size, allowed, None) for rng, n in zip(streams[:3], sizes[:3])]
    compositional = _caption_split(streams[3], sizes[3], size, every, pairs)
    names = tuple((_COLOR_NAMES[c], SHAPES[s]) for s, c in pairs)
    return CaptionScenes(*parts, compositional, CAPTION_VOCAB, names)
