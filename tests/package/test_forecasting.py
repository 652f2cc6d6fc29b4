"""dlbook.forecasting and dlbook.data.series: windows, baselines, least squares, recursion, bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from statsmodels.tsa.ar_model import AutoReg

from dlbook.data.series import sunspots, windows
from dlbook.forecasting import (ForecasterConfig, LinearAR, RecurrentForecaster, block_bootstrap, fit_ar,
                                persistence, recursive_forecast, seasonal_naive)
from tests.helpers import check_bad_inputs


def test_sunspots_split_is_chronological_and_windows_align():
    s = sunspots(val_start=1901, test_start=1941)
    assert len(s.train) + len(s.val) + len(s.test) == 309
    assert int(s.time[s.val_start]) == 1901 and int(s.time[s.test_start]) == 1941
    history, future = windows(s.values, 5, 3, start=s.test_start)
    assert history.shape == (len(s.test) - 2, 5) and future.shape == (len(s.test) - 2, 3)
    torch.testing.assert_close(history[0], s.values[s.test_start - 5:s.test_start])
    torch.testing.assert_close(future[0], s.values[s.test_start:s.test_start + 3])


@pytest.mark.parametrize("order", [1, 2, 9, 15])
def test_least_squares_ar_matches_statsmodels_and_numpy(order):
    y = sunspots().train
    coef = fit_ar(y, order).coef.numpy()
    np.testing.assert_allclose(coef, AutoReg(y.numpy(), lags=order, trend="c").fit().params, rtol=1e-8, atol=1e-9)
    lags = np.lib.stride_tricks.sliding_window_view(y.numpy(), order + 1)
    A = np.column_stack([np.ones(len(lags)), lags[:, -2::-1]])
    np.testing.assert_allclose(coef, np.linalg.lstsq(A, lags[:, -1], rcond=None)[0], rtol=1e-8, atol=1e-9)


def test_ar_recovers_a_known_process_and_forecasts_recursively():
    g = torch.Generator().manual_seed(0)
    y = torch.zeros(5000, dtype=torch.float64)
    noise = torch.randn(5000, dtype=torch.float64, generator=g)
    for t in range(2, 5000):
        y[t] = 1.0 + 1.2 * y[t - 1] - 0.5 * y[t - 2] + noise[t]
    model = fit_ar(y, 2)
    torch.testing.assert_close(model.coef, torch.tensor([1.0, 1.2, -0.5], dtype=torch.float64), atol=0.05, rtol=0)
    exact = LinearAR(torch.tensor([1.0, 1.2, -0.5], dtype=torch.float64))
    history = torch.tensor([[0.0, 2.0, 3.0]], dtype=torch.float64)
    step1 = 1.0 + 1.2 * 3.0 - 0.5 * 2.0
    step2 = 1.0 + 1.2 * step1 - 0.5 * 3.0
    torch.testing.assert_close(exact.forecast(history, 2), torch.tensor([[step1, step2]], dtype=torch.float64))


def test_baselines():
    history = torch.arange(30.0).reshape(1, 30)
    assert persistence(history, 3).tolist() == [[29.0] * 3]
    # y_{t+h} = y_{t+h-11k}: one period back for h <= 11, two for h in 12..22
    assert seasonal_naive(history, 13).tolist()[0] == [19.0 + (h - 1) % 11 for h in range(1, 14)]
    assert seasonal_naive(history, 2, period=1).tolist() == [[29.0, 29.0]]
    assert recursive_forecast(lambda h: h[:, -1] + 1, history, 3).tolist() == [[30.0, 31.0, 32.0]]


def test_recurrent_forecaster_shapes_and_float64_conversion():
    torch.manual_seed(0)
    for cell in ("gru", "lstm"):
        model = RecurrentForecaster(ForecasterConfig(hidden_size=4, cell=cell), mean=50.0, std=40.0)
        x = torch.rand(3, 7, dtype=torch.float64) * 100
        assert model(x).shape == (3, 1) and model(x).dtype == torch.float32
        assert model.forecast(x, 4).shape == (3, 4)


def test_block_bootstrap_covers_the_mean_and_widens_with_blocks():
    g = torch.Generator().manual_seed(0)
    values = torch.randn(200, dtype=torch.float64, generator=g).cumsum(0) * 0.1 + 3  # autocorrelated
    low1, high1 = block_bootstrap(values, block=1)
    low20, high20 = block_bootstrap(values, block=20)
    assert low1 < values.mean() < high1 and low20 < values.mean() < high20
    assert high20 - low20 > high1 - low1
    assert block_bootstrap(values, seed=3) == block_bootstrap(values, seed=3)


def test_bad_inputs():
    s = sunspots()
    h = torch.rand(4, 12, dtype=torch.float64)
    check_bad_inputs([
        (lambda: sunspots(val_start=1600), ValueError, "val_start"),
        (lambda: sunspots(val_start=1900, test_start=1900), ValueError, "test_start"),
        (lambda: sunspots(test_start=2010), ValueError, "test_start"),
        (lambda: windows(s.values.tolist(), 3), TypeError, "values"),
        (lambda: windows(s.values.reshape(1, -1), 3), ValueError, "values"),
        (lambda: windows(torch.tensor([1.0, float("nan"), 2.0]), 1), ValueError, "values"),
        (lambda: windows(s.values, 0), ValueError, "lags"),
        (lambda: windows(s.values, 3, horizon=True), TypeError, "horizon"),
        (lambda: windows(s.values, 3, start=2), ValueError, "start"),
        (lambda: windows(s.values, 3, stop=400), ValueError, "stop"),
        (lambda: persistence(h[0], 2), ValueError, "history"),
        (lambda: persistence(h[:0], 2), ValueError, "history"),
        (lambda: persistence(h.long(), 2), TypeError, "history"),
        (lambda: persistence(h, 0), ValueError, "horizon"),
        (lambda: seasonal_naive(h, 2, period=20), ValueError, "history"),
        (lambda: seasonal_naive(h, 2, period=0), ValueError, "period"),
        (lambda: fit_ar(s.train, -1), ValueError, "order"),
        (lambda: fit_ar(s.train[:5], 3), ValueError, "too short"),
        (lambda: fit_ar(s.train.reshape(1, -1), 3), ValueError, "series"),
        (lambda: fit_ar(None, 3), TypeError, "series"),
        (lambda: fit_ar(s.train, 3).step(h[:, :2]), ValueError, "history"),
        (lambda: recursive_forecast("persistence", h, 2), TypeError, "step"),
        (lambda: ForecasterConfig(cell="rnn"), ValueError, "cell"),
        (lambda: ForecasterConfig(hidden_size=0), ValueError, "hidden_size"),
        (lambda: RecurrentForecaster(ForecasterConfig(), mean=0.0, std=0.0), ValueError, "std"),
        (lambda: RecurrentForecaster(ForecasterConfig(), mean=float("inf"), std=1.0), ValueError, "mean"),
        (lambda: block_bootstrap(torch.ones(5), block=6), ValueError, "block"),
        (lambda: block_bootstrap(torch.ones(5), level=1.0), ValueError, "level"),
        (lambda: block_bootstrap(torch.ones(5, 2)), ValueError, "values"),
        (lambda: block_bootstrap([1.0, 2.0]), TypeError, "values"),
    ])
