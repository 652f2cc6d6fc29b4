"""What CNNs are used for beyond classification (Part 8, "CNN applications").

Three applications, each a small model and its loss:

- super-resolution: ``pixel_shuffle`` and ``SuperResolution``, an ESPCN-style
  upscaler that learns the correction to a bicubic upscaling;
- object localization: ``BoxRegressor`` (class scores and one box per image),
  ``box_iou`` and ``localization_loss``;
- texture synthesis: ``gram_matrix``, the random feature network
  ``TextureFeatures``, ``texture_loss`` and ``synthesize_texture`` (Gatys et al.).

Every model converts a float64 batch to its own dtype.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dlbook import _checks as check
from dlbook.cnn import _images
from dlbook.conv import _positive_ints

__all__ = [
    "pixel_shuffle", "SuperResolution", "BoxRegressor", "box_iou", "localization_loss",
    "gram_matrix", "TextureFeatures", "texture_loss", "synthesize_texture",
]


# --------------------------------------------------------------------------- super-resolution


def pixel_shuffle(x: torch.Tensor, r: int) -> torch.Tensor:
    """Rearrange (B, C r², H, W) into (B, C, H r, W r), as ``torch.nn.PixelShuffle`` does."""
    r = check.positive_int("r", r)
    B, Crr, H, W = check.expect_shape(x, "B C H W").values()  # Crr: channels times r²
    if Crr % (r * r) != 0:
        raise ValueError(f"expected x of shape (B, C*{r * r}, H, W), got {tuple(x.shape)}")
    C = Crr // (r * r)
    # Y[c, h r + i, w r + j] = X[c r² + i r + j, h, w]
    x = x.reshape(B, C, r, r, H, W)  # channel c r² + i r + j -> (c, i, j)
    x = x.permute(0, 1, 4, 2, 5, 3)  # (B, C, H, r_i, W, r_j)
    return x.reshape(B, C, H * r, W * r)


class SuperResolution(nn.Module):
    """An ESPCN-style upscaler: convolutions at low resolution, then a pixel shuffle."""

    def __init__(self, scale: int = 2, channels: int = 1, width: int = 32) -> None:
        super().__init__()
        self.scale = check.positive_int("scale", scale)  # the upscaling factor r
        self.channels = check.positive_int("channels", channels)
        check.positive_int("width", width)  # feature width of the hidden convolutions
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 5, padding=2), nn.Tanh(),
            nn.Conv2d(width, width, 3, padding=1), nn.Tanh(),
            nn.Conv2d(width, channels * scale**2, 3, padding=1),  # (B, C r², H, W)
        )
        # A zero last layer: at initialization the model is exactly bicubic upscaling.
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale (B, C, H, W) to (B, C, H r, W r); float64 is converted."""
        x = _images(x, self, self.channels)
        bicubic = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        # the network predicts only the correction to bicubic upscaling
        return bicubic + pixel_shuffle(self.body(x), self.scale)


# --------------------------------------------------------------------------- localization


