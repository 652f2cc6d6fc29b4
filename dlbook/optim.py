"""Optimizers from scratch (Part 3, "Gradient descent and SGD" and "Momentum, RMSProp
and Adam").

:class:`SGD` (with momentum and Nesterov momentum), :class:`RMSProp` and
:class:`Adam` are subclasses of :class:`torch.optim.Optimizer` that take the same
arguments as their ``torch.optim`` namesakes and move the parameters along the
same trajectory, step for step (the tests check this in float64). Each update
equation is written above the line that computes it, with the names the book's
derivations use: ``g`` the gradient, ``v`` the velocity, ``s`` the running mean of
squared gradients, ``m`` the first moment.

The module also holds :class:`Quadratic`, the test surface of the chapter, and
:func:`trajectory`, which runs any optimizer on a function of a few variables and
records where it went.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = [
    "ScratchOptimizer", "SGD", "RMSProp", "Adam", "Quadratic", "trajectory",
    "gradient_variance", "steps_to_target", "seconds_per_step",
]

Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]]


def _check_nonnegative(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r})")
    if not value >= 0.0:  # also rejects NaN
        raise ValueError(f"{name} must be >= 0, got {value}")


def _check_fraction(name: str, value: float) -> None:
    _check_nonnegative(name, value)
    if not value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


class ScratchOptimizer(torch.optim.Optimizer):
    """What every optimizer of this module does the same way; subclasses write only the update.

    :meth:`step` evaluates the optional closure, adds the weight-decay term to each
    parameter's gradient, and hands the parameter, its gradient, its state and its
    group's hyper-parameters to :meth:`update`, which moves the parameter in place.
    Every subclass stores ``weight_decay`` in its parameter groups.
    """

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
                    # g <- g + lambda w   (the gradient of the L2 penalty lambda/2 ||w||^2)
                    g = g + group["weight_decay"] * w
                self.update(w, g, self.state[w], group)
        return loss

    def update(self, w: torch.Tensor, g: torch.Tensor, state: dict[str, Any],
               group: dict[str, Any]) -> None:
        """Move ``w`` in place, given its gradient ``g`` (weight decay included)."""
        raise NotImplementedError


class SGD(ScratchOptimizer):
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum.

    With ``momentum=0`` each step is :math:`w \leftarrow w - \eta g`. With momentum
    :math:`\mu > 0` the step follows a velocity
    :math:`v_t = \mu v_{t-1} + (1 - \tau) g_t` (with :math:`v_1 = g_1`), as in
    ``torch.optim.SGD``.

    Args:
        params: the tensors to optimize, or parameter-group dicts.
        lr: the step size :math:`\eta`.
        momentum: the momentum factor :math:`\mu`.
        dampening: :math:`\tau`, scales down the new gradient in the velocity.
        weight_decay: the L2 coefficient :math:`\lambda` added to the gradient.
        nesterov: use Nesterov's look-ahead form of momentum.

    Raises:
        ValueError: for a negative ``lr``, ``momentum``, ``dampening`` or
            ``weight_decay``, or Nesterov without momentum or with dampening.

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
        for name, value in (("lr", lr), ("momentum", momentum), ("dampening", dampening),
                            ("weight_decay", weight_decay)):
            _check_nonnegative(name, value)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(
                f"Nesterov momentum needs momentum > 0 and dampening = 0, got "
                f"momentum={momentum}, dampening={dampening}"
            )
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(params, defaults)

    def update(self, w: torch.Tensor, g: torch.Tensor, state: dict[str, Any],
               group: dict[str, Any]) -> None:
        """One step for ``w`` (see the class docstring for the equations)."""
        lr, mu, tau, nesterov = group["lr"], group["momentum"], group["dampening"], group["nesterov"]
        if mu != 0:
            if "v" not in state:
                # v_1 = g_1
                state["v"] = g.clone()
            else:
                # v_t = mu v_{t-1} + (1 - tau) g_t
                state["v"].mul_(mu).add_(g, alpha=1 - tau)
            v = state["v"]
            # Nesterov: step along g_t + mu v_t; heavy ball: along v_t
            g = g + mu * v if nesterov else v
        # w <- w - eta g
        w.add_(g, alpha=-lr)


class RMSProp(ScratchOptimizer):
    r"""RMSProp: divide each coordinate's step by a running RMS of its gradients.

    :math:`s_t = \alpha s_{t-1} + (1 - \alpha) g_t^2` and
    :math:`w \leftarrow w - \eta\, g_t / (\sqrt{s_t} + \epsilon)`, as in
    ``torch.optim.RMSprop``.

    Args:
        params: the tensors to optimize, or parameter-group dicts.
        lr: the step size :math:`\eta`.
        alpha: the decay :math:`\alpha` of the running mean of squared gradients.
        eps: :math:`\epsilon`, keeps the denominator away from zero.
        weight_decay: the L2 coefficient :math:`\lambda` added to the gradient.
        momentum: if > 0, accumulate the scaled steps in a velocity.
        centered: divide by an estimate of the gradient's standard deviation
            (subtract the squared running mean of ``g`` from ``s``).

    Raises:
        ValueError: for a negative ``lr``, ``eps``, ``weight_decay`` or
            ``momentum``, or ``alpha`` outside [0, 1).
    """

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
        for name, value in (("lr", lr), ("eps", eps), ("weight_decay", weight_decay),
                            ("momentum", momentum)):
            _check_nonnegative(name, value)
        _check_fraction("alpha", alpha)
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered)
        super().__init__(params, defaults)

    def update(self, w: torch.Tensor, g: torch.Tensor, state: dict[str, Any],
               group: dict[str, Any]) -> None:
        """One step for ``w`` (see the class docstring for the equations)."""
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
    r"""Adam: momentum on the gradient, RMSProp scaling, both bias-corrected.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        s_t = \beta_2 s_{t-1} + (1-\beta_2) g_t^2, \quad
        w \leftarrow w - \eta \frac{m_t / (1-\beta_1^t)}{\sqrt{s_t / (1-\beta_2^t)} + \epsilon}

    as in ``torch.optim.Adam`` (weight decay added to the gradient, as there).

    Args:
        params: the tensors to optimize, or parameter-group dicts.
        lr: the step size :math:`\eta`.
        betas: :math:`(\beta_1, \beta_2)`, the decays of the two moment estimates.
        eps: :math:`\epsilon`, keeps the denominator away from zero.
        weight_decay: the L2 coefficient :math:`\lambda` added to the gradient.
        amsgrad: divide by the largest :math:`s` seen so far (AMSGrad).

    Raises:
        ValueError: for a negative ``lr``, ``eps`` or ``weight_decay``, or a beta
            outside [0, 1).
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        for name, value in (("lr", lr), ("eps", eps), ("weight_decay", weight_decay)):
            _check_nonnegative(name, value)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        _check_fraction("betas[0]", betas[0])
        _check_fraction("betas[1]", betas[1])
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad)
        super().__init__(params, defaults)

    def update(self, w: torch.Tensor, g: torch.Tensor, state: dict[str, Any],
               group: dict[str, Any]) -> None:
        """One step for ``w`` (see the class docstring for the equations)."""
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


