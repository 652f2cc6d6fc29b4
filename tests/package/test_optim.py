"""Tests for dlbook.optim: scratch optimizers follow torch.optim step for step; the
quadratic step-size condition of the gradient-descent chapter; argument checks."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from dlbook.calculus import max_relative_error
from dlbook.optim import (
    SGD,
    AdaGrad,
    Adam,
    AdamW,
    Quadratic,
    RMSProp,
    gradient_variance,
    seconds_per_step,
    steps_to_target,
    trajectory,
)
from tests.helpers import check_bad_inputs, check_gradient

STEPS = 50

CASES = [
    (SGD, torch.optim.SGD, dict(lr=0.1)),
    (SGD, torch.optim.SGD, dict(lr=0.05, weight_decay=0.1)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    (SGD, torch.optim.SGD, dict(lr=0.02, momentum=0.5, nesterov=True, weight_decay=0.2)),
    (RMSProp, torch.optim.RMSprop, dict(lr=0.01)),
    (RMSProp, torch.optim.RMSprop, dict(lr=0.005, alpha=0.9, eps=1e-6, weight_decay=0.1)),
    (RMSProp, torch.optim.RMSprop, dict(lr=0.005, momentum=0.9)),
    (RMSProp, torch.optim.RMSprop, dict(lr=0.005, centered=True, momentum=0.5, weight_decay=0.01)),
    (Adam, torch.optim.Adam, dict(lr=0.01)),
    (Adam, torch.optim.Adam, dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    (Adam, torch.optim.Adam, dict(lr=0.01, amsgrad=True)),
    (Adam, torch.optim.Adam, dict(lr=0.01, betas=(0.0, 0.9), amsgrad=True, weight_decay=0.05)),
    (AdaGrad, torch.optim.Adagrad, dict(lr=0.1)),
    (AdaGrad, torch.optim.Adagrad, dict(lr=0.2, lr_decay=0.05, weight_decay=0.1,
                                        initial_accumulator_value=0.5, eps=1e-6)),
    (AdamW, torch.optim.AdamW, dict(lr=0.01)),
    (AdamW, torch.optim.AdamW, dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.5)),
    (AdamW, torch.optim.AdamW, dict(lr=0.01, amsgrad=True, weight_decay=0.0)),
]


def _problem(seed: int) -> tuple[list[torch.Tensor], Callable[..., torch.Tensor]]:
    """A random softmax-regression problem in float64, with a weight matrix and a bias."""
    gen = torch.Generator().manual_seed(seed)
    B, D, K = 40, 5, 3
    X = torch.randn(B, D, generator=gen, dtype=torch.float64)
    y = torch.randint(0, K, (B,), generator=gen)
    W = torch.randn(D, K, generator=gen, dtype=torch.float64)
    b = torch.randn(K, generator=gen, dtype=torch.float64)

    def loss(W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(X @ W + b, y)  # (B, K) logits

    return [W, b], loss


def _run(optimizer, params: list[torch.Tensor], loss, hyper: dict) -> list[torch.Tensor]:
    params = [p.detach().clone().requires_grad_(True) for p in params]
    unused = torch.zeros(2, dtype=torch.float64, requires_grad=True)  # never gets a gradient
    opt = optimizer([{"params": params}, {"params": [unused]}], **hyper)
    path = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss(*params).backward()
        opt.step()
        path.append(torch.cat([p.detach().reshape(-1) for p in params]))
    assert torch.equal(unused, torch.zeros(2, dtype=torch.float64))
    return path


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("ours", "theirs", "hyper"), CASES)
def test_trajectory_matches_torch(ours, theirs, hyper, seed):
    params, loss = _problem(seed)
    path_ours = _run(ours, params, loss, hyper)
    path_torch = _run(theirs, params, loss, hyper)
    for t, (a, b) in enumerate(zip(path_ours, path_torch)):
        assert max_relative_error(a, b) < 1e-12, f"step {t + 1} differs"
    # the run must actually move, or agreement proves nothing
    assert (path_ours[-1] - torch.cat([p.reshape(-1) for p in params])).abs().max() > 1e-3


@pytest.mark.parametrize("optimizer", [SGD, AdaGrad, RMSProp, Adam, AdamW])
def test_closure_returns_loss(optimizer):
    w = torch.tensor([2.0, -1.0], dtype=torch.float64, requires_grad=True)
    opt = optimizer([w], lr=0.1)

    def closure():
        opt.zero_grad()
        value = (w**2).sum()
        value.backward()
        return value

    assert opt.step(closure).item() == pytest.approx(5.0)
    assert (w**2).sum().item() < 5.0


def test_works_with_lr_scheduler():
    w = torch.ones(3, requires_grad=True)
    opt = Adam([w], lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    w.sum().backward()
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


def test_adagrad_step_shrinks_like_one_over_root_t():
    """With a constant gradient, s_t = t g^2, so the t-th step is eta / sqrt(t)."""
    w = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = AdaGrad([w], lr=0.5, eps=0.0)
    for t in range(1, 401):
        before = w.detach().clone()
        opt.zero_grad()
        (3.0 * w).sum().backward()  # gradient 3, whatever w is
        opt.step()
        assert (before - w.detach()).item() == pytest.approx(0.5 / t**0.5, rel=1e-12)


def test_adamw_decay_is_decoupled():
    """With a zero loss gradient AdamW shrinks w by (1 - eta omega) per step; Adam with L2 by
    about eta per step in each coordinate, whatever the size of w (its step is normalized)."""
    w0 = torch.tensor([10.0, 1.0], dtype=torch.float64)
    wa = w0.clone().requires_grad_(True)
    ww = w0.clone().requires_grad_(True)
    adam, adamw = Adam([wa], lr=1e-3, weight_decay=0.1), AdamW([ww], lr=1e-3, weight_decay=0.1)
    for _ in range(10):
        for w, opt in ((wa, adam), (ww, adamw)):
            opt.zero_grad()
            (0.0 * w).sum().backward()
            opt.step()
    torch.testing.assert_close(ww.detach(), w0 * (1 - 1e-3 * 0.1) ** 10)
    torch.testing.assert_close(wa.detach(), w0 - 10 * 1e-3, rtol=0, atol=1e-5)


def test_adam_l2_decays_large_gradient_weights_less_than_adamw():
    """The book's experiment: L = sum_j c_j / 2 (w_j - 1 - xi_j)^2 with fresh noise xi each
    step. Adam + L2 settles near the ridge point c_j / (c_j + omega), so small-c weights
    shrink most; AdamW shrinks every weight alike, whatever c_j."""
    c = torch.tensor([0.01, 1.0, 100.0], dtype=torch.float64)
    omega, settled = 0.3, {}
    for name, opt_class in (("adam", Adam), ("adamw", AdamW)):
        gen = torch.Generator().manual_seed(1)
        w = torch.ones(8, 3, dtype=torch.float64)  # 8 independent noise draws per scale
        opt = opt_class([w], lr=0.01, weight_decay=omega)
        late = []
        for t in range(2000):
            xi = torch.randn(8, 3, generator=gen, dtype=torch.float64)
            w.grad = c * (w - 1 - xi)
            opt.step()
            if t >= 1000:
                late.append(w.clone())
        settled[name] = torch.stack(late).mean(dim=(0, 1))
    torch.testing.assert_close(settled["adam"], c / (c + omega), rtol=0, atol=0.06)
    assert settled["adamw"].max() - settled["adamw"].min() < 0.08
    assert settled["adamw"].max() < 0.9 and settled["adam"][-1] > 0.9


# ---- the quadratic: gradient, and the step-size condition eta < 2 / lambda_max ----

@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_quadratic_gradient_matches_autograd(seed):
    gen = torch.Generator().manual_seed(seed)
    M = torch.randn(4, 4, generator=gen, dtype=torch.float64)
    f = Quadratic(M @ M.T + 0.1 * torch.eye(4, dtype=torch.float64),
                  torch.randn(4, generator=gen, dtype=torch.float64))
    check_gradient(f, f.gradient, [torch.randn(4, generator=gen, dtype=torch.float64)])


def test_quadratic_evaluates_a_grid_of_points():
    f = Quadratic.from_eigenvalues([1.0, 10.0], angle=0.3)
    grid = torch.randn(5, 7, 2, dtype=torch.float64)
    assert torch.equal(f(grid)[2, 3], f(grid[2, 3]))
    assert f(grid).shape == (5, 7)


@pytest.mark.parametrize(("eigenvalues", "angle"), [
    ((1.0, 10.0), 0.0), ((1.0, 10.0), 0.7), ((2.0, 2.0), 1.1), ((0.5, 4.0, 20.0), 0.0),
])
def test_step_size_condition(eigenvalues, angle):
    f = Quadratic.from_eigenvalues(eigenvalues, angle=angle)
    lam_max = max(eigenvalues)
    w0 = torch.ones(len(eigenvalues), dtype=torch.float64)
    _, below = trajectory(f, w0, SGD, 300, lr=1.9 / lam_max)
    _, above = trajectory(f, w0, SGD, 300, lr=2.1 / lam_max)
    assert below[-1] < 1e-6 * below[0]
    assert above[-1] > 1e3 * above[0]


def test_gd_error_follows_closed_form():
    """e_t = (I - eta A)^t e_0, the derivation's prediction, for every step."""
    f = Quadratic.from_eigenvalues([1.0, 8.0], angle=0.4)
    eta, steps = 0.2, 25
    w0 = torch.tensor([1.0, -2.0], dtype=torch.float64)
    points, _ = trajectory(f, w0, SGD, steps, lr=eta)
    M = torch.eye(2, dtype=torch.float64) - eta * f.A
    predicted = torch.stack([torch.linalg.matrix_power(M, t) @ w0 for t in range(steps + 1)])
    assert max_relative_error(points, predicted) < 1e-10


