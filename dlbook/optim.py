"""Optimizers from scratch (Part 3, "Gradient descent and SGD"; "Momentum, RMSProp and Adam").

``SGD`` (with momentum and Nesterov momentum), ``AdaGrad``, ``RMSProp``, ``Adam`` and
``AdamW`` are
subclasses of ``torch.optim.Optimizer`` that take the same arguments as their
``torch.optim`` namesakes and move the parameters along the same trajectory,
step for step (the tests check this in float64). Each update equation is written
above the line that computes it, with the names the book's derivations use:
``g`` the gradient, ``v`` the velocity, ``s`` the running mean of squared
gradients (AdaGrad: their running sum), ``m`` the first moment.

The module also holds ``Quadratic``, the test surface of the chapter, and
``trajectory``, which runs any optimizer on a function of a few variables and
records where it went, and the mini-batch measurements of the gradient-descent
chapter (``gradient_variance``, ``steps_to_target``, ``seconds_per_step``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch

from dlbook import _checks as check

__all__ = [
    "ScratchOptimizer", "SGD", "AdaGrad", "RMSProp", "Adam", "AdamW", "Quadratic", "trajectory",
    "gradient_variance", "steps_to_target", "seconds_per_step",
]

Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]]


def _params(params: object) -> list[Any]:
    """``params`` as a non-empty list of tensors or parameter-group dicts."""
    if isinstance(params, torch.Tensor) or not isinstance(params, Iterable):
        raise TypeError(f"params must be an iterable of tensors or parameter-group dicts "
                        f"(e.g. model.parameters()), got {type(params).__name__}")
    params = list(params)
    if not params:
        raise ValueError("params is empty: the optimizer has no parameters to update "
                         "(an exhausted model.parameters() generator?)")
    for i, p in enumerate(params):
        if not isinstance(p, dict):
            check.tensor(f"params[{i}]", p)
    return params


def _flag(name: str, value: object) -> bool:
    """``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r:.40}")
    return value


def _betas(betas: object) -> tuple[float, float]:
    """``betas`` as a pair of decays, each in [0, 1)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    return check.fraction("betas[0]", betas[0]), check.fraction("betas[1]", betas[1])


class ScratchOptimizer(torch.optim.Optimizer):
    """What every optimizer of this module does the same way; subclasses write only ``update``."""

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """Take one step; ``closure`` (optional) re-evaluates and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for w in group["params"]:
                if w.grad is None:
                    continue
                g = w.grad
                if group["weight_decay"] != 0:
                    g = self.decay(w, g, group)
                self.update(w, g, self.state[w], group)
        return loss

    def decay(self, w: torch.Tensor, g: torch.Tensor, group: dict[str, Any]) -> torch.Tensor:
        """Apply weight decay; by default as an L2 penalty, whose gradient joins ``g``."""
        # g <- g + omega w   (the gradient of the L2 penalty omega/2 ||w||^2)
        return g + group["weight_decay"] * w

    def update(self, w: torch.Tensor, g: torch.Tensor, state: dict[str, Any],
               group: dict[str, Any]) -> None:
        """Move ``w`` in place, given its gradient ``g`` (weight decay included)."""
        raise NotImplementedError


