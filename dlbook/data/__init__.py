"""Offline data sets for every chapter: shipped with a dependency or generated.

Nothing here downloads. Every loader returns a :class:`Dataset` with fixed,
seeded train/validation/test parts; ``Dataset.loaders`` wraps them in
``DataLoader``\\ s. See the "Data" section of the preface for the list.
"""

from __future__ import annotations

from dlbook.data._split import Dataset, Split
from dlbook.data.fonts import GlyphConfig, glyphs, render
from dlbook.data.scenes import ShapeScenes, shapes
from dlbook.data.tabular import breast_cancer, digits, iris, wine
from dlbook.data.toy import blobs, circles, imbalanced, linear_regression, moons

__all__ = [
    "Dataset", "Split", "GlyphConfig", "glyphs", "render", "iris", "digits", "breast_cancer", "wine",
    "moons", "circles", "blobs", "imbalanced", "linear_regression", "ShapeScenes", "shapes",
]
