"""The perceptron (Part 4): its rule, the Novikoff bound, and XOR."""

from __future__ import annotations

import pytest
import torch
from sklearn.linear_model import Perceptron as SkPerceptron

from dlbook.perceptron import Perceptron, linearly_separable, mistake_bound


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
    import warnings

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


def test_bad_inputs_raise() -> None:
    p = Perceptron(3)
    with pytest.raises(ValueError, match=r"expected X of shape \(N, D\) with D=3, got \(4, 2\)"):
        p.fit(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels y in \{0, 1\}"):
        p.fit(torch.zeros(4, 3), torch.tensor([0, 1, 2, 1]))
    with pytest.raises(ValueError, match="lr must be > 0"):
        p.fit(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), lr=0.0)
    X, y, w, _ = _separable(0)
    with pytest.raises(ValueError, match="does not separate"):
        mistake_bound(X, y, -w, 0.0)
    with pytest.raises(ValueError, match="margin must be in"):
        linearly_separable(10, margin=0.0)
    with pytest.raises(ValueError, match="n_features must be"):
        Perceptron(0)
