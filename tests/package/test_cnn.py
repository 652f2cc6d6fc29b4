"""Tests for dlbook.cnn (Part 8, "Modern CNNs"): the architectures and their costs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlbook.cnn import (
    VGG,
    AlexNet,
    AlexNetConfig,
    CNNClassifier,
    ConvResidualBlock,
    GlyphNet,
    GlyphNetConfig,
    Inception,
    InceptionBlock,
    InceptionConfig,
    ResNet,
    ResNetConfig,
    VGGConfig,
    conv_bn_relu,
    count_multiply_adds,
    global_average_head,
    vgg_block,
)
from dlbook.feedforward import count_parameters
from tests.helpers import check_bad_inputs

MODELS = [AlexNet, VGG, Inception, ResNet, GlyphNet]

# Parameter counts worked out by hand from P = (k^2 C_in + 1) C_out per conv and
# (D_in + 1) D_out per linear layer (batch norm: 2 C).
EXPECTED_PARAMETERS = {
    # conv 1->16 k5, 16->32, 32->48, 48->48, 48->32 (k3); fc 128->128, 128->128, 128->10
    AlexNet: (25 + 1) * 16 + (144 + 1) * 32 + (288 + 1) * 48 + (432 + 1) * 48 + (432 + 1) * 32
    + 129 * 128 + 129 * 128 + 129 * 10,
    # blocks (1, 8), (2, 16), (2, 32); 28 -> 3 after three pools; fc 288->128->10
    VGG: (9 + 1) * 8 + (72 + 1) * 16 + (144 + 1) * 16 + (144 + 1) * 32 + (288 + 1) * 32
    + 289 * 128 + 129 * 10,
    # conv 1->32, 32->64, 64->128 (k3); fc 128->26
    GlyphNet: (9 + 1) * 32 + (288 + 1) * 64 + (576 + 1) * 128 + 129 * 26,
}


@pytest.mark.parametrize("Model", MODELS)
@pytest.mark.parametrize("batch", [1, 3])
def test_output_shape(Model: type[nn.Module], batch: int) -> None:
    model = Model().eval()
    classes = 26 if Model is GlyphNet else 10
    assert isinstance(model, CNNClassifier)
    assert model(torch.zeros(batch, 1, 28, 28)).shape == (batch, classes)


@pytest.mark.parametrize("Model", MODELS)
def test_float64_batches_are_converted(Model: type[nn.Module]) -> None:
    torch.manual_seed(0)
    model = Model().eval()
    x = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    with torch.no_grad():
        out = model(x)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, model(x.float()))


@pytest.mark.parametrize("Model", [Inception, ResNet, GlyphNet])
def test_global_average_heads_take_other_image_sizes(Model: type[nn.Module]) -> None:
    assert Model().eval()(torch.zeros(2, 1, 36, 20)).shape[0] == 2


@pytest.mark.parametrize("Model", list(EXPECTED_PARAMETERS))
def test_parameter_count_matches_formula(Model: type[nn.Module]) -> None:
    assert count_parameters(Model()) == EXPECTED_PARAMETERS[Model]


def test_multiply_adds_match_the_hand_count() -> None:
    # AlexNet's side through the layers: 28 (conv 5x5, pad 2) -> 13 -> 13 (conv) -> 6 -> 6, 6, 6 -> 2
    hand = (28 * 28 * 16 * 25 + 13 * 13 * 32 * 16 * 9 + 6 * 6 * 48 * 32 * 9 + 6 * 6 * 48 * 48 * 9
            + 6 * 6 * 32 * 48 * 9 + 128 * 128 + 128 * 128 + 128 * 10)
    model = AlexNet().train()
    assert count_multiply_adds(model, torch.zeros(3, 1, 28, 28)) == hand
    assert count_multiply_adds(model, torch.zeros(1, 1, 28, 28, dtype=torch.float64)) == hand
    assert model.training, "counting must leave the mode as it found it"
    # grouped and strided convolutions: each output sees C_in / groups channels
    conv = nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2)
    assert count_multiply_adds(conv, torch.zeros(2, 4, 6, 6)) == 8 * 3 * 3 * (4 // 2) * 9
    assert not conv._forward_hooks, "hooks must be removed"


def test_parameter_counts_of_block_models() -> None:
    block = InceptionBlock(8, 4, (2, 6), (2, 3), 5)
    # 1x1 and kxk convs without bias plus two BN parameters per channel
    expected = ((8 * 4 + 8) + (8 * 2 + 4 + 9 * 2 * 6 + 12) + (8 * 2 + 4 + 25 * 2 * 3 + 6)
                + (8 * 5 + 10))
    assert count_parameters(block) == expected
    assert block(torch.zeros(2, 8, 7, 7)).shape == (2, 4 + 6 + 3 + 5, 7, 7)
    res = ConvResidualBlock(4, 8, stride=2)
    assert count_parameters(res) == 9 * 4 * 8 + 16 + 9 * 8 * 8 + 16 + 4 * 8 + 16
    assert res(torch.zeros(2, 4, 8, 8)).shape == (2, 8, 4, 4)
    assert count_parameters(ResNet(ResNetConfig(stages=(8,), blocks_per_stage=1))) == (
        9 * 8 + 16 + count_parameters(ConvResidualBlock(8, 8)) + 9 * 10
    )


def test_residual_block_keeps_its_state_dict_names() -> None:
    keys = set(ConvResidualBlock(4, 8, stride=2).state_dict())
    assert {"conv1.weight", "bn1.weight", "conv2.weight", "bn2.running_mean",
            "shortcut.0.weight", "shortcut.1.weight"} <= keys
    assert "features.4.conv1.weight" in ResNet().state_dict()


def test_residual_jacobian_is_identity_plus_residual() -> None:
    torch.manual_seed(1)
    block = ConvResidualBlock(2, 2).double().eval()
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(block, x).reshape(18, 18)
    J_F = torch.autograd.functional.jacobian(block.residual, x).reshape(18, 18)
    # dy/dx = diag(relu'(x + F(x))) (I + dF/dx)
    gate = ((x + block.residual(x)).flatten() > 0).double()[:, None]
    torch.testing.assert_close(J, gate * (torch.eye(18, dtype=torch.float64) + J_F))


@pytest.mark.slow
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


def test_bad_inputs() -> None:
    x = torch.zeros(2, 1, 28, 28)
    check_bad_inputs([
        # images: wrong shape, channels, side, dtype, kind, empty batch
        (lambda: AlexNet()(torch.zeros(2, 1, 32, 32)), ValueError, "(B, 1, 28, 28)"),
        (lambda: VGG()(torch.zeros(2, 1, 14, 14)), ValueError, "(B, 1, 28, 28)"),
        (lambda: ResNet()(torch.zeros(3, 28, 28)), ValueError, "expected x of shape (B, 1, H, W)"),
        (lambda: ResNet()(torch.zeros(3, 3, 28, 28)), ValueError, "expected x of shape (B, 1, H, W)"),
        (lambda: GlyphNet()(torch.zeros(3, 1, 2, 2)), ValueError, "H, W >= 4"),
        (lambda: Inception()(torch.zeros(0, 1, 28, 28)), ValueError, "x is empty"),
        (lambda: GlyphNet()(torch.zeros(2, 1, 28, 28, dtype=torch.uint8)), TypeError, "x"),
        (lambda: ResNet()(x.tolist()), TypeError, "x must be a torch.Tensor"),
        (lambda: ResNet()(None), TypeError, "x must be a torch.Tensor"),
        (lambda: ConvResidualBlock(4, 8)(torch.zeros(2, 3, 8, 8)), ValueError, "(B, 4, H, W)"),
        (lambda: InceptionBlock(8, 4, (2, 6), (2, 3), 5)(torch.zeros(8, 7, 7)), ValueError, "x"),
        # counting
        (lambda: count_multiply_adds(AlexNet(), torch.zeros(0, 1, 28, 28)), ValueError, "x"),
        (lambda: count_multiply_adds(AlexNet(), [1, 2]), TypeError, "x"),
        (lambda: count_multiply_adds("AlexNet", x), TypeError, "model"),
        # configs: sizes that are zero, negative, bools, floats, wrong length, unknown shape
        (lambda: AlexNetConfig(channels=(1, 2, 3)), ValueError, "AlexNetConfig.channels"),
        (lambda: AlexNetConfig(dropout=1.0), ValueError, "AlexNetConfig.dropout"),
        (lambda: AlexNetConfig(num_classes=0), ValueError, "AlexNetConfig.num_classes"),
        (lambda: AlexNetConfig(hidden=True), TypeError, "AlexNetConfig.hidden"),
        (lambda: VGGConfig(blocks=()), ValueError, "VGGConfig.blocks"),
        (lambda: VGGConfig(blocks=((0, 8),)), ValueError, "VGGConfig.blocks[0][0]"),
        (lambda: VGGConfig(blocks=((1, 4),) * 5), ValueError, "below one pixel"),
        (lambda: VGGConfig(in_channels=-1), ValueError, "VGGConfig.in_channels"),
        (lambda: InceptionConfig(stem=0), ValueError, "InceptionConfig.stem"),
        (lambda: InceptionConfig(blocks=((8, (8, 16), (4, 8)),)), ValueError, "InceptionConfig.blocks[0]"),
        (lambda: InceptionConfig(blocks=((8, (8, 0), (4, 8), 8),)), ValueError, "InceptionConfig.blocks[0][1]"),
        (lambda: ResNetConfig(stages=()), ValueError, "ResNetConfig.stages"),
        (lambda: ResNetConfig(blocks_per_stage=1.5), TypeError, "ResNetConfig.blocks_per_stage"),
        (lambda: GlyphNetConfig(num_classes=0), ValueError, "GlyphNetConfig.num_classes"),
        (lambda: GlyphNetConfig(channels=(8, 16)), ValueError, "GlyphNetConfig.channels"),
        # building blocks
        (lambda: vgg_block(0, 1, 8), ValueError, "convs"),
        (lambda: conv_bn_relu(1, 8, 0), ValueError, "kernel"),
        (lambda: global_average_head(8, False), TypeError, "num_classes"),
        (lambda: ConvResidualBlock(4, 8, stride=0), ValueError, "stride"),
        (lambda: InceptionBlock(8, 4, 6, (2, 3), 5), TypeError, "c3"),
        (lambda: InceptionBlock(8, 4, (2, 6), (2, 3, 4), 5), ValueError, "c5"),
        (lambda: AlexNet("big"), TypeError, "config must be AlexNetConfig"),
        (lambda: ResNet(VGGConfig()), TypeError, "config must be ResNetConfig"),
    ])


# --- the bottleneck block and receptive fields ---------------------------------------------

from dlbook.cnn import BottleneckBlock, layer_windows  # noqa: E402
from dlbook.conv import receptive_field  # noqa: E402


@pytest.mark.parametrize("C, m, side", [(16, 4, 5), (32, 8, 3)])
def test_bottleneck_counts_match_the_formulas(C: int, m: int, side: int) -> None:
    block = BottleneckBlock(C, m, C)
    # P = 2 C m + 9 m^2 (1x1, 3x3, 1x1 weights, no biases) + 2 (m + m + C) (batch norm)
    assert count_parameters(block) == 2 * C * m + 9 * m * m + 4 * m + 2 * C
    # multiply-adds at stride 1: H W (2 C m + 9 m^2)
    assert count_multiply_adds(block, torch.zeros(2, C, side, side)) == side * side * (2 * C * m + 9 * m * m)
    assert isinstance(block.shortcut, nn.Identity)


def test_bottleneck_projection_shapes_and_residual() -> None:
    torch.manual_seed(0)
    block = BottleneckBlock(8, 4, 16, stride=2).double().eval()
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    y = block(x)
    assert y.shape == (2, 16, 3, 3)
    # the shortcut is a 1x1 projection with batch norm: y = relu(P x + F(x))
    torch.testing.assert_close(y, F.relu(block.shortcut(x) + block.residual(x)))
    assert count_parameters(block.shortcut) == 8 * 16 + 2 * 16
    # the learned change F is zero when the last batch norm's gamma and beta are zero
    with torch.no_grad():
        block.bn3.weight.zero_()
        block.bn3.bias.zero_()
    torch.testing.assert_close(block(x), F.relu(block.shortcut(x)))


def _measured_field(features: nn.Module, side: int) -> int:
    """Width of the nonzero input gradient of the centre unit, on a positive, average-pooled probe."""
    layers = [m for m in features.modules() if not list(m.children())]
    probe = nn.Sequential(*[nn.AvgPool2d(m.kernel_size, m.stride) if isinstance(m, nn.MaxPool2d) else m
                            for m in layers]).double()
    with torch.no_grad():
        for p in probe.parameters():
            p.abs_().add_(0.01)
    x = torch.rand(1, features[0].in_channels if isinstance(features[0], nn.Conv2d) else 1, side, side,
                   dtype=torch.float64, requires_grad=True)
    out = probe(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    cols = x.grad[0].abs().sum(dim=(0, 1)).nonzero()
    return int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize("features, expected", [
    (lambda: AlexNet().features, 47),
    (lambda: VGG().features, 34),
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3)), 5),  # two 3x3 see 5x5
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3, stride=2), nn.AvgPool2d(2), nn.Conv2d(2, 2, 3)), 13),  # 3, 3 + 2, 5 + 2 * 4
])
def test_receptive_field_of_chains_matches_autograd(features, expected: int) -> None:
    torch.manual_seed(0)
    chain = features()
    derived = receptive_field(layer_windows(chain))
    assert derived == expected
    assert _measured_field(chain, side=96) == derived


def test_bottleneck_and_windows_bad_inputs() -> None:
    check_bad_inputs([
        (lambda: BottleneckBlock(0, 4, 8), ValueError, "in_channels"),
        (lambda: BottleneckBlock(8, 4.0, 8), TypeError, "mid_channels"),
        (lambda: BottleneckBlock(8, 4, 8, stride=0), ValueError, "stride"),
        (lambda: BottleneckBlock(8, 4, 8)(torch.zeros(2, 4, 5, 5)), ValueError, "(B, 8, H, W)"),
        (lambda: layer_windows("VGG"), TypeError, "model"),
        (lambda: layer_windows(nn.Conv2d(1, 1, (3, 5))), ValueError, "square"),
    ])


# --- data augmentation ------------------------------------------------------------------------

from dlbook.cnn import Augmented, random_shift_rotate, shift_rotate  # noqa: E402


def test_shift_rotate_matches_roll_and_rot90() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(2, 1, 8, 8)
    x[:, :, 2:5, 2:5] = torch.rand(2, 1, 3, 3, generator=g)  # away from the border: nothing falls off
    moved = shift_rotate(x, torch.tensor([[2.0, 1.0], [-1.0, -2.0]]), torch.zeros(2))
    torch.testing.assert_close(moved[0], torch.roll(x[0], (1, 2), (1, 2)))  # down 1, right 2
    torch.testing.assert_close(moved[1], torch.roll(x[1], (-2, -1), (1, 2)))
    turned = shift_rotate(x, torch.zeros(2, 2), torch.tensor([90.0, -90.0]))
    torch.testing.assert_close(turned[0], torch.rot90(x[0], 1, (1, 2)), atol=1e-6, rtol=0)  # counterclockwise
    torch.testing.assert_close(turned[1], torch.rot90(x[1], -1, (1, 2)), atol=1e-6, rtol=0)
    torch.testing.assert_close(shift_rotate(x, torch.zeros(2, 2), torch.zeros(2)), x)


def test_random_shift_rotate_is_seeded_and_bounded() -> None:
    x = torch.zeros(64, 1, 9, 9)
    x[:, :, 4, 4] = 1.0  # one bright pixel in the centre
    a = random_shift_rotate(x, 2.0, 30.0, torch.Generator().manual_seed(1))
    b = random_shift_rotate(x, 2.0, 30.0, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, x)
    # the centre pixel moves at most 2 pixels per axis (rotation about the centre does not move it)
    rows, cols = a[:, 0].sum(dim=2), a[:, 0].sum(dim=1)  # (64, 9) each
    ys = (rows * torch.arange(9.0)).sum(1) / rows.sum(1)
    xs = (cols * torch.arange(9.0)).sum(1) / cols.sum(1)
    assert (ys - 4).abs().max() <= 2.0 + 1e-5 and (xs - 4).abs().max() <= 2.0 + 1e-5
    torch.testing.assert_close(random_shift_rotate(x, 0.0, 0.0), x)


def test_augmented_loader_yields_new_images_each_pass() -> None:
    x, y = torch.rand(6, 1, 8, 8), torch.arange(6)
    loader = [(x[:3], y[:3]), (x[3:], y[3:])]
    aug = Augmented(loader, max_shift=2.0, max_degrees=10.0, seed=0)
    first, second = list(aug), list(aug)
    assert len(aug) == 2 and all(torch.equal(a[1], b[1]) for a, b in zip(first, loader))
    assert not torch.allclose(first[0][0], second[0][0])  # a fresh draw every epoch


def test_augmentation_bad_inputs() -> None:
    x = torch.zeros(2, 1, 8, 8)
    check_bad_inputs([
        (lambda: shift_rotate(torch.zeros(1, 8, 8), torch.zeros(1, 2), torch.zeros(1)), ValueError, "x"),
        (lambda: shift_rotate(x, torch.zeros(3, 2), torch.zeros(2)), ValueError, "shifts"),
        (lambda: shift_rotate(x, torch.zeros(2, 2), torch.zeros(2, 1)), ValueError, "degrees"),
        (lambda: shift_rotate(x.long(), torch.zeros(2, 2), torch.zeros(2)), TypeError, "x"),
        (lambda: random_shift_rotate(x, -1.0, 0.0), ValueError, "max_shift"),
        (lambda: random_shift_rotate(x, 1.0, float("nan")), ValueError, "max_degrees"),
        (lambda: Augmented([], 1.0, 5.0, seed=-1), ValueError, "seed"),
    ])


from dlbook.cnn import occlusion_map, saliency_map  # noqa: E402


def _small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 2, 8, 8) -> (B, 4, 4, 4)
        nn.Flatten(), nn.Linear(64, 5),
    ).double().eval()


def test_saliency_matches_finite_differences_and_channel_max() -> None:
    model = _small_cnn()
    x = torch.rand(3, 2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 4, 2])
    s = saliency_map(model, x, y)
    assert s.shape == (3, 8, 8)
    h = 1e-6
    for b in range(3):
        for c, i, j in [(0, 1, 2), (1, 5, 5), (0, 7, 0), (1, 3, 6)]:
            grads = []
            for channel in range(2):
                up, down = x[b:b + 1].clone(), x[b:b + 1].clone()
                up[0, channel, i, j] += h
                down[0, channel, i, j] -= h
                grads.append(((model(up) - model(down))[0, y[b]] / (2 * h)).abs().item())
            # max over channels of |d s_y / d x|, by central differences
            assert s[b, i, j].item() == pytest.approx(max(grads), rel=1e-5, abs=1e-9)
    # one image at a time gives the same maps: no cross-talk in the batch
    torch.testing.assert_close(torch.cat([saliency_map(model, x[b:b + 1], y[b:b + 1]) for b in range(3)]), s)


def test_occlusion_matches_a_loop() -> None:
    model = _small_cnn()
    x = torch.rand(2, 2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([1, 3])
    for patch, value in [(3, 0.0), (5, 0.5), (1, -1.0)]:
        got = occlusion_map(model, x, y, patch=patch, value=value, batch_size=7)
        r = patch // 2
        with torch.no_grad():
            for b in range(2):
                base = model(x[b:b + 1])[0, y[b]]
                for i in range(8):
                    for j in range(8):
                        z = x[b:b + 1].clone()
                        z[:, :, max(i - r, 0):i + r + 1, max(j - r, 0):j + r + 1] = value
                        assert got[b, i, j].item() == pytest.approx((base - model(z)[0, y[b]]).item(), abs=1e-12)


def test_occlusion_of_a_linear_model_is_gradient_times_removed_input() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 3)).double().eval()
    x = torch.rand(1, 1, 6, 6, dtype=torch.float64)
    y = torch.tensor([2])
    w = model[1].weight[2].detach().reshape(6, 6)  # d s_2 / d x
    drop = occlusion_map(model, x, y, patch=3, value=0.25)[0]
    # for a linear score, delta_ij = sum over the square of w (x - value)
    contribution = F.pad(w * (x[0, 0] - 0.25), (1, 1, 1, 1))  # zero outside the image
    expected = F.avg_pool2d(contribution[None, None], 3, stride=1)[0, 0] * 9  # (6, 6) sums over 3x3 squares
    torch.testing.assert_close(drop, expected)
    torch.testing.assert_close(saliency_map(model, x, y)[0], w.abs())


def test_saliency_and_occlusion_bad_inputs() -> None:
    model, x, y = _small_cnn(), torch.rand(2, 2, 8, 8, dtype=torch.float64), torch.tensor([0, 1])
    check_bad_inputs([
        (lambda: saliency_map(model.train(), x, y), ValueError, "eval"),
        (lambda: saliency_map(model.eval(), x[0], y), ValueError, "x"),
        (lambda: saliency_map(model.eval(), x, y.double()), TypeError, "y"),
        (lambda: saliency_map(model.eval(), x, torch.tensor([0, 1, 2])), ValueError, "y"),
        (lambda: occlusion_map(model.eval(), x, y, patch=4), ValueError, "patch"),
        (lambda: occlusion_map(model.eval(), x, y, patch=0), ValueError, "patch"),
        (lambda: occlusion_map("model", x, y), TypeError, "model"),
    ])


from dlbook.cnn import grad_cam  # noqa: E402


def _glyphnet_cam(model: GlyphNet, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CAM from the head weights: relu(sum over k of w_yk A_k) / (h w), A the last ReLU's maps."""
    with torch.no_grad():
        A = model.features[:8](x)  # (B, K, h, w), the maps that global average pooling sees
        cam = torch.einsum("bk,bkij->bij", model.head.weight[y], A).clamp_min(0)
    return cam / (A.shape[2] * A.shape[3])