def test_optimal_rate():
    """With eta = 2 / (l_min + l_max) the error shrinks by (kappa - 1)/(kappa + 1) per step."""
    f = Quadratic.from_eigenvalues([1.0, 9.0])
    kappa = f.condition_number
    w0 = torch.tensor([1.0, 1.0], dtype=torch.float64)
    points, _ = trajectory(f, w0, SGD, 10, lr=2 / (1.0 + 9.0))
    ratios = points[1:].norm(dim=1) / points[:-1].norm(dim=1)
    torch.testing.assert_close(ratios, torch.full_like(ratios, (kappa - 1) / (kappa + 1)))


# ---- mini-batch measurements ----

def _regression(seed: int, N: int = 300, D: int = 4):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(N, D, generator=gen, dtype=torch.float64)
    y = X @ torch.randn(D, generator=gen, dtype=torch.float64) + 0.5 * torch.randn(
        N, generator=gen, dtype=torch.float64)
    return X, y


def _half_mse(w, X, y):
    return 0.5 * ((X @ w - y) ** 2).mean()


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("batch_size", [1, 20, 300])
def test_gradient_variance_matches_formula(seed, batch_size):
    """E||g_B - g||^2 = sigma^2 / B * (N - B) / (N - 1) for batches without replacement."""
    X, y = _regression(seed)
    N = len(X)
    w = torch.zeros(X.shape[1], dtype=torch.float64)
    g_i = (X @ w - y)[:, None] * X  # (N, D) per-example gradients
    sigma2 = ((g_i - g_i.mean(dim=0)) ** 2).sum(dim=1).mean().item()
    predicted = sigma2 / batch_size * (N - batch_size) / (N - 1)
    samples = 400 if batch_size < N else 3  # a full batch has no noise to average
    measured = gradient_variance(_half_mse, w, X, y, batch_size, samples=samples, seed=seed)
    if batch_size == N:
        assert measured < 1e-20
    else:
        assert measured == pytest.approx(predicted, rel=0.2)