class SGD(ScratchOptimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum, as ``torch.optim.SGD``.

    >>> w = torch.tensor([1.0], requires_grad=True)
    >>> opt = SGD([w], lr=0.1)
    >>> (w ** 2).sum().backward(); opt.step()
    >>> round(w.item(), 6)  # 1 - 0.1 * 2
    0.8
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        lr = check.nonnegative_float("lr", lr)
        momentum = check.nonnegative_float("momentum", momentum)
        dampening = check.nonnegative_float("dampening", dampening)
        weight_decay = check.nonnegative_float("weight_decay", weight_decay)
        if _flag("nesterov", nesterov) and (momentum <= 0 or dampening != 0):
            raise ValueError(f"Nesterov momentum needs momentum > 0 and dampening = 0, "
                             f"got momentum={momentum}, dampening={dampening}")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(_params(params), defaults)

    def update(self, w: torch.Tensor, g: torch.Tensor, state: dict[str, Any],
               group: dict[str, Any]) -> None:
        """One step for ``w``."""
        lr, mu, tau = group["lr"], group["momentum"], group["dampening"]
        if mu != 0:
            if "v" not in state:
                # v_1 = g_1
                state["v"] = g.clone()
            else:
                # v_t = mu v_{t-1} + (1 - tau) g_t
                state["v"].mul_(mu).add_(g, alpha=1 - tau)
            v = state["v"]
            # Nesterov: step along g_t + mu v_t; heavy ball: along v_t
            g = g + mu * v if group["nesterov"] else v
        # w <- w - eta g
        w.add_(g, alpha=-lr)


class AdaGrad(ScratchOptimizer):
    """AdaGrad: each coordinate's step divided by the root of its summed squared gradients."""

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ) -> None:
        lr = check.nonnegative_float("lr", lr)
        lr_decay = check.nonnegative_float("lr_decay", lr_decay)
        weight_decay = check.nonnegative_float("weight_decay", weight_decay)
        initial = check.nonnegative_float("initial_accumulator_value", initial_accumulator_value)
        eps = check.nonnegative_float("eps", eps)
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial, eps=eps)
        super().__init__(_params(params), defaults)

    def update(self, w: torch.Tensor, g: torch.Tensor, state: dict[str, Any],
               group: dict[str, Any]) -> None:
        """One step for ``w``."""
        if not state:
            state["t"] = 0
            state["s"] = torch.full_like(w, group["initial_accumulator_value"])
        state["t"] += 1
        # eta_t = eta / (1 + (t - 1) lr_decay)
        lr = group["lr"] / (1 + (state["t"] - 1) * group["lr_decay"])
        # s_t = s_{t-1} + g_t^2   (a sum, not an average: s_t only grows)
        state["s"].addcmul_(g, g)
        # w <- w - eta_t g_t / (sqrt(s_t) + eps)
        w.addcdiv_(g, state["s"].sqrt().add_(group["eps"]), value=-lr)


class RMSProp(ScratchOptimizer):
    """RMSProp: each coordinate's step divided by a running RMS of its gradients."""

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        lr = check.nonnegative_float("lr", lr)
        alpha = check.fraction("alpha", alpha)
        eps = check.nonnegative_float("eps", eps)
        momentum = check.nonnegative_float("momentum", momentum)
        weight_decay = check.nonnegative_float("weight_decay", weight_decay)
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=_flag("centered", centered))
        super().__init__(_params(params), defaults)

    def update(self, w: torch.Tensor, g: torch.Tensor, state: dict[str, Any],
               group: dict[str, Any]) -> None:
        """One step for ``w``."""
        lr, alpha, eps, mu = group["lr"], group["alpha"], group["eps"], group["momentum"]
        if not state:
            state["s"] = torch.zeros_like(w)
            state["g_bar"] = torch.zeros_like(w)
            state["v"] = torch.zeros_like(w)
        s = state["s"]
        # s_t = alpha s_{t-1} + (1 - alpha) g_t^2
        s.mul_(alpha).addcmul_(g, g, value=1 - alpha)
        if group["centered"]:
            # g_bar_t = alpha g_bar_{t-1} + (1 - alpha) g_t
            # sigma_t = sqrt(s_t - g_bar_t^2)
            state["g_bar"].lerp_(g, 1 - alpha)
            rms = (s - state["g_bar"] ** 2).sqrt()
        else:
            rms = s.sqrt()
        denominator = rms + eps
        if mu > 0:
            # v_t = mu v_{t-1} + g_t / (sqrt(s_t) + eps);  w <- w - eta v_t
            state["v"].mul_(mu).addcdiv_(g, denominator)
            w.add_(state["v"], alpha=-lr)
        else:
            # w <- w - eta g_t / (sqrt(s_t) + eps)
            w.addcdiv_(g, denominator, value=-lr)


