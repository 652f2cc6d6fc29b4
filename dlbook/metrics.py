"""Classification metrics with scikit-learn's conventions (Part 7, "Evaluating classifiers").

Every function takes label (or score) arrays — torch tensors, NumPy arrays or
lists — with scikit-learn's signature ``metric(y_true, y_pred)`` and returns
the same numbers as ``sklearn.metrics``; the tests compare them on many random
inputs, ties and edge cases included. Where this module deliberately differs,
the docstring says so: labels outside ``labels=`` and a single-class ROC raise
a ``ValueError`` instead of being dropped or warned about, and
``zero_division`` defaults to ``0.0`` (the value scikit-learn's ``"warn"``
returns) without a warning.

These metrics work on *labels*. :func:`dlbook.train.accuracy` is different: it
takes a batch of model outputs (logits) and targets inside the training loop.

:func:`frechet_distance` compares two Gaussians (means and covariances of
features); Part 10's "Evaluating generative models" uses it to score samples.
:func:`bleu` scores generated token sequences against references; Part 13's
image captioning uses it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch

from dlbook import _checks as check
from dlbook import train

__all__ = [
    "accuracy", "confusion_matrix", "precision_recall_fscore", "precision", "recall", "f1_score",
    "roc_curve", "roc_auc", "precision_recall_curve", "average_precision",
    "bootstrap_ci", "paired_difference_ci", "top_k_accuracy", "mcnemar",
    "brier_score", "calibration_curve", "expected_calibration_error",
    "frechet_distance", "bleu",
]

ArrayLike = torch.Tensor | np.ndarray | Sequence
Average = Literal["binary", "micro", "macro", "weighted"] | None


def _as_1d(name: str, x: object) -> np.ndarray:
    """``x`` (tensor, array or list) as a non-empty 1-D NumPy array."""
    if x is None or isinstance(x, (str, bytes, dict, set)):
        raise TypeError(f"{name} must be a 1-D tensor, array or list, got {type(x).__name__}")
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"expected {name} of shape (N,), got {arr.shape}")
    if len(arr) == 0:
        raise ValueError(f"{name} is empty: a metric needs at least one example")
    return arr


def _labels(name: str, y: object) -> np.ndarray:
    """``y`` as 1-D class labels: ints, bools, strings, or whole-valued floats (as in scikit-learn)."""
    arr = _as_1d(name, y)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinity: expected class labels")
        if (arr != np.round(arr)).any():
            raise ValueError(f"{name} must hold class labels, got continuous values such as "
                             f"{arr[arr != np.round(arr)][0].item()} (scores where labels belong?)")
    elif arr.dtype.kind not in "biuUS":
        raise TypeError(f"{name} must hold class labels (ints or strings), got dtype {arr.dtype}")
    return arr


def _scores(name: str, s: object) -> np.ndarray:
    """``s`` as 1-D finite real scores."""
    arr = _as_1d(name, s)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real-valued scores, got dtype {arr.dtype}")
    arr = arr.astype(float)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Label arrays of the same length and kind (both numbers or both strings)."""
    a, b = _labels("y_true", y_true), _labels("y_pred", y_pred)
    check.same_length(y_true=a, y_pred=b)
    if (a.dtype.kind in "US") != (b.dtype.kind in "US"):
        raise TypeError("y_true and y_pred must hold labels of the same kind, "
                        f"got {a.dtype} and {b.dtype}")
    return a, b


