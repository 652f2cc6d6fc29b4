"""Time series and forecasting windows (Part 9, "Time-series forecasting").

:func:`sunspots` loads the yearly sunspot numbers 1700-2008 that statsmodels
ships (nothing is downloaded) and splits them *chronologically*: the model is
fitted on the past, chosen on the years after it and tested on the most recent
years, as a forecaster would be. :func:`windows` cuts a series into
(history, future) pairs for supervised training and evaluation.

>>> s = sunspots()
>>> int(s.time[0]), int(s.time[-1]), s.val_start < s.test_start < len(s.values)
(1700, 2008, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dlbook import _checks as check

__all__ = ["TimeSeries", "sunspots", "windows"]


@dataclass(frozen=True)
class TimeSeries:
    """One series split in time: ``values[:val_start]`` trains, ``values[val_start:test_start]``
    validates, ``values[test_start:]`` tests.

    Attributes:
        name: short name for plots.
        time: ``(N,)`` float64 time stamps (years for sunspots).
        values: ``(N,)`` float64 observations.
        val_start, test_start: indices where the validation and test parts begin.
    """

    name: str
    time: torch.Tensor
    values: torch.Tensor
    val_start: int
    test_start: int

    @property
    def train(self) -> torch.Tensor:
        """The training part of ``values``."""
        return self.values[: self.val_start]

    @property
    def val(self) -> torch.Tensor:
        """The validation part of ``values``."""
        return self.values[self.val_start : self.test_start]

    @property
    def test(self) -> torch.Tensor:
        """The test part of ``values``."""
        return self.values[self.test_start :]


def sunspots(*, val_start: int = 1901, test_start: int = 1941) -> TimeSeries:
    """Yearly mean sunspot numbers 1700-2008, split at the years ``val_start`` and ``test_start``."""
    from statsmodels.datasets import sunspots as source  # shipped with statsmodels, offline

    val_start = check.positive_int("val_start", val_start, minimum=1701)
    test_start = check.positive_int("test_start", test_start, minimum=val_start + 1)
    if test_start > 2008:
        raise ValueError(f"test_start must leave some test years before 2008, got {test_start}")
    frame = source.load_pandas().data
    time = torch.tensor(frame["YEAR"].to_numpy(), dtype=torch.float64)
    values = torch.tensor(frame["SUNACTIVITY"].to_numpy(), dtype=torch.float64)
    first = int(time[0])
    return TimeSeries("sunspots", time, values, val_start - first, test_start - first)


def windows(values: torch.Tensor, lags: int, horizon: int = 1, *, start: int | None = None,
            stop: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (history, future) pair whose future lies in ``values[start:stop]``.

    A pair at origin ``t`` is ``values[t - lags:t]`` and ``values[t:t + horizon]``;
    ``start`` defaults to ``lags`` (the first origin with a full history).
    Shapes: values (N,) -> history (M, lags), future (M, horizon).
    """
    check.finite("values", values)
    check.expect_shape(values, "N", "values")
    lags, horizon = check.positive_int("lags", lags), check.positive_int("horizon", horizon)
    start = lags if start is None else check.nonnegative_int("start", start)
    stop = len(values) if stop is None else check.nonnegative_int("stop", stop)
    if start < lags:
        raise ValueError(f"start must be >= lags = {lags} so every history is complete, got {start}")
    if stop > len(values) or stop - start < horizon:
        raise ValueError(f"stop must be <= len(values) = {len(values)} and leave at least horizon = "
                         f"{horizon} values after start = {start}, got stop = {stop}")
    origins = torch.arange(start, stop - horizon + 1)  # (M,)
    history = values[origins.unsqueeze(1) + torch.arange(-lags, 0)]  # (M, lags)
    future = values[origins.unsqueeze(1) + torch.arange(horizon)]  # (M, horizon)
    return history, future
