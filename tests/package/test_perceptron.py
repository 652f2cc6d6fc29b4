"""The perceptron (Part 4): its rule, the Novikoff bound, and XOR."""

from __future__ import annotations

import warnings

import pytest
import torch
from sklearn.linear_model import Perceptron as SkPerceptron

from dlbook.perceptron import Perceptron, linearly_separable, mistake_bound
from tests.helpers import check_bad_inputs


def _separable(seed: int, n: int = 200, d: int = 2):
    return linearly_separable(n, d, margin=0.1, seed=seed)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("d", [2, 5])
def test_converges_within_novikoff_bound(seed: int, d: int) -> None:
    X, y, w_star, b_star = _separable(seed, d=d)
    assert ((2 * y - 1) * (X @ w_star + b_star)).min() >= 0.1
    p = Perceptron(d)
    mistakes = p.fit(X, y, epochs=1000)
    assert mistakes[-1] == 0
    assert torch.equal(p.predict(X), y)
    assert sum(mistakes) <= mistake_bound(X, y, w_star, b_star)


@pytest.mark.parametrize("seed", range(3))
def test_matches_sklearn_perceptron(seed: int) -> None:
    # sklearn's Perceptron with lr 1, no shuffling and no regularization runs the same rule.
    X, y, _, _ = _separable(seed, n=60)
    ours = Perceptron(2)
    ours.fit(X, y, epochs=1)
    sk = SkPerceptron(max_iter=1, tol=None, shuffle=False, eta0=1.0, penalty=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning after a single pass, on purpose
        sk.fit(X.numpy(), y.numpy())
    torch.testing.assert_close(ours.w, torch.tensor(sk.coef_[0]))
    assert ours.b.item() == pytest.approx(sk.intercept_[0])


def test_cannot_learn_xor() -> None:
    X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([0, 1, 1, 0])
    p = Perceptron(2)
    mistakes = p.fit(X, y, epochs=50)
    assert len(mistakes) == 50 and min(mistakes) > 0
    assert (p.predict(X) == y).float().mean() < 1.0


def test_lr_does_not_change_predictions_from_zero_start() -> None:
    X, y, _, _ = _separable(1)
    a, b = Perceptron(2), Perceptron(2)
    assert a.fit(X, y, lr=1.0) == b.fit(X, y, lr=0.01)
    torch.testing.assert_close(a.w * 0.01, b.w)


@pytest.mark.parametrize("d, margin", [(1, 0.49), (50, 0.49), (3, 0.01)])
def test_linearly_separable_keeps_its_margin_in_any_dimension(d: int, margin: float) -> None:
    X, y, w, b = linearly_separable(100, d, margin=margin, seed=d)
    assert X.shape == (100, d) and set(y.tolist()) <= {0, 1}
    assert float(w.norm()) == pytest.approx(1.0)
    assert ((2 * y - 1) * (X @ w + b)).min() >= margin


def test_float64_data_into_a_float32_perceptron_is_converted() -> None:
    X, y, _, _ = _separable(2)
    p = Perceptron(2, dtype=torch.float32)
    assert p.fit(X, y, epochs=1000)[-1] == 0
    assert p.w.dtype == torch.float32 and torch.equal(p.predict(X), y)


def test_bad_inputs() -> None:
    p = Perceptron(3)
    X, y = torch.zeros(4, 3), torch.tensor([0, 1, 1, 0])
    Xs, ys, w, b = _separable(0)
    check_bad_inputs([
        (lambda: Perceptron(0), ValueError, "n_features"),
        (lambda: Perceptron(True), TypeError, "n_features"),
        (lambda: Perceptron(2.0), TypeError, "n_features"),
        (lambda: Perceptron(2, dtype=torch.int32), ValueError, "dtype"),
        (lambda: p.fit(torch.zeros(4, 2), y), ValueError, "X"),
        (lambda: p.fit(torch.zeros(4), y), ValueError, "X"),
        (lambda: p.fit(torch.zeros(0, 3), y[:0]), ValueError, "X"),
        (lambda: p.fit(X.tolist(), y), TypeError, "X"),
        (lambda: p.fit(None, y), TypeError, "X"),
        (lambda: p.fit(torch.full((4, 3), float("nan")), y), ValueError, "X"),
        (lambda: p.fit(X, torch.tensor([0, 1, 2, 1])), ValueError, "y"),
        (lambda: p.fit(X, torch.tensor([0, -1, 1, 1])), ValueError, "y"),
        (lambda: p.fit(X, torch.tensor([0.0, 1.0, 1.0, 0.0])), TypeError, "y"),
        (lambda: p.fit(X, y[:3]), ValueError, "y"),
        (lambda: p.fit(X, None), TypeError, "y"),
        (lambda: p.fit(X, y, lr=0.0), ValueError, "lr"),
        (lambda: p.fit(X, y, epochs=0), ValueError, "epochs"),
        (lambda: p.fit(X, y, epochs=True), TypeError, "epochs"),
        (lambda: p.decision(torch.zeros(4, 2)), ValueError, "X"),
        (lambda: p.predict([[0.0, 0.0, 0.0]]), TypeError, "X"),
        (lambda: mistake_bound(Xs, ys, -w, 0.0), ValueError, "(w, b)"),
        (lambda: mistake_bound(Xs, ys, w[:1], b), ValueError, "w"),
        (lambda: mistake_bound(Xs, ys[:-1], w, b), ValueError, "y"),
        (lambda: mistake_bound(Xs, ys, w, None), TypeError, "b"),
        (lambda: mistake_bound(Xs, ys, w, float("nan")), ValueError, "b"),
        (lambda: mistake_bound(Xs.tolist(), ys, w, b), TypeError, "X"),
        (lambda: linearly_separable(10, d=0), ValueError, "d"),  # used to loop forever
        (lambda: linearly_separable(10, d=True), TypeError, "d"),
        (lambda: linearly_separable(1), ValueError, "n"),
        (lambda: linearly_separable(2.5), TypeError, "n"),
        (lambda: linearly_separable(10, margin=0.0), ValueError, "margin"),
        (lambda: linearly_separable(10, margin=0.5), ValueError, "margin"),
        (lambda: linearly_separable(10, seed=-1), ValueError, "seed"),
    ])
