"""Modern CNNs, scaled down to 28×28 images (Part 8, "Modern CNNs").

Each architecture keeps the idea of the paper that introduced it and shrinks the
widths and depths until it trains on the glyphs data set in seconds on a CPU:

- ``AlexNet``: a large first kernel, ReLU, overlapping max pooling, a wide fully
  connected head with dropout.
- ``VGG``: only 3×3 convolutions, stacked in blocks, each block ended by 2×2 pooling.
- ``Inception``: blocks of parallel branches (1×1, 3×3, 5×5, pooling) whose 1×1
  convolutions cut the channel count before the expensive kernels.
- ``ResNet``: residual blocks ``relu(x + F(x))`` with batch normalization
  (``ConvResidualBlock``; the dense residual block of Part 6 is another class).
- ``GlyphNet``: the small CNN whose pretrained weights the package ships; the
  loader ``glyphnet`` is in ``dlbook.pretrained``.

``shift_rotate``, ``random_shift_rotate`` and ``Augmented`` are the on-the-fly
data augmentation measured in the LeNet chapter; ``saliency_map``,
``occlusion_map`` and ``grad_cam`` show there what a trained network looks at.

Every model is a ``CNNClassifier``: ``features`` then ``head``. Its forward pass
checks the images' shape and converts a float64 batch to the model's dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import math
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from dlbook import _checks as check
from dlbook.conv import _positive_ints

C = TypeVar("C")

__all__ = [
    "count_multiply_adds", "CNNClassifier", "global_average_head",
    "AlexNetConfig", "AlexNet", "VGGConfig", "vgg_block", "VGG",
    "InceptionConfig", "conv_bn_relu", "InceptionBlock", "Inception",
    "ResNetConfig", "ConvResidualBlock", "BottleneckBlock", "ResNet", "GlyphNetConfig", "GlyphNet",
    "layer_windows", "shift_rotate", "random_shift_rotate", "Augmented",
    "saliency_map", "occlusion_map", "grad_cam",
]


def _non_empty(name: str, blocks: object) -> None:
    """Raise unless ``blocks`` is a non-empty tuple or list (of blocks)."""
    if not isinstance(blocks, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of blocks, got {type(blocks).__name__} {blocks!r}")
    if not blocks:
        raise ValueError(f"{name} must hold at least one block, got {blocks!r}")


def _config(config: C | None, kind: type[C]) -> C:
    """``config``, or ``kind()`` when it is None; a ``TypeError`` for anything else."""
    if config is None:
        return kind()
    if not isinstance(config, kind):
        raise TypeError(f"config must be {kind.__name__} or None, got {type(config).__name__}")
    return config


def _images(x: object, model: nn.Module, channels: int, side: int | None = None,
            min_side: int = 1) -> torch.Tensor:
    """Check images ``x`` of shape (B, channels, H, W) for ``model``; float64 is converted."""
    reference = next(model.parameters())
    x = check.as_float_like("x", x, reference)
    sides = {"H": side, "W": side} if side is not None else {}
    dims = check.expect_shape(x, "B C H W", C=channels, **sides)
    if min(dims["H"], dims["W"]) < min_side:
        raise ValueError(f"expected x of shape (B, {channels}, H, W) with H, W >= {min_side}, "
                         f"got {tuple(x.shape)}")
    return x


def count_multiply_adds(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply–adds that the convolutions and linear layers of ``model`` spend on one image.

    Runs ``model`` once on the batch ``x`` (``(B, ...)``, in eval mode, without
    gradients) and counts, for every ``nn.Conv2d``, ``(C_in / groups) · k_h · k_w``
    multiply–adds per output value, and for every ``nn.Linear``, ``in_features``
    per output value; the total is divided by ``B``. Pooling, normalization and
    activations are not counted: their cost is small in arithmetic, though not
    always in time. A float64 batch is converted to the model's dtype.

    >>> count_multiply_adds(nn.Conv2d(1, 8, 3, padding=1), torch.zeros(2, 1, 5, 5))  # 8·5·5 · 9
    1800
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    x = check.floating("x", x)
    if x.dim() < 2 or len(x) == 0:
        raise ValueError(f"expected a non-empty batch x of shape (B, ...), got {tuple(x.shape)}")
    reference = next(model.parameters(), None)
    if reference is not None:
        x = check.as_float_like("x", x, reference)
    total = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k_h, k_w = module.kernel_size
            total += output.numel() * (module.in_channels // module.groups) * k_h * k_w
        else:
            total += output.numel() * module.in_features

    layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    handles = [m.register_forward_hook(count) for m in layers]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total // len(x)


class CNNClassifier(nn.Module):
    """A CNN classifier in two parts: ``features`` (convolutions and pooling), then ``head``."""

    in_channels: int = 1
    image_size: int | None = None  # the side a flattening head needs; None: any side
    min_side: int = 1  # the smallest side the pooling layers accept

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (B, num_classes) for images (B, in_channels, H, W); float64 is converted."""
        x = _images(x, self, self.in_channels, self.image_size, self.min_side)
        return self.head(self.features(x))