class Adam(ScratchOptimizer):
    """Adam: momentum and RMSProp scaling, both bias-corrected, as ``torch.optim.Adam``."""

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        lr = check.nonnegative_float("lr", lr)
        betas = _betas(betas)
        eps = check.nonnegative_float("eps", eps)
        weight_decay = check.nonnegative_float("weight_decay", weight_decay)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=_flag("amsgrad", amsgrad))
        super().__init__(_params(params), defaults)

    def update(self, w: torch.Tensor, g: torch.Tensor, state: dict[str, Any],
               group: dict[str, Any]) -> None:
        """One step for ``w``."""
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        if not state:
            state["t"] = 0
            state["m"] = torch.zeros_like(w)
            state["s"] = torch.zeros_like(w)
            state["s_max"] = torch.zeros_like(w)
        state["t"] += 1
        t, m, s = state["t"], state["m"], state["s"]
        # m_t = beta1 m_{t-1} + (1 - beta1) g_t
        m.lerp_(g, 1 - beta1)
        # s_t = beta2 s_{t-1} + (1 - beta2) g_t^2
        s.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        if group["amsgrad"]:
            # AMSGrad: s_t <- max(s_1, ..., s_t), so the step never grows back
            torch.maximum(state["s_max"], s, out=state["s_max"])
            s = state["s_max"]
        # bias corrections: m_hat = m_t / (1 - beta1^t),  s_hat = s_t / (1 - beta2^t)
        correction1 = 1 - beta1**t
        correction2 = 1 - beta2**t
        # w <- w - eta m_hat / (sqrt(s_hat) + eps)
        denominator = (s.sqrt() / math.sqrt(correction2)).add_(eps)
        w.addcdiv_(m, denominator, value=-lr / correction1)


class AdamW(Adam):
    """Adam with decoupled weight decay, as ``torch.optim.AdamW``: the decay skips the rescaling."""

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad)

    def decay(self, w: torch.Tensor, g: torch.Tensor, group: dict[str, Any]) -> torch.Tensor:
        """Shrink ``w`` directly and leave the gradient that Adam's step rescales alone."""
        # w <- (1 - eta omega) w
        w.mul_(1 - group["lr"] * group["weight_decay"])
        return g


def _real(name: str, value: object) -> float:
    """``value`` as a finite float of any sign."""
    return check.fraction(name, value, low=-math.inf, high=math.inf, closed="()")


def _function(name: str, f: object) -> Callable[..., torch.Tensor]:
    """``f`` if it can be called; a ``TypeError`` naming it otherwise."""
    if not callable(f):
        raise TypeError(f"{name} must be callable, got {type(f).__name__} {f!r:.40}")
    return f


def _scalar(name: str, value: object) -> torch.Tensor:
    """``value`` if it is a one-element tensor, as a loss must be."""
    if check.tensor(name, value).numel() != 1:
        raise ValueError(f"{name} must return a scalar, got shape {tuple(value.shape)}")
    return value


