"""dlbook.metrics.frechet_distance: against scipy's sqrtm, closed forms, invariances and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from dlbook.metrics import frechet_distance
from tests.helpers import check_bad_inputs


def _spd(D: int, rng: np.random.Generator, *, rank: int | None = None) -> np.ndarray:
    """A random symmetric positive (semi-)definite matrix (D, D) of the given rank."""
    A = rng.standard_normal((D, rank or D + 2))
    return A @ A.T / A.shape[1]


def _reference(m1, S1, m2, S2) -> float:
    """The textbook formula with scipy's general matrix square root of the product S1 S2."""
    root = scipy.linalg.sqrtm(S1 @ S2)
    return float(np.sum((m1 - m2) ** 2) + np.trace(S1) + np.trace(S2) - 2 * np.trace(root).real)


@pytest.mark.parametrize("D", [1, 2, 5, 32])
def test_matches_scipy_sqrtm_on_random_spd_matrices(D):
    rng = np.random.default_rng(D)
    for _ in range(5):
        m1, m2 = rng.standard_normal(D), rng.standard_normal(D)
        S1, S2 = _spd(D, rng), _spd(D, rng)
        expected = _reference(m1, S1, m2, S2)
        assert frechet_distance(m1, S1, m2, S2) == pytest.approx(expected, rel=1e-9, abs=1e-9)
        # tensors (float32 or float64) give the same number as arrays
        as_tensors = [torch.from_numpy(a) for a in (m1, S1, m2, S2)]
        assert frechet_distance(*as_tensors) == pytest.approx(expected, rel=1e-9, abs=1e-9)
        as_float32 = [t.float() for t in as_tensors]
        assert frechet_distance(*as_float32) == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_diagonal_and_commuting_covariances_give_the_closed_form():
    rng = np.random.default_rng(1)
    s1, s2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)  # standard deviations
    m1, m2 = rng.standard_normal(6), rng.standard_normal(6)
    # diagonal: sum over axes of (m1 - m2)^2 + (s1 - s2)^2, the 1-D Wasserstein distance per axis
    closed = float(np.sum((m1 - m2) ** 2) + np.sum((s1 - s2) ** 2))
    assert frechet_distance(m1, np.diag(s1**2), m2, np.diag(s2**2)) == pytest.approx(closed, rel=1e-12)
    # commuting: the same eigenvectors U; the distance only sees the eigenvalues
    U, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    S1, S2 = U @ np.diag(s1**2) @ U.T, U @ np.diag(s2**2) @ U.T
    assert frechet_distance(m1, S1, m2, S2) == pytest.approx(closed, rel=1e-10)
    # one dimension, by hand: N(0, 4) and N(1, 1) are (0 - 1)^2 + (2 - 1)^2 = 2 apart
    assert frechet_distance(np.zeros(1), np.array([[4.0]]), np.ones(1), np.eye(1)) == pytest.approx(2.0)


def test_zero_for_identical_gaussians_and_symmetric():
    rng = np.random.default_rng(2)
    for D in (1, 3, 64):
        m, S = rng.standard_normal(D), _spd(D, rng)
        assert abs(frechet_distance(m, S, m, S)) < 1e-9 * np.trace(S)
        m2, S2 = rng.standard_normal(D), _spd(D, rng)
        assert frechet_distance(m, S, m2, S2) == pytest.approx(frechet_distance(m2, S2, m, S), rel=1e-10)
        assert frechet_distance(m, S, m2, S2) > 0


def test_invariant_to_a_shared_rotation_and_translation():
    rng = np.random.default_rng(3)
    D = 8
    m1, m2, S1, S2 = rng.standard_normal(D), rng.standard_normal(D), _spd(D, rng), _spd(D, rng)
    Q, _ = np.linalg.qr(rng.standard_normal((D, D)))
    t = rng.standard_normal(D)
    moved = frechet_distance(Q @ m1 + t, Q @ S1 @ Q.T, Q @ m2 + t, Q @ S2 @ Q.T)
    assert moved == pytest.approx(frechet_distance(m1, S1, m2, S2), rel=1e-10)