def global_average_head(width: int, num_classes: int) -> nn.Sequential:
    """Global average pooling and one linear layer: ``(B, width, H, W)`` to ``(B, num_classes)``.

    GoogLeNet's replacement for a wide fully connected head.
    """
    check.positive_int("width", width)
    check.positive_int("num_classes", num_classes)
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))


# --------------------------------------------------------------------------- AlexNet


@dataclass(frozen=True)
class AlexNetConfig:
    """A small AlexNet for 28×28 images."""

    in_channels: int = 1  # image channels (1 for glyphs)
    num_classes: int = 10
    # widths of the five convolutions (the paper: 96, 256, 384, 384, 256)
    channels: tuple[int, int, int, int, int] = (16, 32, 48, 48, 32)
    hidden: int = 128  # width of the two fully connected layers (the paper: 4096)
    dropout: float = 0.5  # dropout probability in the head

    def __post_init__(self) -> None:
        check.positive_int("AlexNetConfig.in_channels", self.in_channels)
        check.positive_int("AlexNetConfig.num_classes", self.num_classes)
        _positive_ints("AlexNetConfig.channels", self.channels, length=5)
        check.positive_int("AlexNetConfig.hidden", self.hidden)
        check.fraction("AlexNetConfig.dropout", self.dropout)


class AlexNet(CNNClassifier):
    """Five convolutions, three overlapping 3×3/stride-2 max pools, a dropout head."""

    image_size = 28  # the head flattens a (c5, 2, 2) map

    def __init__(self, config: AlexNetConfig | None = None) -> None:
        super().__init__()
        self.config = c = _config(config, AlexNetConfig)
        self.in_channels = c.in_channels
        c1, c2, c3, c4, c5 = c.channels
        self.features = nn.Sequential(
            nn.Conv2d(c.in_channels, c1, 5, padding=2), nn.ReLU(),  # (B, c1, 28, 28)
            nn.MaxPool2d(3, stride=2),  # overlapping pooling: (B, c1, 13, 13)
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(3, stride=2),  # (B, c2, 6, 6)
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c3, c4, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c4, c5, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(3, stride=2),  # (B, c5, 2, 2)
        )
        self.head = nn.Sequential(
            nn.Flatten(),  # (B, c5 * 4)
            nn.Dropout(c.dropout), nn.Linear(c5 * 4, c.hidden), nn.ReLU(),
            nn.Dropout(c.dropout), nn.Linear(c.hidden, c.hidden), nn.ReLU(),
            nn.Linear(c.hidden, c.num_classes),
        )


# --------------------------------------------------------------------------- VGG


@dataclass(frozen=True)
class VGGConfig:
    """A small VGG for 28×28 images: a list of blocks, each ``(number of 3×3 convs, width)``."""

    in_channels: int = 1
    num_classes: int = 10
    # one (convs, channels) pair per block; each block halves the side (28 -> 14 -> 7 -> 3)
    blocks: tuple[tuple[int, int], ...] = ((1, 8), (2, 16), (2, 32))
    hidden: int = 128  # width of the fully connected layer
    dropout: float = 0.5  # dropout probability in the head

    def __post_init__(self) -> None:
        check.positive_int("VGGConfig.in_channels", self.in_channels)
        check.positive_int("VGGConfig.num_classes", self.num_classes)
        _non_empty("VGGConfig.blocks", self.blocks)
        for i, block in enumerate(self.blocks):
            _positive_ints(f"VGGConfig.blocks[{i}]", block, length=2)
        check.positive_int("VGGConfig.hidden", self.hidden)
        check.fraction("VGGConfig.dropout", self.dropout)
        if 28 // 2 ** len(self.blocks) < 1:
            raise ValueError(f"VGGConfig.blocks: {len(self.blocks)} blocks shrink a 28×28 image "
                             "below one pixel; use at most 4")


