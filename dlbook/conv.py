"""Convolution and pooling from scratch (Part 8, "Convolution and pooling").

The operations of Part 8's first three pages, three layers of the same idea:

- ``conv2d_direct`` computes a convolution straight from its definition, one
  kernel offset at a time: the readable reference of "Convolution and pooling".
- ``im2col`` and ``col2im`` turn a convolution into one matrix product and back;
  ``conv2d``, ``max_pool2d`` and ``avg_pool2d`` are built on them as autograd
  Functions whose backward passes are written by hand, as derived on
  "Backpropagation through convolution".
- ``LeNet`` ("A CNN from scratch: LeNet") runs either these scratch operations
  or ``torch.nn.functional``'s.

Every function is batch-first: images are ``(B, C, H, W)`` and kernels
``(C_out, C_in, k_h, k_w)``, as in PyTorch. Like PyTorch (and every deep
learning library), "convolution" here means cross-correlation: the kernel is
not flipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from dlbook import _checks as check

__all__ = [
    "output_size", "receptive_field", "conv2d_direct", "im2col", "col2im", "conv2d", "max_pool2d",
    "avg_pool2d", "Conv2dFunction", "MaxPool2dFunction", "AvgPool2dFunction",
    "LeNetConfig", "LeNet",
]

Pair = tuple[int, int]


def _pair(value: int | Sequence[int], name: str, minimum: int) -> Pair:
    """``3 -> (3, 3)``; ``(2, 3)`` stays; anything else raises."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        first, second = (check.positive_int(f"{name}[{i}]", v, minimum=minimum)
                         for i, v in enumerate(value))
        return first, second
    n = check.positive_int(name, value, minimum=minimum)
    return n, n


def _positive_ints(name: str, values: object, length: int | None = None, *,
                   allow_empty: bool = False) -> tuple[int, ...]:
    """``values`` as a tuple of ints >= 1 (of ``length`` items when given)."""
    if isinstance(values, (str, torch.Tensor)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a tuple of ints >= 1, "
                        f"got {type(values).__name__} {values!r}")
    if (not values and not allow_empty) or (length is not None and len(values) != length):
        size = str(length) if length is not None else "at least one"
        raise ValueError(f"{name} must hold {size} ints >= 1, got {tuple(values)!r}")
    return tuple(check.positive_int(f"{name}[{i}]", v) for i, v in enumerate(values))


def _shape4(name: str, shape: object) -> tuple[int, int, int, int]:
    """``shape`` as the four positive sizes (B, C, H, W)."""
    B, C, H, W = _positive_ints(name, shape, length=4)
    return B, C, H, W


