"""A long-range memory task with a controlled lag (Part 9, "LSTM and GRU").

:func:`recall` makes sequences of ``lag + 2`` steps. Step 0 shows one of
``num_symbols`` symbols together with a marker; the next ``lag`` steps show
random symbols from the same set, unmarked (distractors); the last step is a
query. The target is the marked symbol. Because the distractors look like the
signal, a network must *write* its memory when the marker is on and keep it
unchanged for ``lag`` steps; one that cannot does no better than chance,
``1 / num_symbols``. Generated from a seed, so nothing is downloaded.

Each step is a feature vector of ``num_symbols + 2`` entries: the symbol
one-hot, the marker, the query flag.

>>> data = recall(3, n_train=2, n_val=1, n_test=1, num_symbols=2)
>>> data.train.X.shape  # (n, lag + 2, num_symbols + 2)
torch.Size([2, 5, 4])
>>> data.train.X[0, :, 2:].T.tolist()  # marker on at step 0, query at the end
[[1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0]]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlbook import _checks as check
from dlbook.data._split import Dataset, Split

__all__ = ["recall"]


def _sequences(n: int, lag: int, K: int, generator: torch.Generator) -> Split:
    signal = torch.randint(0, K, (n,), generator=generator)  # (n,)
    distractors = torch.randint(0, K, (n, lag), generator=generator)  # (n, lag): the same K symbols
    X = torch.zeros(n, lag + 2, K + 2)  # (n, steps, features)
    X[:, 0, :K] = F.one_hot(signal, K).float()
    X[:, 0, K] = 1.0  # the marker
    X[:, 1: lag + 1, :K] = F.one_hot(distractors, K).float()
    X[:, -1, K + 1] = 1.0  # the query
    return Split(X, signal)


def recall(
    lag: int,
    *,
    n_train: int = 4096,
    n_val: int = 512,
    n_test: int = 1024,
    num_symbols: int = 4,
    seed: int = 0,
) -> Dataset:
    """Recall the marked first symbol after ``lag`` distractors.

    Shapes: X (n, lag + 2, num_symbols + 2) float, y (n,) long. The three parts are
    drawn one after another from one generator seeded with ``seed``.
    """
    lag = check.nonnegative_int("lag", lag)
    sizes = [check.positive_int(name, n) for name, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test))]
    K = check.positive_int("num_symbols", num_symbols, minimum=2)
    generator = torch.Generator().manual_seed(check.nonnegative_int("seed", seed))
    parts = [_sequences(n, lag, K, generator) for n in sizes]
    return Dataset(f"recall (lag {lag})", *parts, classes=tuple(f"s{k}" for k in range(K)))