def vgg_block(convs: int, in_channels: int, out_channels: int) -> nn.Sequential:
    """``convs`` 3×3 convolutions with ReLU, then a 2×2 max pool that halves H and W."""
    check.positive_int("convs", convs)
    check.positive_int("in_channels", in_channels)
    check.positive_int("out_channels", out_channels)
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1),
                   nn.ReLU()]
    layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class VGG(CNNClassifier):
    """Blocks of 3×3 convolutions: depth from one repeated, simple part."""

    image_size = 28  # the head flattens the last block's map

    def __init__(self, config: VGGConfig | None = None) -> None:
        super().__init__()
        self.config = c = _config(config, VGGConfig)
        self.in_channels = c.in_channels
        blocks, width = [], c.in_channels
        for convs, channels in c.blocks:
            blocks.append(vgg_block(convs, width, channels))
            width = channels
        self.features = nn.Sequential(*blocks)
        side = self.image_size // 2 ** len(c.blocks)
        self.head = nn.Sequential(
            nn.Flatten(),  # (B, width * side * side)
            nn.Linear(width * side * side, c.hidden), nn.ReLU(), nn.Dropout(c.dropout),
            nn.Linear(c.hidden, c.num_classes),
        )


# --------------------------------------------------------------------------- Inception


@dataclass(frozen=True)
class InceptionConfig:
    """A small GoogLeNet.

    Each block is ``(c1, (r3, c3), (r5, c5), cp)``: a 1×1 branch of ``c1``
    channels; a 1×1 reduction to ``r3`` then a 3×3 convolution to ``c3``; a
    reduction to ``r5`` then a 5×5 convolution to ``c5``; 3×3 max pooling then a
    1×1 convolution to ``cp``. A 2×2 max pool follows the first block.
    """

    in_channels: int = 1
    num_classes: int = 10
    stem: int = 16  # width of the first 3×3 convolution
    blocks: tuple[tuple[int, tuple[int, int], tuple[int, int], int], ...] = (
        (8, (8, 16), (4, 8), 8),
        (16, (16, 24), (4, 8), 16),
    )

    def __post_init__(self) -> None:
        check.positive_int("InceptionConfig.in_channels", self.in_channels)
        check.positive_int("InceptionConfig.num_classes", self.num_classes)
        check.positive_int("InceptionConfig.stem", self.stem)
        _non_empty("InceptionConfig.blocks", self.blocks)
        for i, block in enumerate(self.blocks):
            if not isinstance(block, Sequence) or len(block) != 4:
                raise ValueError(f"InceptionConfig.blocks[{i}] must be "
                                 f"(c1, (r3, c3), (r5, c5), cp), got {block!r}")
            c1, c3, c5, cp = block
            _positive_ints(f"InceptionConfig.blocks[{i}]", (c1, cp))
            _positive_ints(f"InceptionConfig.blocks[{i}][1]", c3, length=2)
            _positive_ints(f"InceptionConfig.blocks[{i}][2]", c5, length=2)


def conv_bn_relu(in_channels: int, out_channels: int, kernel: int) -> nn.Sequential:
    """A ``kernel``×``kernel`` convolution that keeps H and W, batch norm, ReLU."""
    check.positive_int("in_channels", in_channels)
    check.positive_int("out_channels", out_channels)
    check.positive_int("kernel", kernel)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU(),
    )