class Quadratic:
    r"""The quadratic bowl :math:`f(w) = \tfrac12 (w - w^\star)^\top A (w - w^\star)`.

    Its gradient is :math:`A (w - w^\star)` and its Hessian is the symmetric
    positive-definite matrix :math:`A`, whose eigenvalues set how fast gradient
    descent converges. Build one with given eigenvalues and a rotation angle
    with :meth:`from_eigenvalues`.

    Args:
        A: a symmetric positive-definite matrix of shape ``(D, D)``.
        w_star: the minimizer, shape ``(D,)``; zeros when left out.

    Raises:
        ValueError: if ``A`` is not square and symmetric or ``w_star`` has the
            wrong shape.

    >>> f = Quadratic.from_eigenvalues([1.0, 10.0])
    >>> f.condition_number
    10.0
    """

    def __init__(self, A: torch.Tensor, w_star: torch.Tensor | None = None) -> None:
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"expected A of shape (D, D), got {tuple(A.shape)}")
        if not torch.allclose(A, A.T):
            raise ValueError("A must be symmetric")
        w_star = torch.zeros(A.shape[0], dtype=A.dtype) if w_star is None else w_star
        if w_star.shape != (A.shape[0],):
            raise ValueError(f"expected w_star of shape ({A.shape[0]},), got {tuple(w_star.shape)}")
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
        """A 2-D bowl with the given curvatures, its axes rotated by ``angle`` radians
        (any dimension when ``angle`` is 0)."""
        lam = torch.as_tensor(list(eigenvalues), dtype=dtype)
        if angle != 0.0:
            if len(lam) != 2:
                raise ValueError(f"a rotation needs 2 eigenvalues, got {len(lam)}")
            c, s = math.cos(angle), math.sin(angle)
            Q = torch.tensor([[c, -s], [s, c]], dtype=dtype)
        else:
            Q = torch.eye(len(lam), dtype=dtype)
        # A = Q diag(lambda) Q^T
        return cls(Q @ torch.diag(lam) @ Q.T)

    @property
    def condition_number(self) -> float:
        """kappa = lambda_max / lambda_min."""
        return float(self.eigenvalues[-1] / self.eigenvalues[0])

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        """f(w) for ``w`` of shape ``(D,)`` or a batch ``(B, D)``."""
        e = w - self.w_star  # (B, D) or (D,)
        # f = 1/2 e^T A e
        return 0.5 * ((e @ self.A) * e).sum(dim=-1)

    def gradient(self, w: torch.Tensor) -> torch.Tensor:
        """The hand-derived gradient A (w - w*), shape like ``w``."""
        return (w - self.w_star) @ self.A  # A is symmetric, so e A = (A e)^T