def test_grad_cam_of_a_global_average_pooling_net_is_cam() -> None:
    torch.manual_seed(0)
    model = GlyphNet(GlyphNetConfig(num_classes=5, channels=(8, 12, 16))).double().eval()
    x = torch.rand(3, 1, 28, 28, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():  # for each image, the class whose CAM peaks highest: not an all-zero map
        A = model.features[:8](x)  # (3, K, 7, 7)
        y = torch.einsum("ck,bkij->bcij", model.head.weight, A).amax(dim=(2, 3)).argmax(dim=1)
    layer = model.features[7]  # the ReLU after the last convolution
    cam = _glyphnet_cam(model, x, y)  # (3, 7, 7)
    assert cam.amax(dim=(1, 2)).min() > 0  # not a trivially zero map
    torch.testing.assert_close(grad_cam(model, x, y, layer, upsample=False), cam)
    # the gradient is the same at every position, so weighting each position by its own changes nothing
    torch.testing.assert_close(grad_cam(model, x, y, layer, average=False, upsample=False), cam)
    expected = F.interpolate(cam[:, None], size=(28, 28), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(grad_cam(model, x, y, layer), expected)
    # the hook is gone afterwards
    assert not layer._forward_hooks


def test_grad_cam_of_a_hand_built_net() -> None:
    # conv (2 channels, keeps 4x4) -> ReLU -> flatten -> linear: d s_y / d A is the head's weight row
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3)).double().eval()
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    y = torch.tensor([2, 0])
    with torch.no_grad():
        A = model[1](model[0](x))  # (2, 2, 4, 4)
    for b in range(2):
        g = model[3].weight[y[b]].detach().reshape(2, 4, 4)  # (K, h, w)
        alpha = [g[k].sum() / 16 for k in range(2)]
        by_hand = torch.clamp(alpha[0] * A[b, 0] + alpha[1] * A[b, 1], min=0)
        local = torch.clamp(g[0] * A[b, 0] + g[1] * A[b, 1], min=0)
        # the layer keeps the image size, so upsampling changes nothing
        torch.testing.assert_close(grad_cam(model, x, y, model[1])[b], by_hand)
        torch.testing.assert_close(grad_cam(model, x, y, model[1], average=False)[b], local)


