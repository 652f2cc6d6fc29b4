"""Time-series forecasting: baselines, least-squares autoregression and a recurrent forecaster
(Part 9, "Time-series forecasting").

Every forecaster maps a batch of histories ``(M, L)`` (oldest value first) to
forecasts of the next ``horizon`` values ``(M, H)``. The baselines need no
training (:func:`persistence`, :func:`seasonal_naive`); the linear
autoregressive model is fitted in closed form (:func:`fit_ar`); the
:class:`RecurrentForecaster` is a GRU or LSTM trained by gradient descent.
Multi-step forecasts of the one-step models feed their own predictions back
(:func:`recursive_forecast`). :func:`block_bootstrap` puts an interval on a
mean error computed from autocorrelated test windows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from dlbook import _checks as check
from dlbook.data.series import windows

__all__ = [
    "persistence", "seasonal_naive", "LinearAR", "fit_ar", "recursive_forecast", "ForecasterConfig",
    "RecurrentForecaster", "block_bootstrap",
]


def _history(history: object, minimum: int = 1) -> torch.Tensor:
    """``history`` if it is a finite ``(M, L)`` float tensor with ``L >= minimum``."""
    sizes = check.expect_shape(check.finite("history", history), "M L", "history")
    if sizes["L"] < minimum:
        raise ValueError(f"history must hold at least {minimum} past values per row, got {sizes['L']}")
    return history


def persistence(history: torch.Tensor, horizon: int) -> torch.Tensor:
    """Tomorrow equals today: every forecast is the last observed value. (M, L) -> (M, H)."""
    history, horizon = _history(history), check.positive_int("horizon", horizon)
    # y_hat_{t+h} = y_t
    return history[:, -1:].expand(-1, horizon).clone()


def seasonal_naive(history: torch.Tensor, horizon: int, period: int = 11) -> torch.Tensor:
    """Next cycle equals the last: the value one period earlier. (M, L) -> (M, H)."""
    period = check.positive_int("period", period)
    history, horizon = _history(history, period), check.positive_int("horizon", horizon)
    L = history.shape[1]
    # y_hat_{t+h} = y_{t+h-k*period}, with k the smallest whole number of periods that reaches the past
    steps = torch.arange(1, horizon + 1)
    back = (steps - 1) - period * torch.ceil(steps / period).long()  # in [-period, -1]
    return history[:, L + back]


@dataclass(frozen=True)
class LinearAR:
    """A linear autoregressive model: y_t = a_0 + a_1 y_{t-1} + ... + a_p y_{t-p}."""

    coef: torch.Tensor  # (p + 1,): a_0, then a_1 (for y_{t-1}) ... a_p

    @property
    def order(self) -> int:
        """The number of lags, p."""
        return len(self.coef) - 1

    def step(self, history: torch.Tensor) -> torch.Tensor:
        """One-step forecast from the last p values of each row. (M, L) -> (M,)."""
        history = _history(history, self.order)
        p = self.order
        lags = history[:, -p:].flip(1) if p else history[:, :0]  # (M, p): y_{t-1}, ..., y_{t-p}
        # y_hat_t = a_0 + sum_i a_i y_{t-i}
        return self.coef[0] + lags @ self.coef[1:].to(history.dtype)

    def forecast(self, history: torch.Tensor, horizon: int) -> torch.Tensor:
        """``horizon`` steps ahead, each fed back as input to the next. (M, L) -> (M, H)."""
        return recursive_forecast(self.step, history, horizon)


def fit_ar(series: torch.Tensor, order: int) -> LinearAR:
    """Least-squares fit of an AR(order) model with intercept to ``series`` (N,)."""
    order = check.nonnegative_int("order", order)
    check.finite("series", series)
    check.expect_shape(series, "N", "series")
    if len(series) < 2 * order + 2:
        raise ValueError(f"series of length {len(series)} is too short to fit order = {order}: "
                         f"need at least {2 * order + 2} values")
    if order == 0:
        return LinearAR(series.mean().reshape(1))
    history, target = windows(series, order)  # (M, p), (M, 1)
    # design matrix A: one row [1, y_{t-1}, ..., y_{t-p}] per origin t
    A = torch.cat([torch.ones_like(history[:, :1]), history.flip(1)], dim=1)  # (M, p + 1)
    # theta = argmin ||A theta - y||^2, i.e. (A^T A) theta = A^T y, solved by QR
    theta = torch.linalg.lstsq(A, target).solution  # (p + 1, 1)
    return LinearAR(theta[:, 0])


def recursive_forecast(step: Callable[[torch.Tensor], torch.Tensor], history: torch.Tensor,
                       horizon: int) -> torch.Tensor:
    """Multi-step forecast from a one-step model: append each prediction and predict again.

    Shapes: history (M, L) -> (M, horizon); ``step`` maps (M, L) to (M,) or (M, 1).
    """
    history, horizon = _history(history), check.positive_int("horizon", horizon)
    if not callable(step):
        raise TypeError(f"step must be a callable (M, L) -> (M,), got {type(step).__name__}")
    out = []
    for _ in range(horizon):
        y_hat = step(history).reshape(len(history), 1)  # (M, 1)
        out.append(y_hat)
        # slide the window: drop the oldest value, append the forecast
        history = torch.cat([history[:, 1:], y_hat.to(history.dtype)], dim=1)
    return torch.cat(out, dim=1)


@dataclass
class ForecasterConfig:
    """Sizes of a recurrent one-step forecaster."""

    hidden_size: int = 32
    num_layers: int = 1
    cell: str = "gru"  # "gru" or "lstm"

    def __post_init__(self) -> None:
        self.hidden_size = check.positive_int("hidden_size", self.hidden_size)
        self.num_layers = check.positive_int("num_layers", self.num_layers)
        self.cell = check.one_of("cell", self.cell, ("gru", "lstm"))


def _finite_number(name: str, value: object) -> float:
    """``value`` as a finite float of either sign."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a finite number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return float(value)