def test_steps_to_target_full_batch_is_gradient_descent():
    X, y = _regression(0)
    w0 = torch.zeros(X.shape[1], dtype=torch.float64)
    points, values = trajectory(lambda w: _half_mse(w, X, y), w0, SGD, 200, lr=0.1)
    target = values[37].item()
    assert steps_to_target(_half_mse, w0, X, y, len(X), target, SGD, lr=0.1) == 37


def test_steps_to_target_gives_up():
    X, y = _regression(1)
    w0 = torch.zeros(X.shape[1], dtype=torch.float64)
    assert steps_to_target(_half_mse, w0, X, y, 8, -1.0, SGD, max_steps=20, lr=0.1) is None


def test_steps_to_target_stops_a_diverging_run_early():
    X, y = _regression(1)
    w0 = torch.zeros(X.shape[1], dtype=torch.float64)
    # full-batch GD with a step far above 2 / lambda_max diverges: it must stop long before
    # max_steps
    calls = 0

    def counting(w, Xb, yb):
        nonlocal calls
        calls += 1
        return _half_mse(w, Xb, yb)

    assert steps_to_target(counting, w0, X, y, len(X), 0.0, SGD, max_steps=10_000, lr=50.0) is None
    assert calls < 100


def test_seconds_per_step_is_positive():
    X, y = _regression(2)
    w0 = torch.zeros(X.shape[1], dtype=torch.float64)
    assert 0 < seconds_per_step(_half_mse, w0, X, y, 16, SGD, steps=3, repeats=2, lr=0.1) < 1