def output_size(n: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length along one axis of a convolution or pooling window."""
    check.positive_int("n", n)
    check.positive_int("kernel", kernel)
    check.positive_int("stride", stride)
    check.nonnegative_int("padding", padding)
    if kernel > n + 2 * padding:
        raise ValueError(
            f"kernel of size {kernel} is larger than the padded input of size "
            f"{n} + 2*{padding} = {n + 2 * padding}"
        )
    # n_out = floor((n + 2 zeta - k) / s) + 1, zeta the padding
    return (n + 2 * padding - kernel) // stride + 1


def _conv_shapes(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: Pair, padding: Pair
) -> Pair:
    """Validate a convolution's arguments and return its output height and width."""
    C_out, C_in, k_h, k_w = check.expect_shape(check.floating("weight", weight),
                                               "C_out C_in k_h k_w", "weight").values()
    check.expect_shape(check.floating("x", x), "B C_in H W", C_in=C_in)
    if bias is not None:
        check.expect_shape(check.floating("bias", bias), "C_out", "bias", C_out=C_out)
    H, W = x.shape[2:]
    return output_size(H, k_h, stride[0], padding[0]), output_size(W, k_w, stride[1], padding[1])


def receptive_field(layers: Sequence[tuple[int, int]]) -> int:
    """Side of the input window that one unit after ``layers`` sees.

    Each layer is ``(kernel, stride)`` (a convolution or a pooling window). With
    j_l the distance in input pixels between neighbouring units of layer l and
    r_0 = j_0 = 1, the field grows as r_l = r_{l-1} + (k_l - 1) j_{l-1} and the
    spacing as j_l = j_{l-1} s_l.

    >>> receptive_field([(5, 1), (2, 2), (5, 1), (2, 2)])  # LeNet
    16
    """
    if not isinstance(layers, (list, tuple)):
        raise TypeError("layers must be a list of (kernel, stride) pairs, "
                        f"got {type(layers).__name__}")
    r, j = 1, 1
    for i, layer in enumerate(layers):
        if not isinstance(layer, (list, tuple)) or len(layer) != 2:
            raise TypeError(f"layers[{i}] must be a (kernel, stride) pair, got {layer!r}")
        kernel = check.positive_int(f"layers[{i}] kernel", layer[0])
        stride = check.positive_int(f"layers[{i}] stride", layer[1])
        # r_l = r_{l-1} + (k_l - 1) j_{l-1},  j_l = j_{l-1} s_l
        r, j = r + (kernel - 1) * j, j * stride
    return r


def conv2d_direct(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
) -> torch.Tensor:
    """A 2-D convolution (cross-correlation) from its definition, one kernel offset at a time.

    Shapes: x (B, C_in, H, W), weight (C_out, C_in, k_h, k_w), bias (C_out,);
    the output is (B, C_out, H_out, W_out).
    """
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    x = check.as_float_like("x", x, check.floating("weight", weight))  # one dtype: weight's
    bias = None if bias is None else check.as_float_like("bias", bias, weight)
    H_out, W_out = _conv_shapes(x, weight, bias, stride, padding)
    (s_h, s_w), (p_h, p_w) = stride, padding
    _, _, k_h, k_w = weight.shape
    x = F.pad(x, (p_w, p_w, p_h, p_h))  # (B, C_in, H + 2p_h, W + 2p_w)
    out = x.new_zeros(x.shape[0], weight.shape[0], H_out, W_out)  # (B, C_out, H_out, W_out)
    for i in range(k_h):
        for j in range(k_w):
            # The input pixels that meet kernel entry (i, j): x[n, c, s_h*p + i, s_w*q + j]
            # (B, C_in, H_out, W_out)
            patch = x[:, :, i : i + s_h * H_out : s_h, j : j + s_w * W_out : s_w]
            # y[n, o, p, q] += sum_c w[o, c, i, j] x[n, c, s_h p + i, s_w q + j]
            out = out + torch.einsum("bcpq,oc->bopq", patch, weight[:, :, i, j])
    if bias is not None:
        out = out + bias[None, :, None, None]
    return out


def im2col(
    x: torch.Tensor,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
) -> torch.Tensor:
    """Unfold every kernel-sized window of x into a column.

    Shapes: x (B, C, H, W) to (B, C k_h k_w, H_out W_out), the layout of
    ``torch.nn.functional.unfold``.
    """
    B, C, H, W = check.expect_shape(x, "B C H W").values()
    (k_h, k_w) = _pair(kernel_size, "kernel_size", 1)
    (s_h, s_w), (p_h, p_w) = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    H_out, W_out = output_size(H, k_h, s_h, p_h), output_size(W, k_w, s_w, p_w)
    x = F.pad(x, (p_w, p_w, p_h, p_h))  # (B, C, H + 2p_h, W + 2p_w)
    # rows ordered (channel, kernel row, kernel column), as weight.reshape(C_out, -1);
    # columns ordered row-major over the (H_out, W_out) output positions
    cols = x.new_empty(B, C, k_h, k_w, H_out, W_out)
    for i in range(k_h):
        for j in range(k_w):
            # cols[n, c, i, j, p, q] = x_pad[n, c, s_h p + i, s_w q + j]
            cols[:, :, i, j] = x[:, :, i : i + s_h * H_out : s_h, j : j + s_w * W_out : s_w]
    return cols.reshape(B, C * k_h * k_w, H_out * W_out)  # (B, C k_h k_w, H_out W_out)


def col2im(
    cols: torch.Tensor,
    input_shape: Sequence[int],
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
) -> torch.Tensor:
    """The adjoint of im2col: add every column back onto its window.

    Shapes: cols (B, C k_h k_w, H_out W_out) to input_shape (B, C, H, W). Where windows
    overlap their values are summed: a pixel's gradient is the sum over the windows that
    contain it.
    """
    (k_h, k_w) = _pair(kernel_size, "kernel_size", 1)
    (s_h, s_w), (p_h, p_w) = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    B, C, H, W = _shape4("input_shape", input_shape)
    H_out, W_out = output_size(H, k_h, s_h, p_h), output_size(W, k_w, s_w, p_w)
    check.expect_shape(cols, "B R L", "cols", B=B, R=C * k_h * k_w, L=H_out * W_out)
    cols = cols.reshape(B, C, k_h, k_w, H_out, W_out)
    x = cols.new_zeros(B, C, H + 2 * p_h, W + 2 * p_w)  # (B, C, H + 2p_h, W + 2p_w)
    for i in range(k_h):
        for j in range(k_w):
            # The transpose of im2col's copy: add instead of read.
            x[:, :, i : i + s_h * H_out : s_h, j : j + s_w * W_out : s_w] += cols[:, :, i, j]
    return x[:, :, p_h : p_h + H, p_w : p_w + W]  # drop the padding: (B, C, H, W)


class Conv2dFunction(torch.autograd.Function):
    """2-D convolution as one matrix product over im2col columns, backward pass by hand."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
        stride: Pair, padding: Pair,
    ) -> torch.Tensor:
        H_out, W_out = _conv_shapes(x, weight, bias, stride, padding)
        C_out, _, k_h, k_w = weight.shape
        cols = im2col(x, (k_h, k_w), stride, padding)  # (B, C_in k_h k_w, H_out W_out)
        W_mat = weight.reshape(C_out, -1)  # (C_out, C_in k_h k_w)
        # Y = W X_col (+ b): one (C_out, C k k) @ (C k k, H_out W_out) product per image
        out = W_mat @ cols  # (B, C_out, H_out W_out)
        if bias is not None:
            out = out + bias[None, :, None]
        ctx.save_for_backward(cols, weight)
        ctx.conf = (tuple(x.shape), stride, padding, bias is not None)
        return out.reshape(x.shape[0], C_out, H_out, W_out)  # (B, C_out, H_out, W_out)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        cols, weight = ctx.saved_tensors
        x_shape, stride, padding, has_bias = ctx.conf
        C_out, _, k_h, k_w = weight.shape
        G = grad_out.reshape(grad_out.shape[0], C_out, -1)  # (B, C_out, H_out W_out)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            # dL/dX_col = W^T G, then every column is added back onto its window
            grad_cols = weight.reshape(C_out, -1).T @ G  # (B, C_in k_h k_w, H_out W_out)
            grad_x = col2im(grad_cols, x_shape, (k_h, k_w), stride, padding)
        if ctx.needs_input_grad[1]:
            # dL/dW = sum_n G_n X_col,n^T: a correlation of the output gradient with the input
            grad_w = torch.einsum("bol,bkl->ok", G, cols).reshape(weight.shape)
        if has_bias and ctx.needs_input_grad[2]:
            # dL/db_o = sum over the batch and all positions of G
            grad_b = G.sum(dim=(0, 2))
        return grad_x, grad_w, grad_b, None, None


def conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
) -> torch.Tensor:
    """2-D convolution via im2col with a hand-written backward pass.

    Same arguments, shapes and results as ``torch.nn.functional.conv2d``
    (without dilation or groups). An ``x`` or ``bias`` of another floating dtype
    than ``weight`` is converted to it.

    Args:
        x: input of shape ``(B, C_in, H, W)``.
        weight: kernels of shape ``(C_out, C_in, k_h, k_w)``.
        bias: optional ``(C_out,)``.
        stride: ``s`` or ``(s_h, s_w)``.
        padding: ``p`` or ``(p_h, p_w)``.

    Returns:
        The output, shape ``(B, C_out, H_out, W_out)``.

    Raises:
        ValueError: on a channel mismatch, a kernel larger than the padded
            input, or a tensor of the wrong rank.

    >>> y = conv2d(torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3), stride=2, padding=1)
    >>> tuple(y.shape)
    (2, 4, 4, 4)
    """
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    x = check.as_float_like("x", x, check.floating("weight", weight))
    bias = None if bias is None else check.as_float_like("bias", bias, weight)
    _conv_shapes(x, weight, bias, stride, padding)
    return Conv2dFunction.apply(x, weight, bias, stride, padding)


def _pool_setup(
    x: torch.Tensor, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None
) -> tuple[Pair, Pair, int, int]:
    check.expect_shape(check.floating("x", x), "B C H W")
    kernel = _pair(kernel_size, "kernel_size", 1)
    stride = kernel if stride is None else _pair(stride, "stride", 1)
    H_out = output_size(x.shape[2], kernel[0], stride[0])
    W_out = output_size(x.shape[3], kernel[1], stride[1])
    return kernel, stride, H_out, W_out


class MaxPool2dFunction(torch.autograd.Function):
    """Max pooling over im2col windows; the gradient goes to each window's maximum."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, kernel: Pair, stride: Pair) -> torch.Tensor:
        B, C, H, W = x.shape
        # Pool each channel on its own: treat (B, C) as a batch of one-channel images.
        cols = im2col(x.reshape(B * C, 1, H, W), kernel, stride)  # (B C, k_h k_w, H_out W_out)
        out, argmax = cols.max(dim=1)  # (B C, H_out W_out): y = max over the window
        ctx.save_for_backward(argmax)
        ctx.conf = (tuple(x.shape), kernel, stride, cols.shape)
        H_out, W_out = output_size(H, kernel[0], stride[0]), output_size(W, kernel[1], stride[1])
        return out.reshape(B, C, H_out, W_out)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (argmax,) = ctx.saved_tensors
        (B, C, H, W), kernel, stride, cols_shape = ctx.conf
        G = grad_out.reshape(B * C, 1, -1)  # (B C, 1, H_out W_out)
        # dy/dx_m = 1 for the window's maximum m, 0 for the others
        # (B C, k_h k_w, H_out W_out)
        grad_cols = G.new_zeros(cols_shape).scatter_(1, argmax[:, None, :], G)
        grad_x = col2im(grad_cols, (B * C, 1, H, W), kernel, stride)
        return grad_x.reshape(B, C, H, W), None, None