def _scored(y_true: ArrayLike, y_score: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a, s = _labels("y_true", y_true), _scores("y_score", y_score)
    check.same_length(y_true=a, y_score=s)
    return a, s


def _callable(name: str, fn: object) -> Callable:
    if not callable(fn):
        raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
    return fn


def _average(average: object) -> Average:
    """``average`` if it is None or one of the named averages."""
    named = ("binary", "micro", "macro", "weighted")
    return average if average is None else check.one_of("average", average, named)


def _zero_division(value: object) -> float:
    out = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if out is None or not (out in (0.0, 1.0) or np.isnan(out)):
        raise ValueError(f"zero_division must be 0.0, 1.0 or nan, got {value!r}")
    return out


def accuracy(y_true: ArrayLike, y_pred: ArrayLike, *, normalize: bool = True) -> float:
    """The fraction (or, with ``normalize=False``, the number) of correct labels.

    Like ``sklearn.metrics.accuracy_score``, and like it refuses scores where
    labels belong. It encodes the labels as class indices and counts with
    :func:`dlbook.train.accuracy`, which takes model outputs in the training loop.

    >>> accuracy([0, 1, 2, 2], [0, 2, 2, 2])
    0.75
    """
    a, b = _pair(y_true, y_pred)
    check.one_of("normalize", normalize, (True, False))
    # class indices 0..K-1 for any labels (ints, strings), shared by both arrays
    _, codes = np.unique(np.concatenate([a, b]), return_inverse=True)
    codes = torch.as_tensor(codes.reshape(-1), dtype=torch.long)
    fraction = float(train.accuracy(codes[len(a):], codes[: len(a)]))
    return fraction if normalize else float(round(fraction * len(a)))


def confusion_matrix(
    y_true: ArrayLike, y_pred: ArrayLike, *, labels: ArrayLike | None = None
) -> torch.Tensor:
    """Counts ``C[i, j]`` (K, K) of examples of true class ``labels[i]`` predicted as ``labels[j]``.

    >>> confusion_matrix([0, 1, 1, 0], [0, 1, 0, 0])
    tensor([[2, 0],
            [1, 1]])
    """
    a, b = _pair(y_true, y_pred)
    classes = _classes(labels, a, b)
    index = {c: k for k, c in enumerate(classes.tolist())}
    rows = np.array([index[v] for v in a.tolist()])  # true class of each example, (N,)
    cols = np.array([index[v] for v in b.tolist()])  # predicted class, (N,)
    K = len(classes)
    # example n adds one to C[rows[n], cols[n]], the flat cell rows[n] * K + cols[n]
    counts = np.bincount(rows * K + cols, minlength=K * K).reshape(K, K)  # (K, K)
    return torch.as_tensor(counts, dtype=torch.int64)


def _classes(labels: ArrayLike | None, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``labels`` (distinct, holding every label of ``a`` and ``b``), or the sorted union."""
    if labels is None:
        return np.union1d(a, b)
    classes = _labels("labels", labels)
    if len(np.unique(classes)) != len(classes):
        raise ValueError(f"labels must be distinct, got {classes.tolist()}")
    for name, arr in (("y_true", a), ("y_pred", b)):
        outside = np.setdiff1d(arr, classes)
        if len(outside):  # scikit-learn silently drops these examples
            raise ValueError(f"{name} has labels {outside.tolist()[:5]} "
                             f"not in labels={classes.tolist()}")
    return classes


def _divide(num: np.ndarray, den: np.ndarray, zero_division: float) -> np.ndarray:
    out = np.full(num.shape, float(zero_division))
    np.divide(num, den, out=out, where=den != 0)
    return out


def precision_recall_fscore(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    average: Average = "binary",
    pos_label: int | str = 1,
    labels: ArrayLike | None = None,
    zero_division: float = 0.0,
) -> tuple[float | np.ndarray, float | np.ndarray, float | np.ndarray]:
    """Precision, recall and F1, as scikit-learn's ``precision_recall_fscore_support``.

    ``average``: ``"binary"`` (the class ``pos_label`` only), ``"micro"``
    (pooled counts), ``"macro"`` (mean over classes), ``"weighted"`` (mean
    weighted by class support) or ``None`` (per-class arrays of shape (K,)).
    ``zero_division`` (0.0, 1.0 or nan) is the value of a ratio 0 / 0.
    """
    _average(average)
    zero_division = _zero_division(zero_division)
    a, b = _pair(y_true, y_pred)
    classes = _binary_class(a, b, pos_label) if average == "binary" else _classes(labels, a, b)
    # per-class counts, vectorized over the classes
    is_true = a[None, :] == classes[:, None]  # (K, N)
    is_pred = b[None, :] == classes[:, None]  # (K, N)
    tp = (is_true & is_pred).sum(axis=1).astype(float)  # (K,)
    fp = (~is_true & is_pred).sum(axis=1).astype(float)
    fn = (is_true & ~is_pred).sum(axis=1).astype(float)
    support = tp + fn
    if average == "micro":
        tp, fp, fn = tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True)
    # P = TP / (TP + FP), R = TP / (TP + FN), F1 = 2 TP / (2 TP + FP + FN)
    p = _divide(tp, tp + fp, zero_division)
    r = _divide(tp, tp + fn, zero_division)
    f = _divide(2 * tp, 2 * tp + fp + fn, zero_division)
    if average is None:
        return p, r, f
    if average == "weighted":
        if support.sum() == 0:
            return (float(zero_division),) * 3
        p_w, r_w, f_w = (float(np.average(m, weights=support)) for m in (p, r, f))
        return p_w, r_w, f_w
    return float(p.mean()), float(r.mean()), float(f.mean())


def _binary_class(a: np.ndarray, b: np.ndarray, pos_label: int | str) -> np.ndarray:
    """``[pos_label]``, after checking for at most two classes, ``pos_label`` among them."""
    present = np.union1d(a, b)
    if len(present) > 2:
        raise ValueError(
            f"average='binary' needs at most two classes, got {len(present)}: "
            f"{present.tolist()[:10]}; choose average='micro', 'macro', 'weighted' or None"
        )
    if pos_label not in present.tolist() and len(present) >= 2:
        raise ValueError(f"pos_label={pos_label!r} is not a valid label: "
                         f"it should be one of {present.tolist()}")
    return np.array([pos_label])


def precision(y_true: ArrayLike, y_pred: ArrayLike, **kwargs) -> float | np.ndarray:
    """Of the examples predicted positive, the fraction that are: ``TP / (TP + FP)``.

    Takes the keyword arguments of :func:`precision_recall_fscore`.

    >>> precision([0, 1, 1, 0], [1, 1, 0, 0])
    0.5
    """
    return precision_recall_fscore(y_true, y_pred, **kwargs)[0]


def recall(y_true: ArrayLike, y_pred: ArrayLike, **kwargs) -> float | np.ndarray:
    """Of the positive examples, the fraction found: ``TP / (TP + FN)``.

    Takes the keyword arguments of :func:`precision_recall_fscore`.
    """
    return precision_recall_fscore(y_true, y_pred, **kwargs)[1]


def f1_score(y_true: ArrayLike, y_pred: ArrayLike, **kwargs) -> float | np.ndarray:
    """The harmonic mean of precision and recall, ``2TP / (2TP + FP + FN)``.

    Takes the keyword arguments of :func:`precision_recall_fscore`.
    """
    return precision_recall_fscore(y_true, y_pred, **kwargs)[2]


def _binary_counts(
    y_true: ArrayLike, y_score: ArrayLike, pos_label: int | str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positives when predicting positive for score >= each distinct threshold."""
    a, s = _scored(y_true, y_score)
    pos_label = _positive_class(a, pos_label)
    positive = (a == pos_label).astype(float)
    order = np.argsort(-s, kind="mergesort")  # highest score first, (N,)
    s, positive = s[order], positive[order]
    # The last index of each run of tied scores: a threshold sits only where the score changes.
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(positive)[last]
    fps = (last + 1) - tps
    return fps, tps, s[last]


def _positive_class(y_true: np.ndarray, pos_label: int | str | None) -> int | str:
    """The positive class of binary labels: ``pos_label``, or 1 for labels in {0, 1} or {-1, 1}."""
    classes = np.unique(y_true)
    if len(classes) > 2:
        raise ValueError(f"expected binary y_true, got {len(classes)} classes: "
                         f"{classes.tolist()[:10]}")
    if pos_label is not None:
        return pos_label
    if not (set(classes.tolist()) <= {0, 1} or set(classes.tolist()) <= {-1, 1}):
        raise ValueError(f"y_true has labels {classes.tolist()}: "
                         "pass pos_label, or use {0, 1} or {-1, 1}")
    return 1


def roc_curve(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    pos_label: int | str | None = None,
    drop_intermediate: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """False- and true-positive rates as the threshold falls, like ``sklearn.metrics.roc_curve``.

    Thresholds are ``inf`` then the distinct scores in decreasing order;
    ``drop_intermediate`` drops collinear points. A ``y_true`` with one class
    raises (scikit-learn warns and returns NaN). Returns ``(fpr, tpr, thresholds)``.
    """
    fps, tps, thresholds = _binary_counts(y_true, y_score, pos_label)
    check.one_of("drop_intermediate", drop_intermediate, (True, False))
    if fps[-1] == 0 or tps[-1] == 0:
        raise ValueError("y_true has only one class: the ROC curve needs positives and negatives")
    if drop_intermediate and len(fps) > 2:
        # A point is intermediate when both rates change linearly through it.
        keep = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    thresholds = np.r_[np.inf, thresholds]
    return (torch.as_tensor(fps / fps[-1]), torch.as_tensor(tps / tps[-1]),
            torch.as_tensor(thresholds, dtype=torch.float64))


def roc_auc(y_true: ArrayLike, y_score: ArrayLike, *, pos_label: int | str | None = None) -> float:
    """The area under the ROC curve, by the trapezoidal rule.

    Equals the probability that a random positive scores above a random
    negative, ties counting one half. Binary only (like
    ``sklearn.metrics.roc_auc_score`` on binary labels).

    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    fpr, tpr, _ = roc_curve(y_true, y_score, pos_label=pos_label, drop_intermediate=False)
    return float(torch.trapezoid(tpr, fpr))


def precision_recall_curve(
    y_true: ArrayLike, y_score: ArrayLike, *, pos_label: int | str | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Precision and recall for every threshold, as ``sklearn.metrics.precision_recall_curve``.

    Thresholds are the distinct scores in *increasing* order; ``precision[i]``
    and ``recall[i]`` belong to predicting positive when ``score >= thresholds[i]``.
    A last point (precision 1, recall 0) with no threshold ends the curve.

    Returns:
        ``(precision, recall, thresholds)``: float64 tensors, the first two one
        longer than the last.

    Raises:
        ValueError: on mismatched lengths or non-binary labels.
    """
    fps, tps, thresholds = _binary_counts(y_true, y_score, pos_label)
    predicted = tps + fps
    prec = _divide(tps, predicted, 0.0)
    # No positives at all: scikit-learn sets recall to 1 (and warns).
    rec = np.ones_like(tps) if tps[-1] == 0 else tps / tps[-1]
    return (torch.as_tensor(np.r_[prec[::-1], 1.0]), torch.as_tensor(np.r_[rec[::-1], 0.0]),
            torch.as_tensor(thresholds[::-1].copy(), dtype=torch.float64))


def average_precision(
    y_true: ArrayLike, y_score: ArrayLike, *, pos_label: int | str | None = None
) -> float:
    """The area under the precision-recall curve as a step sum, sum_n (R_n - R_{n-1}) P_n.

    Like ``sklearn.metrics.average_precision_score`` for binary labels.
    """
    prec, rec, _ = precision_recall_curve(y_true, y_score, pos_label=pos_label)
    # Recall decreases along the arrays, so -diff is the step R_n - R_{n-1}.
    return float(-(torch.diff(rec) * prec[:-1]).sum())


def bootstrap_ci(
    metric: Callable[[np.ndarray, np.ndarray], float],
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """A percentile bootstrap confidence interval for a metric on one test set.

    Draws ``n_resamples`` test sets of the same size with replacement, computes
    the metric on each, and returns the central ``level`` range of the results.
    It measures how much the number would move with a different test set from
    the same distribution (not with a different training set).

    Args:
        metric: ``metric(y_true, y_pred)``, for example :func:`accuracy`.
        y_true: true labels, shape ``(N,)``.
        y_pred: predictions (labels or scores), shape ``(N,)``.
        n_resamples: bootstrap test sets to draw.
        level: the coverage of the interval, in (0, 1).
        seed: seeds the resampling.

    Returns:
        ``(estimate, low, high)``: the metric on the real test set and the interval.

    Raises:
        ValueError: on mismatched lengths, ``level`` outside (0, 1) or ``n_resamples < 1``.

    >>> est, low, high = bootstrap_ci(accuracy, [0, 1] * 50, [0, 1] * 40 + [1, 0] * 10)
    >>> est, low < est < high
    (0.8, True)
    """
    _callable("metric", metric)
    a, b = _as_1d("y_true", y_true), _as_1d("y_pred", y_pred)
    check.same_length(y_true=a, y_pred=b)
    check.positive_int("n_resamples", n_resamples)
    check.fraction("level", level, closed="()")
    check.nonnegative_int("seed", seed)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n_resamples, len(a)))  # (R, N) resampled indices
    values = np.array([metric(a[i], b[i]) for i in idx])  # (R,)
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(metric(a, b)), float(low), float(high)


def paired_difference_ci(
    differences: ArrayLike,
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    level: float = 0.95,
) -> tuple[float, float, float]:
    r"""A t-interval for the mean of paired score differences over repeated splits.

    ``differences[j]`` is (score of model A) - (score of model B) on split
    ``j``, both trained and tested on the same split. Without ``n_train`` and
    ``n_test`` this is the ordinary t-interval, :math:`\bar d \pm t_{J-1} s / \sqrt{J}`.
    Repeated random splits share training examples, which makes their
    differences correlated and that interval too narrow; Nadeau and Bengio's
    correction widens it by replacing :math:`1/J` with
    :math:`1/J + n_\text{test}/n_\text{train}`. Pass the sizes of the sets the
    models were actually trained and scored on (``len(d.train)`` and
    ``len(d.test)``): a validation set held out as well belongs to neither.

    Args:
        differences: paired differences, shape ``(J,)`` with ``J >= 2``.
        n_train: the number of training examples in each split; give it
            together with ``n_test`` to apply the correction.
        n_test: the number of test examples in each split.
        level: the coverage of the interval, in (0, 1).

    Returns:
        ``(mean, low, high)``.

    Raises:
        ValueError: on fewer than two differences, only one of ``n_train`` and
            ``n_test``, a size below 1, or a level out of range.
        TypeError: if a size is not an int.

    >>> d = [0.02, 0.01, 0.03, 0.02]
    >>> _, low, high = paired_difference_ci(d)
    >>> _, low_c, high_c = paired_difference_ci(d, n_train=300, n_test=100)
    >>> low_c < low < high < high_c
    True
    """
    from scipy import stats

    d = _scores("differences", differences)
    if len(d) < 2:
        raise ValueError(f"differences must hold at least 2 paired differences, got {len(d)}")
    if (n_train is None) != (n_test is None):
        raise ValueError(
            f"give both n_train and n_test for the correction, or neither; "
            f"got n_train={n_train!r}, n_test={n_test!r}"
        )
    # Nadeau and Bengio: 1/J becomes 1/J + n_test/n_train
    if n_train is not None:
        ratio = check.positive_int("n_test", n_test) / check.positive_int("n_train", n_train)
    else:
        ratio = 0.0
    check.fraction("level", level, closed="()")
    J = len(d)
    # Var(mean) ~ (1/J + n_test/n_train) s^2   (Nadeau and Bengio's corrected resampled t)
    scale = np.sqrt((1 / J + ratio) * d.var(ddof=1))
    half = stats.t.ppf((1 + level) / 2, df=J - 1) * scale
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def top_k_accuracy(y_true: ArrayLike, y_score: torch.Tensor | np.ndarray, *, k: int = 5) -> float:
    """Fraction of examples whose true class is among the ``k`` highest scores.

    ``y_true`` holds class indices 0..K-1 and ``y_score`` has shape (N, K), one
    row of class scores (logits or probabilities) per example; as
    ``sklearn.metrics.top_k_accuracy_score`` when no row has tied scores.
    """
    y = _labels("y_true", y_true)
    if isinstance(y_score, torch.Tensor):
        y_score = y_score.detach().cpu().numpy()
    scores = np.asarray(y_score, dtype=float)
    if scores.ndim != 2 or len(scores) != len(y):
        raise ValueError(f"expected y_score of shape (N, K) = ({len(y)}, K), got {scores.shape}")
    k = check.positive_int("k", k)
    if y.dtype.kind not in "iub" or y.min() < 0 or y.max() >= scores.shape[1]:
        raise ValueError(f"y_true must hold class indices in [0, {scores.shape[1]}), "
                         f"got values from {y.min()} to {y.max()}")
    # the true class is in the top k when fewer than k classes score strictly higher
    true_score = scores[np.arange(len(y)), y]  # (N,)
    higher = (scores > true_score[:, None]).sum(axis=1)  # (N,)
    return float((higher < k).mean())


def mcnemar(y_true: ArrayLike, pred_a: ArrayLike, pred_b: ArrayLike, *, exact: bool = True
            ) -> tuple[float, float]:
    """McNemar's test of two classifiers on the same test set: ``(statistic, p_value)``.

    Only the discordant examples count: b, those model A gets right and B wrong,
    and c, the reverse. Exact: the statistic is min(b, c) and the p-value is the
    two-sided binomial tail with n = b + c trials of probability 1/2. Otherwise
    the chi-squared statistic (abs(b - c) - 1)^2 / (b + c) with continuity correction,
    one degree of freedom. The same numbers as statsmodels' ``mcnemar``.
    """
    from scipy import stats

    y, a, b_pred = _labels("y_true", y_true), _labels("pred_a", pred_a), _labels("pred_b", pred_b)
    check.same_length(y_true=y, pred_a=a, pred_b=b_pred)
    right_a, right_b = a == y, b_pred == y
    b = int((right_a & ~right_b).sum())
    c = int((~right_a & right_b).sum())
    if exact:
        n = b + c
        p = 1.0 if n == 0 else min(1.0, 2 * stats.binom.cdf(min(b, c), n, 0.5))
        return float(min(b, c)), float(p)
    if b + c == 0:
        raise ValueError("the chi-squared test needs at least one discordant example "
                         "(the models agree everywhere); use exact=True")
    statistic = (abs(b - c) - 1) ** 2 / (b + c)
    return float(statistic), float(stats.chi2.sf(statistic, 1))


def _probabilities(y_true: ArrayLike, y_prob: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Binary labels in {0, 1} (as 0./1.) and probabilities in [0, 1] of the same length."""
    y, p = _labels("y_true", y_true), _scores("y_prob", y_prob)
    check.same_length(y_true=y, y_prob=p)
    if y.dtype.kind in "US" or not set(np.unique(y).tolist()) <= {0, 1}:
        raise ValueError(f"y_true must hold binary labels 0 and 1, got {np.unique(y).tolist()[:10]}")
    if p.min() < 0 or p.max() > 1:
        raise ValueError(f"y_prob must hold probabilities in [0, 1], got values from {p.min()} to {p.max()}")
    return y.astype(float), p


def brier_score(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """Mean squared difference between the predicted probability of class 1 and the 0/1 label."""
    y, p = _probabilities(y_true, y_prob)
    # Brier = (1/N) sum_i (p_i - y_i)^2
    return float(np.mean((p - y) ** 2))


def _calibration_bins(y: np.ndarray, p: np.ndarray, n_bins: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per non-empty bin of equal width: fraction of positives, mean probability, count."""
    n_bins = check.positive_int("n_bins", n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin j holds edges[j] < p <= edges[j + 1] (the first bin also holds p = 0)
    bin_of = np.searchsorted(edges[1:-1], p)  # (N,)
    count = np.bincount(bin_of, minlength=n_bins)
    positives = np.bincount(bin_of, weights=y, minlength=n_bins)
    mass = np.bincount(bin_of, weights=p, minlength=n_bins)
    full = count > 0
    return positives[full] / count[full], mass[full] / count[full], count[full]


def calibration_curve(y_true: ArrayLike, y_prob: ArrayLike, *, n_bins: int = 10
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Reliability curve: per non-empty bin of equal width, ``(fraction of positives, mean probability)``.

    A calibrated model's points lie on the diagonal. The same bins and numbers as
    ``sklearn.calibration.calibration_curve`` with its default uniform strategy.
    """
    y, p = _probabilities(y_true, y_prob)
    observed, predicted, _ = _calibration_bins(y, p, n_bins)
    return observed, predicted


def expected_calibration_error(y_true: ArrayLike, y_prob: ArrayLike, *, n_bins: int = 10) -> float:
    """Expected calibration error: the count-weighted mean gap between the reliability curve and the diagonal."""
    y, p = _probabilities(y_true, y_prob)
    observed, predicted, count = _calibration_bins(y, p, n_bins)
    # ECE = sum_j (n_j / N) |observed_j - predicted_j|
    return float(np.sum(count / len(y) * np.abs(observed - predicted)))


def _real_array(name: str, x: object) -> np.ndarray:
    """``x`` (tensor or NumPy array of real numbers, all finite) as a float64 array."""
    if isinstance(x, torch.Tensor):
        if x.is_complex() or x.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
        x = x.detach().cpu().double().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a torch.Tensor or a NumPy array, got {type(x).__name__}")
    if x.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _gaussian(name_mu: str, mu: object, name_sigma: str,
              sigma: object) -> tuple[np.ndarray, np.ndarray]:
    """A mean (D,) and a covariance (D, D) as float64 arrays, checked and symmetrized."""
    m, S = _real_array(name_mu, mu), _real_array(name_sigma, sigma)
    if m.ndim != 1 or len(m) == 0:
        raise ValueError(f"expected {name_mu} of shape (D,), got {m.shape}")
    D = len(m)
    if S.shape != (D, D):
        raise ValueError(f"expected {name_sigma} of shape ({D}, {D}) to match {name_mu} "
                         f"of shape ({D},), got {S.shape}")
    tolerance = 1e-6 * max(1.0, float(np.abs(S).max()))
    if np.abs(S - S.T).max() > tolerance:
        raise ValueError(f"{name_sigma} must be a symmetric covariance matrix")
    S = (S + S.T) / 2  # remove the rounding asymmetry of a sample covariance
    smallest = np.linalg.eigvalsh(S)[0]
    if smallest < -tolerance:
        raise ValueError(f"{name_sigma} must be positive semi-definite, "
                         f"got the eigenvalue {smallest:.3g}")
    return m, S


def _sqrt_psd(S: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric PSD matrix (D, D); rounding below 0 is clipped."""
    lam, U = np.linalg.eigh(S)  # S = U diag(lam) U^T
    return (U * np.sqrt(np.clip(lam, 0.0, None))) @ U.T  # U diag(sqrt(lam)) U^T


def frechet_distance(mu1: torch.Tensor | np.ndarray, sigma1: torch.Tensor | np.ndarray,
                     mu2: torch.Tensor | np.ndarray, sigma2: torch.Tensor | np.ndarray) -> float:
    """The squared Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2).

    Means (D,), covariances (D, D), as tensors or NumPy arrays; computed in float64.

    >>> frechet_distance(np.zeros(1), np.array([[4.0]]), np.ones(1), np.array([[1.0]]))
    2.0
    """
    m1, S1 = _gaussian("mu1", mu1, "sigma1", sigma1)
    m2, S2 = _gaussian("mu2", mu2, "sigma2", sigma2)
    if len(m1) != len(m2):
        raise ValueError(f"mu1 and mu2 must have the same dimension D, got {len(m1)} and {len(m2)}")
    # S1 S2 is not symmetric, but it is similar to S1^(1/2) S2 S1^(1/2) = (R1 R2)(R1 R2)^T with
    # R = S^(1/2), so Tr (S1 S2)^(1/2) is the sum of the singular values of R1 R2. Taking them
    # from an SVD of R1 R2, not as square roots of eigenvalues, keeps small ones accurate.
    trace_sqrt = np.linalg.svd(_sqrt_psd(S1) @ _sqrt_psd(S2), compute_uv=False).sum()
    # d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))
    d2 = float(np.sum((m1 - m2) ** 2) + np.trace(S1) + np.trace(S2) - 2 * trace_sqrt)
    return max(d2, 0.0)  # rounding can leave -1e-15 where the distance is 0


def _token_lists(name: str, x: object) -> list[list]:
    """``x`` as a list of token sequences (lists or tuples), else a ``TypeError`` naming ``name``."""
    if isinstance(x, (str, bytes)) or not isinstance(x, Sequence):
        raise TypeError(f"{name} must be a list of token lists, got {check._describe(x)}")
    for i, tokens in enumerate(x):
        if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Sequence):
            raise TypeError(
                f"{name}[{i}] must be a list of tokens (a sentence split into words), "
                f"got {check._describe(tokens)}"
            )
    return [list(tokens) for tokens in x]


def _ngrams(tokens: list, n: int) -> Counter:
    """Counts of the n-grams (as tuples) in ``tokens``."""
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def bleu(references: Sequence[Sequence[Sequence]], hypotheses: Sequence[Sequence], max_n: int = 4) -> float:
    """Corpus-level BLEU of ``hypotheses`` against ``references``, a float in [0, 1].

    ``references[i]`` is a list of reference token lists for ``hypotheses[i]``, a
    token list. Clipped n-gram matches and n-gram counts are pooled over the
    corpus for n = 1..max_n, their ratios combined by a geometric mean with equal
    weights, times the brevity penalty of the total hypothesis length against the
    total of each hypothesis's closest reference length (ties to the shorter).
    No smoothing: 0.0 when some n-gram order has no match. The same number as
    ``nltk.translate.bleu_score.corpus_bleu`` with its default arguments (for
    max_n=4); Papineni et al. (2002).
    """
    max_n = check.positive_int("max_n", max_n)
    hyps = _token_lists("hypotheses", hypotheses)
    if isinstance(references, (str, bytes)) or not isinstance(references, Sequence):
        raise TypeError(f"references must be a list of lists of reference token lists, got {check._describe(references)}")
    refs = [_token_lists(f"references[{i}]", r) for i, r in enumerate(references)]
    if len(refs) != len(hyps):
        raise ValueError(
            f"references and hypotheses must have the same length (one list of references per "
            f"hypothesis), got {len(refs)} and {len(hyps)}"
        )
    if not hyps:
        raise ValueError("hypotheses must not be empty, got an empty list")
    for i, r in enumerate(refs):
        if not r:
            raise ValueError(f"references[{i}] must hold at least one reference, got an empty list")

    matches = [0] * max_n  # clipped n-gram matches, pooled over the corpus
    totals = [0] * max_n  # n-grams in the hypotheses, pooled over the corpus
    hyp_length = ref_length = 0
    for hyp, refs_i in zip(hyps, refs):
        for n in range(1, max_n + 1):
            counts = _ngrams(hyp, n)
            # clip(g) = min(count of g in the hypothesis, max over references of its count there)
            most = Counter()
            for ref in refs_i:
                most |= _ngrams(ref, n)
            matches[n - 1] += sum(min(c, most[g]) for g, c in counts.items())
            # A hypothesis shorter than n still adds 1 to the denominator (as nltk does).
            totals[n - 1] += max(1, sum(counts.values()))
        hyp_length += len(hyp)
        # the closest reference length; on a tie, the shorter one
        ref_length += min((len(r) for r in refs_i), key=lambda m: (abs(m - len(hyp)), m))

    if any(m == 0 for m in matches):
        return 0.0
    # BP = 1 if c > r, else exp(1 - r / c), with c, r the pooled hypothesis and reference lengths
    bp = 1.0 if hyp_length > ref_length else math.exp(1 - ref_length / hyp_length)
    # BLEU = BP * exp(sum_n (1 / N) log p_n)
    log_p = math.fsum(math.log(m / t) for m, t in zip(matches, totals)) / max_n
    return bp * math.exp(log_p)
