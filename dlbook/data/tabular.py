"""Small real data sets from scikit-learn (every chapter; introduced in the preface).

They ship inside scikit-learn: nothing is downloaded. Used from Part 2 (linear
models) on: iris and digits for multi-class classification, breast cancer for an
imbalanced binary task, wine for exercises.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dlbook import _checks as check
from dlbook.data._split import Dataset, check_flag, split_arrays

__all__ = ["iris", "digits", "breast_cancer", "wine"]


def _load(
    loader: Callable,
    name: str,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    standardize: bool,
    classes: tuple[str, ...] | None = None,
) -> Dataset:
    bunch = loader()
    names = classes if classes is not None else tuple(str(c) for c in bunch.target_names)
    features = tuple(str(f) for f in getattr(bunch, "feature_names", ()))
    return split_arrays(
        np.asarray(bunch.data),
        np.asarray(bunch.target),
        name=name,
        classes=names,
        feature_names=features,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        standardize=standardize,
        stratify=True,
    )


def iris(
    *, val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0, standardize: bool = True
) -> Dataset:
    """Fisher's iris flowers: 150 examples, 4 measurements (cm), 3 species.

    >>> d = iris()
    >>> d.train.X.shape, d.num_classes
    (torch.Size([90, 4]), 3)
    """
    from sklearn.datasets import load_iris

    return _load(
        load_iris, "iris", val_fraction=val_fraction, test_fraction=test_fraction,
        seed=seed, standardize=standardize,
    )


def digits(
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.25,
    seed: int = 0,
    standardize: bool = False,
    flatten: bool = True,
) -> Dataset:
    """Handwritten digits, 8×8 pixels, 1,797 examples, 10 classes.

    Pixels are scaled from 0–16 to 0–1. With ``flatten=False`` the inputs have
    shape ``(N, 1, 8, 8)`` for convolutional models, else ``(N, 64)``.
    """
    from sklearn.datasets import load_digits

    def load():
        bunch = load_digits()
        bunch.data = bunch.data / 16.0
        return bunch

    data = _load(
        load, "digits", val_fraction=val_fraction, test_fraction=test_fraction,
        seed=seed, standardize=standardize, classes=tuple(str(k) for k in range(10)),
    )
    if check_flag("flatten", flatten):
        return data
    from dataclasses import replace

    def as_images(split):
        return type(split)(split.X.reshape(-1, 1, 8, 8), split.y)  # (N, 64) -> (N, 1, 8, 8)

    return replace(data, train=as_images(data.train), val=as_images(data.val), test=as_images(data.test))


def breast_cancer(
    *, val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0, standardize: bool = True
) -> Dataset:
    """Wisconsin breast cancer: 569 tumours, 30 features, imbalanced binary labels.

    Label 1 means *malignant* (212 of 569, about 37%), the class a screening
    test must find, so precision and recall refer to it. (scikit-learn codes
    malignant as 0; the labels are flipped here to follow the usual convention
    that the positive class is 1.)
    """
    from sklearn.datasets import load_breast_cancer

    def load():
        bunch = load_breast_cancer()
        bunch.target = 1 - bunch.target
        return bunch

    return _load(
        load, "breast cancer", val_fraction=val_fraction, test_fraction=test_fraction,
        seed=seed, standardize=standardize, classes=("benign", "malignant"),
    )


def wine(
    *, val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0, standardize: bool = True
) -> Dataset:
    """Wine cultivars: 178 wines, 13 chemical measurements, 3 classes."""
    from sklearn.datasets import load_wine

    return _load(
        load_wine, "wine", val_fraction=val_fraction, test_fraction=test_fraction,
        seed=seed, standardize=standardize,
    )
