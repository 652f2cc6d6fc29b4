"""Modern CNNs, scaled down to 28×28 images (Part 8: modern CNNs, transfer learning,
applications).

Each architecture keeps the idea of the paper that introduced it and shrinks the
widths and depths until it trains on the glyphs data set in seconds on a CPU:

- :class:`AlexNet`: large first kernel, ReLU, overlapping max pooling, a wide
  fully connected head with dropout.
- :class:`VGG`: only 3×3 convolutions, stacked in blocks, each block ended by 2×2 pooling.
- :class:`Inception`: blocks of parallel branches (1×1, 3×3, 5×5, pooling) whose
  1×1 convolutions cut the channel count before the expensive kernels.
- :class:`ResNet`: residual blocks ``relu(x + F(x))`` with batch normalization.

Also here: :class:`GlyphNet`, the small CNN whose pretrained weights the package
ships (:func:`glyphnet`); :class:`SuperResolution`, an ESPCN-style upscaler;
:class:`BoxRegressor` and :func:`box_iou` for object localization; and
:func:`gram_matrix` for texture synthesis.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CNNClassifier", "global_average_head",
    "count_multiply_adds",
    "AlexNetConfig", "AlexNet", "VGGConfig", "VGG", "InceptionConfig", "InceptionBlock",
    "Inception", "conv_bn_relu", "vgg_block", "ResNetConfig", "ResidualBlock", "ResNet",
    "GlyphNetConfig", "GlyphNet",
    "glyphnet", "count_parameters", "SuperResolution", "pixel_shuffle", "BoxRegressor",
    "box_iou", "localization_loss", "gram_matrix", "TextureFeatures", "texture_loss",
    "synthesize_texture",
]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars in ``model``.

    >>> count_parameters(nn.Conv2d(3, 8, 3))  # 8 * 3 * 3 * 3 weights + 8 biases
    224
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_multiply_adds(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply–adds that the convolutions and linear layers of ``model`` spend on one image.

    Runs ``model`` once on the batch ``x`` (``(B, ...)``, in eval mode, without
    gradients) and counts, for every ``nn.Conv2d``, ``(C_in / groups) · k_h · k_w``
    multiply–adds per output value, and for every ``nn.Linear``, ``in_features``
    per output value; the total is divided by ``B``. Pooling, normalization and
    activations are not counted: their cost is small in arithmetic, though not
    always in time.

    >>> count_multiply_adds(nn.Conv2d(1, 8, 3, padding=1), torch.zeros(2, 1, 5, 5))  # 8·5·5 outputs · 9
    1800
    """
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or len(x) == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected a non-empty batch x of shape (B, ...), got {shape}")
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


def _check_images(x: torch.Tensor, channels: int, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected {name} to be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(
            f"expected {name} of shape (B, {channels}, H, W), got {tuple(x.shape)}"
        )


def _check_positive(owner: str, **values: int | tuple[int, ...]) -> None:
    for name, value in values.items():
        items = value if isinstance(value, tuple) else (value,)
        if not items or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in items):
            raise ValueError(f"{owner}.{name} must be positive ints, got {value!r}")


class CNNClassifier(nn.Module):
    """A CNN classifier in two parts: ``features`` (convolutions and pooling) and ``head``.

    Subclasses build both in ``__init__`` and set ``in_channels``; the forward pass is
    the same for all of them. Transfer learning keeps ``features`` and replaces ``head``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores ``(B, num_classes)`` for images ``(B, in_channels, H, W)``."""
        _check_images(x, self.in_channels)
        return self.head(self.features(x))


def global_average_head(width: int, num_classes: int) -> nn.Sequential:
    """Global average pooling and one linear layer: ``(B, width, H, W)`` to ``(B, num_classes)``.

    GoogLeNet's replacement for a wide fully connected head.
    """
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))


# --------------------------------------------------------------------------- AlexNet


