"""Tests for dlbook.metrics: every metric equals scikit-learn's on random inputs and edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from dlbook import metrics as M
from tests.helpers import check_bad_inputs

SEEDS = range(12)


def random_labels(seed: int, n_classes: int, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = n or int(rng.integers(1, 40))
    return rng.integers(0, n_classes, n), rng.integers(0, n_classes, n)


def random_scores(seed: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 60))
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]  # both classes present
    # Rounding to one decimal makes many tied scores.
    s = rng.normal(size=n) + y
    return y, (np.round(s, 1) if ties else s)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n_classes", [2, 5])
def test_accuracy_and_confusion_matrix_match_sklearn(seed, n_classes):
    y, p = random_labels(seed, n_classes)
    assert M.accuracy(y, p) == pytest.approx(skm.accuracy_score(y, p))
    assert M.accuracy(y, p, normalize=False) == skm.accuracy_score(y, p, normalize=False)
    np.testing.assert_array_equal(M.confusion_matrix(y, p).numpy(), skm.confusion_matrix(y, p))
    labels = list(range(n_classes))[::-1]
    np.testing.assert_array_equal(
        M.confusion_matrix(torch.as_tensor(y), torch.as_tensor(p), labels=labels).numpy(),
        skm.confusion_matrix(y, p, labels=labels),
    )


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("zero_division", [0.0, 1.0])
def test_binary_precision_recall_f1_match_sklearn(seed, zero_division):
    # Short arrays make empty predicted or true positive sets (zero division) common.
    y, p = random_labels(seed, 2, n=int(np.random.default_rng(seed).integers(1, 6)))
    ours = M.precision_recall_fscore(y, p, zero_division=zero_division)
    theirs = skm.precision_recall_fscore_support(y, p, average="binary", zero_division=zero_division)[:3]
    np.testing.assert_allclose(ours, theirs)
    assert M.precision(y, p) == pytest.approx(skm.precision_score(y, p, zero_division=0))
    assert M.recall(y, p) == pytest.approx(skm.recall_score(y, p, zero_division=0))
    assert M.f1_score(y, p) == pytest.approx(skm.f1_score(y, p, zero_division=0))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("average", ["micro", "macro", "weighted", None])
@pytest.mark.parametrize("zero_division", [0.0, 1.0])
def test_multiclass_averages_match_sklearn(seed, average, zero_division):
    y, p = random_labels(seed, 4)
    ours = M.precision_recall_fscore(y, p, average=average, zero_division=zero_division)
    theirs = skm.precision_recall_fscore_support(y, p, average=average, zero_division=zero_division)[:3]
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b)


def test_pos_label_and_string_labels():
    y = np.array(["cat", "dog", "dog", "cat", "dog"])
    p = np.array(["dog", "dog", "cat", "cat", "dog"])
    for metric, sk in ((M.precision, skm.precision_score), (M.recall, skm.recall_score), (M.f1_score, skm.f1_score)):
        assert metric(y, p, pos_label="cat") == pytest.approx(sk(y, p, pos_label="cat"))
    np.testing.assert_array_equal(M.confusion_matrix(y, p).numpy(), skm.confusion_matrix(y, p))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("drop_intermediate", [False, True])
def test_roc_curve_and_auc_match_sklearn(seed, ties, drop_intermediate):
    y, s = random_scores(seed, ties)
    fpr, tpr, thr = M.roc_curve(y, s, drop_intermediate=drop_intermediate)
    sk_fpr, sk_tpr, sk_thr = skm.roc_curve(y, s, drop_intermediate=drop_intermediate)
    np.testing.assert_allclose(fpr.numpy(), sk_fpr)
    np.testing.assert_allclose(tpr.numpy(), sk_tpr)
    np.testing.assert_allclose(thr.numpy(), sk_thr)
    assert M.roc_auc(torch.as_tensor(y), torch.as_tensor(s)) == pytest.approx(skm.roc_auc_score(y, s))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("ties", [False, True])
def test_precision_recall_curve_and_ap_match_sklearn(seed, ties):
    y, s = random_scores(seed, ties)
    for ours, theirs in zip(M.precision_recall_curve(y, s), skm.precision_recall_curve(y, s)):
        np.testing.assert_allclose(ours.numpy(), theirs)
    assert M.average_precision(y, s) == pytest.approx(skm.average_precision_score(y, s))


def test_roc_with_pos_label_and_all_tied_scores():
    y = np.array([2, 7, 7, 2, 7])
    s = np.array([0.3, 0.3, 0.3, 0.3, 0.3])
    for ours, theirs in zip(M.roc_curve(y, s, pos_label=7), skm.roc_curve(y, s, pos_label=7)):
        np.testing.assert_allclose(ours.numpy(), theirs)
    assert M.roc_auc(y, s, pos_label=7) == pytest.approx(0.5)


def test_perfect_and_reversed_scores():
    y = [0, 0, 1, 1]
    assert M.roc_auc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert M.roc_auc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0


def test_accuracy_takes_labels_and_counts_with_train_accuracy(monkeypatch):
    """The label-vector accuracy and the training-loop accuracy are one computation."""
    from dlbook import train

    calls = []
    real = train.accuracy
    monkeypatch.setattr(train, "accuracy", lambda output, target: calls.append(1) or real(output, target))
    assert M.accuracy(["b", "a", "c"], ["b", "c", "c"]) == pytest.approx(2 / 3)
    assert calls == [1]
    # whole-number floats are labels, as in scikit-learn
    assert M.accuracy([0.0, 1.0, 2.0], [0, 1, 1]) == pytest.approx(skm.accuracy_score([0.0, 1.0, 2.0], [0, 1, 1]))


def test_scores_where_labels_belong_raise_like_sklearn():
    y, scores = [0, 1, 1, 0], [0.1, 0.9, 0.8, 0.2]
    with pytest.raises(ValueError):
        skm.accuracy_score(y, scores)
    with pytest.raises(ValueError, match="y_pred"):
        M.accuracy(y, scores)


def test_errors_name_what_went_wrong():
    with pytest.raises(ValueError, match="not in labels"):
        M.confusion_matrix([0, 1, 2], [0, 1, 1], labels=[0, 1])
    with pytest.raises(ValueError, match="at most two classes"):
        M.f1_score([0, 1, 2], [0, 1, 1])
    with pytest.raises(ValueError, match="only one class"):
        M.roc_auc([1, 1, 1], [0.2, 0.5, 0.9])


def test_bad_inputs():
    y = [0, 1, 1, 0]
    check_bad_inputs([
        (lambda: M.accuracy(y, [0.1, 0.9, 0.8, 0.2]), ValueError, "y_pred"),  # scores where labels belong
        (lambda: M.accuracy([0.5, 1.5], [0, 1]), ValueError, "y_true"),
        (lambda: M.accuracy([0, 1, 1], [0, 1]), ValueError, "y_true and y_pred"),  # mismatched lengths
        (lambda: M.accuracy([], []), ValueError, "y_true"),  # empty
        (lambda: M.accuracy(np.zeros((2, 2)), np.zeros((2, 2))), ValueError, "y_true"),  # wrong ndim
        (lambda: M.accuracy(None, y), TypeError, "y_true"),
        (lambda: M.accuracy(y, "0110"), TypeError, "y_pred"),
        (lambda: M.accuracy([0, float("nan")], [0, 1]), ValueError, "y_true"),
        (lambda: M.accuracy(["a", "b"], [0, 1]), TypeError, "y_true and y_pred"),
        (lambda: M.accuracy(y, y, normalize=None), ValueError, "normalize"),
        (lambda: M.confusion_matrix(y, y, labels=[0, 0, 1]), ValueError, "labels"),
        (lambda: M.confusion_matrix(y, torch.tensor([0.2, 1.0, 1.0, 0.0])), ValueError, "y_pred"),
        (lambda: M.precision([0, 1], [1, 0], pos_label=3), ValueError, "pos_label"),
        (lambda: M.precision(y, y, average="samples"), ValueError, "average"),
        (lambda: M.recall(y, y, zero_division="warn"), ValueError, "zero_division"),
        (lambda: M.f1_score(y, y, zero_division=0.5), ValueError, "zero_division"),
        (lambda: M.f1_score(y, [1, 0]), ValueError, "y_true and y_pred"),
        (lambda: M.roc_curve([0, 1], [0.1, 0.2, 0.3]), ValueError, "y_true and y_score"),
        (lambda: M.roc_curve([0, 1, 2], [0.1, 0.2, 0.3]), ValueError, "y_true"),  # not binary
        (lambda: M.roc_curve([1, 2], [0.1, 0.2]), ValueError, "pos_label"),
        (lambda: M.roc_curve([0, 1], [0.1, float("nan")]), ValueError, "y_score"),
        (lambda: M.roc_curve([0, 1], ["a", "b"]), TypeError, "y_score"),
        (lambda: M.roc_curve([0, 1], [0.1, 0.2], drop_intermediate="yes"), ValueError, "drop_intermediate"),
        (lambda: M.roc_auc([0, 1], None), TypeError, "y_score"),
        (lambda: M.roc_auc([1, 1, 1], [0.2, 0.5, 0.9]), ValueError, "y_true"),
        (lambda: M.precision_recall_curve([0.5, 1], [0.1, 0.2]), ValueError, "y_true"),
        (lambda: M.average_precision([0, 1], [0.1, float("inf")]), ValueError, "y_score"),
        (lambda: M.bootstrap_ci("accuracy", y, y), TypeError, "metric"),
        (lambda: M.bootstrap_ci(M.accuracy, y, y, level=1.5), ValueError, "level"),
        (lambda: M.bootstrap_ci(M.accuracy, y, y, n_resamples=0), ValueError, "n_resamples"),
        (lambda: M.bootstrap_ci(M.accuracy, y, y, n_resamples=True), TypeError, "n_resamples"),
        (lambda: M.bootstrap_ci(M.accuracy, y, y, seed=-1), ValueError, "seed"),
        (lambda: M.bootstrap_ci(M.accuracy, [0, 1], [0, 1, 1]), ValueError, "y_true and y_pred"),
        (lambda: M.paired_difference_ci([0.1]), ValueError, "differences"),
        (lambda: M.paired_difference_ci([0.1, float("nan")]), ValueError, "differences"),
        (lambda: M.paired_difference_ci([0.1, 0.2], n_test=100), ValueError, "n_train"),
        (lambda: M.paired_difference_ci([0.1, 0.2], n_train=0, n_test=100), ValueError, "n_train"),
        (lambda: M.paired_difference_ci([0.1, 0.2], n_train=300, n_test=0.2), TypeError, "n_test"),
        (lambda: M.paired_difference_ci([0.1, 0.2], level=0.0), ValueError, "level"),
    ])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bootstrap_ci_brackets_the_estimate_and_is_repeatable(seed):
    y, p = random_labels(seed, 2, n=200)
    est, low, high = M.bootstrap_ci(M.accuracy, y, p, n_resamples=300, seed=seed)
    assert est == pytest.approx(skm.accuracy_score(y, p))
    assert low <= est <= high and high - low > 0
    assert M.bootstrap_ci(M.accuracy, y, p, n_resamples=300, seed=seed) == (est, low, high)
    # the standard error of a proportion predicts the width: about 2 * 1.96 * sqrt(p(1-p)/n)
    assert high - low == pytest.approx(2 * 1.96 * np.sqrt(est * (1 - est) / 200), rel=0.25)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paired_difference_ci_matches_scipy_t_interval(seed):
    from scipy import stats

    d = np.random.default_rng(seed).normal(0.02, 0.03, size=15)
    mean, low, high = M.paired_difference_ci(d)
    ref = stats.t.interval(0.95, df=14, loc=d.mean(), scale=stats.sem(d))
    assert mean == pytest.approx(d.mean())
    np.testing.assert_allclose([low, high], ref)
    _, low_c, high_c = M.paired_difference_ci(d, n_train=340, n_test=114)
    assert low_c < low and high_c > high  # the correction widens the interval


@pytest.mark.parametrize("n_train, n_test", [(340, 114), (1077, 450), (60, 60)])
@pytest.mark.parametrize("seed", [0, 1])
def test_corrected_interval_uses_n_test_over_n_train(seed, n_train, n_test):
    """Nadeau and Bengio: the t-interval with variance (1/J + n_test/n_train) s^2."""
    from scipy import stats

    d = np.random.default_rng(seed).normal(0.01, 0.02, size=10)
    mean, low, high = M.paired_difference_ci(d, n_train=n_train, n_test=n_test)
    scale = np.sqrt(1 / 10 + n_test / n_train) * d.std(ddof=1)
    ref = stats.t.interval(0.95, df=9, loc=d.mean(), scale=scale)
    np.testing.assert_allclose([low, high], ref, rtol=1e-12)
    assert mean == pytest.approx(d.mean())


def test_corrected_interval_sizes_from_a_split_with_validation():
    """With a validation set, n_test/n_train is not test/(1 - test): use the split sizes."""
    from dlbook.data import breast_cancer

    split = breast_cancer(seed=0)  # 60% train, 20% validation, 20% test
    d = np.array([0.02, 0.0, 0.03, 0.01, 0.02])
    _, low, high = M.paired_difference_ci(d, n_train=len(split.train), n_test=len(split.test))
    ratio = len(split.test) / len(split.train)
    assert ratio == pytest.approx(0.2 / 0.6, rel=0.02)
    half = _corrected_half_width(d, ratio)
    assert (high - low) / 2 == pytest.approx(half, rel=1e-12)


def _corrected_half_width(d: np.ndarray, ratio: float) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, df=len(d) - 1) * np.sqrt((1 / len(d) + ratio) * d.var(ddof=1)))


def test_interval_refuses_an_unknown_keyword():
    with pytest.raises(TypeError, match="test_fraction"):
        M.paired_difference_ci([0.1, 0.2], test_fraction=0.2)


@pytest.mark.parametrize("seed", SEEDS)
def test_auc_is_the_probability_a_positive_outranks_a_negative(seed):
    y, s = random_scores(seed, ties=True)
    pos, neg = s[y == 1], s[y == 0]
    pairs = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])  # (n+, n-)
    assert M.roc_auc(y, s) == pytest.approx(pairs.mean(), abs=1e-12)