def test_grad_cam_shapes_signs_and_batches() -> None:
    model = _small_cnn()
    x = torch.rand(3, 2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    y = torch.tensor([1, 0, 4])
    raw = grad_cam(model, x, y, model[2], upsample=False)  # after the pool: (3, 4, 4)
    full = grad_cam(model, x, y, model[2])
    assert raw.shape == (3, 4, 4) and full.shape == (3, 8, 8)
    assert (raw >= 0).all() and (full >= 0).all()
    # one image at a time gives the same maps: no cross-talk in the batch
    torch.testing.assert_close(torch.cat([grad_cam(model, x[b:b + 1], y[b:b + 1], model[2]) for b in range(3)]), full)
    # frozen weights still give gradients with respect to the maps
    for p in model.parameters():
        p.requires_grad_(False)
    torch.testing.assert_close(grad_cam(model, x, y, model[2]), full)


class _Twice(nn.Module):
    """Runs one convolution twice and keeps an unused one."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.unused = nn.Conv2d(1, 1, 3, padding=1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(self.conv(x)))


def test_grad_cam_bad_inputs() -> None:
    model, x, y = _small_cnn(), torch.rand(2, 2, 8, 8, dtype=torch.float64), torch.tensor([0, 1])
    twice, x1 = _Twice().double().eval(), torch.rand(2, 1, 4, 4, dtype=torch.float64)
    check_bad_inputs([
        (lambda: grad_cam(model.train(), x, y, model[0]), ValueError, "eval"),
        (lambda: grad_cam(model.eval(), x, y, nn.ReLU()), ValueError, "layer"),
        (lambda: grad_cam(model.eval(), x, y, "conv"), TypeError, "layer"),
        (lambda: grad_cam(model.eval(), x, y, model[4]), ValueError, "(B, K, h, w)"),
        (lambda: grad_cam(model.eval(), x, y, model[0], average="yes"), ValueError, "average"),
        (lambda: grad_cam(model.eval(), x, y, model[0], upsample=None), ValueError, "upsample"),
        (lambda: grad_cam(model.eval(), x[0], y, model[0]), ValueError, "x"),
        (lambda: grad_cam(model.eval(), x, y.double(), model[0]), TypeError, "y"),
        (lambda: grad_cam("model", x, y, model[0]), TypeError, "model"),
        (lambda: grad_cam(twice, x1, y, twice.unused), ValueError, "0 times"),
        (lambda: grad_cam(twice, x1, y, twice.conv), ValueError, "2 times"),
    ])
    # hooks are removed even when the call fails
    assert not twice.conv._forward_hooks and not model[4]._forward_hooks
