"""dlbook.accelerators: timing, float formats vs torch.finfo, cast fates, the loss scaler vs GradScaler,
mixed-precision training, graph capture."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from torch import nn

from dlbook.accelerators import (BFLOAT16, FLOAT16, FLOAT32, FloatFormat, LossScaler, ScalerConfig, captured_graphs,
                                 cast_fate, device_name, synchronize, time_call, train_mixed)
from tests.helpers import check_bad_inputs


def test_time_call_measures_the_call_and_runs_warmup_plus_repeats():
    calls = []

    def sleepy() -> None:
        calls.append(1)
        time.sleep(0.02)

    t = time_call(sleepy, device="cpu", repeats=3, warmup=2)
    assert len(calls) == 5
    assert 0.019 <= t < 0.2
    assert time_call(lambda: None, device=torch.device("cpu"), repeats=1, warmup=0, sync=False) < 0.01
    synchronize("cpu")  # a no-op on the CPU, but it must accept the device
    assert device_name("cpu") == "CPU"


def test_time_call_returns_the_median():
    durations = iter([0.0, 0.05, 0.001, 0.001])  # warm-up, then three timed calls

    def uneven() -> None:
        time.sleep(next(durations))

    assert time_call(uneven, device="cpu", repeats=3, warmup=1) < 0.02  # the 0.05 s outlier is ignored


@pytest.mark.parametrize("fmt,dtype", [(FLOAT16, torch.float16), (BFLOAT16, torch.bfloat16),
                                       (FLOAT32, torch.float32), (FloatFormat("float64", 11, 52), torch.float64)])
def test_float_format_limits_equal_finfo_and_casts(fmt, dtype):
    info = torch.finfo(dtype)
    assert fmt.max == info.max and fmt.smallest_normal == info.smallest_normal and fmt.eps == info.eps
    assert fmt.unit_roundoff == info.eps / 2
    assert torch.tensor(fmt.smallest_subnormal, dtype=torch.float64).to(dtype).item() == fmt.smallest_subnormal
    assert torch.tensor(fmt.smallest_subnormal * 0.5, dtype=torch.float64).to(dtype).item() == 0.0  # a tie: to even
    if dtype != torch.float64:
        assert math.isinf(torch.tensor(fmt.max * (1 + fmt.eps), dtype=torch.float64).to(dtype).item())


def test_float16_numbers_from_the_chapter():
    assert FLOAT16.max == 65504 and FLOAT16.smallest_normal == 2.0**-14
    assert FLOAT16.smallest_subnormal == 2.0**-24 and FLOAT16.unit_roundoff == 2.0**-11
    assert BFLOAT16.unit_roundoff == 2.0**-8 and BFLOAT16.smallest_normal == FLOAT32.smallest_normal


def test_cast_fate_against_numpy_float16():
    g = torch.Generator().manual_seed(0)
    x = torch.exp2(torch.empty(20_000).uniform_(-30, 20, generator=g)) * torch.randn(20_000, generator=g).sign()
    x = torch.cat([x, torch.zeros(5), torch.tensor([float("inf"), float("nan")])])
    fate = cast_fate(x, torch.float16)
    values = x.numpy().astype(np.float64)
    values = values[np.isfinite(values) & (values != 0)]
    with np.errstate(over="ignore"):  # overflow to inf is one of the fates under test
        cast = np.abs(values.astype(np.float16))
    expected = {"zero": np.mean(cast == 0), "subnormal": np.mean((cast > 0) & (cast < 2.0**-14)),
                "normal": np.mean((cast >= 2.0**-14) & np.isfinite(cast)), "overflow": np.mean(np.isinf(cast))}
    for key, value in expected.items():
        assert getattr(fate, key) == pytest.approx(value, abs=1e-12), key
    assert min(expected.values()) > 0.01  # every range is exercised
    assert fate.zero + fate.subnormal + fate.normal + fate.overflow == pytest.approx(1.0)
    assert cast_fate(x, torch.bfloat16).zero == 0 and cast_fate(x, torch.float32).normal == 1


def test_scaled_gradients_are_exact_for_powers_of_two():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    loss = nn.functional.cross_entropy(model(x), y)
    plain = torch.autograd.grad(loss, list(model.parameters()))
    for k in (1, 7, 20):
        scaled = torch.autograd.grad(2.0**k * nn.functional.cross_entropy(model(x), y), list(model.parameters()))
        assert all(torch.equal(s / 2.0**k, p) for s, p in zip(scaled, plain))


def _run_both(grads: list[float], config: ScalerConfig) -> tuple[list[bool], list[float], list[float]]:
    """Feed the same per-step gradient (one number, possibly inf/nan) to ours and to torch's scaler."""
    ours_p, torch_p = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    ours, ours_opt = LossScaler(config), torch.optim.SGD([ours_p], lr=0.5)
    ref = torch.amp.GradScaler("cpu", init_scale=config.init_scale, growth_factor=config.growth_factor,
                               backoff_factor=config.backoff_factor, growth_interval=config.growth_interval)
    torch_opt = torch.optim.SGD([torch_p], lr=0.5)
    stepped, scales = [], []
    for value in grads:
        w = torch.tensor([0.25, value])
        ours_opt.zero_grad()
        ours.scale_loss((w * ours_p).sum()).backward()
        stepped.append(ours.step(ours_opt))
        torch_opt.zero_grad()
        ref.scale((w * torch_p).sum()).backward()
        ref.step(torch_opt)
        ref.update()
        assert ours.scale == ref.get_scale() and torch.equal(ours_p, torch_p)
        scales.append(ours.scale)
    return stepped, scales, ours_p.detach().tolist()