class Quadratic:
    """The quadratic bowl ``f(w) = 1/2 (w - w*)^T A (w - w*)``, ``A`` ``(D, D)`` positive definite.

    >>> f = Quadratic.from_eigenvalues([1.0, 10.0])
    >>> f.condition_number
    10.0
    """

    def __init__(self, A: torch.Tensor, w_star: torch.Tensor | None = None) -> None:
        D = check.expect_shape(check.finite("A", A), "D D", "A")["D"]
        if not torch.allclose(A, A.T):
            raise ValueError("A must be symmetric")
        w_star = torch.zeros(D, dtype=A.dtype) if w_star is None else check.finite("w_star", w_star)
        check.expect_shape(w_star, "D", "w_star", D=D)
        self.A = A
        self.w_star = w_star.to(A.dtype)
        self.eigenvalues = torch.linalg.eigvalsh(A)  # ascending
        if not self.eigenvalues[0] > 0:
            raise ValueError(
                f"A must be positive definite; smallest eigenvalue {self.eigenvalues[0]:.3g}"
            )

    @classmethod
    def from_eigenvalues(
        cls, eigenvalues: Iterable[float], angle: float = 0.0, dtype: torch.dtype = torch.float64
    ) -> Quadratic:
        """A bowl with the given curvatures, its axes rotated by ``angle`` radians (2-D only)."""
        if isinstance(eigenvalues, (str, bytes)) or not isinstance(eigenvalues, Iterable):
            got = type(eigenvalues).__name__
            raise TypeError(f"eigenvalues must be a list of numbers > 0, got {got}")
        lam = [check.positive_float(f"eigenvalues[{i}]", v) for i, v in enumerate(eigenvalues)]
        angle = _real("angle", angle)
        dtype = check.one_of("dtype", dtype, [torch.float32, torch.float64])
        if not lam or (angle != 0.0 and len(lam) != 2):
            raise ValueError(f"eigenvalues must hold 2 numbers for a rotation (any number > 0 "
                             f"when angle is 0), got {len(lam)}")
        c, s = math.cos(angle), math.sin(angle)
        rotation = torch.tensor([[c, -s], [s, c]], dtype=dtype)
        Q = rotation if angle else torch.eye(len(lam), dtype=dtype)
        # A = Q diag(lambda) Q^T
        return cls(Q @ torch.diag(torch.tensor(lam, dtype=dtype)) @ Q.T)

    @property
    def condition_number(self) -> float:
        """kappa = lambda_max / lambda_min."""
        return float(self.eigenvalues[-1] / self.eigenvalues[0])

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        """f(w) for ``w`` of shape ``(D,)``, or ``(..., D)`` for a batch of points."""
        e = self._offset(w)  # (..., D)
        # f = 1/2 e^T A e
        return 0.5 * ((e @ self.A) * e).sum(dim=-1)

    def gradient(self, w: torch.Tensor) -> torch.Tensor:
        """The hand-derived gradient ``A (w - w*)``, shaped like ``w``."""
        return self._offset(w) @ self.A  # A is symmetric, so e A = (A e)^T

    def _offset(self, w: torch.Tensor) -> torch.Tensor:
        """``w - w*`` after checking that ``w`` ends in the bowl's dimension ``D``."""
        D = len(self.w_star)
        if check.floating("w", w).dim() == 0 or w.shape[-1] != D:
            raise ValueError(f"expected w of shape ({D},) or (..., {D}), got {tuple(w.shape)}")
        return w - self.w_star


