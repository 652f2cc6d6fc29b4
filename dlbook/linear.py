"""Linear, logistic and softmax regression from scratch (Part 2, "Linear models").

Each model keeps its parameters as plain tensors and computes its own gradient
from the formula derived on its page — no autograd. The loss functions and
their gradients are also public functions, so a page (or a test) can compare a
hand-derived gradient with ``torch.autograd``:

- :func:`mse_gradient`: the gradient of the mean squared error, ``2 X^T (y_hat - y) / N``;
- :func:`logistic_gradient`: the gradient of the binary cross-entropy, ``X^T (p - y) / N``;
- :func:`softmax_gradient`: the gradient of the multi-class cross-entropy, ``X^T (P - Y) / N``.

:func:`fit_gd` is the small gradient-descent loop for these scratch models (the
generic :func:`dlbook.train.fit` trains ``torch.nn`` modules with autograd and
arrives in Part 3); it records a :class:`dlbook.train.History`, so
:func:`dlbook.plot.history` draws its curves.
"""

from __future__ import annotations

import time
from typing import Protocol

import torch

from dlbook.linalg import solve
from dlbook.train import History

__all__ = [
    "sigmoid", "log_sigmoid", "log_softmax", "softmax",
    "mse_loss", "mse_gradient", "logistic_loss", "logistic_gradient",
    "softmax_loss", "softmax_gradient",
    "LinearScore", "LinearRegression", "LogisticRegression", "SoftmaxRegression", "ScratchModel",
    "fit_gd",
]


# ---------------------------------------------------------------------------
# Numerically stable building blocks
# ---------------------------------------------------------------------------

def sigmoid(z: torch.Tensor) -> torch.Tensor:
    r"""The logistic function :math:`\sigma(z) = 1 / (1 + e^{-z})`, stable for any ``z``.

    Only ``exp(-|z|)`` is ever computed, which lies in (0, 1], so nothing overflows.

    >>> sigmoid(torch.tensor([-1000.0, 0.0, 1000.0]))
    tensor([0.0000, 0.5000, 1.0000])
    """
    e = torch.exp(-z.abs())
    # sigma(z) = 1 / (1 + e^{-z}) for z >= 0, and e^{z} / (1 + e^{z}) for z < 0
    return torch.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def log_sigmoid(z: torch.Tensor) -> torch.Tensor:
    r""":math:`\log \sigma(z) = -\log(1 + e^{-z})`, stable for any ``z``.

    >>> [round(v, 4) for v in log_sigmoid(torch.tensor([-1000.0, 0.0])).tolist()]
    [-1000.0, -0.6931]
    """
    # log sigma(z) = min(z, 0) - log(1 + e^{-|z|})
    return torch.clamp(z, max=0.0) - torch.log1p(torch.exp(-z.abs()))


def log_softmax(Z: torch.Tensor) -> torch.Tensor:
    r"""Row-wise :math:`\log \operatorname{softmax}(Z)`, shifted by the row maximum.

    Subtracting :math:`m = \max_k z_k` changes nothing mathematically,
    :math:`z_k - \log\sum_j e^{z_j} = (z_k - m) - \log\sum_j e^{z_j - m}`,
    but keeps every exponent at most 0.

    >>> log_softmax(torch.tensor([[1000.0, 1000.0]]))
    tensor([[-0.6931, -0.6931]])
    """
    if Z.ndim != 2:
        raise ValueError(f"expected logits of shape (B, K), got {tuple(Z.shape)}")
    shifted = Z - Z.max(dim=1, keepdim=True).values  # (B, K), every entry <= 0
    return shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))


def softmax(Z: torch.Tensor) -> torch.Tensor:
    """Row-wise softmax, ``exp(log_softmax(Z))``: each row is a probability vector."""
    return torch.exp(log_softmax(Z))


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------

