"""Batch normalization (Part 6, "Batch normalization").

:class:`BatchNormFunction` holds the chapter's hand-derived backward pass;
:func:`batch_norm` adds the running statistics and the evaluation mode, like
``torch.nn.functional.batch_norm``; :class:`BatchNorm1d` is the layer, a
drop-in for ``torch.nn.BatchNorm1d`` with the same parameter and buffer names.
:class:`BatchNorm2d` normalizes each channel of an image batch over (B, H, W);
:func:`layer_norm` and :func:`group_norm` normalize each example on its own.
:func:`recompute_batch_norm_statistics` re-estimates the running statistics on
new data without touching a weight, and :func:`freeze_batch_norm` keeps the
batch-norm layers of a model on their running statistics while it is fine-tuned.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

import torch
from torch import nn

from dlbook import _checks as check

__all__ = [
    "BatchNormFunction", "batch_norm", "BatchNorm1d", "BatchNorm2d", "layer_norm", "group_norm",
    "batch_norm_layers", "recompute_batch_norm_statistics", "BatchNormFreeze", "freeze_batch_norm",
]


class BatchNormFunction(torch.autograd.Function):
    """Batch normalization of ``x`` (B, D) in training mode, with the backward pass derived by hand.

    ``BatchNormFunction.apply(x, gamma, beta, eps)``; ``gamma`` and ``beta`` (D,) may be ``None``.
    """

    @staticmethod
    def forward(ctx, x, gamma, beta, eps):  # type: ignore[override]
        _check_batch(x, gamma, beta)
        # mu = (1/B) sum_i x_i
        mu = x.mean(dim=0)  # (D,)
        # sigma^2 = (1/B) sum_i (x_i - mu)^2
        var = x.var(dim=0, unbiased=False)  # (D,)
        inv_s = torch.rsqrt(var + eps)  # (D,), 1 / s with s = sqrt(sigma^2 + eps)
        # x_hat = (x - mu) / s
        x_hat = (x - mu) * inv_s  # (B, D)
        ctx.save_for_backward(x_hat, inv_s, gamma)
        # y = gamma x_hat + beta
        y = x_hat if gamma is None else x_hat * gamma
        return y if beta is None else y + beta

    @staticmethod
    @torch.autograd.function.once_differentiable  # no second derivative through the hand-written one
    def backward(ctx, g):  # type: ignore[override]
        x_hat, inv_s, gamma = ctx.saved_tensors
        B = g.shape[0]  # g = dL/dy, (B, D)
        # dL/dgamma = sum_i g_i x_hat_i,  dL/dbeta = sum_i g_i
        dgamma = (g * x_hat).sum(dim=0) if ctx.needs_input_grad[1] else None  # (D,)
        dbeta = g.sum(dim=0) if ctx.needs_input_grad[2] else None  # (D,)
        dx = None
        if ctx.needs_input_grad[0]:
            g_hat = g if gamma is None else g * gamma  # dL/dx_hat, (B, D)
            # dL/dx_k = (1 / (B s)) (B g_hat_k - sum_i g_hat_i - x_hat_k sum_i g_hat_i x_hat_i)
            dx = inv_s / B * (B * g_hat - g_hat.sum(dim=0) - x_hat * (g_hat * x_hat).sum(dim=0))
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
    """Batch-normalize ``x`` (B, D) column by column, like ``torch.nn.functional.batch_norm``.

    Training uses the batch statistics and updates the running buffers in
    place, if given; evaluation uses the running statistics. ``x`` is
    converted to the dtype of ``weight`` (or of the running buffers).
    """
    D = _check_batch(x, weight, bias, running_mean, running_var, training=training)["D"]
    x = _like(x, weight, running_mean)
    check.fraction("momentum", momentum, closed="[]")
    check.positive_float("eps", eps)
    if training:
        if running_mean is not None and running_var is not None:
            with torch.no_grad():
                B = x.shape[0]
                # running_mean <- (1 - m) running_mean + m mu
                running_mean.mul_(1 - momentum).add_(momentum * x.mean(dim=0))
                # running_var <- (1 - m) running_var + m (B / (B - 1)) sigma^2 (unbiased)
                unbiased = x.var(dim=0, unbiased=False) * B / (B - 1)  # (D,)
                running_var.mul_(1 - momentum).add_(momentum * unbiased)
        return BatchNormFunction.apply(x, weight, bias, eps)
    if running_mean is None or running_var is None:
        raise ValueError(f"running_mean and running_var of shape ({D},) are needed "
                         "when training=False")
    # y = gamma (x - running_mean) / sqrt(running_var + eps) + beta
    y = (x - running_mean) * torch.rsqrt(running_var + eps)  # (B, D)
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias


class BatchNorm1d(nn.Module):
    """Batch normalization of ``(B, D)`` inputs, a drop-in for ``torch.nn.BatchNorm1d``."""

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True
    ):
        super().__init__()
        self.num_features = check.positive_int("num_features", num_features)
        self.eps = check.positive_float("eps", eps)
        self.momentum = check.fraction("momentum", momentum, closed="[]")
        self.affine = bool(check.one_of("affine", affine, (True, False)))
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None  # gamma
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None  # beta
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize ``x`` (B, D); a float64 batch into a float32 layer is converted to float32."""
        check.expect_shape(x, "B D", "x", D=self.num_features)
        y = batch_norm(
            x, self.weight, self.bias, running_mean=self.running_mean, running_var=self.running_var,
            training=self.training, momentum=self.momentum, eps=self.eps,
        )
        if self.training:
            self.num_batches_tracked.add_(1)
        return y

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}")


