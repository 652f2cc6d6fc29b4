"""Offline data sets (every chapter; introduced in the preface).

Each ships with a dependency or is generated from a seed; nothing here
downloads. Every loader returns a ``Dataset`` with fixed, seeded
train/validation/test parts; ``Dataset.loaders`` wraps them in data loaders.

The families are imported lazily, on first use of one of their names, so ``from
dlbook.data import digits`` does not load the glyph renderer or the shape
scenes:

- ``tabular``: iris, digits, breast cancer and wine, from scikit-learn;
- ``toy``: two-dimensional problems (moons, circles, blobs, imbalanced) and a
  known linear model;
- ``fonts``: the glyphs, 28×28 characters rendered from matplotlib's fonts;
- ``scenes``: coloured shapes on a canvas, with boxes and captions (and, for
  captioning, several reference captions per scene);
- ``graphs``: Zachary's karate club (from networkx) and a generated citation
  graph, for node classification.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public name -> the family module that defines it.
_FAMILY = {
    "Dataset": "_split", "Split": "_split",
    "iris": "tabular", "digits": "tabular", "breast_cancer": "tabular", "wine": "tabular",
    "moons": "toy", "circles": "toy", "blobs": "toy", "imbalanced": "toy",
    "linear_regression": "toy",
    "GlyphConfig": "fonts", "glyphs": "fonts", "render": "fonts",
    "ShapeScenes": "scenes", "shapes": "scenes",
    "CaptionScenes": "scenes", "CaptionSplit": "scenes", "CaptionVocab": "scenes", "caption_scenes": "scenes",
    "Graph": "graphs", "karate_club": "graphs", "citation_graph": "graphs", "labelled_nodes": "graphs",
}

__all__ = list(_FAMILY)


def __getattr__(name: str) -> Any:
    """Import the family that defines ``name`` the first time it is asked for."""
    if name not in _FAMILY:
        raise AttributeError(f"module 'dlbook.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"dlbook.data.{_FAMILY[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and for the build's dependency tracking; never run
    from dlbook.data._split import Dataset, Split
    from dlbook.data.fonts import GlyphConfig, glyphs, render
    from dlbook.data.graphs import Graph, citation_graph, karate_club, labelled_nodes
    from dlbook.data.scenes import CaptionScenes, CaptionSplit, CaptionVocab, ShapeScenes, caption_scenes, shapes
    from dlbook.data.tabular import breast_cancer, digits, iris, wine
    from dlbook.data.toy import blobs, circles, imbalanced, linear_regression, moons
