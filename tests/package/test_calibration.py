"""Calibration, top-k accuracy and McNemar's test (Part 7) against scikit-learn and statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.calibration import calibration_curve as sk_calibration_curve
from sklearn.metrics import brier_score_loss, top_k_accuracy_score

from dlbook import metrics as M
from tests.helpers import check_bad_inputs

mcnemar_sm = pytest.importorskip("statsmodels.stats.contingency_tables").mcnemar


def binary_problem(seed: int, n: int = 300):
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    y = (rng.random(n) < p ** 1.5).astype(int)  # over-confident probabilities: a real calibration gap
    return y, p


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("n_bins", [1, 5, 10, 17])
def test_calibration_curve_and_brier_equal_scikit_learn(seed, n_bins):
    y, p = binary_problem(seed)
    p[:5] = [0.0, 1.0, 0.2, 0.4, 0.6]  # probabilities on bin edges land where scikit-learn puts them
    ours = M.calibration_curve(y, p, n_bins=n_bins)
    theirs = sk_calibration_curve(y, p, n_bins=n_bins)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-12)
    assert M.brier_score(y, p) == pytest.approx(brier_score_loss(y, p), rel=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_ece_is_the_count_weighted_gap_of_the_reliability_curve(seed):
    y, p = binary_problem(seed)
    edges = np.linspace(0, 1, 11)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (p > lo) & (p <= hi) if lo > 0 else (p <= hi)
        if inside.any():
            ece += inside.mean() * abs(y[inside].mean() - p[inside].mean())
    assert M.expected_calibration_error(y, p) == pytest.approx(ece, rel=1e-12)
    assert M.expected_calibration_error(y, p) > 0.05  # the planted miscalibration is seen


def test_calibrated_probabilities_have_small_ece_and_a_constant_half_has_none():
    rng = np.random.default_rng(0)
    p = rng.random(200_000)
    y = (rng.random(p.size) < p).astype(int)  # y ~ Bernoulli(p): calibrated by construction
    assert M.expected_calibration_error(y, p) < 0.01
    y_half = np.array([0, 1] * 50)
    assert M.expected_calibration_error(y_half, np.full(100, 0.5)) == 0.0
    assert M.brier_score(y_half, np.full(100, 0.5)) == 0.25


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 2, 4])
def test_top_k_accuracy_equals_scikit_learn(seed, k):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(250, 7))
    y = rng.integers(0, 7, 250)
    assert M.top_k_accuracy(y, scores, k=k) == pytest.approx(
        top_k_accuracy_score(y, scores, k=k, labels=np.arange(7)), abs=1e-12)
    assert M.top_k_accuracy(y, scores, k=1) == pytest.approx(np.mean(scores.argmax(1) == y))


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("exact", [True, False])
def test_mcnemar_equals_statsmodels(seed, exact):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 120)
    a = np.where(rng.random(120) < 0.8, y, rng.integers(0, 3, 120))
    b = np.where(rng.random(120) < 0.6 + 0.03 * seed, y, rng.integers(0, 3, 120))
    ra, rb = a == y, b == y
    table = [[np.sum(ra & rb), np.sum(ra & ~rb)], [np.sum(~ra & rb), np.sum(~ra & ~rb)]]
    ref = mcnemar_sm(table, exact=exact, correction=True)
    stat, p = M.mcnemar(y, a, b, exact=exact)
    assert stat == pytest.approx(ref.statistic, rel=1e-12)
    assert p == pytest.approx(ref.pvalue, rel=1e-10)


def test_mcnemar_ignores_the_examples_both_models_get_right_or_wrong():
    y = np.zeros(40, dtype=int)
    a = np.r_[np.zeros(30, int), np.ones(10, int)]  # A: 30 right
    b = np.r_[np.zeros(20, int), np.ones(20, int)]  # B: 20 right; b = 10, c = 0
    stat, p = M.mcnemar(y, a, b)
    assert (stat, p) == (0.0, pytest.approx(2 * 0.5**10))
    assert p == pytest.approx(stats.binomtest(0, 10, 0.5).pvalue)


def test_calibration_metrics_reject_bad_input():
    y, p = np.array([0, 1, 1]), np.array([0.2, 0.7, 0.9])
    check_bad_inputs([
        (lambda: M.brier_score(y, [0.2, 1.5, 0.1]), ValueError, "y_prob"),
        (lambda: M.brier_score([0, 2, 1], p), ValueError, "y_true"),
        (lambda: M.brier_score(y, p[:2]), ValueError, "y_prob"),
        (lambda: M.calibration_curve(y, p, n_bins=0), ValueError, "n_bins"),
        (lambda: M.expected_calibration_error(y, "high"), TypeError, "y_prob"),
        (lambda: M.top_k_accuracy(y, np.ones((3, 2)), k=0), ValueError, "k"),
        (lambda: M.top_k_accuracy(y, np.ones(3)), ValueError, "y_score"),
        (lambda: M.top_k_accuracy([0, 1, 5], np.ones((3, 2))), ValueError, "y_true"),
        (lambda: M.mcnemar(y, y, y[:2]), ValueError, "pred_b"),
        (lambda: M.mcnemar(y, y, y, exact=False), ValueError, "exact=True"),
    ])
