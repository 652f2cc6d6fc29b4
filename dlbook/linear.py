"""Linear, logistic and softmax regression from scratch (Part 2, "Linear models").

Each model keeps its parameters as plain tensors and computes its own gradient
from the formula derived on its page, with no autograd. The losses and their
gradients are public functions, so a page (or a test) can compare a
hand-derived gradient with ``torch.autograd``:

- ``mse_gradient``: the gradient of the mean squared error, ``2 X^T (y_hat - y) / N``;
- ``logistic_gradient``: the gradient of the binary cross-entropy, ``X^T (p - y) / N``;
- ``softmax_gradient``: the gradient of the multi-class cross-entropy, ``X^T (P - Y) / N``.

This module is the one home of the numerically stable ``sigmoid``,
``log_sigmoid``, ``softmax`` and ``log_softmax``, and of the softmax
cross-entropy of a batch of logits with its gradient ``(P - Y) / B``
(``softmax_cross_entropy``, ``softmax_cross_entropy_gradient``), which the
neural networks of Parts 4 and 5 reuse.

``fit_gd`` is the small gradient-descent loop for these scratch models (the
generic ``dlbook.train.fit`` trains ``torch.nn`` modules with autograd and
arrives in Part 3); it records a ``dlbook.train.History``, so
``dlbook.plot.history`` draws its curves.
"""

from __future__ import annotations

import math
import time
from typing import Protocol

import torch
import torch.nn.functional as F

import dlbook
from dlbook import _checks as check
from dlbook.linalg import solve
from dlbook.train import History

__all__ = [
    "sigmoid", "log_sigmoid", "log_softmax", "softmax",
    "softmax_cross_entropy", "softmax_cross_entropy_gradient",
    "mse_loss", "mse_gradient", "gaussian_nll", "logistic_loss", "logistic_gradient",
    "softmax_loss", "softmax_gradient",
    "LinearScore", "LinearRegression", "LogisticRegression", "SoftmaxRegression", "ScratchModel",
    "fit_gd",
]


# ---------------------------------------------------------------------------
# Numerically stable building blocks
# ---------------------------------------------------------------------------

def sigmoid(z: torch.Tensor) -> torch.Tensor:
    """The logistic function ``1 / (1 + e^(-z))``, elementwise, without overflow for any ``z``."""
    z = check.floating("z", z)
    e = torch.exp(-z.abs())  # in (0, 1]: never overflows
    # sigma(z) = 1 / (1 + e^{-z}) for z >= 0, and e^{z} / (1 + e^{z}) for z < 0
    return torch.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def log_sigmoid(z: torch.Tensor) -> torch.Tensor:
    """``log sigma(z) = -log(1 + e^(-z))``, elementwise, without overflow for any ``z``."""
    z = check.floating("z", z)
    # log sigma(z) = min(z, 0) - log(1 + e^{-|z|})
    return torch.clamp(z, max=0.0) - torch.log1p(torch.exp(-z.abs()))


def log_softmax(Z: torch.Tensor) -> torch.Tensor:
    """Row-wise log-softmax, shifted by the row maximum: ``(B, K) -> (B, K)``."""
    check.expect_shape(check.floating("Z", Z), "B K", "Z")
    # log softmax(z)_k = (z_k - m) - log sum_j e^{z_j - m}, with m = max_j z_j
    shifted = Z - Z.max(dim=1, keepdim=True).values  # (B, K), every entry <= 0
    return shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))


def softmax(Z: torch.Tensor) -> torch.Tensor:
    """Row-wise softmax, ``exp(log_softmax(Z))``; each row is a probability vector: ``(B, K)``."""
    return torch.exp(log_softmax(Z))


