"""Data set container and seeded splits (every chapter; introduced in the preface).

The ``Dataset`` container and a seeded, stratified train/validation/test
split, shared by every family of ``dlbook.data``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from dlbook import _checks as check


class Split(NamedTuple):
    """One part of a data set: inputs ``X`` (first axis = examples) and targets ``y``."""

    X: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Dataset:
    """A data set already split into train, validation and test parts.

    Attributes:
        name: short name, used in plots and logs.
        train: the training part, a ``Split``.
        val: the validation part, for model selection and early stopping.
        test: the test part, touched once, for the final number. The three
            parts share no example.
        classes: the class names (``classes[k]`` is the name of label ``k``);
            empty for regression.
        feature_names: names of the input features, when they have names.
    """

    name: str
    train: Split
    val: Split
    test: Split
    classes: tuple[str, ...] = ()
    feature_names: tuple[str, ...] = field(default=())

    @property
    def num_classes(self) -> int:
        """Number of classes (0 for a regression target)."""
        return len(self.classes)

    def loaders(
        self, batch_size: int = 64, *, seed: int = 0
    ) -> tuple[DataLoader, DataLoader, DataLoader]:
        """Wrap the three parts in data loaders: (train, val, test).

        Only the training loader shuffles, with its own generator seeded by
        ``seed``, so the batch order is the same in every run.
        """
        check.positive_int("batch_size", batch_size)
        generator = torch.Generator().manual_seed(check.nonnegative_int("seed", seed))
        return (
            DataLoader(TensorDataset(*self.train), batch_size, shuffle=True, generator=generator),
            DataLoader(TensorDataset(*self.val), batch_size),
            DataLoader(TensorDataset(*self.test), batch_size),
        )

    def __repr__(self) -> str:
        shape = tuple(self.train.X.shape[1:])
        return (
            f"Dataset({self.name!r}, train={len(self.train)}, val={len(self.val)}, "
            f"test={len(self.test)}, input_shape={shape}, classes={self.num_classes})"
        )


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Raise unless both fractions are in [0, 1) and leave some training data."""
    check.fraction("val_fraction", val_fraction)
    check.fraction("test_fraction", test_fraction)
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            "val_fraction + test_fraction must be < 1 so that some training data is left, "
            f"got {val_fraction} + {test_fraction} = {val_fraction + test_fraction}"
        )


def check_flag(name: str, value: object) -> bool:
    """``value`` if it is a ``bool``; a ``TypeError`` naming ``name`` otherwise."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def split_arrays(
    X: np.ndarray,
    y: np.ndarray,
    *,
    name: str,
    classes: tuple[str, ...],
    feature_names: tuple[str, ...] = (),
    val_fraction: float,
    test_fraction: float,
    seed: int,
    standardize: bool,
    stratify: bool,
) -> Dataset:
    """Split ``X, y`` into a ``Dataset`` with a seeded (stratified) shuffle.

    When ``standardize`` is true, each feature is shifted and scaled with the
    mean and standard deviation of the *training* part only, so no statistic of
    the validation or test data leaks into training.
    """
    check_fractions(val_fraction, test_fraction)
    check.nonnegative_int("seed", seed)
    check_flag("standardize", standardize)
    indices = np.arange(len(y))
    # Cut the test part first, then the validation part from what is left;
    # the second fraction is rescaled so both are fractions of the whole.
    rest, test_idx = _cut(indices, test_fraction, y if stratify else None, seed)
    train_idx, val_idx = _cut(
        rest, val_fraction / (1.0 - test_fraction), y[rest] if stratify else None, seed + 1
    )

    X = X.astype(np.float32)
    if standardize:
        mean = X[train_idx].mean(axis=0)
        std = X[train_idx].std(axis=0)
        X = (X - mean) / np.where(std > 0, std, 1.0)
    target_dtype = torch.long if classes else torch.float32

    def part(idx: np.ndarray) -> Split:
        return Split(torch.as_tensor(X[idx]), torch.as_tensor(y[idx], dtype=target_dtype))

    return Dataset(name, part(train_idx), part(val_idx), part(test_idx), classes, feature_names)


def _cut(
    indices: np.ndarray, fraction: float, labels: np.ndarray | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` into (kept, cut) with ``fraction`` of them cut."""
    from sklearn.model_selection import train_test_split

    if fraction == 0:
        return indices, indices[:0]
    kept, cut = train_test_split(indices, test_size=fraction, random_state=seed, stratify=labels)
    return np.sort(kept), np.sort(cut)