def trajectory(
    f: Callable[[torch.Tensor], torch.Tensor],
    w0: torch.Tensor,
    optimizer: Callable[..., torch.optim.Optimizer],
    steps: int,
    **hyper: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``optimizer([w], **hyper)`` on ``f`` from ``w0`` ``(D,)`` and record the path.

    Returns the points visited, ``(steps + 1, D)``, and the values of ``f`` there, ``(steps + 1,)``.
    """
    f, optimizer = _function("f", f), _function("optimizer", optimizer)
    check.expect_shape(check.finite("w0", w0), "D", "w0")
    steps = check.nonnegative_int("steps", steps)
    w = w0.detach().clone().requires_grad_(True)
    opt = optimizer([w], **hyper)
    points, values = [w.detach().clone()], []
    for _ in range(steps):
        opt.zero_grad()
        loss = _scalar("f", f(w))
        loss.backward()
        values.append(loss.detach().reshape(()))
        opt.step()
        points.append(w.detach().clone())
    with torch.no_grad():
        values.append(_scalar("f", f(w)).detach().reshape(()))
    return torch.stack(points), torch.stack(values)  # (steps + 1, D), (steps + 1,)


Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _check_data(loss: object, w: torch.Tensor, X: torch.Tensor, y: torch.Tensor,
                batch_size: int, w_name: str = "w") -> int:
    """``batch_size``, after checking ``loss``, ``w`` ``(D,)``, ``X`` and ``y`` ``(N, ...)``."""
    _function("loss", loss)
    check.expect_shape(check.finite(w_name, w), "D", w_name)
    if check.tensor("X", X).dim() < 2:
        raise ValueError(f"expected X of shape (N, D) or (N, ...), got {tuple(X.shape)}")
    N = check.same_length(X=X, y=check.tensor("y", y))
    batch_size = check.positive_int("batch_size", batch_size)
    if batch_size > N:
        raise ValueError(f"batch_size must be in [1, {N}] (N examples), got {batch_size}")
    return batch_size


def _gradient(loss: Loss, w: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    w = w.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(_scalar("loss", loss(w, X, y)), w)
    return g


def gradient_variance(
    loss: Loss, w: torch.Tensor, X: torch.Tensor, y: torch.Tensor, batch_size: int,
    *, samples: int = 200, seed: int = 0,
) -> float:
    """The mean squared distance ``E ||g_B - g||^2`` between mini-batch gradients and the full one.

    ``loss(w, X_batch, y_batch)`` returns the mean loss of a batch; each of the
    ``samples`` mini-batches is ``batch_size`` examples drawn without replacement.
    """
    batch_size = _check_data(loss, w, X, y, batch_size)
    samples, seed = check.positive_int("samples", samples), check.nonnegative_int("seed", seed)
    gen = torch.Generator().manual_seed(seed)
    g_full = _gradient(loss, w, X, y)  # (D,)
    total = 0.0
    for _ in range(samples):
        idx = torch.randperm(len(X), generator=gen)[:batch_size].to(X.device)
        total += float(((_gradient(loss, w, X[idx], y[idx]) - g_full) ** 2).sum())
    return total / samples


def steps_to_target(
    loss: Loss, w0: torch.Tensor, X: torch.Tensor, y: torch.Tensor, batch_size: int,
    target: float, optimizer: Callable[..., torch.optim.Optimizer] = SGD,
    *, max_steps: int = 5000, diverged_factor: float = 100.0, seed: int = 0, **hyper: Any,
) -> int | None:
    """Mini-batch steps until the full training loss falls to ``target``; ``None`` if it never does.

    A run gives up after ``max_steps``, or at once when its loss becomes
    non-finite or exceeds ``diverged_factor`` times the starting loss.
    """
    batch_size = _check_data(loss, w0, X, y, batch_size, "w0")
    target, optimizer = _real("target", target), _function("optimizer", optimizer)
    max_steps = check.positive_int("max_steps", max_steps)
    diverged_factor = check.positive_float("diverged_factor", diverged_factor)
    gen = torch.Generator().manual_seed(check.nonnegative_int("seed", seed))
    w = w0.detach().clone().requires_grad_(True)
    opt = optimizer([w], **hyper)
    with torch.no_grad():
        give_up = diverged_factor * float(_scalar("loss", loss(w, X, y)))
    for step in range(1, max_steps + 1):
        idx = torch.randperm(len(X), generator=gen)[:batch_size].to(X.device)
        opt.zero_grad()
        loss(w, X[idx], y[idx]).backward()
        opt.step()
        with torch.no_grad():
            value = float(loss(w, X, y))
        if value <= target:
            return step
        if not math.isfinite(value) or value > give_up:
            return None
    return None


def seconds_per_step(
    loss: Loss, w0: torch.Tensor, X: torch.Tensor, y: torch.Tensor, batch_size: int,
    optimizer: Callable[..., torch.optim.Optimizer] = SGD, *, steps: int = 20, repeats: int = 5,
    seed: int = 0, **hyper: Any,
) -> float:
    """The wall-clock seconds one mini-batch step of ``steps_to_target`` takes.

    The steps are timed in ``repeats`` rounds of ``steps``, and the fastest round
    counts, as in ``timeit``: other programs on the machine only ever slow a round down.
    """
    batch_size = _check_data(loss, w0, X, y, batch_size, "w0")
    optimizer = _function("optimizer", optimizer)
    steps, repeats = check.positive_int("steps", steps), check.positive_int("repeats", repeats)
    gen = torch.Generator().manual_seed(check.nonnegative_int("seed", seed))
    w = w0.detach().clone().requires_grad_(True)
    opt = optimizer([w], **hyper)
    rounds = []
    for _ in range(repeats):
        if X.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            idx = torch.randperm(len(X), generator=gen)[:batch_size].to(X.device)
            opt.zero_grad()
            loss(w, X[idx], y[idx]).backward()
            opt.step()
        if X.device.type == "cuda":
            torch.cuda.synchronize()
        rounds.append((time.perf_counter() - start) / steps)
    return min(rounds)
