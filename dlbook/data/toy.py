"""Two-dimensional toy problems generated from a seed (every chapter; introduced in the preface).

Made with scikit-learn's ``make_*`` generators. Small enough to plot a decision
boundary, hard enough to need a non-linear model. Used from Part 2 on.
"""

from __future__ import annotations

import numpy as np

from dlbook import _checks as check
from dlbook.data._split import Dataset, split_arrays

__all__ = ["moons", "circles", "blobs", "imbalanced", "linear_regression"]


def _split(X, y, name, classes, *, val_fraction, test_fraction, seed, standardize=False):
    return split_arrays(
        np.asarray(X), np.asarray(y), name=name, classes=classes,
        feature_names=tuple(f"x{i + 1}" for i in range(np.asarray(X).shape[1])),
        val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
        standardize=standardize, stratify=bool(classes),
    )


def moons(
    n: int = 1000, *, noise: float = 0.2, val_fraction: float = 0.2,
    test_fraction: float = 0.2, seed: int = 0,
) -> Dataset:
    """Two interleaving half circles; not linearly separable."""
    from sklearn.datasets import make_moons

    check.positive_int("n", n, minimum=2)
    check.nonnegative_float("noise", noise)
    check.nonnegative_int("seed", seed)
    X, y = make_moons(n, noise=noise, random_state=seed)
    return _split(X, y, "moons", ("0", "1"), val_fraction=val_fraction,
                  test_fraction=test_fraction, seed=seed)


def circles(
    n: int = 1000, *, noise: float = 0.1, factor: float = 0.5, val_fraction: float = 0.2,
    test_fraction: float = 0.2, seed: int = 0,
) -> Dataset:
    """A small circle inside a large one; class 1 is the inner circle."""
    from sklearn.datasets import make_circles

    check.positive_int("n", n, minimum=2)
    check.nonnegative_float("noise", noise)
    check.fraction("factor", factor, closed="()")
    check.nonnegative_int("seed", seed)
    X, y = make_circles(n, noise=noise, factor=factor, random_state=seed)
    return _split(X, y, "circles", ("outer", "inner"), val_fraction=val_fraction,
                  test_fraction=test_fraction, seed=seed)


def blobs(
    n: int = 1000, *, centers: int = 3, std: float = 1.0, val_fraction: float = 0.2,
    test_fraction: float = 0.2, seed: int = 0,
) -> Dataset:
    """Isotropic Gaussian clusters in 2-D, one class per cluster."""
    from sklearn.datasets import make_blobs

    check.positive_int("n", n, minimum=2)
    check.positive_int("centers", centers, minimum=2)
    check.nonnegative_float("std", std)
    check.nonnegative_int("seed", seed)
    X, y = make_blobs(n, n_features=2, centers=centers, cluster_std=std, random_state=seed)
    return _split(X, y, "blobs", tuple(str(k) for k in range(centers)),
                  val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)


def imbalanced(
    n: int = 2000, *, positive_fraction: float = 0.05, n_features: int = 2,
    val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0,
) -> Dataset:
    """A binary task where only ``positive_fraction`` of the examples are positive.

    The data set for showing why accuracy misleads (Part 7): predicting
    "negative" for everything scores ``1 - positive_fraction``.
    """
    from sklearn.datasets import make_classification

    check.positive_int("n", n, minimum=10)
    check.positive_int("n_features", n_features, minimum=2)
    check.fraction("positive_fraction", positive_fraction, closed="()")
    check.nonnegative_int("seed", seed)
    X, y = make_classification(
        n, n_features=n_features, n_informative=2, n_redundant=0, n_clusters_per_class=1,
        weights=[1 - positive_fraction], class_sep=1.0, flip_y=0.0, random_state=seed,
    )
    return _split(X, y, "imbalanced", ("negative", "positive"), val_fraction=val_fraction,
                  test_fraction=test_fraction, seed=seed)


def linear_regression(
    n: int = 200, *, n_features: int = 1, noise: float = 0.5, val_fraction: float = 0.2,
    test_fraction: float = 0.2, seed: int = 0,
) -> tuple[Dataset, np.ndarray, float]:
    """Data from a known linear model y = w·x + b + noise.

    Returns the data set together with the true weights ``w`` and bias ``b``,
    so a page can compare what a model learns with the truth.
    """
    check.positive_int("n", n, minimum=3)
    check.positive_int("n_features", n_features)
    check.nonnegative_float("noise", noise)
    check.nonnegative_int("seed", seed)
    rng = np.random.default_rng(seed)
    w = rng.normal(size=n_features)
    b = float(rng.normal())
    X = rng.uniform(-2, 2, size=(n, n_features))
    y = X @ w + b + noise * rng.normal(size=n)
    data = _split(X, y, "linear", (), val_fraction=val_fraction,
                  test_fraction=test_fraction, seed=seed)
    return data, w, b
