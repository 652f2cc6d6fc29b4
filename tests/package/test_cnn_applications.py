"""Tests for dlbook.cnn_applications (Part 8, "CNN applications")."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlbook.cnn_applications import (
    BoxRegressor,
    SuperResolution,
    TextureFeatures,
    box_iou,
    gram_matrix,
    localization_loss,
    pixel_shuffle,
    synthesize_texture,
    texture_loss,
)
from tests.helpers import check_against_torch, check_bad_inputs, check_gradient


@pytest.mark.parametrize("r, channels, side", [(2, 1, 3), (3, 2, 4), (2, 3, 5)])
def test_pixel_shuffle_matches_torch(r: int, channels: int, side: int) -> None:
    x = torch.randn(2, channels * r * r, side, side + 1)
    check_against_torch(lambda t: pixel_shuffle(t, r), nn.PixelShuffle(r), [x])


def test_super_resolution_starts_at_bicubic() -> None:
    lr = torch.rand(3, 1, 7, 6, generator=torch.Generator().manual_seed(0))
    model = SuperResolution(scale=3)
    bicubic = F.interpolate(lr, scale_factor=3, mode="bicubic", align_corners=False)
    with torch.no_grad():
        torch.testing.assert_close(model(lr), bicubic)
        torch.testing.assert_close(model(lr.double()), bicubic)  # float64 is converted


@pytest.mark.slow
def test_super_resolution_improves_on_bicubic() -> None:
    from dlbook.data import glyphs
    from dlbook.train import fit

    torch.manual_seed(0)
    hr = glyphs("digits", per_font=2, seed=0).train.X
    lr = F.avg_pool2d(hr, 2)
    model = SuperResolution()
    bicubic = F.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(lr, hr), 32, shuffle=True)
    fit(model, loader, loss_fn=F.mse_loss, optimizer=torch.optim.Adam(model.parameters(), 3e-3),
        epochs=4, device="cpu", progress="none")
    with torch.no_grad():
        assert F.mse_loss(model(lr), hr) < 0.9 * F.mse_loss(bicubic, hr)


def test_box_iou_against_pixel_counts() -> None:
    gen = torch.Generator().manual_seed(0)

    def random_boxes(n: int) -> torch.Tensor:
        corner = torch.randint(0, 9, (n, 2), generator=gen)
        return torch.cat([corner, corner + torch.randint(1, 8, (n, 2), generator=gen)], 1)  # (n, 4)

    a, b = random_boxes(100), random_boxes(100)
    ys, xs = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")

    def mask(box: torch.Tensor) -> torch.Tensor:
        return (xs >= box[0]) & (xs < box[2]) & (ys >= box[1]) & (ys < box[3])

    expected = torch.stack(
        [(mask(p) & mask(q)).sum() / (mask(p) | mask(q)).sum() for p, q in zip(a, b)]
    )
    assert (expected > 0).any() and (expected == 0).any()  # both overlapping and disjoint pairs
    torch.testing.assert_close(box_iou(a.double(), b.double()), expected.double())


def test_box_regressor_and_loss() -> None:
    model = BoxRegressor()
    scores, boxes = model(torch.rand(4, 3, 32, 32))
    assert scores.shape == (4, 3) and boxes.shape == (4, 4)
    assert (boxes[:, 2:] >= boxes[:, :2]).all() and 0 <= boxes.min() and boxes.max() <= 1
    target = torch.tensor([[0, 0.1, 0.1, 0.5, 0.5], [2, 0.2, 0.2, 0.9, 0.6]] * 2)
    loss = localization_loss((scores, boxes), target, box_weight=2.0)
    # L = CE(scores, class) + lambda * mean |box - box_true|
    by_hand = F.cross_entropy(scores, torch.tensor([0, 2, 0, 2])) + 2.0 * (boxes - target[:, 1:]).abs().mean()
    torch.testing.assert_close(loss, by_hand)


@pytest.mark.parametrize("shape", [(1, 3, 4, 5), (2, 6, 3, 3)])
def test_gram_gradient_matches_derivation(shape: tuple[int, ...]) -> None:
    gen = torch.Generator().manual_seed(len(shape))
    B, C, H, W = shape
    A = torch.randn(B, C, C, dtype=torch.float64, generator=gen)
    A = A + A.transpose(1, 2)  # symmetric, as every Gram matrix is

    def loss(Fm: torch.Tensor) -> torch.Tensor:
        return ((gram_matrix(Fm) - A) ** 2).sum()

    def by_hand(Fm: torch.Tensor) -> torch.Tensor:
        # dE/dF = (4 / N) (G - A) F for symmetric A
        G = gram_matrix(Fm)
        return (4 / (H * W) * (G - A) @ Fm.reshape(B, C, H * W)).reshape(shape)

    check_gradient(loss, by_hand, [torch.randn(shape, dtype=torch.float64, generator=gen)])


def test_gram_matrix_against_einsum() -> None:
    f = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(gram_matrix(f), torch.einsum("bchw,bdhw->bcd", f, f) / 20)


def test_texture_loss_by_hand() -> None:
    net = TextureFeatures(3, (8, 8))
    target = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    assert texture_loss(net(target), [gram_matrix(f) for f in net(target)]) == 0
    # against another image's Gram matrices: the formula, layer by layer, computed by hand
    other = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    A = [gram_matrix(f) for f in net(other)]
    by_hand = 0.0
    for f, a in zip(net(target), A):
        B, C, H, W = f.shape
        G = torch.einsum("bchw,bdhw->bcd", f, f) / (H * W)  # (B, C, C)
        by_hand += float(((G - a) ** 2).sum() / (a**2).sum())
    assert float(texture_loss(net(target), A)) == pytest.approx(by_hand, rel=1e-5)
    assert by_hand > 0


def test_texture_features_are_fixed_and_seeded() -> None:
    a, b = TextureFeatures(3, (4, 4), seed=1), TextureFeatures(3, (4, 4), seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not any(p.requires_grad for p in a.parameters())
    maps = a(torch.rand(2, 3, 8, 8))
    assert [tuple(m.shape) for m in maps] == [(2, 4, 8, 8), (2, 4, 4, 4)]


def test_texture_synthesis_lowers_loss() -> None:
    target = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    net = TextureFeatures(3, (8, 8))
    image, losses = synthesize_texture(target, steps=10, net=net)
    assert image.shape == (1, 3, 16, 16) and losses[-1] < 0.1 * losses[0]
    assert 0 <= image.min() and image.max() <= 1
    bigger, _ = synthesize_texture(target, size=20, steps=2, net=net)
    assert bigger.shape == (1, 3, 20, 20)


def test_bad_inputs() -> None:
    model, x = BoxRegressor(), torch.rand(4, 3, 32, 32)
    scores, boxes = model(x)
    target = torch.tensor([[0, 0.1, 0.1, 0.5, 0.5]] * 4)
    net = TextureFeatures(3, (8, 4))
    feats = net(torch.rand(1, 3, 16, 16))
    grams = [gram_matrix(f) for f in feats]
    check_bad_inputs([
        # pixel shuffle and super-resolution
        (lambda: pixel_shuffle(torch.zeros(1, 3, 2, 2), 2), ValueError, "(B, C*4, H, W)"),
        (lambda: pixel_shuffle(torch.zeros(3, 2, 2), 1), ValueError, "x"),
        (lambda: pixel_shuffle(torch.zeros(1, 4, 2, 2), 0), ValueError, "r"),
        (lambda: pixel_shuffle([[1.0]], 2), TypeError, "x"),
        (lambda: SuperResolution(scale=0), ValueError, "scale"),
        (lambda: SuperResolution(width=2.5), TypeError, "width"),
        (lambda: SuperResolution()(torch.zeros(2, 3, 8, 8)), ValueError, "(B, 1, H, W)"),
        (lambda: SuperResolution()(torch.zeros(0, 1, 8, 8)), ValueError, "x is empty"),
        # localization
        (lambda: BoxRegressor(num_classes=0), ValueError, "num_classes"),
        (lambda: model(torch.zeros(2, 1, 32, 32)), ValueError, "(B, 3, H, W)"),
        (lambda: model(torch.zeros(2, 3, 2, 2)), ValueError, "H, W >= 4"),
        (lambda: model(x.tolist()), TypeError, "x"),
        (lambda: box_iou(torch.zeros(2, 4), torch.zeros(3, 4)), ValueError, "b"),
        (lambda: box_iou(torch.zeros(2, 5), torch.zeros(2, 5)), ValueError, "a"),
        (lambda: box_iou(torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 4)), TypeError, "a"),
        (lambda: box_iou(torch.full((1, 4), float("nan")), torch.zeros(1, 4)), ValueError, "a"),
        (lambda: box_iou([[0, 0, 1, 1]], torch.zeros(1, 4)), TypeError, "a"),
        (lambda: localization_loss((scores, boxes), target[:, :4]), ValueError, "target"),
        (lambda: localization_loss((scores, boxes), target[:2]), ValueError, "target"),
        (lambda: localization_loss(scores, target), TypeError, "output"),
        (lambda: localization_loss((scores, boxes[:, :2]), target), ValueError, "boxes"),
        (lambda: localization_loss((scores, boxes), target + torch.tensor([3.0, 0, 0, 0, 0])),
         ValueError, "target[:, 0] must hold class indices < 3"),
        (lambda: localization_loss((scores, boxes), target - torch.tensor([1.0, 0, 0, 0, 0])),
         ValueError, "target[:, 0] must hold class indices >= 0"),
        (lambda: localization_loss((scores, boxes), target + torch.tensor([0.5, 0, 0, 0, 0])),
         ValueError, "target[:, 0]"),
        (lambda: localization_loss((scores, boxes), target, box_weight=-1), ValueError, "box_weight"),
        # texture
        (lambda: gram_matrix(torch.zeros(3, 4, 4)), ValueError, "features"),
        (lambda: gram_matrix(torch.zeros(1, 3, 4, 4, dtype=torch.long)), TypeError, "features"),
        (lambda: TextureFeatures(widths=()), ValueError, "widths"),
        (lambda: TextureFeatures(widths=(8, 0)), ValueError, "widths[1]"),
        (lambda: TextureFeatures(channels=0), ValueError, "channels"),
        (lambda: TextureFeatures(seed=-1), ValueError, "seed"),
        (lambda: net(torch.zeros(1, 3, 1, 1)), ValueError, "H, W >= 4"),
        (lambda: texture_loss(feats, grams[:1]), ValueError, "features and targets"),
        (lambda: texture_loss(feats[0], grams), TypeError, "features"),
        (lambda: texture_loss([], []), TypeError, "features"),
        (lambda: texture_loss(feats, [grams[0], grams[0]]), ValueError, "targets[1]"),
        (lambda: synthesize_texture(torch.rand(2, 3, 8, 8)), ValueError, "target"),
        (lambda: synthesize_texture(torch.rand(1, 3, 8, 8), steps=0), ValueError, "steps"),
        (lambda: synthesize_texture(torch.rand(1, 3, 8, 8), size=0), ValueError, "size"),
        (lambda: synthesize_texture(torch.rand(1, 3, 8, 8), net="vgg"), TypeError, "net"),
        (lambda: synthesize_texture(torch.rand(1, 1, 16, 16), net=net), ValueError, "(B, 3, H, W)"),
        (lambda: synthesize_texture(torch.full((1, 3, 8, 8), float("inf"))), ValueError, "target"),
        (lambda: synthesize_texture(None), TypeError, "target"),
    ])