def test_accurate_and_nonnegative_on_near_singular_covariances():
    rng = np.random.default_rng(4)
    D = 40
    for rank in (1, 5, 20):
        S = _spd(D, rng, rank=rank)  # rank-deficient: D - rank zero eigenvalues
        m1, m2 = rng.standard_normal(D), rng.standard_normal(D)
        # identical covariances: only the means differ, however singular S is
        assert frechet_distance(m1, S, m2, S) == pytest.approx(float(np.sum((m1 - m2) ** 2)), rel=1e-8)
        assert frechet_distance(m1, S, m1, S) >= 0
        # commuting, both singular, with eigenvalues spanning twelve orders of magnitude
        U, _ = np.linalg.qr(rng.standard_normal((D, D)))
        lam1 = np.r_[10.0 ** rng.uniform(-12, 0, rank), np.zeros(D - rank)]
        lam2 = np.r_[10.0 ** rng.uniform(-12, 0, rank), np.zeros(D - rank)]
        S1, S2 = U @ np.diag(lam1) @ U.T, U @ np.diag(lam2) @ U.T
        closed = float(np.sum((np.sqrt(lam1) - np.sqrt(lam2)) ** 2))
        d = frechet_distance(np.zeros(D), S1, np.zeros(D), S2)
        assert d >= 0 and d == pytest.approx(closed, rel=1e-5, abs=1e-12)


def test_equals_the_expected_squared_distance_of_the_optimal_coupling():
    # Monte Carlo: x ~ N(m1, S1) coupled with T(x) = m2 + A (x - m1), the optimal transport map,
    # has E|x - T(x)|^2 equal to the distance. A = S1^(-1/2) (S1^(1/2) S2 S1^(1/2))^(1/2) S1^(-1/2).
    rng = np.random.default_rng(5)
    D, n = 3, 400_000
    m1, m2, S1, S2 = rng.standard_normal(D), rng.standard_normal(D), _spd(D, rng), _spd(D, rng)
    r1 = np.real(scipy.linalg.sqrtm(S1))
    r1_inv = np.linalg.inv(r1)
    A = r1_inv @ np.real(scipy.linalg.sqrtm(r1 @ S2 @ r1)) @ r1_inv
    x = m1 + rng.standard_normal((n, D)) @ np.linalg.cholesky(S1).T  # (n, D)
    y = m2 + (x - m1) @ A.T  # (n, D): distributed as N(m2, A S1 A^T) = N(m2, S2)
    np.testing.assert_allclose(np.cov(y, rowvar=False), S2, atol=0.05 * np.abs(S2).max())
    monte_carlo = float(np.mean(np.sum((x - y) ** 2, axis=1)))
    assert frechet_distance(m1, S1, m2, S2) == pytest.approx(monte_carlo, rel=0.02)


def test_bad_inputs():
    m, S = np.zeros(3), np.eye(3)
    not_symmetric = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    check_bad_inputs([
        (lambda: frechet_distance(np.zeros(4), np.eye(4), m, S), ValueError, "mu1 and mu2"),
        (lambda: frechet_distance(m, np.eye(4), m, S), ValueError, "sigma1"),
        (lambda: frechet_distance(m, S, m, np.ones((3, 4))), ValueError, "sigma2"),
        (lambda: frechet_distance(np.zeros((3, 1)), S, m, S), ValueError, "mu1"),
        (lambda: frechet_distance(np.zeros(0), np.zeros((0, 0)), m, S), ValueError, "mu1"),
        (lambda: frechet_distance(m, S, np.array([0.0, np.nan, 0.0]), S), ValueError, "mu2"),
        (lambda: frechet_distance(m, np.diag([1.0, np.inf, 1.0]), m, S), ValueError, "sigma1"),
        (lambda: frechet_distance(m, not_symmetric, m, S), ValueError, "symmetric"),
        (lambda: frechet_distance(m, S, m, np.diag([1.0, -1.0, 1.0])), ValueError, "positive semi-definite"),
        (lambda: frechet_distance([0.0, 0.0, 0.0], S, m, S), TypeError, "mu1"),
        (lambda: frechet_distance(m, S, m, None), TypeError, "sigma2"),
        (lambda: frechet_distance(m, S.astype(complex), m, S), TypeError, "sigma1"),
        (lambda: frechet_distance(m, S, torch.zeros(3, dtype=torch.bool), S), TypeError, "mu2"),
        (lambda: frechet_distance(m, torch.eye(3, dtype=torch.complex64), m, S), TypeError, "sigma1"),
    ])