@dataclass(frozen=True)
class AlexNetConfig:
    """A small AlexNet.

    Attributes:
        in_channels: image channels (1 for glyphs).
        num_classes: output scores per image.
        channels: widths of the five convolutions (the paper: 96, 256, 384, 384, 256).
        hidden: width of the two fully connected layers (the paper: 4096).
        dropout: dropout probability in the head.
    """

    in_channels: int = 1
    num_classes: int = 10
    channels: tuple[int, int, int, int, int] = (16, 32, 48, 48, 32)
    hidden: int = 128
    dropout: float = 0.5

    def __post_init__(self) -> None:
        _check_positive("AlexNetConfig", in_channels=self.in_channels,
                        num_classes=self.num_classes, channels=self.channels, hidden=self.hidden)
        if len(self.channels) != 5:
            raise ValueError(f"AlexNetConfig.channels needs 5 widths, got {len(self.channels)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"AlexNetConfig.dropout must be in [0, 1), got {self.dropout}")


class AlexNet(CNNClassifier):
    """Five convolutions, three overlapping 3×3/stride-2 max pools, a dropout head."""

    def __init__(self, config: AlexNetConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or AlexNetConfig()
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
    """A small VGG: a list of blocks, each ``(number of 3×3 convs, width)``.

    Attributes:
        in_channels: image channels.
        num_classes: output scores per image.
        blocks: one ``(convs, channels)`` pair per block; each block halves the
            image side (28 → 14 → 7 → 3 with three blocks).
        hidden: width of the fully connected layer.
        dropout: dropout probability in the head.
    """

    in_channels: int = 1
    num_classes: int = 10
    blocks: tuple[tuple[int, int], ...] = ((1, 8), (2, 16), (2, 32))
    hidden: int = 128
    dropout: float = 0.5

    def __post_init__(self) -> None:
        _check_positive("VGGConfig", in_channels=self.in_channels,
                        num_classes=self.num_classes, hidden=self.hidden)
        if not self.blocks:
            raise ValueError("VGGConfig.blocks must hold at least one (convs, channels) pair")
        for block in self.blocks:
            _check_positive("VGGConfig", blocks=tuple(block))


def vgg_block(convs: int, in_channels: int, out_channels: int) -> nn.Sequential:
    """``convs`` 3×3 convolutions with ReLU, then a 2×2 max pool that halves H and W."""
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1),
                   nn.ReLU()]
    layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class VGG(CNNClassifier):
    """Blocks of 3×3 convolutions: depth from one repeated, simple part."""

    def __init__(self, config: VGGConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or VGGConfig()
        self.in_channels = c.in_channels
        blocks, width = [], c.in_channels
        for convs, channels in c.blocks:
            blocks.append(vgg_block(convs, width, channels))
            width = channels
        self.features = nn.Sequential(*blocks)
        side = 28 // 2 ** len(c.blocks)
        if side < 1:
            raise ValueError(f"{len(c.blocks)} blocks shrink a 28×28 image below one pixel")
        self.head = nn.Sequential(
            nn.Flatten(),  # (B, width * side * side)
            nn.Linear(width * side * side, c.hidden), nn.ReLU(), nn.Dropout(c.dropout),
            nn.Linear(c.hidden, c.num_classes),
        )


# --------------------------------------------------------------------------- Inception


@dataclass(frozen=True)
class InceptionConfig:
    """A small GoogLeNet.

    Attributes:
        in_channels: image channels.
        num_classes: output scores per image.
        stem: width of the first 3×3 convolution.
        blocks: widths of each Inception block's branches, as
            ``(c1, (r3, c3), (r5, c5), cp)``: a 1×1 branch of ``c1``; a 1×1
            reduction to ``r3`` then a 3×3 conv to ``c3``; a reduction to ``r5``
            then a 5×5 conv to ``c5``; 3×3 max pooling then a 1×1 conv to ``cp``.
            A 2×2 max pool follows the first block.
    """

    in_channels: int = 1
    num_classes: int = 10
    stem: int = 16
    blocks: tuple[tuple[int, tuple[int, int], tuple[int, int], int], ...] = (
        (8, (8, 16), (4, 8), 8),
        (16, (16, 24), (4, 8), 16),
    )

    def __post_init__(self) -> None:
        _check_positive("InceptionConfig", in_channels=self.in_channels,
                        num_classes=self.num_classes, stem=self.stem)
        if not self.blocks:
            raise ValueError("InceptionConfig.blocks must hold at least one block")
        for c1, (r3, c3), (r5, c5), cp in self.blocks:
            _check_positive("InceptionConfig", blocks=(c1, r3, c3, r5, c5, cp))


def conv_bn_relu(in_channels: int, out_channels: int, kernel: int) -> nn.Sequential:
    """A ``kernel``×``kernel`` convolution that keeps H and W, batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU(),
    )


class InceptionBlock(nn.Module):
    """Four parallel branches over the same input, concatenated along channels.

    The 1×1 convolutions before the 3×3 and 5×5 kernels shrink the channel
    count, so the expensive kernels see few input channels. Every convolution
    is followed by batch norm, as in the second version of the network
    (BN-Inception), so the small model trains in a few epochs.
    """

    def __init__(
        self, in_channels: int, c1: int, c3: tuple[int, int], c5: tuple[int, int], cp: int
    ) -> None:
        super().__init__()
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
        """``(B, C_in, H, W)`` to ``(B, c1 + c3 + c5 + cp, H, W)``: every branch keeps H, W."""
        branches = [self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)]
        return torch.cat(branches, dim=1)


class Inception(CNNClassifier):
    """A stem convolution, Inception blocks, global average pooling, one linear layer."""

    def __init__(self, config: InceptionConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or InceptionConfig()
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
    """A small ResNet.

    Attributes:
        in_channels: image channels.
        num_classes: output scores per image.
        stages: width of each stage; every stage after the first starts with a
            stride-2 block that halves H and W.
        blocks_per_stage: residual blocks in each stage.
    """

    in_channels: int = 1
    num_classes: int = 10
    stages: tuple[int, ...] = (16, 32, 48)
    blocks_per_stage: int = 1

    def __post_init__(self) -> None:
        _check_positive("ResNetConfig", in_channels=self.in_channels, num_classes=self.num_classes,
                        stages=self.stages, blocks_per_stage=self.blocks_per_stage)


class ResidualBlock(nn.Module):
    """``relu(shortcut(x) + BN(conv(relu(BN(conv(x))))))``, the basic block of ResNet.

    When the block changes the width or the stride, the shortcut is a 1×1
    convolution with batch norm (a projection) so the two terms have one shape.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The learned change ``F(x)``: conv, batch norm, ReLU, conv, batch norm."""
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` to ``(B, C_out, H / stride, W / stride)``."""
        # y = relu(x + F(x)): the block learns the change F, the identity carries x
        return F.relu(self.shortcut(x) + self.residual(x))


class ResNet(CNNClassifier):
    """A stem, stages of residual blocks, global average pooling, one linear layer."""

    def __init__(self, config: ResNetConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or ResNetConfig()
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
                layers.append(ResidualBlock(width, channels, stride))
                width = channels
        self.features = nn.Sequential(*layers)
        self.head = global_average_head(width, c.num_classes)  # (B, K)


# --------------------------------------------------------------------------- GlyphNet


@dataclass(frozen=True)
class GlyphNetConfig:
    """The small CNN whose weights ``dlbook`` ships.

    Attributes:
        num_classes: output scores per image (26 for the letters weights).
        channels: widths of the three 3×3 convolutions.
    """

    num_classes: int = 26
    channels: tuple[int, int, int] = (32, 64, 128)

    def __post_init__(self) -> None:
        _check_positive("GlyphNetConfig", num_classes=self.num_classes, channels=self.channels)
        if len(self.channels) != 3:
            raise ValueError(f"GlyphNetConfig.channels needs 3 widths, got {len(self.channels)}")


class GlyphNet(CNNClassifier):
    """Three conv–ReLU layers (two followed by 2×2 pooling), global average pooling,
    and a linear head.

    ``features`` maps ``(B, 1, 28, 28)`` images to ``(B, channels[2])`` vectors;
    ``head`` maps those to class scores. Transfer learning keeps ``features``
    and replaces ``head``.
    """

    def __init__(self, config: GlyphNetConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or GlyphNetConfig()
        self.in_channels = 1  # grayscale glyphs
        c1, c2, c3 = c.channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, c1, 14, 14)
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, c2, 7, 7)
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(),  # (B, c3, 7, 7)
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # (B, c3)
        )
        self.head = nn.Linear(c3, c.num_classes)

    @property
    def feature_dim(self) -> int:
        """Length of the feature vector that ``features`` returns."""
        return self.config.channels[2]