def _check_X(X: torch.Tensor, n_features: int | None = None) -> None:
    if not isinstance(X, torch.Tensor) or not X.is_floating_point():
        got = getattr(X, "dtype", type(X).__name__)
        raise TypeError(f"expected X to be a floating-point tensor, got {got}")
    if X.ndim != 2:
        raise ValueError(f"expected X of shape (B, D), got {tuple(X.shape)}")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"expected X of shape (B, {n_features}), got {tuple(X.shape)}")


def _check_targets(X: torch.Tensor, y: torch.Tensor) -> None:
    if not isinstance(y, torch.Tensor) or y.ndim != 1 or len(y) != len(X):
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"expected y of shape ({len(X)},) to match X {tuple(X.shape)}, got {shape}")


def _check_binary(y: torch.Tensor) -> None:
    if not bool(((y == 0) | (y == 1)).all()):
        values = torch.unique(y).tolist()[:10]
        raise ValueError(f"expected binary targets in {{0, 1}}, got values {values}")


def _check_classes(y: torch.Tensor, n_classes: int) -> None:
    if y.is_floating_point() or y.dtype == torch.bool:
        raise TypeError(f"expected integer class labels, got dtype {y.dtype}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(
            f"expected labels in 0..{n_classes - 1}, got range {int(y.min())}..{int(y.max())}"
        )


# ---------------------------------------------------------------------------
# Losses and their hand-derived gradients
# ---------------------------------------------------------------------------