def softmax_cross_entropy(
    logits: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy of ``softmax(logits)`` against labels ``y``, and its gradient.

    Shapes: ``logits`` ``(B, K)`` and ``y`` ``(B,)`` give the scalar loss and the
    gradient with respect to the logits, ``(P - Y) / B`` of shape ``(B, K)``.
    """
    B, K = _logits_and_labels(logits, y)
    log_P = log_softmax(logits)  # (B, K)
    # L = -(1/B) sum_i log P_{i, y_i}
    loss = -log_P[torch.arange(B, device=y.device), y].mean()
    Y = F.one_hot(y, K).to(log_P.dtype)  # (B, K): the labels one-hot
    # dL/dZ = (P - Y) / B
    return loss, (log_P.exp() - Y) / B


def softmax_cross_entropy_gradient(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The gradient ``(P - Y) / B`` of the mean cross-entropy with respect to the ``(B, K)`` logits.

    The same as ``softmax_cross_entropy(logits, y)[1]``, for code that needs only the gradient.
    """
    return softmax_cross_entropy(logits, y)[1]


# ---------------------------------------------------------------------------
# Input checks (one line in every public function)
# ---------------------------------------------------------------------------

def _logits_and_labels(logits: torch.Tensor, y: torch.Tensor) -> tuple[int, int]:
    """``(B, K)``, after checking the logits ``(B, K)`` and the labels ``y`` ``(B,)`` in [0, K)."""
    B, K = check.expect_shape(check.finite("logits", logits), "B K", "logits").values()
    check.expect_shape(check.labels("y", y, K), "B", "y", B=B)
    return B, K


def _inputs(X: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``X`` of shape ``(B, D)``, converted to the weights' dtype (a float64 batch into a
    float32 model is converted, not rejected)."""
    X = check.as_float_like("X", check.finite("X", X), weights)
    check.expect_shape(X, "B D", "X", D=weights.shape[0])
    return X


def _linear_args(
    X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor, *, binary: bool = False
) -> torch.Tensor:
    """``X`` (converted to ``w``'s dtype) after checking ``X`` ``(B, D)``, ``y`` ``(B,)``,
    ``w`` ``(D,)``, a scalar ``b`` and, if ``binary``, targets in {0, 1}."""
    check.expect_shape(check.floating("w", w), "D", "w")
    check.expect_shape(check.floating("b", b), "", "b")
    X = _inputs(X, w)
    check.expect_shape(check.tensor("y", y) if binary else check.finite("y", y), "B", "y", B=len(X))
    if binary and not bool(((y == 0) | (y == 1)).all()):
        values = torch.unique(y).tolist()[:10]
        raise ValueError(f"y must hold binary targets in {{0, 1}}, got values {values}")
    return X


def _softmax_args(
    X: torch.Tensor, y: torch.Tensor, W: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """``X`` (converted to ``W``'s dtype) after checking ``X`` ``(B, D)``, labels ``y`` ``(B,)``
    in ``[0, K)``, ``W`` ``(D, K)`` and ``b`` ``(K,)``."""
    K = check.expect_shape(check.floating("W", W), "D K", "W")["K"]
    check.expect_shape(check.floating("b", b), "K", "b", K=K)
    X = _inputs(X, W)
    check.expect_shape(check.labels("y", y, K), "B", "y", B=len(X))
    return X


def _dtype(dtype: object) -> torch.dtype:
    floats = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
    return check.one_of("dtype", dtype, floats)


def _device(device: object) -> torch.device:
    """``device`` as a ``torch.device``; ``dlbook.device()`` when it is ``None``."""
    if device is None:
        return dlbook.device()
    try:
        return torch.device(device)  # type: ignore[arg-type]
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be a torch.device, a name such as 'cpu' or None, "
                         f"got {device!r}") from None


# ---------------------------------------------------------------------------
# Losses and their hand-derived gradients
# ---------------------------------------------------------------------------

def mse_loss(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the linear model ``X w + b``.

    Shapes: ``X`` ``(B, D)``, ``y`` ``(B,)``, ``w`` ``(D,)``, ``b`` ``()``; the loss is ``()``.
    """
    X = _linear_args(X, y, w, b)
    residual = X @ w + b - y  # (B,): y_hat - y
    # L = (1/N) sum_i (y_hat_i - y_i)^2
    return (residual**2).mean()


def mse_gradient(
    X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient of ``mse_loss`` with respect to ``w`` and ``b``, derived by hand."""
    X = _linear_args(X, y, w, b)
    N = len(X)
    residual = X @ w + b - y  # (B,): y_hat - y
    # grad_w = (2 / N) X^T (y_hat - y)
    grad_w = 2.0 / N * (X.T @ residual)  # (D, B) @ (B,) -> (D,)
    # grad_b = (2 / N) sum_i (y_hat_i - y_i)
    grad_b = 2.0 / N * residual.sum()
    return grad_w, grad_b


def gaussian_nll(
    X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor, var: torch.Tensor
) -> torch.Tensor:
    """Negative log-likelihood of ``y`` under ``y ~ N(X w + b, var)``, summed over the batch.

    Shapes: ``X`` ``(B, D)``, ``y`` ``(B,)``, ``w`` ``(D,)``, ``b`` and ``var`` ``()``;
    the NLL is ``()``.
    """
    X = _linear_args(X, y, w, b)
    check.expect_shape(check.floating("var", var), "", "var")
    var = check.as_float_like("var", var, w)
    if not bool(var > 0):
        raise ValueError(f"var must be a positive variance, got {var.item()}")
    N = len(X)
    residual = X @ w + b - y  # (B,): y_hat - y
    # -log L = (N/2) log(2 pi var) + (1 / (2 var)) sum_i (y_i - y_hat_i)^2
    return 0.5 * N * torch.log(2 * math.pi * var) + (residual**2).sum() / (2 * var)


def logistic_loss(
    X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """Mean binary cross-entropy of logistic regression, computed from the logits.

    Shapes: ``X`` ``(B, D)``, ``y`` ``(B,)`` in {0, 1}, ``w`` ``(D,)``, ``b`` ``()``.
    """
    X = _linear_args(X, y, w, b, binary=True)
    z = X @ w + b  # (B,) logits
    y = y.to(z.dtype)
    # L = -(1/N) sum_i [y_i log sigma(z_i) + (1 - y_i) log sigma(-z_i)]   (1 - sigma(z) = sigma(-z))
    return -(y * log_sigmoid(z) + (1 - y) * log_sigmoid(-z)).mean()


def logistic_gradient(
    X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient of ``logistic_loss``, derived by hand (the error is ``p - y``): ``(D,), ()``."""
    X = _linear_args(X, y, w, b, binary=True)
    p = sigmoid(X @ w + b)  # (B,)
    error = p - y.to(p.dtype)  # (B,): p - y
    # grad_w = (1 / N) X^T (p - y)
    grad_w = X.T @ error / len(X)  # (D, B) @ (B,) -> (D,)
    # grad_b = (1 / N) sum_i (p_i - y_i)
    grad_b = error.mean()
    return grad_w, grad_b


def softmax_loss(
    X: torch.Tensor, y: torch.Tensor, W: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy of softmax regression.

    Shapes: ``X`` ``(B, D)``, labels ``y`` ``(B,)``, ``W`` ``(D, K)``, ``b`` ``(K,)``.
    """
    X = _softmax_args(X, y, W, b)
    return softmax_cross_entropy(X @ W + b, y)[0]


def softmax_gradient(
    X: torch.Tensor, y: torch.Tensor, W: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient of ``softmax_loss`` with respect to ``W`` and ``b``, derived by hand."""
    X = _softmax_args(X, y, W, b)
    dZ = softmax_cross_entropy_gradient(X @ W + b, y)  # (B, K): (P - Y) / N
    # grad_W = (1 / N) X^T (P - Y)
    grad_W = X.T @ dZ  # (D, B) @ (B, K) -> (D, K)
    # grad_b = (1 / N) sum_i (P_i - Y_i)
    grad_b = dZ.sum(dim=0)  # (K,)
    return grad_W, grad_b


# ---------------------------------------------------------------------------
# The three models
# ---------------------------------------------------------------------------

class LinearScore:
    """The score ``z = w^T x + b`` that linear and logistic regression share; ``w`` is ``(D,)``."""

    def __init__(self, n_features: int, *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> None:
        D = check.positive_int("n_features", n_features)
        dtype, device = _dtype(dtype), _device(device)
        self.w = torch.zeros(D, dtype=dtype, device=device)  # (D,)
        self.b = torch.zeros((), dtype=dtype, device=device)

    def parameters(self) -> list[torch.Tensor]:
        """The parameters ``[w, b]``, in the order the models' ``gradients`` return them."""
        return [self.w, self.b]

    def score(self, X: torch.Tensor) -> torch.Tensor:
        """The scores ``X w + b``: ``(B, D) -> (B,)``."""
        X = _inputs(X, self.w)
        return X @ self.w + self.b  # (B, D) @ (D,) -> (B,)


class LinearRegression(LinearScore):
    """Linear regression ``y_hat = w^T x + b``, fitted in closed form or by gradient descent."""

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """Predictions ``X w + b``: ``(B, D) -> (B,)``."""
        return self.score(X)

    def loss(self, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean squared error on ``(X, y)``."""
        return mse_loss(X, y, self.w, self.b)

    def gradients(self, X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The hand-derived gradient of the loss, ``mse_gradient``."""
        return mse_gradient(X, y, self.w, self.b)

    def fit_closed_form(self, X: torch.Tensor, y: torch.Tensor) -> LinearRegression:
        """Set ``w`` and ``b`` to the least-squares solution of the normal equations."""
        X = _linear_args(X, y, self.w, self.b)
        ones = torch.ones(len(X), 1, dtype=X.dtype, device=X.device)
        X_tilde = torch.cat([X, ones], dim=1)  # (B, D + 1): theta = (w, b)
        # X~^T X~ theta = X~^T y   (the normal equations)
        theta = solve(X_tilde.T @ X_tilde, X_tilde.T @ y.to(X.dtype))  # (D + 1,)
        self.w, self.b = theta[:-1].clone(), theta[-1].clone()
        return self


class LogisticRegression(LinearScore):
    """Binary logistic regression, ``p(y = 1 | x) = sigmoid(w^T x + b)``."""

    def logits(self, X: torch.Tensor) -> torch.Tensor:
        """The log-odds ``z = X w + b``: ``(B, D) -> (B,)``."""
        return self.score(X)

    def predict_proba(self, X: torch.Tensor) -> torch.Tensor:
        """The probability of class 1 for each row: ``(B, D) -> (B,)``."""
        return sigmoid(self.logits(X))

    def predict(self, X: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
        """Labels in {0, 1}: 1 where the probability is at least ``threshold``; ``(B,)``."""
        threshold = check.fraction("threshold", threshold, closed="[]")
        return (self.predict_proba(X) >= threshold).long()

    def loss(self, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean binary cross-entropy on ``(X, y)``."""
        return logistic_loss(X, y, self.w, self.b)

    def gradients(self, X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The hand-derived gradient of the loss, ``logistic_gradient``."""
        return logistic_gradient(X, y, self.w, self.b)


class SoftmaxRegression:
    """Multi-class (multinomial logistic) regression, ``P = softmax(X W + b)``."""

    def __init__(self, n_features: int, n_classes: int, *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> None:
        D = check.positive_int("n_features", n_features)
        K = check.positive_int("n_classes", n_classes)
        dtype, device = _dtype(dtype), _device(device)
        self.W = torch.zeros(D, K, dtype=dtype, device=device)  # (D, K)
        self.b = torch.zeros(K, dtype=dtype, device=device)  # (K,)

    def parameters(self) -> list[torch.Tensor]:
        """The parameters ``[W, b]``, in the order ``gradients`` returns them."""
        return [self.W, self.b]

    def logits(self, X: torch.Tensor) -> torch.Tensor:
        """Class scores ``X W + b``: ``(B, D) -> (B, K)``."""
        X = _inputs(X, self.W)
        return X @ self.W + self.b  # (B, D) @ (D, K) -> (B, K)

    def predict_proba(self, X: torch.Tensor) -> torch.Tensor:
        """Class probabilities, each row summing to 1: ``(B, D) -> (B, K)``."""
        return softmax(self.logits(X))

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """The most probable class of each row: ``(B, D) -> (B,)``."""
        return self.logits(X).argmax(dim=1)

    def loss(self, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean cross-entropy on ``(X, y)``."""
        return softmax_loss(X, y, self.W, self.b)

    def gradients(self, X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The hand-derived gradient of the loss, ``softmax_gradient``."""
        return softmax_gradient(X, y, self.W, self.b)


class ScratchModel(Protocol):
    """What ``fit_gd`` needs: parameters, a loss and its gradients, in the same order."""

    def parameters(self) -> list[torch.Tensor]: ...
    def loss(self, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...
    def gradients(self, X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]: ...


def _scratch_model(model: object) -> ScratchModel:
    """``model`` if it has ``parameters``, ``loss`` and ``gradients``, as ``fit_gd`` needs."""
    needed = ("parameters", "loss", "gradients")
    missing = [name for name in needed if not callable(getattr(model, name, None))]
    if missing:
        raise TypeError(f"model must have parameters(), loss(X, y) and gradients(X, y) methods; "
                        f"{type(model).__name__} lacks {', '.join(missing)}")
    return model  # type: ignore[return-value]


def _validation_pair(val: object) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``val`` if it is ``None`` or a pair ``(X_val, y_val)`` of equally long tensors."""
    if val is None:
        return None
    if not isinstance(val, (tuple, list)) or len(val) != 2:
        raise TypeError(f"val must be None or a pair (X_val, y_val), got {type(val).__name__}")
    X_val, y_val = check.tensor("val[0]", val[0]), check.tensor("val[1]", val[1])
    check.same_length(X_val=X_val, y_val=y_val)
    return X_val, y_val


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
    """Train a scratch model in place by (mini-batch) gradient descent with its own gradients.

    ``batch_size=None`` is full-batch gradient descent; ``weight_decay`` applies to
    every parameter but the last (the bias); ``val=(X_val, y_val)`` records a
    validation loss. Returns the ``History`` of the losses after every epoch, and
    raises a ``ValueError`` if the loss becomes non-finite (the step is too large).
    """
    model, val = _scratch_model(model), _validation_pair(val)
    lr, epochs = check.positive_float("lr", lr), check.positive_int("epochs", epochs)
    weight_decay = check.nonnegative_float("weight_decay", weight_decay)
    seed = check.nonnegative_int("seed", seed)
    N = check.same_length(X=check.tensor("X", X), y=check.tensor("y", y))
    batch_size = N if batch_size is None else check.positive_int("batch_size", batch_size)
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
                decay = weight_decay * p if k < len(params) - 1 else 0.0  # no decay on the bias
                # theta <- theta - lr * (grad + omega * theta)
                p -= lr * (g + decay)
        record = {"epoch": float(epoch), "train_loss": float(model.loss(X, y))}
        if val is not None:
            record["val_loss"] = float(model.loss(*val))
        record["seconds"] = time.perf_counter() - start
        if not math.isfinite(record["train_loss"]):
            loss = record["train_loss"]
            raise ValueError(f"the loss became {loss} at epoch {epoch}: lr={lr} is too large")
        history.records.append(record)
    return history