def glyphnet(weights: str | None = None, *, num_classes: int | None = None) -> GlyphNet:
    """Build a :class:`GlyphNet`, optionally with weights the package ships.

    Works like ``torchvision.models.resnet18(weights=...)``: ``weights=None``
    gives a randomly initialized network; a name such as ``"letters"`` loads
    the weights that ``python -m dlbook.pretrained`` trained (see
    :data:`dlbook.pretrained.WEIGHTS`). Nothing is downloaded.

    Args:
        weights: the name of shipped weights, or ``None``.
        num_classes: with ``weights``, replace the head by a fresh linear layer
            with this many outputs (for a new task); without ``weights``, the
            number of outputs (26 when left out).

    Returns:
        The network, in eval mode when weights were loaded.

    Raises:
        ValueError: if ``weights`` names no shipped weights.

    >>> glyphnet(weights="letters").head.out_features
    26
    >>> glyphnet(weights="letters", num_classes=10).head.out_features
    10
    """
    from dlbook.pretrained import load_state_dict, weights_info

    if weights is None:
        return GlyphNet(GlyphNetConfig(num_classes=num_classes or 26))
    info = weights_info(weights)
    model = GlyphNet(GlyphNetConfig(num_classes=len(info.classes), channels=info.channels))
    model.load_state_dict(load_state_dict(weights))
    if num_classes is not None:
        model.head = nn.Linear(model.feature_dim, num_classes)
    return model.eval()