def trajectory(
    f: Callable[[torch.Tensor], torch.Tensor],
    w0: torch.Tensor,
    optimizer: Callable[..., torch.optim.Optimizer],
    steps: int,
    **hyper: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``optimizer(params, **hyper)`` on ``f`` from ``w0`` and record the path.

    Args:
        f: maps a parameter vector of shape ``(D,)`` to a scalar.
        w0: the starting point, shape ``(D,)``.
        optimizer: an optimizer class, ours or ``torch.optim``'s.
        steps: how many steps to take.
        **hyper: the optimizer's hyper-parameters (``lr=...``).

    Returns:
        The points visited, shape ``(steps + 1, D)``, and the values of ``f`` at
        them, shape ``(steps + 1,)``.

    Raises:
        ValueError: if ``w0`` is not a vector or ``steps`` is negative.
    """
    if w0.ndim != 1:
        raise ValueError(f"expected w0 of shape (D,), got {tuple(w0.shape)}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    w = w0.detach().clone().requires_grad_(True)
    opt = optimizer([w], **hyper)
    points, values = [w.detach().clone()], []
    for _ in range(steps):
        opt.zero_grad()
        loss = f(w)
        loss.backward()
        values.append(loss.detach())
        opt.step()
        points.append(w.detach().clone())
    with torch.no_grad():
        values.append(f(w).detach())
    return torch.stack(points), torch.stack(values)  # (steps + 1, D), (steps + 1,)


Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _check_data(w: torch.Tensor, X: torch.Tensor, y: torch.Tensor, batch_size: int) -> None:
    if w.ndim != 1:
        raise ValueError(f"expected w of shape (D,), got {tuple(w.shape)}")
    if X.ndim < 2 or len(X) != len(y):
        raise ValueError(f"expected X of shape (N, ...) and y of shape (N, ...) with the same N, "
                         f"got {tuple(X.shape)} and {tuple(y.shape)}")
    if not 1 <= batch_size <= len(X):
        raise ValueError(f"batch_size must be in [1, {len(X)}], got {batch_size}")


def _gradient(loss: Loss, w: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    w = w.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(w, X, y), w)
    return g


def gradient_variance(
    loss: Loss, w: torch.Tensor, X: torch.Tensor, y: torch.Tensor, batch_size: int,
    *, samples: int = 200, seed: int = 0,
) -> float:
    r"""The mean squared distance :math:`\mathbb{E}\|g_B - g\|^2` between mini-batch
    gradients and the full-batch gradient at ``w``.

    Each mini-batch is ``batch_size`` examples drawn without replacement.

    Args:
        loss: ``loss(w, X_batch, y_batch)`` returns the mean loss over the batch.
        w: where to measure, shape ``(D,)``.
        X, y: the full training set, ``N`` examples.
        batch_size: examples per mini-batch, 1 to ``N``.
        samples: how many mini-batches to average over.
        seed: seeds the draw of the mini-batches.

    Returns:
        The estimate, a float.

    Raises:
        ValueError: for shapes that do not fit or a batch size out of range.
    """
    _check_data(w, X, y, batch_size)
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
    """Mini-batch steps until the loss on the full training set falls to ``target``.

    Each step draws ``batch_size`` examples without replacement (a batch of ``N``
    is full-batch gradient descent) and takes one optimizer step; then the full
    loss is checked. A run whose loss becomes non-finite or exceeds
    ``diverged_factor`` times the starting loss has diverged and stops at once.

    Args:
        loss: ``loss(w, X_batch, y_batch)`` returns the mean loss over the batch.
        w0: the starting point, shape ``(D,)``.
        X, y: the full training set.
        batch_size: examples per step, 1 to ``N``.
        target: stop when the full training loss is at most this.
        optimizer: the optimizer class (ours or ``torch.optim``'s).
        max_steps: give up after this many steps.
        diverged_factor: give up when the loss exceeds this multiple of the
            starting loss.
        seed: seeds the draw of the mini-batches.
        **hyper: the optimizer's hyper-parameters (``lr=...``).

    Returns:
        The number of steps taken, or ``None`` if the target was not reached
        (too few steps, or diverged).

    Raises:
        ValueError: for shapes that do not fit or a batch size out of range.
    """
    _check_data(w0, X, y, batch_size)
    gen = torch.Generator().manual_seed(seed)
    w = w0.detach().clone().requires_grad_(True)
    opt = optimizer([w], **hyper)
    with torch.no_grad():
        give_up = diverged_factor * float(loss(w, X, y))
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
    """The wall-clock seconds one mini-batch step takes.

    A step is what :func:`steps_to_target` does per iteration, without the check
    of the full loss: draw a batch, compute the gradient, update. The steps are
    timed in ``repeats`` rounds of ``steps`` and the fastest round counts, as
    ``timeit`` does, because other programs on the machine only ever slow a
    round down.

    Raises:
        ValueError: for shapes that do not fit, a batch size out of range, or
            ``steps`` or ``repeats`` below 1.
    """
    _check_data(w0, X, y, batch_size)
    if steps < 1 or repeats < 1:
        raise ValueError(f"steps and repeats must be >= 1, got {steps} and {repeats}")
    gen = torch.Generator().manual_seed(seed)
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