class RecurrentForecaster(nn.Module):
    """Reads a history and predicts the next value; scales inputs and outputs with the training
    data's mean and standard deviation. (M, L) -> (M, 1)."""

    def __init__(self, config: ForecasterConfig, mean: float, std: float) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("mean", torch.tensor(_finite_number("mean", mean)))
        self.register_buffer("std", torch.tensor(check.positive_float("std", std)))
        rnn = nn.GRU if config.cell == "gru" else nn.LSTM
        self.rnn = rnn(1, config.hidden_size, config.num_layers, batch_first=True)
        self.head = nn.Linear(config.hidden_size, 1)

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        """Float64 histories are converted to the model's float32."""
        history = check.as_float_like("history", _history(history), self.head.weight)
        z = ((history - self.mean) / self.std).unsqueeze(2)  # (M, L, 1), standardized
        h, _ = self.rnn(z)  # (M, L, H)
        # y_hat = mean + std * (w^T h_L + b)
        return self.mean + self.std * self.head(h[:, -1])  # (M, 1)

    @torch.no_grad()
    def forecast(self, history: torch.Tensor, horizon: int) -> torch.Tensor:
        """``horizon`` steps ahead by feeding forecasts back. (M, L) -> (M, H), history's dtype."""
        return recursive_forecast(self, history, horizon)


def block_bootstrap(values: torch.Tensor | np.ndarray, *, block: int = 5, n_boot: int = 2000,
                    level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile interval for the mean of ``values`` (M,), resampling blocks of consecutive
    values so that their autocorrelation is kept (the moving-block bootstrap)."""
    values = torch.as_tensor(values, dtype=torch.float64) if isinstance(values, np.ndarray) else values
    check.finite("values", values)
    M = check.expect_shape(values, "M", "values")["M"]
    block = check.positive_int("block", block)
    if block > M:
        raise ValueError(f"block = {block} is longer than the {M} values")
    n_boot, level = check.positive_int("n_boot", n_boot), check.fraction("level", level, closed="()")
    g = torch.Generator().manual_seed(check.nonnegative_int("seed", seed))
    n_blocks = math.ceil(M / block)
    starts = torch.randint(0, M - block + 1, (n_boot, n_blocks), generator=g)  # (n_boot, n_blocks)
    idx = (starts.unsqueeze(2) + torch.arange(block)).flatten(1)[:, :M]  # (n_boot, M)
    means = values.cpu().double()[idx].mean(dim=1)  # (n_boot,)
    low, high = torch.quantile(means, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64))
    return float(low), float(high)
