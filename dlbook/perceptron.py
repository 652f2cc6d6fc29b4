"""Rosenblatt's perceptron and its learning rule (Part 4, "The perceptron").

The perceptron computes a weighted sum of its inputs plus a bias and fires (outputs 1)
when the sum is positive. :meth:`Perceptron.fit` applies the perceptron learning rule
one example at a time; :func:`linearly_separable` draws data with a chosen margin, and
:func:`mistake_bound` computes the Novikoff bound on the number
of updates it can make on linearly separable data.
"""

from __future__ import annotations

import torch

__all__ = ["Perceptron", "mistake_bound", "linearly_separable"]


def _check_data(X: torch.Tensor, y: torch.Tensor, d: int | None = None) -> None:
    if X.ndim != 2 or (d is not None and X.shape[1] != d):
        want = "(N, D)" if d is None else f"(N, D) with D={d}"
        raise ValueError(f"expected X of shape {want}, got {tuple(X.shape)}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"expected y of shape ({X.shape[0]},), got {tuple(y.shape)}")
    if not torch.isin(y, torch.tensor([0, 1], device=y.device)).all():
        raise ValueError("expected labels y in {0, 1}")


class Perceptron:
    """A single threshold unit, :math:`\\hat y = [\\mathbf{w}^\\top \\mathbf{x} + b > 0]`.

    Args:
        n_features: input dimension :math:`D`.
        dtype: the floating-point type of the weights.

    >>> p = Perceptron(2)
    >>> X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    >>> mistakes = p.fit(X, torch.tensor([0, 0, 0, 1]), epochs=20)  # logical AND
    >>> p.predict(X).tolist(), mistakes[-1]
    ([0, 0, 0, 1], 0)
    """

    def __init__(self, n_features: int, *, dtype: torch.dtype = torch.float64) -> None:
        if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
            raise ValueError(f"n_features must be an int >= 1, got {n_features!r}")
        self.w = torch.zeros(n_features, dtype=dtype)  # (D,)
        self.b = torch.zeros((), dtype=dtype)

    def decision(self, X: torch.Tensor) -> torch.Tensor:
        """The pre-activation :math:`\\mathbf{w}^\\top \\mathbf{x} + b` of each row, shape ``(N,)``.

        Raises:
            ValueError: if ``X`` is not of shape ``(N, D)``.
        """
        if X.ndim != 2 or X.shape[1] != len(self.w):
            raise ValueError(
                f"expected X of shape (N, D) with D={len(self.w)}, got {tuple(X.shape)}"
            )
        # z = X w + b  (N, D) @ (D,) -> (N,)
        return X.to(self.w) @ self.w + self.b

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """Labels in {0, 1}, shape ``(N,)``: the step function of :meth:`decision`."""
        return (self.decision(X) > 0).long()

    def fit(
        self, X: torch.Tensor, y: torch.Tensor, *, epochs: int = 100, lr: float = 1.0
    ) -> list[int]:
        """Run the perceptron rule over the data, in order, for up to ``epochs`` passes.

        With the label written as :math:`s = 2y - 1 \\in \\{-1, +1\\}`, an example is a
        mistake when :math:`s(\\mathbf{w}^\\top \\mathbf{x} + b) \\le 0` (a point on the
        boundary counts as wrong), and then
        :math:`\\mathbf{w} \\leftarrow \\mathbf{w} + \\eta s \\mathbf{x}`,
        :math:`b \\leftarrow b + \\eta s`. Nothing changes on a correct example.
        Training stops after the first pass without a mistake.

        Args:
            X: inputs, shape ``(N, D)``.
            y: labels in {0, 1}, shape ``(N,)``.
            epochs: the most passes over the data.
            lr: the learning rate :math:`\\eta > 0`.

        Returns:
            The number of mistakes (updates) in each pass.
        """
        _check_data(X, y, len(self.w))
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        X = X.to(self.w)
        mistakes = []
        for _ in range(epochs):
            count = 0
            for x_i, y_i in zip(X, y):
                s_i = 2 * int(y_i) - 1  # the label as -1 / +1
                if s_i * (x_i @ self.w + self.b) <= 0:
                    # w <- w + eta s x,  b <- b + eta s
                    self.w += lr * s_i * x_i
                    self.b += lr * s_i
                    count += 1
            mistakes.append(count)
            if count == 0:
                break
        return mistakes


def mistake_bound(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: float) -> float:
    """Novikoff's bound :math:`(R/\\gamma)^2` on the perceptron's total number of updates.

    Inputs are augmented with a constant 1 so the bias is a weight:
    :math:`R = \\max_i \\|(\\mathbf{x}_i, 1)\\|` and
    :math:`\\gamma = \\min_i s_i (\\mathbf{w}^\\top \\mathbf{x}_i + b) / \\|(\\mathbf{w}, b)\\|`
    with :math:`s_i = \\pm 1`, for any separating :math:`(\\mathbf{w}, b)`.

    Raises:
        ValueError: if ``(w, b)`` does not separate the data (:math:`\\gamma \\le 0`).
    """
    _check_data(X, y)
    X = X.double()
    ones = torch.ones(len(X), 1, dtype=X.dtype)
    X_aug = torch.cat([X, ones], dim=1)  # (N, D + 1)
    w_aug = torch.cat([w.double().reshape(-1), torch.tensor([float(b)], dtype=X.dtype)])  # (D + 1,)
    s = 2.0 * y.double() - 1  # labels as -1 / +1
    gamma = float((s * (X_aug @ w_aug)).min() / w_aug.norm())
    if gamma <= 0:
        raise ValueError(f"(w, b) does not separate the data: its margin is {gamma:.3g}")
    R = float(X_aug.norm(dim=1).max())
    return (R / gamma) ** 2


def linearly_separable(
    n: int = 200, d: int = 2, *, margin: float = 0.1, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Points in the square :math:`[-1, 1]^d` labelled by a random hyperplane, with a gap.

    Points closer than ``margin`` to the hyperplane
    :math:`\\mathbf{w}_\\star^\\top \\mathbf{x} + b_\\star = 0` (with
    :math:`\\|\\mathbf{w}_\\star\\| = 1`) are discarded, so the data are separable with at
    least that margin.

    Returns:
        ``(X, y, w_star, b_star)``: inputs ``(n, d)`` in float64, labels ``(n,)`` in
        {0, 1}, and the separating hyperplane.

    >>> X, y, w, b = linearly_separable(50, margin=0.2)
    >>> X.shape, bool(((2 * y - 1) * (X @ w + b)).min() >= 0.2)
    (torch.Size([50, 2]), True)
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    if not 0 < margin < 0.5:
        raise ValueError(f"margin must be in (0, 0.5), got {margin}")
    gen = torch.Generator().manual_seed(seed)
    w_star = torch.randn(d, dtype=torch.float64, generator=gen)
    w_star /= w_star.norm()
    b_star = 0.2 * (float(torch.rand((), generator=gen, dtype=torch.float64)) - 0.5)
    kept: list[torch.Tensor] = []
    while sum(len(k) for k in kept) < n:  # rejection sampling: keep points outside the gap
        X = 2 * torch.rand(4 * n, d, dtype=torch.float64, generator=gen) - 1  # (4n, d)
        kept.append(X[(X @ w_star + b_star).abs() >= margin])
    X = torch.cat(kept)[:n]
    y = (X @ w_star + b_star > 0).long()
    return X, y, w_star, b_star