class BoxRegressor(nn.Module):
    """A CNN with two heads: class scores and one box (x_min, y_min, x_max, y_max) in [0, 1]."""

    def __init__(self, num_classes: int = 3, channels: int = 3, width: int = 16) -> None:
        super().__init__()
        check.positive_int("num_classes", num_classes)
        self.channels = check.positive_int("channels", channels)
        check.positive_int("width", width)  # width of the first convolution, doubled twice
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),  # (B, 4 width * 16): keeps coarse position
        )
        self.classify = nn.Linear(64 * width, num_classes)
        self.locate = nn.Linear(64 * width, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores (B, num_classes) and boxes (B, 4) for images (B, C, H, W).

        A float64 batch is converted to the model's dtype.
        """
        x = _images(x, self, self.channels, min_side=4)
        h = self.features(x)
        centre_size = torch.sigmoid(self.locate(h))  # (B, 4): cx, cy, w, h in [0, 1]
        centre, size = centre_size[:, :2], centre_size[:, 2:]
        boxes = torch.cat([centre - size / 2, centre + size / 2], dim=1)  # (B, 4)
        return self.classify(h), boxes


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of matching boxes (N, 4) in (x0, y0, x1, y1) form.

    >>> box_iou(torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[1.0, 0, 3, 2]]))
    tensor([0.3333])
    """
    n = check.expect_shape(check.finite("a", a), "N D", "a", D=4)["N"]
    check.expect_shape(check.finite("b", b), "N D", "b", N=n, D=4)
    width = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    height = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = width * height
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    # IoU = |A ∩ B| / (|A| + |B| - |A ∩ B|)
    return inter / (area_a + area_b - inter).clamp(min=1e-12)


def localization_loss(
    output: tuple[torch.Tensor, torch.Tensor], target: torch.Tensor, box_weight: float = 5.0
) -> torch.Tensor:
    """Cross-entropy on the class plus ``box_weight`` times the L1 error of the box.

    ``output`` is ``(scores (B, K), boxes (B, 4))`` from ``BoxRegressor``;
    ``target`` is ``(B, 5)``: the class index, then the box in fractions of the side.
    """
    if not isinstance(output, (tuple, list)) or len(output) != 2:
        raise TypeError(f"output must be the pair (scores, boxes) of a BoxRegressor, got "
                        f"{type(output).__name__}")
    scores, boxes = output
    B, K = check.expect_shape(check.floating("scores", scores), "B K", "scores").values()
    check.expect_shape(check.floating("boxes", boxes), "B D", "boxes", B=B, D=4)
    check.expect_shape(check.finite("target", target), "B D", "target", B=B, D=5)
    check.nonnegative_float("box_weight", box_weight)
    classes = _class_column(target[:, 0], K)
    # L = CE(scores, class) + omega * mean |box - box_true|
    box_true = target[:, 1:].to(boxes.dtype)  # (B, 4)
    return F.cross_entropy(scores, classes) + box_weight * F.l1_loss(boxes, box_true)


def _class_column(column: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The class indices stored as floats in ``target[:, 0]``, checked and as integers."""
    if not bool((column == column.round()).all()):
        raise ValueError("target[:, 0] must hold class indices (whole numbers), "
                         f"got {column.tolist()[:8]}")
    return check.labels("target[:, 0]", column.long(), num_classes)


# --------------------------------------------------------------------------- texture


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Channel correlations G = F Fᵀ / (H W) of feature maps (B, C, H, W): shape (B, C, C)."""
    check.floating("features", features)
    B, C, H, W = check.expect_shape(features, "B C H W", "features").values()
    flat = features.reshape(B, C, H * W)  # (B, C, M) with M = H W positions
    # G_ij = (1/M) sum_m F_im F_jm
    return flat @ flat.transpose(1, 2) / (H * W)  # (B, C, C)


class TextureFeatures(nn.Module):
    """A fixed, randomly initialized CNN whose layers describe texture through Gram matrices.

    Random filters are enough for texture synthesis (Ustyuzhaninov et al., 2017),
    so no ImageNet network is needed. The weights are drawn from ``seed`` and
    never trained; ``widths`` are the output channels of the 3×3 convolutions, with
    a 2×2 average pool between consecutive layers.
    """

    def __init__(
        self, channels: int = 3, widths: tuple[int, ...] = (32, 64, 64), seed: int = 0
    ) -> None:
        super().__init__()
        self.channels = check.positive_int("channels", channels)
        widths = _positive_ints("widths", widths)
        gen = torch.Generator().manual_seed(check.nonnegative_int("seed", seed))
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
        """The feature maps (B, widths[l], H / 2^l, W / 2^l) of every layer l.

        A float64 batch is converted to the model's dtype.
        """
        # reflect padding needs a side of at least 2 at the last layer
        x = _images(x, self, self.channels, min_side=2 ** len(self.convs))
        maps = []
        for i, conv in enumerate(self.convs):
            if i > 0:
                x = F.avg_pool2d(x, 2)
            x = F.relu(conv(x))
            maps.append(x)
        return maps


def texture_loss(features: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of ||G(F_l) - A_l||² / ||A_l||², with A_l the target Gram matrices.

    Dividing by ||A_l||² makes every layer count alike, whatever the scale of its features.
    """
    for name, maps in (("features", features), ("targets", targets)):
        if not isinstance(maps, (list, tuple)) or not maps:
            raise TypeError(f"{name} must be a non-empty list of tensors, one per layer, got "
                            f"{type(maps).__name__}")
    check.same_length(features=features, targets=targets)
    grams = [gram_matrix(f) for f in features]
    for i, (g, a) in enumerate(zip(grams, targets)):
        B, C, _ = g.shape
        check.expect_shape(check.finite(f"targets[{i}]", a), "B C C", f"targets[{i}]", B=B, C=C)
    # E = sum_l ||G_l - A_l||_F^2 / ||A_l||_F^2
    return sum(((g - a) ** 2).sum() / (a**2).sum() for g, a in zip(grams, targets))


def synthesize_texture(
    target: torch.Tensor,
    *,
    size: int | None = None,
    steps: int = 100,
    net: TextureFeatures | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, list[float]]:
    """An image (1, C, size, size) whose Gram matrices match the target's, and the losses."""
    check.expect_shape(check.finite("target", target), "B C H W", "target", B=1)
    size = target.shape[2] if size is None else check.positive_int("size", size)
    check.positive_int("steps", steps)
    if net is not None and not isinstance(net, TextureFeatures):
        raise TypeError(f"net must be a TextureFeatures or None, got {type(net).__name__}")
    gen = torch.Generator().manual_seed(check.nonnegative_int("seed", seed))
    net = (net or TextureFeatures(target.shape[1])).to(target.device)
    with torch.no_grad():
        goals = [gram_matrix(f) for f in net(target)]  # A_l for every layer l
    # L-BFGS on the pixels of an image that starts as uniform noise, as in the paper
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