# --------------------------------------------------------------------------- applications


def pixel_shuffle(x: torch.Tensor, r: int) -> torch.Tensor:
    """Rearrange ``(B, C r², H, W)`` into ``(B, C, H r, W r)`` (depth to space).

    Output pixel ``(c, h r + i, w r + j)`` is input channel ``c r² + i r + j``
    at ``(h, w)``: the same as :class:`torch.nn.PixelShuffle`.

    >>> pixel_shuffle(torch.arange(4.0).reshape(1, 4, 1, 1), 2).flatten().tolist()
    [0.0, 1.0, 2.0, 3.0]
    """
    if x.ndim != 4 or x.shape[1] % (r * r) != 0:
        raise ValueError(f"expected x of shape (B, C*{r * r}, H, W), got {tuple(x.shape)}")
    B, Crr, H, W = x.shape  # batch, channels times r², height, width
    C = Crr // (r * r)
    x = x.reshape(B, C, r, r, H, W)  # channel c*r² + i*r + j -> (c, i, j)
    x = x.permute(0, 1, 4, 2, 5, 3)  # (B, C, H, r_i, W, r_j)
    return x.reshape(B, C, H * r, W * r)


class SuperResolution(nn.Module):
    """An ESPCN-style upscaler: convolutions at low resolution, then a pixel shuffle.

    The network predicts the *correction* to a bicubic upscaling, so at
    initialization it already matches the bicubic baseline.

    Args:
        scale: the upscaling factor ``r``.
        channels: image channels.
        width: feature width of the hidden convolutions.
    """

    def __init__(self, scale: int = 2, channels: int = 1, width: int = 32) -> None:
        super().__init__()
        _check_positive("SuperResolution", scale=scale, channels=channels, width=width)
        self.scale, self.channels = scale, channels
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 5, padding=2), nn.Tanh(),
            nn.Conv2d(width, width, 3, padding=1), nn.Tanh(),
            nn.Conv2d(width, channels * scale**2, 3, padding=1),  # (B, C r², H, W)
        )
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale ``(B, C, H, W)`` to ``(B, C, H r, W r)``."""
        _check_images(x, self.channels)
        bicubic = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return bicubic + pixel_shuffle(self.body(x), self.scale)


class BoxRegressor(nn.Module):
    """A CNN with two heads: class scores and one bounding box per image.

    The box comes out as ``(x_min, y_min, x_max, y_max)`` in fractions of the
    image side, in [0, 1]: the sigmoid of four numbers for the centre and size.

    Args:
        num_classes: object classes.
        channels: image channels.
        width: width of the first convolution (doubled twice).
    """

    def __init__(self, num_classes: int = 3, channels: int = 3, width: int = 16) -> None:
        super().__init__()
        _check_positive("BoxRegressor", num_classes=num_classes, channels=channels, width=width)
        self.channels = channels
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),  # (B, 4 width * 16): keeps coarse position
        )
        self.classify = nn.Linear(64 * width, num_classes)
        self.locate = nn.Linear(64 * width, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return scores ``(B, num_classes)`` and boxes ``(B, 4)`` for images ``(B, C, H, W)``."""
        _check_images(x, self.channels)
        h = self.features(x)
        centre_size = torch.sigmoid(self.locate(h))  # (B, 4): cx, cy, w, h in [0, 1]
        centre, size = centre_size[:, :2], centre_size[:, 2:]
        boxes = torch.cat([centre - size / 2, centre + size / 2], dim=1)  # (B, 4)
        return self.classify(h), boxes


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of matching boxes ``(N, 4)`` in ``(x0, y0, x1, y1)`` form.

    >>> box_iou(torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[1.0, 0, 3, 2]]))
    tensor([0.3333])
    """
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 4:
        raise ValueError(
            f"expected two box tensors of shape (N, 4), got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    width = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    height = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = width * height
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    # IoU = |A ∩ B| / (|A| + |B| - |A ∩ B|)
    return inter / (area_a + area_b - inter).clamp(min=1e-12)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Channel correlations of feature maps: ``G = F Fᵀ / (H W)`` per image.

    Args:
        features: ``(B, C, H, W)`` activations of one layer.

    Returns:
        ``(B, C, C)`` Gram matrices. They discard *where* a feature fires and
        keep *which features fire together*: a description of texture.
    """
    if features.ndim != 4:
        raise ValueError(f"expected features of shape (B, C, H, W), got {tuple(features.shape)}")
    B, C, H, W = features.shape
    flat = features.reshape(B, C, H * W)  # (B, C, N) with N = H W positions
    # G_ij = (1/N) sum_n F_in F_jn
    return flat @ flat.transpose(1, 2) / (H * W)  # (B, C, C)