class InceptionBlock(nn.Module):
    """Four parallel branches over the same input, concatenated along channels."""

    def __init__(
        self, in_channels: int, c1: int, c3: tuple[int, int], c5: tuple[int, int], cp: int
    ) -> None:
        super().__init__()
        self.in_channels = check.positive_int("in_channels", in_channels)
        c3, c5 = _positive_ints("c3", c3, length=2), _positive_ints("c5", c5, length=2)
        self.branch1 = conv_bn_relu(in_channels, c1, 1)
        self.branch3 = nn.Sequential(
            conv_bn_relu(in_channels, c3[0], 1), conv_bn_relu(c3[0], c3[1], 3)  # 1×1, then 3×3
        )
        self.branch5 = nn.Sequential(
            conv_bn_relu(in_channels, c5[0], 1), conv_bn_relu(c5[0], c5[1], 5)  # 1×1, then 5×5
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1), conv_bn_relu(in_channels, cp, 1)
        )
        self.out_channels = c1 + c3[1] + c5[1] + cp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) to (B, c1 + c3 + c5 + cp, H, W); float64 is converted."""
        x = _images(x, self, self.in_channels)
        branches = [self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)]
        return torch.cat(branches, dim=1)


class Inception(CNNClassifier):
    """A stem convolution, Inception blocks, global average pooling, one linear layer."""

    min_side = 4  # two 2×2 max pools

    def __init__(self, config: InceptionConfig | None = None) -> None:
        super().__init__()
        self.config = c = _config(config, InceptionConfig)
        self.in_channels = c.in_channels
        layers: list[nn.Module] = [
            conv_bn_relu(c.in_channels, c.stem, 3), nn.MaxPool2d(2),  # (B, stem, 14, 14)
        ]
        width = c.stem
        for i, (c1, c3, c5, cp) in enumerate(c.blocks):
            block = InceptionBlock(width, c1, c3, c5, cp)
            layers.append(block)
            width = block.out_channels
            if i == 0:
                layers.append(nn.MaxPool2d(2))  # (B, width, 7, 7)
        self.features = nn.Sequential(*layers)
        # Global average pooling replaces the wide fully connected head.
        self.head = global_average_head(width, c.num_classes)  # (B, K)


# --------------------------------------------------------------------------- ResNet


@dataclass(frozen=True)
class ResNetConfig:
    """A small ResNet."""

    in_channels: int = 1
    num_classes: int = 10
    # width of each stage; every stage after the first starts with a stride-2 block
    stages: tuple[int, ...] = (16, 32, 48)
    blocks_per_stage: int = 1  # residual blocks in each stage

    def __post_init__(self) -> None:
        check.positive_int("ResNetConfig.in_channels", self.in_channels)
        check.positive_int("ResNetConfig.num_classes", self.num_classes)
        _positive_ints("ResNetConfig.stages", self.stages)
        check.positive_int("ResNetConfig.blocks_per_stage", self.blocks_per_stage)


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """The identity, or a 1×1 projection with batch norm when the width or the stride changes."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                         nn.BatchNorm2d(out_channels))


class ConvResidualBlock(nn.Module):
    """The basic block of ResNet: relu(shortcut(x) + BN(conv(relu(BN(conv(x)))))).

    When the block changes the width or the stride, the shortcut is a 1×1
    convolution with batch norm (a projection) so the two terms have one shape.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.in_channels = check.positive_int("in_channels", in_channels)
        check.positive_int("out_channels", out_channels)
        check.positive_int("stride", stride)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = _shortcut(in_channels, out_channels, stride)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The learned change F(x): conv, batch norm, ReLU, conv, batch norm."""
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) to (B, C_out, H / stride, W / stride); float64 is converted."""
        x = _images(x, self, self.in_channels)
        # y = relu(x + F(x)): the block learns the change F, the identity carries x
        return F.relu(self.shortcut(x) + self.residual(x))


class BottleneckBlock(nn.Module):
    """The block of ResNet-50 and deeper: 1×1 reduce to ``mid_channels``, 3×3, 1×1 expand, plus a shortcut.

    relu(shortcut(x) + BN(conv1x1(relu(BN(conv3x3(relu(BN(conv1x1(x))))))))); the
    stride, if any, is on the 3×3 convolution. The shortcut is a 1×1 projection
    with batch norm when the width or the stride changes, the identity otherwise.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.in_channels = check.positive_int("in_channels", in_channels)
        check.positive_int("mid_channels", mid_channels)
        check.positive_int("out_channels", out_channels)
        check.positive_int("stride", stride)
        self.reduce = nn.Conv2d(in_channels, mid_channels, 1, bias=False)  # C_in -> m, per pixel
        self.bn1 = nn.BatchNorm2d(mid_channels)
        self.conv = nn.Conv2d(mid_channels, mid_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid_channels)
        self.expand = nn.Conv2d(mid_channels, out_channels, 1, bias=False)  # m -> C_out, per pixel
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shortcut = _shortcut(in_channels, out_channels, stride)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """F(x): the 3×3 convolution works on the m reduced channels only."""
        h = F.relu(self.bn1(self.reduce(x)))  # (B, m, H, W)
        h = F.relu(self.bn2(self.conv(h)))  # (B, m, H / stride, W / stride)
        return self.bn3(self.expand(h))  # (B, C_out, H / stride, W / stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) to (B, C_out, H / stride, W / stride); float64 is converted."""
        x = _images(x, self, self.in_channels)
        # y = relu(x + F(x)), as in the basic block
        return F.relu(self.shortcut(x) + self.residual(x))


