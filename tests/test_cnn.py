"""Tests for dlbook.cnn and dlbook.pretrained (Part 8: modern CNNs, transfer, applications)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlbook.cnn import (
    AlexNet, AlexNetConfig, BoxRegressor, GlyphNet, Inception, InceptionBlock, InceptionConfig,
    ResidualBlock, ResNet, ResNetConfig, SuperResolution, TextureFeatures, VGG, VGGConfig, box_iou,
    count_multiply_adds, count_parameters, glyphnet, gram_matrix, localization_loss, pixel_shuffle, synthesize_texture,
    texture_loss,
)
from dlbook.pretrained import adapt, per_class_subset, reference_batch, weights_info
from tests.helpers import check_against_torch

# Parameter counts worked out by hand from P = (k^2 C_in + 1) C_out per conv and
# (D_in + 1) D_out per linear layer (batch norm: 2 C).
EXPECTED_PARAMETERS = {
    # conv 1->16 k5, 16->32, 32->48, 48->48, 48->32 (k3); fc 128->128, 128->128, 128->10
    AlexNet: (25 + 1) * 16 + (144 + 1) * 32 + (288 + 1) * 48 + (432 + 1) * 48 + (432 + 1) * 32
    + 129 * 128 + 129 * 128 + 129 * 10,
    # blocks (1, 8), (2, 16), (2, 32); 28 -> 3 after three pools; fc 288->128->10
    VGG: (9 + 1) * 8 + (72 + 1) * 16 + (144 + 1) * 16 + (144 + 1) * 32 + (288 + 1) * 32
    + 289 * 128 + 129 * 10,
}


@pytest.mark.parametrize("Model", [AlexNet, VGG, Inception, ResNet, GlyphNet])
@pytest.mark.parametrize("batch", [1, 3])
def test_output_shape(Model: type[nn.Module], batch: int) -> None:
    model = Model().eval()
    classes = 26 if Model is GlyphNet else 10
    assert model(torch.zeros(batch, 1, 28, 28)).shape == (batch, classes)


@pytest.mark.parametrize("Model", list(EXPECTED_PARAMETERS))
def test_parameter_count_matches_formula(Model: type[nn.Module]) -> None:
    assert count_parameters(Model()) == EXPECTED_PARAMETERS[Model]


def test_multiply_adds_match_the_hand_count() -> None:
    # AlexNet's side through the layers: 28 (conv 5x5, pad 2) -> 13 -> 13 (conv) -> 6 -> 6, 6, 6 -> 2
    hand = (28 * 28 * 16 * 25 + 13 * 13 * 32 * 16 * 9 + 6 * 6 * 48 * 32 * 9 + 6 * 6 * 48 * 48 * 9
            + 6 * 6 * 32 * 48 * 9 + 128 * 128 + 128 * 128 + 128 * 10)
    model = AlexNet().train()
    assert count_multiply_adds(model, torch.zeros(3, 1, 28, 28)) == hand
    assert model.training, "counting must leave the mode as it found it"
    # grouped and strided convolutions: each output sees C_in / groups channels
    conv = nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2)
    assert count_multiply_adds(conv, torch.zeros(2, 4, 6, 6)) == 8 * 3 * 3 * (4 // 2) * 9
    assert not conv._forward_hooks, "hooks must be removed"


def test_multiply_adds_errors() -> None:
    with pytest.raises(ValueError, match=r"non-empty batch x of shape \(B, \.\.\.\), got \(0, 1, 28, 28\)"):
        count_multiply_adds(AlexNet(), torch.zeros(0, 1, 28, 28))
    with pytest.raises(ValueError, match="got list"):
        count_multiply_adds(AlexNet(), [1, 2])


def test_parameter_counts_of_block_models() -> None:
    block = InceptionBlock(8, 4, (2, 6), (2, 3), 5)
    # 1x1 and kxk convs without bias plus two BN parameters per channel
    expected = ((8 * 4 + 8) + (8 * 2 + 4 + 9 * 2 * 6 + 12) + (8 * 2 + 4 + 25 * 2 * 3 + 6)
                + (8 * 5 + 10))
    assert count_parameters(block) == expected
    assert block(torch.zeros(2, 8, 7, 7)).shape == (2, 4 + 6 + 3 + 5, 7, 7)
    res = ResidualBlock(4, 8, stride=2)
    assert count_parameters(res) == 9 * 4 * 8 + 16 + 9 * 8 * 8 + 16 + 4 * 8 + 16
    assert res(torch.zeros(2, 4, 8, 8)).shape == (2, 8, 4, 4)
    assert count_parameters(ResNet(ResNetConfig(stages=(8,), blocks_per_stage=1))) == (
        9 * 8 + 16 + count_parameters(ResidualBlock(8, 8)) + 9 * 10
    )


def test_residual_jacobian_is_identity_plus_residual() -> None:
    torch.manual_seed(1)
    block = ResidualBlock(2, 2).double().eval()
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(block, x).reshape(18, 18)

    def residual(t: torch.Tensor) -> torch.Tensor:
        return block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(t)))))

    J_F = torch.autograd.functional.jacobian(residual, x).reshape(18, 18)
    gate = ((x + residual(x)).flatten() > 0).double()[:, None]
    torch.testing.assert_close(J, gate * (torch.eye(18, dtype=torch.float64) + J_F))


@pytest.mark.parametrize("config, message", [
    (lambda: AlexNetConfig(channels=(1, 2, 3)), "5 widths"),
    (lambda: AlexNetConfig(dropout=1.0), "dropout"),
    (lambda: VGGConfig(blocks=()), "at least one"),
    (lambda: VGGConfig(blocks=((0, 8),)), "positive"),
    (lambda: InceptionConfig(stem=0), "positive"),
    (lambda: ResNetConfig(stages=()), "positive"),
])
def test_bad_configs_raise(config, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config()


def test_bad_input_shape_raises() -> None:
    with pytest.raises(ValueError, match=r"expected x of shape \(B, 1, H, W\), got \(3, 28, 28\)"):
        ResNet()(torch.zeros(3, 28, 28))
    with pytest.raises(ValueError, match="below one pixel"):
        VGG(VGGConfig(blocks=((1, 4),) * 5))


def test_resnet_learns_on_held_out_glyphs() -> None:
    from dlbook.data import glyphs
    from dlbook.train import accuracy, fit

    data = glyphs("digits", per_font=3, seed=0)
    train_loader, _, _ = data.loaders(16, seed=0)
    torch.manual_seed(0)
    model = ResNet(ResNetConfig(stages=(16, 32)))
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    fit(model, train_loader, loss_fn=F.cross_entropy, optimizer=optimizer, epochs=3, device="cpu",
        progress="none")
    model.eval()
    with torch.no_grad():
        # 81 small steps: far from converged, but well clear of chance (0.1) on unseen fonts
        assert accuracy(model(data.test.X), data.test.y) > 0.4


# ----------------------------------------------------------------- pretrained weights


def test_weights_load_and_reproduce_recorded_accuracy() -> None:
    info = weights_info("letters")
    model = glyphnet(weights="letters")
    assert not model.training and model.head.out_features == 26 == len(info.classes)
    X, y = reference_batch("letters")
    with torch.no_grad():
        acc = (model(X).argmax(1) == y).float().mean().item()
    assert acc == pytest.approx(info.reference_accuracy, abs=1.5 / len(y))
    assert info.reference_accuracy > 0.8 and info.test_accuracy > 0.8


def test_glyphnet_new_head_and_unknown_weights() -> None:
    model = glyphnet(weights="letters", num_classes=10)
    assert model.head.out_features == 10
    assert glyphnet().head.out_features == 26
    with pytest.raises(ValueError, match="unknown weights 'imagenet'"):
        glyphnet(weights="imagenet")
    with pytest.raises(ValueError, match="unknown weights"):
        weights_info("digits")


def test_head_gradient_on_frozen_features() -> None:
    torch.manual_seed(0)
    net = glyphnet(weights="letters", num_classes=5).double()
    net.features.requires_grad_(False)
    x, y = torch.rand(6, 1, 28, 28, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 4, 0])
    F.cross_entropy(net(x), y).backward()
    Phi = net.features(x)
    P, Y = torch.softmax(net.head(Phi), 1), F.one_hot(y, 5).double()
    torch.testing.assert_close(net.head.weight.grad, (P - Y).T @ Phi / 6)
    torch.testing.assert_close(net.head.bias.grad, (P - Y).sum(0) / 6)
    assert all(p.grad is None for p in net.features.parameters())


def test_transfer_beats_scratch_with_few_labels() -> None:
    from dlbook.data import glyphs

    data = glyphs("digits", per_font=2, seed=0)
    idx = per_class_subset(data.train.y, 2, seed=0)
    accs = {}
    for mode in ("features", "scratch"):
        model = adapt(mode, data.train.X[idx], data.train.y[idx], 10, steps=30, seed=0)
        with torch.no_grad():
            accs[mode] = (model(data.test.X).argmax(1) == data.test.y).float().mean().item()
    assert accs["features"] > accs["scratch"] + 0.2


def test_adapt_and_subset_errors() -> None:
    y = torch.tensor([0, 0, 1])
    assert sorted(y[per_class_subset(y, 1)].tolist()) == [0, 1]
    with pytest.raises(ValueError, match="fewer than per_class=2"):
        per_class_subset(y, 2)
    with pytest.raises(ValueError, match="mode must be one of"):
        adapt("freeze", torch.zeros(3, 1, 28, 28), y, 2)


# ----------------------------------------------------------------- applications


@pytest.mark.parametrize("r, channels, side", [(2, 1, 3), (3, 2, 4), (2, 3, 5)])
def test_pixel_shuffle_matches_torch(r: int, channels: int, side: int) -> None:
    x = torch.randn(2, channels * r * r, side, side + 1)
    check_against_torch(lambda t: pixel_shuffle(t, r), nn.PixelShuffle(r), [x])


def test_pixel_shuffle_rejects_bad_channels() -> None:
    with pytest.raises(ValueError, match=r"\(B, C\*4, H, W\)"):
        pixel_shuffle(torch.zeros(1, 3, 2, 2), 2)


def test_super_resolution_starts_at_bicubic_and_improves() -> None:
    from dlbook.data import glyphs
    from dlbook.train import fit

    torch.manual_seed(0)
    hr = glyphs("digits", per_font=2, seed=0).train.X
    lr = F.avg_pool2d(hr, 2)
    model = SuperResolution()
    bicubic = F.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False)
    with torch.no_grad():
        torch.testing.assert_close(model(lr), bicubic)
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
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        box_iou(torch.zeros(2, 4), torch.zeros(3, 4))


def test_box_regressor_and_loss() -> None:
    model = BoxRegressor()
    scores, boxes = model(torch.rand(4, 3, 32, 32))
    assert scores.shape == (4, 3) and boxes.shape == (4, 4)
    assert (boxes[:, 2:] >= boxes[:, :2]).all()
    target = torch.tensor([[0, 0.1, 0.1, 0.5, 0.5]] * 4)
    assert localization_loss((scores, boxes), target).ndim == 0
    with pytest.raises(ValueError, match=r"expected target of shape \(4, 5\)"):
        localization_loss((scores, boxes), target[:, :4])


@pytest.mark.parametrize("shape", [(1, 3, 4, 5), (2, 6, 3, 3)])
def test_gram_gradient_matches_derivation(shape: tuple[int, ...]) -> None:
    gen = torch.Generator().manual_seed(len(shape))
    Fm = torch.randn(shape, dtype=torch.float64, generator=gen, requires_grad=True)
    B, C, H, W = shape
    A = torch.randn(B, C, C, dtype=torch.float64, generator=gen)
    A = A + A.transpose(1, 2)
    G = gram_matrix(Fm)
    ((G - A) ** 2).sum().backward()
    # dE/dF = (4 / N) (G - A) F for symmetric A
    expected = 4 / (H * W) * (G - A) @ Fm.detach().reshape(B, C, H * W)
    torch.testing.assert_close(Fm.grad, expected.reshape(shape))


def test_texture_synthesis_lowers_loss() -> None:
    target = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    net = TextureFeatures(3, (8, 8))
    image, losses = synthesize_texture(target, steps=10, net=net)
    assert image.shape == (1, 3, 16, 16) and losses[-1] < 0.1 * losses[0]
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
    with pytest.raises(ValueError, match="one target image"):
        synthesize_texture(torch.rand(2, 3, 8, 8))