class AvgPool2dFunction(torch.autograd.Function):
    """Average pooling over im2col windows; the gradient is shared equally."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, kernel: Pair, stride: Pair) -> torch.Tensor:
        B, C, H, W = x.shape
        cols = im2col(x.reshape(B * C, 1, H, W), kernel, stride)  # (B C, k_h k_w, H_out W_out)
        ctx.conf = (tuple(x.shape), kernel, stride, cols.shape)
        H_out, W_out = output_size(H, kernel[0], stride[0]), output_size(W, kernel[1], stride[1])
        # y = (1 / k_h k_w) sum over the window
        return cols.mean(dim=1).reshape(B, C, H_out, W_out)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (B, C, H, W), kernel, stride, cols_shape = ctx.conf
        G = grad_out.reshape(B * C, 1, -1)  # (B C, 1, H_out W_out)
        # dy/dx_m = 1 / (k_h k_w) for every pixel m of the window
        grad_cols = (G / cols_shape[1]).expand(cols_shape)  # (B C, k_h k_w, H_out W_out)
        grad_x = col2im(grad_cols, (B * C, 1, H, W), kernel, stride)
        return grad_x.reshape(B, C, H, W), None, None


def max_pool2d(
    x: torch.Tensor, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None
) -> torch.Tensor:
    """Max pooling via im2col with a hand-written backward pass.

    Args:
        x: input of shape ``(B, C, H, W)``.
        kernel_size: window ``k`` or ``(k_h, k_w)``.
        stride: step between windows; the window size when left out, as in torch.

    Returns:
        The pooled tensor, shape ``(B, C, H_out, W_out)``.

    Raises:
        ValueError: if ``x`` is not 4-D or the window is larger than the input.

    >>> max_pool2d(torch.arange(16.0).reshape(1, 1, 4, 4), 2).flatten().tolist()
    [5.0, 7.0, 13.0, 15.0]
    """
    kernel, stride, _, _ = _pool_setup(x, kernel_size, stride)
    return MaxPool2dFunction.apply(x, kernel, stride)


def avg_pool2d(
    x: torch.Tensor, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None
) -> torch.Tensor:
    """Average pooling via im2col with a hand-written backward pass.

    Args:
        x: input of shape ``(B, C, H, W)``.
        kernel_size: window ``k`` or ``(k_h, k_w)``.
        stride: step between windows; the window size when left out, as in torch.

    Returns:
        The pooled tensor, shape ``(B, C, H_out, W_out)``.

    Raises:
        ValueError: if ``x`` is not 4-D or the window is larger than the input.

    >>> avg_pool2d(torch.arange(16.0).reshape(1, 1, 4, 4), 2).flatten().tolist()
    [2.5, 4.5, 10.5, 12.5]
    """
    kernel, stride, _, _ = _pool_setup(x, kernel_size, stride)
    return AvgPool2dFunction.apply(x, kernel, stride)


@dataclass(frozen=True)
class LeNetConfig:
    """Hyper-parameters of a LeNet."""

    in_channels: int = 1  # 1 for grayscale
    image_size: int = 28  # side of the square input images
    num_classes: int = 10
    channels: tuple[int, int] = (6, 16)  # the two convolutions' widths (as in LeNet-5)
    kernel_size: int = 5
    padding: int = 2  # around the first convolution's input: 2 keeps 28×28 at 28×28
    hidden: tuple[int, ...] = (120, 84)  # widths of the fully connected hidden layers
    pool: Literal["max", "avg"] = "max"  # LeNet-5 averaged; max is the modern choice

    def __post_init__(self) -> None:
        check.positive_int("LeNetConfig.in_channels", self.in_channels)
        check.positive_int("LeNetConfig.image_size", self.image_size)
        check.positive_int("LeNetConfig.num_classes", self.num_classes)
        _positive_ints("LeNetConfig.channels", self.channels, length=2)
        check.positive_int("LeNetConfig.kernel_size", self.kernel_size)
        check.nonnegative_int("LeNetConfig.padding", self.padding)
        _positive_ints("LeNetConfig.hidden", self.hidden, allow_empty=True)
        check.one_of("LeNetConfig.pool", self.pool, ("max", "avg"))
        self.feature_size()  # raises if the image is too small for the layers

    def feature_size(self) -> int:
        """Side of the feature maps after the second conv + pool block."""
        n = output_size(self.image_size, self.kernel_size, 1, self.padding)  # conv 1
        n = output_size(n, 2, 2)  # pool 1
        n = output_size(n, self.kernel_size)  # conv 2
        return output_size(n, 2, 2)  # pool 2


class LeNet(nn.Module):
    """A LeNet-5-style network: two conv + ReLU + pool blocks, then an MLP head."""

    def __init__(self, config: LeNetConfig, backend: Literal["torch", "scratch"] = "torch") -> None:
        super().__init__()
        if not isinstance(config, LeNetConfig):
            raise TypeError(f"config must be a LeNetConfig, got {type(config).__name__}")
        self.config = c = config
        self.backend = backend
        c1, c2 = c.channels
        self.conv1 = nn.Conv2d(c.in_channels, c1, c.kernel_size, padding=c.padding)
        self.conv2 = nn.Conv2d(c1, c2, c.kernel_size)
        widths = [c2 * c.feature_size() ** 2, *c.hidden]
        layers: list[nn.Module] = [nn.Flatten()]  # (B, C2, n, n) -> (B, C2 n n)
        for d_in, d_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(d_in, d_out), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], c.num_classes))
        self.head = nn.Sequential(*layers)

    @property
    def backend(self) -> str:
        """Which code runs the convolutions and pooling: "torch" or "scratch" (im2col)."""
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        self._backend = check.one_of("backend", value, ("torch", "scratch"))

    def _block(self, conv: nn.Conv2d, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scratch = self.backend == "scratch"
        conv_fn = conv2d if scratch else F.conv2d
        if self.config.pool == "max":
            pool_fn = max_pool2d if scratch else F.max_pool2d
        else:
            pool_fn = avg_pool2d if scratch else F.avg_pool2d
        a = torch.relu(conv_fn(x, conv.weight, conv.bias, conv.stride, conv.padding))
        return a, pool_fn(a, 2)

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The activations after each convolution (after ReLU) and each pooling, by name."""
        c = self.config
        x = check.as_float_like("x", x, self.conv1.weight)  # float64 images are converted
        check.expect_shape(x, "B C H W", C=c.in_channels, H=c.image_size, W=c.image_size)
        conv1, pool1 = self._block(self.conv1, x)
        conv2, pool2 = self._block(self.conv2, pool1)
        return {"conv1": conv1, "pool1": pool1, "conv2": conv2, "pool2": pool2}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (B, num_classes) for images (B, C, H, W); float64 is converted."""
        return self.head(self.features(x)["pool2"])