def test_bad_inputs():
    w = torch.zeros(2, requires_grad=True)
    X, y = _regression(2)
    w0 = torch.zeros(X.shape[1], dtype=torch.float64)
    f = Quadratic(torch.eye(2, dtype=torch.float64))
    check_bad_inputs([
        # optimizers: hyper-parameters
        (lambda: SGD([w], lr=-0.1), ValueError, "lr"),
        (lambda: SGD([w], lr=float("nan")), ValueError, "lr"),
        (lambda: SGD([w], lr="0.1"), TypeError, "lr"),
        (lambda: SGD([w], lr=0.1, momentum=-0.5), ValueError, "momentum"),
        (lambda: SGD([w], lr=0.1, dampening=-0.5), ValueError, "dampening"),
        (lambda: SGD([w], lr=0.1, weight_decay=-1.0), ValueError, "weight_decay"),
        (lambda: SGD([w], lr=0.1, nesterov=True),
         ValueError, "Nesterov momentum needs momentum > 0"),
        (lambda: SGD([w], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
         ValueError, "dampening = 0"),
        (lambda: SGD([w], lr=0.1, nesterov="yes"), TypeError, "nesterov"),
        (lambda: RMSProp([w], lr=-1.0), ValueError, "lr"),
        (lambda: RMSProp([w], alpha=1.0), ValueError, "alpha"),
        (lambda: RMSProp([w], alpha=True), TypeError, "alpha"),
        (lambda: RMSProp([w], eps=-1e-8), ValueError, "eps"),
        (lambda: RMSProp([w], momentum=float("inf")), ValueError, "momentum"),
        (lambda: RMSProp([w], centered=1), TypeError, "centered"),
        (lambda: Adam([w], lr=float("nan")), ValueError, "lr"),
        (lambda: Adam([w], lr=None), TypeError, "lr"),
        (lambda: Adam([w], betas=(0.9, 1.0)), ValueError, "betas[1]"),
        (lambda: Adam([w], betas=(-0.1, 0.9)), ValueError, "betas[0]"),
        (lambda: Adam([w], betas=(0.9,)), ValueError, "betas"),
        (lambda: Adam([w], betas=0.9), ValueError, "betas"),
        (lambda: Adam([w], weight_decay=-0.1), ValueError, "weight_decay"),
        (lambda: Adam([w], amsgrad=None), TypeError, "amsgrad"),
        (lambda: AdaGrad([w], lr=-0.1), ValueError, "lr"),
        (lambda: AdaGrad([w], lr_decay=-1.0), ValueError, "lr_decay"),
        (lambda: AdaGrad([w], initial_accumulator_value=-1.0),
         ValueError, "initial_accumulator_value"),
        (lambda: AdaGrad([w], eps="1e-10"), TypeError, "eps"),
        (lambda: AdamW([w], weight_decay=-0.1), ValueError, "weight_decay"),
        (lambda: AdamW([w], betas=(1.0, 0.9)), ValueError, "betas[0]"),
        # optimizers: parameters
        (lambda: SGD([], lr=0.1), ValueError, "params"),
        (lambda: Adam(iter([])), ValueError, "params"),
        (lambda: RMSProp(w), TypeError, "params"),
        (lambda: SGD(None, lr=0.1), TypeError, "params"),
        (lambda: SGD([w, [1.0]], lr=0.1), TypeError, "params[1]"),
        # the quadratic
        (lambda: Quadratic(torch.ones(2, 3)), ValueError, "A"),
        (lambda: Quadratic(torch.tensor([[1.0, 2.0], [0.0, 1.0]])),
         ValueError, "A must be symmetric"),
        (lambda: Quadratic(torch.diag(torch.tensor([1.0, -1.0]))),
         ValueError, "A must be positive definite"),
        (lambda: Quadratic(torch.eye(2, dtype=torch.long)), TypeError, "A"),
        (lambda: Quadratic(torch.eye(2), torch.zeros(3)), ValueError, "w_star"),
        (lambda: Quadratic(torch.eye(2), [0.0, 0.0]), TypeError, "w_star"),
        (lambda: Quadratic.from_eigenvalues([1.0, -2.0]), ValueError, "eigenvalues[1]"),
        (lambda: Quadratic.from_eigenvalues([]), ValueError, "eigenvalues"),
        (lambda: Quadratic.from_eigenvalues("12"), TypeError, "eigenvalues"),
        (lambda: Quadratic.from_eigenvalues([1.0, 2.0, 3.0], angle=0.5), ValueError, "eigenvalues"),
        (lambda: Quadratic.from_eigenvalues([1.0, 2.0], angle=float("nan")), ValueError, "angle"),
        (lambda: Quadratic.from_eigenvalues([1.0, 2.0], dtype=torch.int64), ValueError, "dtype"),
        (lambda: f(torch.ones(3, dtype=torch.float64)), ValueError, "w"),
        (lambda: f.gradient([1.0, 1.0]), TypeError, "w"),
        # trajectory
        (lambda: trajectory(f, torch.ones(1, 2), SGD, 3, lr=0.1), ValueError, "w0"),
        (lambda: trajectory(f, torch.tensor([1.0, float("nan")]), SGD, 3, lr=0.1),
         ValueError, "w0"),
        (lambda: trajectory(f, torch.ones(2), SGD, -1, lr=0.1), ValueError, "steps"),
        (lambda: trajectory(f, torch.ones(2), SGD, True, lr=0.1), TypeError, "steps"),
        (lambda: trajectory(f, torch.ones(2), "SGD", 3, lr=0.1), TypeError, "optimizer"),
        (lambda: trajectory(None, torch.ones(2), SGD, 3, lr=0.1), TypeError, "f"),
        (lambda: trajectory(lambda v: v, torch.ones(2), SGD, 3, lr=0.1), ValueError, "f"),
        # mini-batch measurements
        (lambda: seconds_per_step(_half_mse, w0, X, y, 301, SGD, lr=0.1), ValueError, "batch_size"),
        (lambda: seconds_per_step(_half_mse, w0, X, y, 0, SGD, lr=0.1), ValueError, "batch_size"),
        (lambda: seconds_per_step(_half_mse, w0, X, y, True, SGD, lr=0.1), TypeError, "batch_size"),
        (lambda: seconds_per_step(_half_mse, w0, X, y, 4, SGD, steps=0, lr=0.1),
         ValueError, "steps"),
        (lambda: seconds_per_step(_half_mse, w0, X, y, 4, SGD, repeats=-1, lr=0.1),
         ValueError, "repeats"),
        (lambda: gradient_variance(_half_mse, w0[None], X, y, 4), ValueError, "w"),
        (lambda: gradient_variance(_half_mse, w0, X, y, 4, samples=0), ValueError, "samples"),
        (lambda: gradient_variance(_half_mse, w0, X[:, 0], y, 4), ValueError, "X"),
        (lambda: gradient_variance(_half_mse, w0, X.tolist(), y, 4), TypeError, "X"),
        (lambda: gradient_variance("mse", w0, X, y, 4), TypeError, "loss"),
        (lambda: gradient_variance(lambda w, X, y: X @ w - y, w0, X, y, 4), ValueError, "loss"),
        (lambda: steps_to_target(_half_mse, w0, X, y[:-1], 4, 0.0, lr=0.1), ValueError, "X and y"),
        (lambda: steps_to_target(_half_mse, w0, X, y, 4, float("nan"), lr=0.1),
         ValueError, "target"),
        (lambda: steps_to_target(_half_mse, w0, X, y, 4, 0.0, max_steps=0, lr=0.1),
         ValueError, "max_steps"),
        (lambda: steps_to_target(_half_mse, w0, X, y, 4, 0.0, diverged_factor=-1.0, lr=0.1),
         ValueError, "diverged_factor"),
        (lambda: steps_to_target(_half_mse, w0, X, y, 4, 0.0, seed=1.5, lr=0.1), TypeError, "seed"),
    ])