def test_loss_scaler_skips_halves_and_grows_like_grad_scaler():
    inf, nan = float("inf"), float("nan")
    stepped, scales, params = _run_both([1.0, inf, 1.0, 1.0, nan, inf, 1.0, 1.0, 1.0],
                                        ScalerConfig(init_scale=8.0, growth_interval=2))
    assert stepped == [True, False, True, True, False, False, True, True, True]
    assert scales == [8.0, 4.0, 4.0, 8.0, 4.0, 2.0, 2.0, 4.0, 4.0]
    assert params == [1.0 - 6 * 0.5 * 0.25, 1.0 - 6 * 0.5 * 1.0]  # six steps taken, gradient (0.25, 1)


def test_loss_scaler_grows_after_exactly_growth_interval_good_steps():
    scaler = LossScaler(ScalerConfig(init_scale=1.0, growth_factor=4.0, growth_interval=3))
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    seen = []
    for _ in range(7):
        opt.zero_grad()
        scaler.scale_loss(p.sum()).backward()
        assert scaler.step(opt)
        seen.append(scaler.scale)
    assert seen == [1.0, 1.0, 4.0, 4.0, 4.0, 16.0, 16.0]
    assert scaler.skipped == 0 and p.item() == -7.0  # unscaled gradient 1 at every step


def test_train_mixed_learns_in_every_precision():
    from dlbook.data import blobs

    data = blobs()
    X, y = data.train.X.float(), data.train.y
    Xv, yv = data.val.X.float(), data.val.y
    results = {}
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(X.shape[1], 32), nn.ReLU(), nn.Linear(32, int(y.max()) + 1))
        scaler = LossScaler(ScalerConfig(growth_interval=5)) if dtype == torch.float16 else None
        run = train_mixed(model, X, y, Xv, yv, dtype=dtype, epochs=5, batch_size=32, lr=1e-2, seed=0, scaler=scaler)
        assert run.losses[-1] < 0.5 * run.losses[0] and run.seconds > 0
        assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay float32
        results[dtype] = run
    assert results[torch.float16].scales and not results[torch.float32].scales
    assert max(results[torch.float16].scales) > 2.0**16  # growth_interval=5 let the scale grow
    for run in results.values():
        assert run.accuracy > 0.8


def test_captured_graphs_and_graph_breaks():
    def chain(x):
        return torch.relu(x * 2 + 1)

    def branchy(x):
        if x.sum() > 0:
            return torch.sin(x)
        return torch.cos(x) - 1

    assert captured_graphs(chain, torch.randn(4)) == [["mul", "add", "relu"]]
    assert captured_graphs(branchy, torch.ones(4)) == [["sum", "gt"], ["sin"]]
    assert captured_graphs(branchy, -torch.ones(4)) == [["sum", "gt"], ["cos", "sub"]]
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    assert captured_graphs(model, torch.randn(2, 3)) == [["linear", "relu"]]


def test_bad_inputs():
    X, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    model = nn.Linear(3, 2)
    check_bad_inputs([
        (lambda: time_call(3, device="cpu"), TypeError, "fn"),
        (lambda: time_call(lambda: None, device="cpu", repeats=0), ValueError, "repeats"),
        (lambda: time_call(lambda: None, device="cpu", warmup=-1), ValueError, "warmup"),
        (lambda: cast_fate(torch.tensor([1, 2]), torch.float16), TypeError, "x"),
        (lambda: cast_fate(torch.zeros(3), torch.float16), ValueError, "x"),
        (lambda: cast_fate(torch.ones(3), torch.int32), TypeError, "dtype"),
        (lambda: ScalerConfig(init_scale=0.0), ValueError, "init_scale"),
        (lambda: ScalerConfig(growth_factor=1.0), ValueError, "growth_factor"),
        (lambda: ScalerConfig(backoff_factor=1.0), ValueError, "backoff_factor"),
        (lambda: ScalerConfig(growth_interval=0), ValueError, "growth_interval"),
        (lambda: LossScaler().scale_loss(torch.tensor(1)), TypeError, "loss"),
        (lambda: LossScaler().step("sgd"), TypeError, "optimizer"),
        (lambda: train_mixed(model, X, y, X, y, dtype=torch.float64), ValueError, "dtype"),
        (lambda: train_mixed(model, X[0], y, X, y), ValueError, "X"),
        (lambda: train_mixed(model, X, y.float(), X, y), TypeError, "y"),
        (lambda: train_mixed(model, X, y[:4], X, y), ValueError, "same length"),
        (lambda: train_mixed(model, X, y, X, y[:3]), ValueError, "same length"),
        (lambda: train_mixed("model", X, y, X, y), TypeError, "model"),
        (lambda: train_mixed(model, X, y, X, y, epochs=0), ValueError, "epochs"),
        (lambda: captured_graphs(None), TypeError, "fn"),
    ])