def mse_loss(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Mean squared error of the linear model.

    .. math:: L = \frac1N \sum_i (\mathbf{w}^\top\mathbf{x}_i + b - y_i)^2

    Args:
        X: inputs, shape ``(B, D)``.
        y: targets, shape ``(B,)``.
        w: weights, shape ``(D,)``.
        b: bias, a scalar tensor.

    Returns:
        The loss, a scalar tensor.
    """
    _check_X(X, len(w))
    _check_targets(X, y)
    residual = X @ w + b - y  # (B,)
    return (residual**2).mean()


def mse_gradient(
    X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The gradient of :func:`mse_loss` with respect to ``w`` and ``b``, derived by hand.

    .. math:: \nabla_{\mathbf{w}} L = \tfrac{2}{N} X^\top (\hat{\mathbf{y}} - \mathbf{y}),
              \qquad \partial L / \partial b = \tfrac{2}{N} \sum_i (\hat y_i - y_i)

    Returns:
        ``(grad_w, grad_b)`` with the shapes of ``w`` and ``b``.
    """
    _check_X(X, len(w))
    _check_targets(X, y)
    N = len(X)
    residual = X @ w + b - y  # (B,): y_hat - y
    # grad_w = (2 / N) X^T (y_hat - y)
    grad_w = 2.0 / N * (X.T @ residual)  # (D, B) @ (B,) -> (D,)
    grad_b = 2.0 / N * residual.sum()
    return grad_w, grad_b


def logistic_loss(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Mean binary cross-entropy of logistic regression, computed from the logits.

    With :math:`z_i = \mathbf{w}^\top\mathbf{x}_i + b` and :math:`p_i = \sigma(z_i)`,
    :math:`L = -\frac1N \sum_i [y_i \log p_i + (1-y_i)\log(1-p_i)]`. Using
    :math:`\log(1 - \sigma(z)) = \log\sigma(-z)` keeps it finite for any logit.

    Args:
        X: inputs, shape ``(B, D)``.
        y: targets in {0, 1}, shape ``(B,)`` (any dtype).
        w: weights, shape ``(D,)``.
        b: bias, a scalar tensor.
    """
    _check_X(X, len(w))
    _check_targets(X, y)
    _check_binary(y)
    z = X @ w + b  # (B,) logits
    y = y.to(z.dtype)
    return -(y * log_sigmoid(z) + (1 - y) * log_sigmoid(-z)).mean()


def logistic_gradient(
    X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The gradient of :func:`logistic_loss`, derived by hand: the error is :math:`p - y`.

    .. math:: \nabla_{\mathbf{w}} L = \tfrac{1}{N} X^\top (\mathbf{p} - \mathbf{y}),
              \qquad \partial L / \partial b = \tfrac{1}{N} \sum_i (p_i - y_i)

    Returns:
        ``(grad_w, grad_b)`` with the shapes of ``w`` and ``b``.
    """
    _check_X(X, len(w))
    _check_targets(X, y)
    _check_binary(y)
    p = sigmoid(X @ w + b)  # (B,)
    error = p - y.to(p.dtype)  # (B,): p - y
    # grad_w = (1 / N) X^T (p - y)
    grad_w = X.T @ error / len(X)  # (D, B) @ (B,) -> (D,)
    grad_b = error.mean()
    return grad_w, grad_b


def softmax_loss(X: torch.Tensor, y: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Mean multi-class cross-entropy of softmax regression.

    .. math:: L = -\frac1N\sum_i \log P_{i, y_i}, \qquad P = \operatorname{softmax}(XW + \mathbf{b})

    Args:
        X: inputs, shape ``(B, D)``.
        y: integer class labels in ``0..K-1``, shape ``(B,)``.
        W: weights, shape ``(D, K)``.
        b: biases, shape ``(K,)``.
    """
    _check_X(X, W.shape[0])
    _check_targets(X, y)
    _check_classes(y, W.shape[1])
    log_P = log_softmax(X @ W + b)  # (B, K)
    return -log_P[torch.arange(len(y), device=y.device), y].mean()


def softmax_gradient(
    X: torch.Tensor, y: torch.Tensor, W: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The gradient of :func:`softmax_loss`, derived by hand: the error is :math:`P - Y`.

    .. math:: \nabla_W L = \tfrac{1}{N} X^\top (P - Y), \qquad
              \nabla_{\mathbf{b}} L = \tfrac{1}{N} \sum_i (P_{i:} - Y_{i:})

    where :math:`Y` is the one-hot matrix of the labels.

    Returns:
        ``(grad_W, grad_b)`` with the shapes of ``W`` and ``b``.
    """
    _check_X(X, W.shape[0])
    _check_targets(X, y)
    _check_classes(y, W.shape[1])
    P = softmax(X @ W + b)  # (B, K)
    Y = torch.nn.functional.one_hot(y, W.shape[1]).to(P.dtype)  # (B, K)
    # grad_W = (1 / N) X^T (P - Y)
    grad_W = X.T @ (P - Y) / len(X)  # (D, B) @ (B, K) -> (D, K)
    grad_b = (P - Y).mean(dim=0)  # (K,)
    return grad_W, grad_b


# ---------------------------------------------------------------------------
# The three models
# ---------------------------------------------------------------------------

def _zeros(
    shape: tuple[int, ...], dtype: torch.dtype, device: torch.device | str | None
) -> torch.Tensor:
    from dlbook import device as default_device

    return torch.zeros(shape, dtype=dtype, device=device if device is not None else default_device())


class LinearScore:
    r"""The score :math:`z = \mathbf{w}^\top \mathbf{x} + b` that linear and logistic regression share.

    Args:
        n_features: the input dimension ``D``.
        dtype: dtype of the parameters (float32, or float64 for checks).
        device: where the parameters live; :func:`dlbook.device` by default.

    Raises:
        ValueError: if ``n_features`` is not an int >= 1.
    """

    def __init__(self, n_features: int, *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> None:
        if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
            raise ValueError(f"n_features must be an int >= 1, got {n_features!r}")
        self.w = _zeros((n_features,), dtype, device)  # (D,)
        self.b = _zeros((), dtype, device)

    def parameters(self) -> list[torch.Tensor]:
        """The parameters ``[w, b]``, in the order the models' ``gradients`` return them."""
        return [self.w, self.b]

    def score(self, X: torch.Tensor) -> torch.Tensor:
        """The scores ``X w + b``, shape ``(B,)``."""
        _check_X(X, len(self.w))
        return X @ self.w + self.b  # (B, D) @ (D,) -> (B,)


class LinearRegression(LinearScore):
    r"""Linear regression :math:`\hat y = \mathbf{w}^\top \mathbf{x} + b`, in closed form or by descent.

    Args:
        n_features: the input dimension ``D``.
        dtype: dtype of the parameters (float32, or float64 for checks).
        device: where the parameters live; :func:`dlbook.device` by default.

    >>> model = LinearRegression(1, device="cpu")
    >>> X = torch.tensor([[0.0], [1.0], [2.0]])
    >>> model = model.fit_closed_form(X, 3 * X[:, 0] + 1)
    >>> round(model.w.item(), 4), round(model.b.item(), 4)
    (3.0, 1.0)
    """

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """Predictions ``X w + b``, shape ``(B,)``."""
        return self.score(X)

    def loss(self, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean squared error on ``(X, y)``."""
        return mse_loss(X, y, self.w, self.b)

    def gradients(self, X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The hand-derived gradient of the loss, :func:`mse_gradient`."""
        return mse_gradient(X, y, self.w, self.b)

    def fit_closed_form(self, X: torch.Tensor, y: torch.Tensor) -> LinearRegression:
        r"""Set ``w`` and ``b`` to the least-squares solution by the normal equations.

        With the design matrix :math:`\tilde X = [X \;\; \mathbf{1}]` and
        :math:`\boldsymbol\theta = (\mathbf{w}, b)`, solve
        :math:`\tilde X^\top \tilde X \boldsymbol\theta = \tilde X^\top \mathbf{y}`
        with :func:`dlbook.linalg.solve`.

        Raises:
            ValueError: on mismatched shapes, or if :math:`\tilde X^\top \tilde X`
                is singular (fewer independent examples than parameters).
        """
        _check_X(X, len(self.w))
        _check_targets(X, y)
        ones = torch.ones(len(X), 1, dtype=X.dtype, device=X.device)
        X_tilde = torch.cat([X, ones], dim=1)  # (B, D + 1)
        # X~^T X~ theta = X~^T y   (the normal equations)
        theta = solve(X_tilde.T @ X_tilde, X_tilde.T @ y.to(X.dtype))  # (D + 1,)
        self.w = theta[:-1].to(self.w.dtype).clone()
        self.b = theta[-1].to(self.b.dtype).clone()
        return self


class LogisticRegression(LinearScore):
    r"""Binary logistic regression, :math:`p(y{=}1 \mid \mathbf{x}) = \sigma(\mathbf{w}^\top\mathbf{x} + b)`.

    Args:
        n_features: the input dimension ``D``.
        dtype: dtype of the parameters.
        device: where the parameters live; :func:`dlbook.device` by default.
    """

    def logits(self, X: torch.Tensor) -> torch.Tensor:
        """The log-odds ``z = X w + b``, shape ``(B,)``."""
        return self.score(X)

    def predict_proba(self, X: torch.Tensor) -> torch.Tensor:
        """The probability of class 1 for each row, shape ``(B,)``."""
        return sigmoid(self.logits(X))

    def predict(self, X: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
        """Labels in {0, 1}: 1 where the probability is at least ``threshold``."""
        return (self.predict_proba(X) >= threshold).long()

    def loss(self, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean binary cross-entropy on ``(X, y)``."""
        return logistic_loss(X, y, self.w, self.b)

    def gradients(self, X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The hand-derived gradient of the loss, :func:`logistic_gradient`."""
        return logistic_gradient(X, y, self.w, self.b)


class SoftmaxRegression:
    r"""Multi-class (multinomial logistic) regression, :math:`P = \mathrm{softmax}(XW + \mathbf{b})`.

    Args:
        n_features: the input dimension ``D``.
        n_classes: the number of classes ``K``.
        dtype: dtype of the parameters.
        device: where the parameters live; :func:`dlbook.device` by default.
    """

    def __init__(self, n_features: int, n_classes: int, *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> None:
        for name, value in (("n_features", n_features), ("n_classes", n_classes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.W = _zeros((n_features, n_classes), dtype, device)  # (D, K)
        self.b = _zeros((n_classes,), dtype, device)  # (K,)

    def parameters(self) -> list[torch.Tensor]:
        """The parameters ``[W, b]``, in the order :meth:`gradients` returns them."""
        return [self.W, self.b]

    def logits(self, X: torch.Tensor) -> torch.Tensor:
        """Class scores ``X W + b``, shape ``(B, K)``."""
        _check_X(X, self.W.shape[0])
        return X @ self.W + self.b  # (B, D) @ (D, K) -> (B, K)

    def predict_proba(self, X: torch.Tensor) -> torch.Tensor:
        """Class probabilities, shape ``(B, K)``; each row sums to 1."""
        return softmax(self.logits(X))

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """The most probable class of each row, shape ``(B,)``."""
        return self.logits(X).argmax(dim=1)

    def loss(self, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean cross-entropy on ``(X, y)``."""
        return softmax_loss(X, y, self.W, self.b)

    def gradients(self, X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The hand-derived gradient of the loss, :func:`softmax_gradient`."""
        return softmax_gradient(X, y, self.W, self.b)


class ScratchModel(Protocol):
    """What :func:`fit_gd` needs: parameters, a loss and its gradients, in the same order."""

    def parameters(self) -> list[torch.Tensor]: ...
    def loss(self, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...
    def gradients(self, X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]: ...


def fit_gd(
    model: ScratchModel,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    lr: float,
    epochs: int,
    batch_size: int | None = None,
    weight_decay: float = 0.0,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    seed: int = 0,
) -> History:
    r"""Train a scratch model by (mini-batch) gradient descent with its own gradients.

    Each step is :math:`\theta \leftarrow \theta - \eta\,(\nabla_\theta L + \lambda \theta)`,
    with :math:`\lambda` = ``weight_decay`` applied to every parameter but the
    last (the bias). Parameters are updated in place.

    Args:
        model: a :class:`LinearRegression`, :class:`LogisticRegression` or
            :class:`SoftmaxRegression` (anything with ``parameters``, ``loss``
            and ``gradients``).
        X: training inputs, shape ``(N, D)``, on the model's device.
        y: training targets, shape ``(N,)``.
        lr: the step size :math:`\eta`.
        epochs: passes over the training data.
        batch_size: examples per step; ``None`` means full-batch gradient descent.
        weight_decay: the L2 coefficient :math:`\lambda` (0 for none).
        val: optional ``(X_val, y_val)`` whose loss is recorded after each epoch.
        seed: seeds the shuffling of mini-batches.

    Returns:
        A :class:`~dlbook.train.History` with ``train_loss`` (and ``val_loss``)
        after every epoch.

    Raises:
        ValueError: on a non-positive ``lr``, ``epochs`` or ``batch_size``, or
            a loss that becomes non-finite (the step size is too large).
    """
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be an int >= 1 or None, got {batch_size!r}")
    _check_X(X)
    _check_targets(X, y)
    N = len(X)
    batch_size = N if batch_size is None else batch_size
    generator = torch.Generator().manual_seed(seed)
    params = model.parameters()
    history = History()
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        order = torch.randperm(N, generator=generator).to(X.device) if batch_size < N else None
        for i in range(0, N, batch_size):
            idx = order[i : i + batch_size] if order is not None else slice(None)
            grads = model.gradients(X[idx], y[idx])
            for k, (p, g) in enumerate(zip(params, grads)):
                decay = weight_decay * p if k < len(params) - 1 else 0.0
                # theta <- theta - lr * (grad + lambda * theta)
                p -= lr * (g + decay)
        record = {"epoch": float(epoch), "train_loss": float(model.loss(X, y))}
        if val is not None:
            record["val_loss"] = float(model.loss(*val))
        record["seconds"] = time.perf_counter() - start
        if not torch.isfinite(torch.tensor(record["train_loss"])):
            raise ValueError(
                f"the loss became {record['train_loss']} at epoch {epoch}: lr={lr} is too large"
            )
        history.records.append(record)
    return history
