"""Tests for dlbook.data.shapes (module dlbook.data.scenes): generated shape scenes with boxes and captions."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dlbook.data import shapes
from dlbook.data.scenes import COLORS, SHAPES, caption
from tests.helpers import check_bad_inputs


@pytest.mark.parametrize("seed", [0, 7])
def test_same_seed_same_scenes(seed: int) -> None:
    a, b = shapes(20, seed=seed), shapes(20, seed=seed)
    for name in ("images", "boxes", "shapes", "colors", "counts"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert a.captions == b.captions
    assert not torch.equal(a.images, shapes(20, seed=seed + 1).images)


@pytest.mark.parametrize("size, max_objects", [(32, 1), (32, 2), (48, 2)])
def test_boxes_are_the_exact_extent_of_each_object(size: int, max_objects: int) -> None:
    scenes = shapes(30, size=size, max_objects=max_objects, seed=3)
    assert scenes.images.shape == (30, 3, size, size)
    palette = torch.tensor([COLORS[c] for c in COLORS])
    for i in range(len(scenes)):
        drawn = scenes.images[i].sum(0) > 0  # (S, S)
        covered = torch.zeros(size, size, dtype=torch.bool)
        for k in range(int(scenes.counts[i])):
            x0, y0, x1, y1 = scenes.boxes[i, k].tolist()
            assert 0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size
            inside = drawn[y0:y1, x0:x1]
            # every edge of the box touches ink: the box is tight
            assert inside[0].any() and inside[-1].any()
            assert inside[:, 0].any() and inside[:, -1].any()
            colour = palette[scenes.colors[i, k]]
            ink = (scenes.images[i, :, y0:y1, x0:x1] == colour[:, None, None]).all(0)
            assert ink.any()
            covered[y0:y1, x0:x1] = True
        # no ink outside the boxes; unused rows are empty
        assert not (drawn & ~covered).any()
        assert (scenes.shapes[i, int(scenes.counts[i]):] == -1).all()


def test_shape_classes_have_their_geometry() -> None:
    scenes = shapes(60, max_objects=1, seed=5)
    for i in range(len(scenes)):
        x0, y0, x1, y1 = scenes.boxes[i, 0].tolist()
        fill = (scenes.images[i, :, y0:y1, x0:x1].sum(0) > 0).float().mean().item()
        expected = {"circle": (0.7, 0.86), "square": (1.0, 1.0), "triangle": (0.4, 0.62)}
        lo, hi = expected[SHAPES[scenes.shapes[i, 0]]]
        assert lo <= fill <= hi, (SHAPES[scenes.shapes[i, 0]], fill)


def test_captions_match_the_scene() -> None:
    scenes = shapes(40, seed=2)
    for i, text in enumerate(scenes.captions):
        n = int(scenes.counts[i])
        names = [f"a {list(COLORS)[scenes.colors[i, k]]} {SHAPES[scenes.shapes[i, k]]}"
                 for k in range(n)]
        assert text.startswith(names[0]) and text.endswith(names[-1])
        if n == 2:
            relation = text[len(names[0]) + 1 : len(text) - len(names[1]) - 1]
            a, b = scenes.boxes[i, 0].float(), scenes.boxes[i, 1].float()
            dx = (a[0] + a[2] - b[0] - b[2]) / 2
            dy = (a[1] + a[3] - b[1] - b[3]) / 2
            if abs(dy) >= abs(dx):
                expected = "above" if dy < 0 else "below"
            else:
                expected = "left of" if dx < 0 else "right of"
            assert relation == expected
        else:
            assert text == names[0]


def test_caption_template() -> None:
    boxes = torch.tensor([[20, 2, 28, 8], [2, 4, 8, 10]])
    assert caption([2, 0], [3, 1], boxes) == "a yellow triangle right of a green circle"
    assert caption([1], [0], boxes[:1]) == "a red square"
    with pytest.raises(ValueError, match="one or two objects"):
        caption([0, 0, 0], [0, 0, 0], torch.zeros(3, 4))


def test_bad_inputs() -> None:
    boxes = torch.tensor([[2, 2, 8, 8], [2, 20, 8, 26]])
    check_bad_inputs([
        (lambda: shapes(0), ValueError, "n must be an int >= 1"),
        (lambda: shapes(2.5), TypeError, "n"),
        (lambda: shapes(True), TypeError, "n"),
        (lambda: shapes(2, size=8), ValueError, "size must be an int >= 16"),
        (lambda: shapes(2, max_objects=3), ValueError, "max_objects"),
        (lambda: shapes(2, max_objects=0), ValueError, "max_objects"),
        (lambda: shapes(2, min_side=12, max_side=10), ValueError, "min_side <= max_side"),
        (lambda: shapes(2, max_side=20), ValueError, "size // max_objects = 16"),
        (lambda: shapes(2, min_side=2), ValueError, "min_side"),
        (lambda: shapes(2, max_side=8.0), TypeError, "max_side"),
        (lambda: shapes(2, seed=-1), ValueError, "seed"),
        # two objects that cannot fit without touching: a clear error, not an endless search
        (lambda: shapes(4, size=16, min_side=8, max_side=8), ValueError, "min_side=8"),
        (lambda: shapes(4, size=32, min_side=16, max_side=16), ValueError, "size >= 2 * min_side + 1"),
        (lambda: caption([0, 0, 0], [0, 0, 0], torch.zeros(3, 4)), ValueError, "one or two objects"),
        (lambda: caption([0, 1], [0], boxes), ValueError, "shape_ids and color_ids and boxes"),
        (lambda: caption([0, 3], [0, 1], boxes), ValueError, "shape_ids"),
        (lambda: caption([0, 1], [0, -1], boxes), ValueError, "color_ids"),
    ])


def _many_scenes(seeds: range, n: int) -> None:
    for seed in seeds:
        scenes = shapes(n, size=16, seed=seed)
        assert len(scenes) == n and (scenes.counts >= 1).all()


@pytest.mark.slow
def test_never_hangs_over_many_seeds() -> None:
    """Small canvases used to search forever for room for a second object."""
    code = "from tests.package.test_shapes import _many_scenes; _many_scenes(range(60), 100)"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


def test_crowded_canvases_return_quickly() -> None:
    start = time.process_time()
    _many_scenes(range(5), 200)
    assert time.process_time() - start < 10
