"""Tests for dlbook.metrics: every metric equals scikit-learn's on random inputs and edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from dlbook import metrics as M

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


def test_errors_on_bad_input():
    with pytest.raises(ValueError, match="same length"):
        M.accuracy([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="same length"):
        M.roc_curve([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="not in the classes"):
        M.confusion_matrix([0, 1, 2], [0, 1, 1], labels=[0, 1])
    with pytest.raises(ValueError, match="at most two classes"):
        M.f1_score([0, 1, 2], [0, 1, 1])
    with pytest.raises(ValueError, match="pos_label"):
        M.precision([0, 1], [1, 0], pos_label=3)
    with pytest.raises(ValueError, match="only one class"):
        M.roc_auc([1, 1, 1], [0.2, 0.5, 0.9])
    with pytest.raises(ValueError, match="average must be"):
        M.precision([0, 1], [0, 1], average="samples")
    with pytest.raises(ValueError, match="shape"):
        M.accuracy(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="empty"):
        M.accuracy([], [])


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


def test_interval_errors():
    with pytest.raises(ValueError, match="at least 2"):
        M.paired_difference_ci([0.1])
    with pytest.raises(ValueError, match="both n_train and n_test"):
        M.paired_difference_ci([0.1, 0.2], n_test=100)
    with pytest.raises(ValueError, match="n_train must be >= 1"):
        M.paired_difference_ci([0.1, 0.2], n_train=0, n_test=100)
    with pytest.raises(TypeError, match="n_test must be an int"):
        M.paired_difference_ci([0.1, 0.2], n_train=300, n_test=0.2)
    with pytest.raises(TypeError, match="test_fraction"):
        M.paired_difference_ci([0.1, 0.2], test_fraction=0.2)
    with pytest.raises(ValueError, match="level"):
        M.bootstrap_ci(M.accuracy, [0, 1], [0, 1], level=1.5)
    with pytest.raises(ValueError, match="same length"):
        M.bootstrap_ci(M.accuracy, [0, 1], [0, 1, 1])


@pytest.mark.parametrize("seed", SEEDS)
def test_auc_is_the_probability_a_positive_outranks_a_negative(seed):
    y, s = random_scores(seed, ties=True)
    pos, neg = s[y == 1], s[y == 0]
    pairs = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])  # (n+, n-)
    assert M.roc_auc(y, s) == pytest.approx(pairs.mean(), abs=1e-12)