def localization_loss(
    output: tuple[torch.Tensor, torch.Tensor], target: torch.Tensor, box_weight: float = 5.0
) -> torch.Tensor:
    """Cross-entropy on the class plus ``box_weight`` times the L1 error of the box.

    Args:
        output: ``(scores (B, K), boxes (B, 4))`` from :class:`BoxRegressor`.
        target: ``(B, 5)``: the class index, then the box in fractions of the side.

    Returns:
        The scalar loss.
    """
    scores, boxes = output
    if target.ndim != 2 or target.shape[1] != 5 or target.shape[0] != boxes.shape[0]:
        raise ValueError(
            f"expected target of shape ({boxes.shape[0]}, 5), got {tuple(target.shape)}"
        )
    # L = CE(scores, class) + lambda * mean |box - box_true|
    class_loss = F.cross_entropy(scores, target[:, 0].long())
    return class_loss + box_weight * F.l1_loss(boxes, target[:, 1:])


class TextureFeatures(nn.Module):
    """A fixed, randomly initialized CNN whose layers describe texture through Gram matrices.

    Random filters are enough for texture synthesis (Ustyuzhaninov et al., 2017), so no
    ImageNet network is needed. The weights are drawn from ``seed`` and never trained.

    Args:
        channels: image channels.
        widths: output channels of each 3×3 convolution; a 2×2 average pool
            sits between consecutive layers.
        seed: seeds the random weights.
    """

    def __init__(
        self, channels: int = 3, widths: tuple[int, ...] = (32, 64, 64), seed: int = 0
    ) -> None:
        super().__init__()
        _check_positive("TextureFeatures", channels=channels, widths=widths)
        gen = torch.Generator().manual_seed(seed)
        self.channels = channels
        self.convs = nn.ModuleList()
        width = channels
        for out in widths:
            conv = nn.Conv2d(width, out, 3, padding=1, padding_mode="reflect")
            with torch.no_grad():
                # He-style scale keeps activations of similar size from layer to layer
                weight = torch.randn(conv.weight.shape, generator=gen) * (2 / (9 * width)) ** 0.5
                conv.weight.copy_(weight)
                conv.bias.zero_()
            self.convs.append(conv)
            width = out
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The feature maps ``(B, widths[l], H / 2^l, W / 2^l)`` of every layer ``l``."""
        _check_images(x, self.channels)
        maps = []
        for i, conv in enumerate(self.convs):
            if i > 0:
                x = F.avg_pool2d(x, 2)
            x = F.relu(conv(x))
            maps.append(x)
        return maps


def texture_loss(features: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of ``||G(F_l) - A_l||² / ||A_l||²``, with ``A_l`` the target Gram matrices.

    Dividing by ``||A_l||²`` makes every layer count alike, whatever the scale of its features.
    """
    if len(features) != len(targets):
        raise ValueError(
            f"got {len(features)} feature maps but {len(targets)} target Gram matrices"
        )
    # E = sum_l ||G_l - A_l||_F^2 / ||A_l||_F^2
    return sum(((gram_matrix(f) - a) ** 2).sum() / (a**2).sum() for f, a in zip(features, targets))


