"""Rosenblatt's perceptron and its learning rule (Part 4, "The perceptron").

The perceptron computes a weighted sum of its inputs plus a bias and fires (outputs 1)
when the sum is positive. ``Perceptron.fit`` applies the perceptron learning rule one
example at a time; ``linearly_separable`` draws data with a chosen margin, and
``mistake_bound`` computes Novikoff's bound on the number of updates the rule can make
on such data. Inputs of another floating dtype are converted to the weights' dtype.

>>> p = Perceptron(2)
>>> X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
>>> mistakes = p.fit(X, torch.tensor([0, 0, 0, 1]), epochs=20)  # logical AND
>>> p.predict(X).tolist(), mistakes[-1]
([0, 0, 0, 1], 0)
"""

from __future__ import annotations

import math

import torch

from dlbook import _checks as check

__all__ = ["Perceptron", "mistake_bound", "linearly_separable"]


def _real(name: str, value: object) -> float:
    """``value`` as a finite float (a number or a one-element tensor)."""
    return check.fraction(name, value, low=-math.inf, high=math.inf, closed="()")


_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class Perceptron:
    """A single threshold unit, y_hat = step(w . x + b)."""

    def __init__(self, n_features: int, *, dtype: torch.dtype = torch.float64) -> None:
        n_features = check.positive_int("n_features", n_features)
        self.w = torch.zeros(n_features, dtype=check.one_of("dtype", dtype, _FLOAT_DTYPES))  # (D,)
        self.b = torch.zeros((), dtype=dtype)

    def decision(self, X: torch.Tensor) -> torch.Tensor:
        """The pre-activation z = X w + b of each row, (N, D) -> (N,)."""
        X = check.as_float_like("X", check.finite("X", X), self.w)
        check.expect_shape(X, "N D", "X", D=len(self.w))
        # z = X w + b   (N, D) @ (D,) -> (N,)
        return X @ self.w + self.b

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """Labels in {0, 1}, shape (N,): the step function of ``decision``."""
        return (self.decision(X) > 0).long()

    def fit(self, X: torch.Tensor, y: torch.Tensor, *, epochs: int = 100,
            lr: float = 1.0) -> list[int]:
        """Apply the rule to each example in order until a pass is error-free; mistakes per pass."""
        X = check.as_float_like("X", check.finite("X", X), self.w)
        check.expect_shape(X, "N D", "X", D=len(self.w))
        check.labels("y", y, 2)
        check.same_length(X=X, y=y)
        epochs, lr = check.positive_int("epochs", epochs), check.positive_float("lr", lr)
        mistakes = []
        for _ in range(epochs):
            count = 0
            for x_i, y_i in zip(X, y):
                s_i = 2 * int(y_i) - 1  # the label as -1 / +1
                if s_i * (x_i @ self.w + self.b) <= 0:  # a point on the boundary counts as wrong
                    # w <- w + eta s x,  b <- b + eta s
                    self.w += lr * s_i * x_i
                    self.b += lr * s_i
                    count += 1
            mistakes.append(count)
            if count == 0:
                break
        return mistakes


def mistake_bound(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: float) -> float:
    """Novikoff's bound (R / gamma)^2 on the perceptron's updates, for a separating (w, b)."""
    D = check.expect_shape(check.finite("X", X), "N D", "X")["D"]
    check.labels("y", y, 2)
    check.same_length(X=X, y=y)
    check.expect_shape(check.finite("w", w), "D", "w", D=D)
    b = _real("b", b)
    ones = torch.ones(len(X), 1, dtype=torch.float64)
    X_aug = torch.cat([X.double(), ones], dim=1)  # (N, D + 1): x~ = (x, 1)
    w_aug = torch.cat([w.double(), torch.tensor([b], dtype=torch.float64)])  # (D + 1,): w~ = (w, b)
    s = 2.0 * y.double() - 1  # labels as -1 / +1
    # gamma = min_i s_i w~ . x~_i / |w~|,  R = max_i |x~_i|
    gamma = float((s * (X_aug @ w_aug)).min() / w_aug.norm())
    if gamma <= 0:
        raise ValueError(f"(w, b) does not separate the data (X, y): its margin is {gamma:.3g}")
    R = float(X_aug.norm(dim=1).max())
    return (R / gamma) ** 2


def linearly_separable(
    n: int = 200, d: int = 2, *, margin: float = 0.1, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """``n`` points in [-1, 1]^d labelled by a random hyperplane, none closer to it than ``margin``.

    Returns (X, y, w_star, b_star): X (n, d) float64, y (n,) in {0, 1}, and the
    hyperplane w_star . x + b_star = 0, with w_star of norm 1.
    """
    n, d = check.positive_int("n", n, minimum=2), check.positive_int("d", d)
    margin = check.fraction("margin", margin, low=0.0, high=0.5, closed="()")
    gen = torch.Generator().manual_seed(check.nonnegative_int("seed", seed))
    w_star = torch.randn(d, dtype=torch.float64, generator=gen)
    w_star /= w_star.norm()
    b_star = 0.2 * (float(torch.rand((), generator=gen, dtype=torch.float64)) - 0.5)
    # Rejection sampling: with |b_star| <= 0.1 and w_star . x spread over about +-1 in
    # every dimension, a share of each draw clears any margin below 0.5, so this ends.
    kept: list[torch.Tensor] = []
    while sum(len(k) for k in kept) < n:
        X = 2 * torch.rand(4 * n, d, dtype=torch.float64, generator=gen) - 1  # (4n, d)
        kept.append(X[(X @ w_star + b_star).abs() >= margin])
    X = torch.cat(kept)[:n]
    y = (X @ w_star + b_star > 0).long()
    return X, y, w_star, b_star
