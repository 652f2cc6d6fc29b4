"""Shape scenes with boxes and captions (every chapter; introduced in the preface).

Coloured circles, squares and triangles on a small RGB canvas, with bounding
boxes and template captions. Generated from a seed, so nothing is downloaded and
the same seed gives the same scenes. Used for object localization in Part 8 (CNN
applications) and for image captioning in Part 13. Objects never overlap, so
every box is the exact extent of one object's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dlbook import _checks as check

__all__ = ["SHAPES", "COLORS", "ShapeScenes", "shapes", "caption"]

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


def _mask(shape: int, side: int) -> np.ndarray:
    """Boolean ``(side, side)`` mask of one shape inscribed in a square of that side."""
    y, x = np.mgrid[0:side, 0:side].astype(float) + 0.5  # pixel centres
    if shape == 0:  # circle: distance to the centre at most side / 2
        return (x - side / 2) ** 2 + (y - side / 2) ** 2 <= (side / 2) ** 2
    if shape == 1:
        return np.ones((side, side), dtype=bool)
    # triangle with its apex at the top centre: |x - side/2| <= y / 2
    return np.abs(x - side / 2) <= y / 2


_TRIES_PER_OBJECT = 1000  # random placements tried for one object before the scene starts over
_RESTARTS = 20  # times a scene may start over before shapes() gives up


def _layout(
    rng: np.random.Generator, count: int, size: int, min_side: int, max_side: int
) -> list[tuple[int, int, int, int, int]] | None:
    """``(side, top, left, shape, color)`` of ``count`` non-touching objects, or ``None``
    when an object found no room in ``_TRIES_PER_OBJECT`` tries."""
    placed: list[tuple[int, int, int, int, int]] = []
    for _ in range(count):
        for _ in range(_TRIES_PER_OBJECT):
            side = int(rng.integers(min_side, max_side + 1))
            top, left = (int(v) for v in rng.integers(0, size - side + 1, size=2))
            shape, color = int(rng.integers(len(SHAPES))), int(rng.integers(len(COLORS)))
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
        for k, (side, top, left, shape, color) in enumerate(layout):
            mask = _mask(shape, side)  # (side, side)
            window = images[i, :, top : top + side, left : left + side]  # (3, side, side)
            window[:, mask] = palette[color][:, None]
            rows, cols = np.nonzero(mask)
            # the tight box of the ink, max exclusive
            boxes[i, k] = (left + cols.min(), top + rows.min(),
                           left + cols.max() + 1, top + rows.max() + 1)
            shape_ids[i, k], color_ids[i, k] = shape, color
        k = len(layout)
        captions.append(caption(list(shape_ids[i, :k]), list(color_ids[i, :k]), boxes[i, :k]))
    return ShapeScenes(
        torch.from_numpy(images), torch.from_numpy(boxes), torch.from_numpy(shape_ids),
        torch.from_numpy(color_ids), torch.from_numpy(counts), tuple(captions),
    )