def synthesize_texture(
    target: torch.Tensor,
    *,
    size: int | None = None,
    steps: int = 100,
    net: TextureFeatures | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, list[float]]:
    """Make a new image whose Gram matrices match those of ``target`` (Gatys et al., 2015).

    L-BFGS on the pixels of an image that starts as uniform noise, as in the paper.

    Args:
        target: the example texture, ``(1, C, H, W)`` in [0, 1].
        size: side of the synthesized image; the target's height when left out.
        steps: the most L-BFGS iterations.
        net: the feature network; ``TextureFeatures(C)`` when left out.
        seed: seeds the starting noise.

    Returns:
        The synthesized image ``(1, C, size, size)``, clamped to [0, 1], and the
        loss at every evaluation.

    Raises:
        ValueError: if ``target`` is not a single image ``(1, C, H, W)``.
    """
    if not isinstance(target, torch.Tensor) or target.ndim != 4 or target.shape[0] != 1:
        shape = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
        raise ValueError(f"expected one target image (1, C, H, W), got {shape}")
    net = (net or TextureFeatures(target.shape[1])).to(target.device)
    size = size or target.shape[2]
    with torch.no_grad():
        goals = [gram_matrix(f) for f in net(target)]
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(1, target.shape[1], size, size, generator=gen).to(target.device)
    image.requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [image], max_iter=steps, history_size=20, line_search_fn="strong_wolfe"
    )
    losses: list[float] = []

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = texture_loss(net(image), goals)
        loss.backward()
        losses.append(loss.item())
        return loss

    optimizer.step(closure)
    return image.detach().clamp(0, 1), losses
