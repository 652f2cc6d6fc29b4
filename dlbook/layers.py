"""Layers from scratch with explicit backward passes (Parts 5 and 6).

Each layer here computes its forward pass and, separately, the gradients
derived by hand in the book, and is tested against its ``torch.nn``
counterpart. Part 5 contributes the dense layer; Part 6 the initializers,
batch normalization, dropout and the residual block.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

__all__: list[str] = []

# --- Part 5: dense layer ---


class Dense:
    """A fully connected layer, :math:`Y = XW + \\mathbf{b}`, with a hand-written backward.

    Not a ``torch.nn.Module`` on purpose: nothing here uses autograd. ``forward``
    caches its input; ``backward`` takes :math:`G = \\partial L/\\partial Y`, stores
    ``dW`` and ``db`` and returns :math:`\\partial L/\\partial X`.

    ``W`` has shape ``(D_in, D_out)``, the transpose of ``torch.nn.Linear.weight``,
    so that a batch-first input multiplies it from the left.

    Args:
        d_in: input features :math:`D_{in}`.
        d_out: output features :math:`D_{out}`.
        generator: seeds the initial weights (uniform in
            :math:`\\pm 1/\\sqrt{D_{in}}`, the default of ``torch.nn.Linear``).
        device: where the parameters live.
        dtype: their floating-point type.

    >>> layer = Dense(3, 2, generator=torch.Generator().manual_seed(0))
    >>> y = layer.forward(torch.ones(4, 3))
    >>> layer.backward(torch.ones_like(y)).shape, layer.dW.shape, layer.db.shape
    (torch.Size([4, 3]), torch.Size([3, 2]), torch.Size([2]))
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        for name, value in (("d_in", d_in), ("d_out", d_out)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.d_in, self.d_out = d_in, d_out
        bound = 1.0 / math.sqrt(d_in)
        W = (torch.rand(d_in, d_out, generator=generator, dtype=dtype) * 2 - 1) * bound
        b = (torch.rand(d_out, generator=generator, dtype=dtype) * 2 - 1) * bound
        self.W, self.b = W.to(device), b.to(device)  # (D_in, D_out), (D_out,)
        self.dW = torch.zeros_like(self.W)
        self.db = torch.zeros_like(self.b)
        self._x: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x`` of shape ``(B, D_in)`` to ``(B, D_out)``, caching ``x``."""
        if x.ndim != 2 or x.shape[1] != self.d_in:
            raise ValueError(f"expected (B, D_in) with D_in={self.d_in}, got {tuple(x.shape)}")
        self._x = x
        # Y = X W + b  (B, D_in) @ (D_in, D_out) -> (B, D_out), b broadcast over rows
        return x @ self.W + self.b

    def backward(self, grad_out: torch.Tensor) -> torch.Tensor:
        """Given :math:`G = \\partial L/\\partial Y` of shape ``(B, D_out)``, return
        :math:`\\partial L/\\partial X` of shape ``(B, D_in)``; store ``dW`` and ``db``."""
        if self._x is None:
            raise RuntimeError("backward called before forward")
        if grad_out.shape != (self._x.shape[0], self.d_out):
            raise ValueError(
                f"expected grad_out of shape (B, D_out) = {(self._x.shape[0], self.d_out)}, "
                f"got {tuple(grad_out.shape)}"
            )
        # dL/dW = X^T G  (D_in, B) @ (B, D_out) -> (D_in, D_out)
        self.dW = self._x.T @ grad_out
        # dL/db = sum over the batch of G
        self.db = grad_out.sum(dim=0)
        # dL/dX = G W^T  (B, D_out) @ (D_out, D_in) -> (B, D_in)
        return grad_out @ self.W.T

    def parameters(self) -> list[torch.Tensor]:
        """``[W, b]``, in the order of :meth:`gradients`."""
        return [self.W, self.b]

    def gradients(self) -> list[torch.Tensor]:
        """``[dW, db]`` from the last :meth:`backward`."""
        return [self.dW, self.db]


__all__ += ["Dense"]


# --- Part 6: initialization, normalization, regularization, residuals ---


def _fans(tensor: torch.Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of shape ``(out, in, *kernel)``, as torch counts them."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(tensor).__name__}")
    if tensor.ndim < 2:
        raise ValueError(
            f"expected a weight with at least 2 dimensions (out, in, ...), got shape {tuple(tensor.shape)}"
        )
    receptive = math.prod(tensor.shape[2:])  # 1 for a dense layer, kh*kw for a 2-D conv
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def xavier_std(fan_in: int, fan_out: int, gain: float = 1.0) -> float:
    r"""Glorot and Bengio's standard deviation, :math:`g\sqrt{2 / (n_\text{in} + n_\text{out})}`.

    >>> round(xavier_std(100, 300), 6)
    0.070711
    """
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


def he_std(fan: int, gain: float = math.sqrt(2.0)) -> float:
    r"""He et al.'s standard deviation for ReLU layers, :math:`\sqrt{2 / n}`.

    >>> round(he_std(200), 6)
    0.1
    """
    return gain / math.sqrt(fan)


def xavier_uniform_(
    tensor: torch.Tensor, gain: float = 1.0, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""Fill ``tensor`` in place from :math:`U(-a, a)`, :math:`a = \sqrt{3}\,\sigma_\text{Xavier}`.

    Same statistics, and with the same generator state the same numbers, as
    :func:`torch.nn.init.xavier_uniform_`.

    Args:
        tensor: a weight of shape ``(out, in, *kernel)``.
        gain: multiplies the standard deviation (for example 5/3 for tanh).
        generator: the random number generator to draw from.

    Returns:
        ``tensor``, filled.

    Raises:
        ValueError: if ``tensor`` has fewer than 2 dimensions.
    """
    fan_in, fan_out = _fans(tensor)
    # Var U(-a, a) = a^2 / 3, so a = sqrt(3) * std gives the wanted variance
    a = math.sqrt(3.0) * xavier_std(fan_in, fan_out, gain)
    with torch.no_grad():
        return tensor.uniform_(-a, a, generator=generator)


def xavier_normal_(
    tensor: torch.Tensor, gain: float = 1.0, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""Fill ``tensor`` in place from :math:`\mathcal{N}(0, 2 g^2 / (n_\text{in} + n_\text{out}))`.

    Matches :func:`torch.nn.init.xavier_normal_`. Arguments, return value and
    errors as :func:`xavier_uniform_`.
    """
    fan_in, fan_out = _fans(tensor)
    with torch.no_grad():
        return tensor.normal_(0.0, xavier_std(fan_in, fan_out, gain), generator=generator)


def _he_fan(tensor: torch.Tensor, mode: str) -> int:
    fan_in, fan_out = _fans(tensor)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    return fan_in if mode == "fan_in" else fan_out


def he_uniform_(
    tensor: torch.Tensor, mode: str = "fan_in", *, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""Fill ``tensor`` in place from :math:`U(-a, a)`, :math:`a = \sqrt{3}\sqrt{2/n}`.

    ``n`` is the fan-in (keeps forward variance) or the fan-out (keeps backward
    variance). Matches ``torch.nn.init.kaiming_uniform_(tensor, mode=mode,
    nonlinearity="relu")``.

    Args:
        tensor: a weight of shape ``(out, in, *kernel)``.
        mode: ``"fan_in"`` or ``"fan_out"``.
        generator: the random number generator to draw from.

    Returns:
        ``tensor``, filled.

    Raises:
        ValueError: if ``tensor`` has fewer than 2 dimensions or ``mode`` is unknown.
    """
    a = math.sqrt(3.0) * he_std(_he_fan(tensor, mode))
    with torch.no_grad():
        return tensor.uniform_(-a, a, generator=generator)


def he_normal_(
    tensor: torch.Tensor, mode: str = "fan_in", *, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""Fill ``tensor`` in place from :math:`\mathcal{N}(0, 2/n)`.

    Matches ``torch.nn.init.kaiming_normal_(tensor, mode=mode,
    nonlinearity="relu")``. Arguments, return value and errors as
    :func:`he_uniform_`.
    """
    std = he_std(_he_fan(tensor, mode))
    with torch.no_grad():
        return tensor.normal_(0.0, std, generator=generator)


def deep_mlp(
    in_features: int, width: int, depth: int, out_features: int, activation: str = "relu"
) -> nn.Sequential:
    """A plain fully connected net: ``depth`` hidden layers of ``width`` units.

    Args:
        in_features: input size ``D``; the net maps ``(B, D)`` to ``(B, out_features)``.
        width: units in every hidden layer.
        depth: number of hidden layers (each a ``Linear`` and an activation).
        out_features: number of outputs (class scores).
        activation: ``"sigmoid"``, ``"tanh"`` or ``"relu"``.

    Returns:
        The ``nn.Sequential``, with torch's default initialization.

    Raises:
        ValueError: for an unknown activation or a size below 1.
    """
    activations = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}
    if activation not in activations:
        raise ValueError(f"activation must be one of {sorted(activations)}, got {activation!r}")
    for name, value in (("in_features", in_features), ("width", width), ("depth", depth),
                        ("out_features", out_features)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(in_features if i == 0 else width, width), activations[activation]()]
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


def layer_signals(
    model: nn.Sequential,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    record: tuple[type[nn.Module], ...] = (nn.Linear,),
) -> tuple[list[float], list[float]]:
    r"""How big the signal is, forward and backward, after each layer of a ``Sequential``.

    Runs ``model`` on ``x`` one child at a time and, for every child of a type
    in ``record``, keeps its output :math:`h_l`. After ``loss_fn(model(x), y)``
    is backpropagated it returns two lists, input side first: the root mean
    square of each :math:`h_l` and of its gradient :math:`\partial L/\partial h_l`.
    Parameter gradients are left in ``.grad``.

    Args:
        model: the net, an ``nn.Sequential``.
        x: a batch of inputs, ``(B, D)``.
        y: its targets.
        loss_fn: ``loss_fn(output, y)`` returns a scalar.
        record: the child types whose outputs to measure.

    Returns:
        ``(forward_rms, backward_rms)``, one number per recorded layer.

    Raises:
        TypeError: if ``model`` is not an ``nn.Sequential``.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"layer_signals expects an nn.Sequential, got {type(model).__name__}")
    outputs = []
    h = x
    for child in model:
        h = child(h)
        if isinstance(child, record):
            h.retain_grad()
            outputs.append(h)
    model.zero_grad(set_to_none=True)
    loss_fn(h, y).backward()
    forward = [o.detach().pow(2).mean().sqrt().item() for o in outputs]
    backward = [o.grad.pow(2).mean().sqrt().item() for o in outputs]
    return forward, backward


def _check_features(x: torch.Tensor, num_features: int, what: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} expects a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != num_features:
        raise ValueError(
            f"{what} expected x of shape (B, D) with D={num_features}, got {tuple(x.shape)}"
        )


class BatchNormFunction(torch.autograd.Function):
    """Batch normalization in training mode with the backward pass derived by hand.

    ``forward(x, gamma, beta, eps)`` normalizes each column of ``x`` (B, D) by
    the batch mean and (biased) variance, then scales and shifts it; ``gamma``
    and ``beta`` may be ``None`` (no affine part). ``backward`` implements the
    three gradients of the chapter "Batch normalization".
    """

    @staticmethod
    def forward(ctx, x, gamma, beta, eps):  # type: ignore[override]
        # mu = (1/B) sum_i x_i
        mu = x.mean(dim=0)  # (D,)
        # sigma^2 = (1/B) sum_i (x_i - mu)^2
        var = x.var(dim=0, unbiased=False)  # (D,)
        inv_std = torch.rsqrt(var + eps)  # (D,)
        # x_hat = (x - mu) / sqrt(sigma^2 + eps)
        x_hat = (x - mu) * inv_std  # (B, D)
        ctx.save_for_backward(x_hat, inv_std, gamma)
        # y = gamma * x_hat + beta
        y = x_hat if gamma is None else x_hat * gamma
        return y if beta is None else y + beta

    @staticmethod
    @torch.autograd.function.once_differentiable  # the hand-written backward is not itself differentiable
    def backward(ctx, dy):  # type: ignore[override]
        x_hat, inv_std, gamma = ctx.saved_tensors
        B = dy.shape[0]
        dgamma = (dy * x_hat).sum(dim=0) if ctx.needs_input_grad[1] else None  # (D,)
        dbeta = dy.sum(dim=0) if ctx.needs_input_grad[2] else None  # (D,)
        dx = None
        if ctx.needs_input_grad[0]:
            dx_hat = dy if gamma is None else dy * gamma  # (B, D)
            # dx = (1 / (B sigma)) (B dx_hat - sum_j dx_hat_j - x_hat sum_j dx_hat_j x_hat_j)
            dx = inv_std / B * (
                B * dx_hat - dx_hat.sum(dim=0) - x_hat * (dx_hat * x_hat).sum(dim=0)
            )
        return dx, dgamma, dbeta, None


def batch_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    running_mean: torch.Tensor | None = None,
    running_var: torch.Tensor | None = None,
    training: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> torch.Tensor:
    r"""Batch-normalize ``x`` (B, D) column by column, like ``F.batch_norm``.

    In training it uses the batch statistics (backward by
    :class:`BatchNormFunction`) and, if running buffers are given, updates them
    in place: :math:`\hat\mu \leftarrow (1-m)\hat\mu + m\mu` and the same for
    the variance, which uses the unbiased batch variance. In evaluation it uses
    the running statistics.

    Args:
        x: inputs of shape ``(B, D)``.
        weight: scale :math:`\gamma` of shape ``(D,)``, or ``None`` for 1.
        bias: shift :math:`\beta` of shape ``(D,)``, or ``None`` for 0.
        running_mean: buffer of shape ``(D,)``; needed when ``training`` is False.
        running_var: buffer of shape ``(D,)``; needed when ``training`` is False.
        training: use (and record) batch statistics, or use the running ones.
        momentum: weight :math:`m` of the newest batch in the running averages.
        eps: added to the variance for numerical safety.

    Returns:
        The normalized tensor, shape ``(B, D)``.

    Raises:
        ValueError: for a wrong shape, a training batch of one example, or
            evaluation without running statistics.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        raise ValueError(f"batch_norm expected x of shape (B, D), got {tuple(getattr(x, 'shape', ()))}")
    D = x.shape[1]
    for name, t in (("weight", weight), ("bias", bias), ("running_mean", running_mean),
                    ("running_var", running_var)):
        if t is not None and tuple(t.shape) != (D,):
            raise ValueError(f"batch_norm expected {name} of shape ({D},), got {tuple(t.shape)}")
    if training:
        if x.shape[0] < 2:
            raise ValueError(f"batch_norm in training needs a batch of at least 2, got shape {tuple(x.shape)}")
        if running_mean is not None and running_var is not None:
            with torch.no_grad():
                B = x.shape[0]
                running_mean.mul_(1 - momentum).add_(momentum * x.mean(dim=0))
                # the running variance is unbiased: B / (B - 1) times the batch variance
                running_var.mul_(1 - momentum).add_(momentum * x.var(dim=0, unbiased=False) * B / (B - 1))
        return BatchNormFunction.apply(x, weight, bias, eps)
    if running_mean is None or running_var is None:
        raise ValueError("batch_norm in evaluation needs running_mean and running_var")
    # y = gamma (x - running_mean) / sqrt(running_var + eps) + beta
    y = (x - running_mean) * torch.rsqrt(running_var + eps)  # (B, D)
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias


class BatchNorm1d(nn.Module):
    """Batch normalization of ``(B, D)`` inputs, a drop-in for ``torch.nn.BatchNorm1d``.

    Parameters and buffers have torch's names (``weight``, ``bias``,
    ``running_mean``, ``running_var``, ``num_batches_tracked``), so state
    dicts move between the two. In ``train()`` mode it normalizes by batch
    statistics and updates the running averages; in ``eval()`` mode it uses
    the running averages, so an example's output no longer depends on its batch.

    Args:
        num_features: ``D``, the number of columns normalized.
        eps: added to the variance.
        momentum: weight of the newest batch in the running averages.
        affine: learn a per-feature scale ``weight`` and shift ``bias``.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True):
        super().__init__()
        if num_features < 1:
            raise ValueError(f"num_features must be >= 1, got {num_features}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.num_features, self.eps, self.momentum, self.affine = num_features, eps, momentum, affine
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_features(x, self.num_features, "BatchNorm1d")
        y = batch_norm(
            x, self.weight, self.bias, running_mean=self.running_mean, running_var=self.running_var,
            training=self.training, momentum=self.momentum, eps=self.eps,
        )
        if self.training:
            self.num_batches_tracked.add_(1)
        return y

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"


def dropout(
    x: torch.Tensor, p: float = 0.5, *, training: bool = True, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""Inverted dropout: zero each entry with probability ``p``, scale the rest by :math:`1/(1-p)`.

    The scaling keeps :math:`\mathbb{E}[y] = x`, so evaluation needs no
    correction: when ``training`` is False the input comes back unchanged.

    Args:
        x: a tensor of any shape.
        p: the probability of dropping an entry, in ``[0, 1]``.
        training: drop (True) or pass through (False).
        generator: the random number generator for the mask.

    Returns:
        A tensor shaped like ``x``.

    Raises:
        ValueError: if ``p`` is not in ``[0, 1]``.

    >>> dropout(torch.ones(4), 0.5, training=False)
    tensor([1., 1., 1., 1.])
    """
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability p must be a number in [0, 1], got {p!r}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    # m_i ~ Bernoulli(1 - p): 1 keeps the entry, 0 drops it
    mask = torch.empty_like(x).bernoulli_(1.0 - p, generator=generator)
    # y = m * x / (1 - p)
    return x * mask / (1.0 - p)


class Dropout(nn.Module):
    """Inverted dropout as a module: drops in ``train()`` mode, identity in ``eval()``.

    Args:
        p: the probability of dropping an entry, in ``[0, 1]``.
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability p must be a number in [0, 1], got {p!r}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, training=self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ResidualBlock(nn.Module):
    r"""A pre-activation residual block, :math:`y = x + F(x)` on ``(B, D)`` inputs.

    The branch is :math:`F(x) = W_2\,\mathrm{relu}(W_1\,\mathrm{relu}(x))` (with
    batch normalization before each ReLU if ``norm``). With ``skip=False`` the
    block returns :math:`F(x)` alone, so a stack of such blocks is a plain deep
    net with exactly the same layers and parameters as its residual twin.

    Args:
        dim: ``D``, the input and output width.
        hidden: width of the inner layer; ``dim`` when left out.
        skip: add the identity shortcut.
        norm: put a :class:`BatchNorm1d` before each ReLU.
    """

    def __init__(self, dim: int, hidden: int | None = None, *, skip: bool = True, norm: bool = False):
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        hidden = dim if hidden is None else hidden
        self.dim, self.skip = dim, skip
        self.branch = nn.Sequential(
            BatchNorm1d(dim) if norm else nn.Identity(),
            nn.ReLU(),
            nn.Linear(dim, hidden),
            BatchNorm1d(hidden) if norm else nn.Identity(),
            nn.ReLU(),
            nn.Linear(hidden, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_features(x, self.dim, "ResidualBlock")
        # y = x + F(x); dy/dx = I + dF/dx
        return x + self.branch(x) if self.skip else self.branch(x)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, skip={self.skip}"


__all__ += [
    "xavier_std", "he_std", "xavier_uniform_", "xavier_normal_", "he_uniform_", "he_normal_",
    "deep_mlp", "layer_signals", "BatchNormFunction", "batch_norm", "BatchNorm1d",
    "dropout", "Dropout", "ResidualBlock",
]