class BatchNorm2d(BatchNorm1d):
    """Batch normalization of ``(B, C, H, W)`` inputs per channel, a drop-in for ``torch.nn.BatchNorm2d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize each channel of ``x`` (B, C, H, W) over its B H W values."""
        B, C, H, W = check.expect_shape(x, "B C H W", "x", C=self.num_features).values()
        # a channel is one feature, and its B*H*W values form the "batch" of eq-bn-stats
        rows = x.permute(0, 2, 3, 1).reshape(B * H * W, C)  # (B H W, C)
        y = super().forward(rows)  # (B H W, C)
        return y.reshape(B, H, W, C).permute(0, 3, 1, 2)  # (B, C, H, W)


def layer_norm(
    x: torch.Tensor,
    normalized_shape: tuple[int, ...],
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Layer norm of ``x``, shape ``(B, *normalized_shape)``, over its trailing axes (as ``F.layer_norm``)."""
    x = check.floating("x", x)
    shape = tuple(normalized_shape)
    if len(shape) == 0 or x.dim() <= len(shape) or tuple(x.shape[-len(shape):]) != shape:
        raise ValueError(f"expected x of shape (B, ..., {', '.join(map(str, shape))}), "
                         f"got {tuple(x.shape)}")
    check.positive_float("eps", eps)
    dims = tuple(range(-len(shape), 0))
    # mu and sigma^2 over the features of one example, not over the batch
    mu = x.mean(dim=dims, keepdim=True)  # (B, 1, ...)
    var = x.var(dim=dims, unbiased=False, keepdim=True)  # (B, 1, ...)
    y = (x - mu) * torch.rsqrt(var + eps)
    if weight is not None:
        y = y * weight  # gamma, one per feature: normalized_shape
    return y if bias is None else y + bias


def group_norm(
    x: torch.Tensor,
    num_groups: int,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Normalize ``x`` (B, C, ...) over each group of C / num_groups channels per example, like ``F.group_norm``."""
    x = check.floating("x", x)
    if x.dim() < 2:
        raise ValueError(f"expected x of shape (B, C, ...), got {tuple(x.shape)}")
    G = check.positive_int("num_groups", num_groups)
    B, C = x.shape[:2]
    if C % G:
        raise ValueError(f"num_groups must divide the {C} channels of x, got {G}")
    check.positive_float("eps", eps)
    groups = x.reshape(B, G, -1)  # (B, G, C/G * H * W)
    mu = groups.mean(dim=2, keepdim=True)  # (B, G, 1)
    var = groups.var(dim=2, unbiased=False, keepdim=True)  # (B, G, 1)
    y = ((groups - mu) * torch.rsqrt(var + eps)).reshape(x.shape)  # (B, C, ...)
    per_channel = (1, C) + (1,) * (x.dim() - 2)  # gamma and beta are one per channel
    if weight is not None:
        y = y * weight.reshape(per_channel)
    return y if bias is None else y + bias.reshape(per_channel)


def batch_norm_layers(model: nn.Module) -> list[nn.Module]:
    """The batch-norm layers of ``model`` that keep running statistics: torch's and dlbook's."""
    check.module("model", model)
    return [layer for layer in model.modules()
            if isinstance(layer, (nn.modules.batchnorm._BatchNorm, BatchNorm1d))
            and getattr(layer, "running_mean", None) is not None]


# batch-norm layers currently held in evaluation mode by a BatchNormFreeze
_FROZEN: weakref.WeakSet[nn.Module] = weakref.WeakSet()


@torch.no_grad()
def recompute_batch_norm_statistics(model: nn.Module, batches: Iterable[object]) -> int:
    """Re-estimate every running mean and variance of ``model`` on ``batches``; no weight changes.

    ``batches`` yields input tensors or ``(inputs, targets)`` pairs (the
    targets are ignored). The running statistics are reset, then each
    batch-norm layer sees every batch in training mode with momentum 1 / t at
    the t-th batch, so it ends with the plain average of the T batch means and
    of the T unbiased batch variances (what torch does with momentum=None).
    The other layers (dropout) run in evaluation mode. Afterwards every module
    has its training flag and every layer its momentum back; on an error the
    statistics are restored too. Returns T, the number of batches.
    """
    layers = batch_norm_layers(model)
    if not layers:
        raise ValueError("model has no batch-norm layer with running statistics to recompute")
    if any(layer in _FROZEN for layer in layers):
        raise ValueError("model has batch-norm layers held by freeze_batch_norm; "
                         "recompute the statistics before freezing, or remove the freeze first")
    if isinstance(batches, (torch.Tensor, str)) or not isinstance(batches, Iterable):
        raise TypeError("batches must be an iterable of input tensors or (inputs, targets) pairs, "
                        f"got {type(batches).__name__}")
    flags = {module: module.training for module in model.modules()}
    momenta = {layer: layer.momentum for layer in layers}
    saved = {layer: (layer.running_mean.clone(), layer.running_var.clone(),
                     layer.num_batches_tracked.clone()) for layer in layers}
    t = 0
    try:
        for layer in layers:
            layer.running_mean.zero_()
            layer.running_var.fill_(1.0)
            layer.num_batches_tracked.zero_()
        model.eval()
        for layer in layers:
            layer.train()
        for t, batch in enumerate(batches, start=1):
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            check.tensor(f"batch {t} of batches", x)
            for layer in layers:
                # running <- (1 - 1/t) running + (1/t) batch statistic: the mean of the first t
                layer.momentum = 1.0 / t
            model(x)
        if t == 0:
            raise ValueError("batches yielded no batch: there is nothing to estimate the statistics from")
    except BaseException:
        for layer, (mean, var, count) in saved.items():
            layer.running_mean.copy_(mean)
            layer.running_var.copy_(var)
            layer.num_batches_tracked.copy_(count)
        raise
    finally:
        for layer, momentum in momenta.items():
            layer.momentum = momentum
        for module, flag in flags.items():
            module.training = flag
    return t


class BatchNormFreeze:
    """The handle :func:`freeze_batch_norm` returns: ``remove()`` it, or use it in a ``with`` block."""

    def __init__(self, model: nn.Module, layers: list[nn.Module], freeze_affine: bool):
        self.model, self.layers, self.freeze_affine = model, layers, freeze_affine
        self._hooks = [layer.register_forward_pre_hook(self._stay_in_eval_mode) for layer in layers]
        self._requires_grad = {p: p.requires_grad for layer in layers
                               for p in (layer.weight, layer.bias) if p is not None}
        for layer in layers:
            layer.eval()
            _FROZEN.add(layer)
        if freeze_affine:
            for p in self._requires_grad:
                p.requires_grad_(False)

    def remove(self) -> None:
        """Undo the freeze: each layer follows the model's current mode and gets its gradients back."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        for p, flag in self._requires_grad.items():
            p.requires_grad_(flag)
        for layer in self.layers:
            _FROZEN.discard(layer)
            layer.train(self.model.training)

    @staticmethod
    def _stay_in_eval_mode(layer: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        """Forward pre-hook: whatever model.train() set, normalize with the running statistics."""
        layer.training = False

    def __enter__(self) -> BatchNormFreeze:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def freeze_batch_norm(model: nn.Module, *, freeze_affine: bool = False) -> BatchNormFreeze:
    """Keep every batch-norm layer of ``model`` on its running statistics, even after ``model.train()``.

    Each layer is put in evaluation mode and a forward pre-hook puts it back
    there before every call, so ``dlbook.train.fit`` (which calls
    ``model.train()`` every epoch) neither uses batch statistics nor updates
    the running ones. With ``freeze_affine=True`` gamma and beta stop
    receiving gradients too. Undo with the handle's ``remove()``, or write
    ``with freeze_batch_norm(model): ...``.
    """
    layers = batch_norm_layers(model)
    check.one_of("freeze_affine", freeze_affine, (True, False))
    if not layers:
        raise ValueError("model has no batch-norm layer with running statistics to freeze")
    if any(layer in _FROZEN for layer in layers):
        raise ValueError("model already has frozen batch-norm layers; remove that freeze first")
    return BatchNormFreeze(model, layers, freeze_affine)


def _check_batch(
    x: object, *per_feature: torch.Tensor | None, training: bool = True
) -> dict[str, int]:
    """Sizes of ``x`` (B, D), B >= 2 in training; each per-feature tensor given must be (D,)."""
    sizes = check.expect_shape(check.floating("x", x), "B D", "x")
    names = ("weight", "bias", "running_mean", "running_var")
    for name, t in zip(names, per_feature):
        if t is not None:
            check.expect_shape(check.floating(name, t), "D", name, D=sizes["D"])
    if check.one_of("training", training, (True, False)) and sizes["B"] < 2:
        raise ValueError("x must hold a batch of at least 2 examples in training (the variance "
                         f"of one example is 0), got shape {tuple(x.shape)}")
    return sizes


def _like(x: torch.Tensor, *references: torch.Tensor | None) -> torch.Tensor:
    """``x`` in the dtype of the first reference given (float64 into float32 is converted)."""
    reference = next((r for r in references if r is not None), None)
    return x if reference is None else check.as_float_like("x", x, reference)