def layer_windows(model: nn.Module) -> list[tuple[int, int]]:
    """The (kernel, stride) of every square convolution and pooling layer of ``model``, in module order.

    For a plain chain of layers (an ``nn.Sequential`` such as ``VGG().features``)
    this is the input of ``dlbook.conv.receptive_field``; for a network with
    branches or shortcuts it is not meaningful.
    """
    check.module("model", model)
    windows = []
    for layer in model.modules():
        if isinstance(layer, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d):
            kernel, stride = (_square(layer, name) for name in ("kernel_size", "stride"))
            windows.append((kernel, stride))
    return windows


def _square(layer: nn.Module, name: str) -> int:
    """``layer.<name>`` as one int; a ValueError for a non-square window."""
    value = getattr(layer, name)
    if isinstance(value, tuple):
        if len(set(value)) != 1:
            raise ValueError(f"layer_windows needs square windows, got {name}={value} in {layer}")
        value = value[0]
    return int(value)


def shift_rotate(x: torch.Tensor, shifts: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Images ``x`` (B, C, H, W) moved by ``shifts`` (B, 2) pixels (right, down) and turned by ``degrees`` (B,).

    A positive angle turns the image counterclockwise as displayed; pixels that
    come from outside the image are 0, and values in between are bilinear.
    """
    B, _, H, W = check.expect_shape(check.floating("x", x), "B C H W", "x").values()
    check.expect_shape(check.floating("shifts", shifts), "B 2", "shifts", B=B)
    check.expect_shape(check.floating("degrees", degrees), "B", "degrees", B=B)
    a = degrees.to(x) * (math.pi / 180)  # (B,)
    cos, sin = torch.cos(a), torch.sin(a)
    # output pixel p reads the input at R(a) (p - t), in coordinates from -1 to 1 (t: the shift)
    t_x, t_y = shifts[:, 0].to(x) * 2 / W, shifts[:, 1].to(x) * 2 / H  # (B,) each
    theta = torch.stack([
        torch.stack([cos, -sin, -(cos * t_x - sin * t_y)], dim=1),
        torch.stack([sin, cos, -(sin * t_x + cos * t_y)], dim=1),
    ], dim=1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_shift_rotate(x: torch.Tensor, max_shift: float, max_degrees: float,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """``x`` (B, C, H, W), each image shifted by up to ``max_shift`` pixels per axis and turned by up to ``max_degrees``."""
    check.nonnegative_float("max_shift", max_shift)
    check.nonnegative_float("max_degrees", max_degrees)
    B = check.expect_shape(check.floating("x", x), "B C H W", "x")["B"]
    # uniform in [-max, max], drawn on the CPU so that a seed gives the same images on every device
    shifts = (torch.rand(B, 2, generator=generator) * 2 - 1) * max_shift  # (B, 2)
    degrees = (torch.rand(B, generator=generator) * 2 - 1) * max_degrees  # (B,)
    return shift_rotate(x, shifts, degrees)


class Augmented:
    """A loader of ``(x, y)`` batches whose images get a fresh random shift and rotation at every pass."""

    def __init__(self, loader: Iterable[tuple[torch.Tensor, torch.Tensor]], max_shift: float,
                 max_degrees: float, seed: int = 0) -> None:
        self.loader = loader
        self.max_shift = check.nonnegative_float("max_shift", max_shift)
        self.max_degrees = check.nonnegative_float("max_degrees", max_degrees)
        self.generator = torch.Generator().manual_seed(check.nonnegative_int("seed", seed))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:
            yield random_shift_rotate(x, self.max_shift, self.max_degrees, self.generator), y

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]


class ResNet(CNNClassifier):
    """A stem, stages of residual blocks, global average pooling, one linear layer."""

    min_side = 2  # one 2×2 max pool in the stem

    def __init__(self, config: ResNetConfig | None = None) -> None:
        super().__init__()
        self.config = c = _config(config, ResNetConfig)
        self.in_channels = c.in_channels
        layers: list[nn.Module] = [
            nn.Conv2d(c.in_channels, c.stages[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(c.stages[0]), nn.ReLU(),
            nn.MaxPool2d(2),  # (B, stages[0], 14, 14)
        ]
        width = c.stages[0]
        for i, channels in enumerate(c.stages):
            for j in range(c.blocks_per_stage):
                stride = 2 if i > 0 and j == 0 else 1
                layers.append(ConvResidualBlock(width, channels, stride))
                width = channels
        self.features = nn.Sequential(*layers)
        self.head = global_average_head(width, c.num_classes)  # (B, K)


# --------------------------------------------------------------------------- GlyphNet


@dataclass(frozen=True)
class GlyphNetConfig:
    """The small CNN whose weights ``dlbook`` ships (loaded by ``dlbook.pretrained.glyphnet``)."""

    num_classes: int = 26  # 26 for the letters weights
    channels: tuple[int, int, int] = (32, 64, 128)  # widths of the three 3×3 convolutions

    def __post_init__(self) -> None:
        check.positive_int("GlyphNetConfig.num_classes", self.num_classes)
        _positive_ints("GlyphNetConfig.channels", self.channels, length=3)


class GlyphNet(CNNClassifier):
    """Three conv–ReLU layers, two with 2×2 pooling, global average pooling, a linear head."""

    min_side = 4  # two 2×2 max pools

    def __init__(self, config: GlyphNetConfig | None = None) -> None:
        super().__init__()
        self.config = c = _config(config, GlyphNetConfig)
        self.in_channels = 1  # grayscale glyphs
        c1, c2, c3 = c.channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, c1, 14, 14)
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, c2, 7, 7)
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(),  # (B, c3, 7, 7)
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # (B, c3): the feature vector
        )
        self.head = nn.Linear(c3, c.num_classes)

    @property
    def feature_dim(self) -> int:
        """Length of the feature vector that ``features`` returns."""
        return self.config.channels[2]


def _eval_model_and_targets(model: object, x: object, y: object) -> tuple[nn.Module, int]:
    """The model (in eval mode) and the batch size, after checking ``x`` (B, C, H, W) and ``y`` (B,)."""
    model = check.module("model", model)
    if model.training:
        raise ValueError("model must be in eval mode (call model.eval()): in training mode, dropout "
                         "and batch statistics make one image's score depend on chance or on the others")
    B = check.expect_shape(check.floating("x", x), "B C H W", "x")["B"]
    check.labels("y", y)
    check.expect_shape(y, "B", "y", B=B)
    return model, B


def saliency_map(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient saliency of each image's class-``y`` score, (B, C, H, W) -> (B, H, W).

    Each pixel gets the largest absolute gradient over its channels.
    """
    model, _ = _eval_model_and_targets(model, x, y)
    x = x.detach().requires_grad_(True)
    scores = model(x).gather(1, y.to(x.device)[:, None])  # (B, 1): s_y of each image
    # image b's score depends on image b's pixels only, so the gradient of the sum holds each one's own
    (grad,) = torch.autograd.grad(scores.sum(), x)  # (B, C, H, W)
    # saliency_ij = max over channels c of |d s_y / d x_cij|
    return grad.abs().amax(dim=1)  # (B, H, W)


def occlusion_map(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, patch: int = 5,
                  value: float = 0.0, batch_size: int = 256) -> torch.Tensor:
    """Drop of each image's class-``y`` score when the patch × patch square centred on each pixel is set to ``value``.

    (B, C, H, W) -> (B, H, W); ``patch`` is odd, and squares are cut off at the border.
    """
    model, B = _eval_model_and_targets(model, x, y)
    patch = check.positive_int("patch", patch)
    if patch % 2 == 0:
        raise ValueError(f"patch must be odd, so that a square has a centre pixel, got {patch}")
    _, _, H, W = x.shape
    r = patch // 2
    rows, cols = torch.arange(H, device=x.device), torch.arange(W, device=x.device)
    near_row = (rows[:, None] - rows[None, :]).abs() <= r  # (H, H): a square centred on row i covers row p
    near_col = (cols[:, None] - cols[None, :]).abs() <= r  # (W, W)
    # masks[i W + j] is the square centred on pixel (i, j)
    masks = (near_row[:, None, :, None] & near_col[None, :, None, :]).reshape(H * W, 1, H, W)
    drops = []
    with torch.no_grad():
        for b in range(B):
            c = int(y[b])
            occluded = torch.where(masks, value, x[b])  # (H W, C, H, W): one copy per square
            scores = torch.cat([model(chunk)[:, c] for chunk in occluded.split(batch_size)])  # (H W,)
            # delta_ij = s_y(x) - s_y(x with the square at (i, j) set to value)
            drops.append(model(x[b:b + 1])[0, c] - scores)
    return torch.stack(drops).reshape(B, H, W)


def grad_cam(model: nn.Module, x: torch.Tensor, y: torch.Tensor, layer: nn.Module, *,
             average: bool = True, upsample: bool = True) -> torch.Tensor:
    """Grad-CAM of each image's class-``y`` score at the output of ``layer``, a module inside ``model``.

    (B, C, H, W) -> (B, H, W), upsampled bilinearly from the layer's (h, w) map;
    with ``upsample=False``, (B, h, w). The layer must run once per forward pass
    and return a (B, K, h, w) tensor. With ``average=False`` each position is
    weighted by its own gradient instead of the channel's average gradient.
    """
    model, _ = _eval_model_and_targets(model, x, y)
    check.module("layer", layer)
    check.one_of("average", average, (True, False))
    check.one_of("upsample", upsample, (True, False))
    if not any(m is layer for m in model.modules()):
        raise ValueError(f"layer must be a module inside model, got {type(layer).__name__} {layer}, "
                         "which is not one of model.modules()")
    captured: list[torch.Tensor] = []

    def keep(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        captured.append(output)

    handle = layer.register_forward_hook(keep)
    try:
        x = x.detach().requires_grad_(True)  # so that the activations are in a graph even with frozen weights
        with torch.enable_grad():
            scores = model(x).gather(1, y.to(x.device)[:, None])  # (B, 1): s_y of each image
    finally:
        handle.remove()
    if len(captured) != 1:
        raise ValueError(f"layer must run exactly once in model's forward pass, but it ran "
                         f"{len(captured)} times: {type(layer).__name__} {layer}")
    A = captured[0]
    if not isinstance(A, torch.Tensor) or A.dim() != 4 or len(A) != len(x):
        shape = tuple(A.shape) if isinstance(A, torch.Tensor) else type(A).__name__
        raise ValueError(f"layer must output feature maps of shape (B, K, h, w) with B = {len(x)}, "
                         f"got {shape}")
    # image b's score depends on image b's maps only, so the gradient of the sum holds each one's own
    (grad,) = torch.autograd.grad(scores.sum(), A)  # (B, K, h, w): d s_y / d A_k(i, j)
    # alpha_k = (1 / hw) sum over (i, j) of d s_y / d A_k(i, j); without averaging, the gradient itself
    alpha = grad.mean(dim=(2, 3), keepdim=True) if average else grad  # (B, K, 1, 1) or (B, K, h, w)
    # map_ij = relu(sum over k of alpha_k A_k(i, j))
    cam = torch.relu((alpha * A.detach()).sum(dim=1))  # (B, h, w)
    if not upsample:
        return cam
    size = x.shape[-2:]
    return F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]  # (B, H, W)
