"""Tests for dlbook.conv (Part 8): scratch convolution and pooling against torch."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from dlbook.conv import (
    LeNet,
    LeNetConfig,
    avg_pool2d,
    col2im,
    conv2d,
    conv2d_direct,
    im2col,
    max_pool2d,
    output_size,
    receptive_field,
)
from tests.helpers import check_against_torch, check_bad_inputs, check_gradient


def random_conv_config(seed: int) -> dict:
    """A random convolution problem: shapes, kernel, stride and padding that fit."""
    rng = random.Random(seed)
    k_h, k_w = rng.randint(1, 4), rng.randint(1, 4)
    p_h, p_w = rng.randint(0, 2), rng.randint(0, 2)
    return {
        "B": rng.randint(1, 3),
        "C_in": rng.randint(1, 3),
        "C_out": rng.randint(1, 4),
        "H": rng.randint(max(1, k_h - 2 * p_h), 9),
        "W": rng.randint(max(1, k_w - 2 * p_w), 9),
        "k": (k_h, k_w),
        "stride": (rng.randint(1, 3), rng.randint(1, 3)),
        "padding": (p_h, p_w),
        "bias": rng.random() < 0.7,
    }


def conv_inputs(cfg: dict, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(cfg["B"], cfg["C_in"], cfg["H"], cfg["W"], generator=gen, dtype=torch.float64)
    w = torch.randn(cfg["C_out"], cfg["C_in"], *cfg["k"], generator=gen, dtype=torch.float64)
    inputs = [x, w]
    if cfg["bias"]:
        inputs.append(torch.randn(cfg["C_out"], generator=gen, dtype=torch.float64))
    return inputs


@pytest.mark.parametrize("seed", range(40))
def test_conv2d_matches_torch(seed: int) -> None:
    cfg = random_conv_config(seed)
    s, p = cfg["stride"], cfg["padding"]
    check_against_torch(
        lambda *t: conv2d(*t, stride=s, padding=p),
        lambda *t: F.conv2d(*t, stride=s, padding=p),
        conv_inputs(cfg, seed),
        seed=seed,
    )


@pytest.mark.parametrize("seed", range(10))
def test_conv2d_direct_matches_torch(seed: int) -> None:
    cfg = random_conv_config(100 + seed)
    s, p = cfg["stride"], cfg["padding"]
    check_against_torch(
        lambda *t: conv2d_direct(*t, stride=s, padding=p),
        lambda *t: F.conv2d(*t, stride=s, padding=p),
        conv_inputs(cfg, seed),
        seed=seed,
    )


@pytest.mark.parametrize("seed", range(10))
def test_im2col_and_col2im_match_unfold_and_fold(seed: int) -> None:
    cfg = random_conv_config(200 + seed)
    x = conv_inputs(cfg, seed)[0]
    k, s, p = cfg["k"], cfg["stride"], cfg["padding"]
    cols = im2col(x, k, s, p)
    torch.testing.assert_close(cols, F.unfold(x, k, padding=p, stride=s))
    c = torch.randn_like(cols)
    back = col2im(c, x.shape, k, s, p)
    torch.testing.assert_close(back, F.fold(c, x.shape[2:], k, padding=p, stride=s))
    # col2im is the adjoint of im2col: <im2col(x), c> = <x, col2im(c)>
    torch.testing.assert_close((cols * c).sum(), (x * back).sum())


def test_input_and_weight_gradients_are_convolutions() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64, generator=gen)
    w = torch.randn(4, 3, 3, 2, dtype=torch.float64, generator=gen)
    G = torch.randn(2, 4, 5, 5, dtype=torch.float64, generator=gen)  # upstream gradient

    def loss(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return (F.conv2d(x, w) * G).sum()  # autograd through torch's convolution: the oracle

    def by_hand(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # dL/dX = full convolution of G with the kernel flipped in space, in/out channels swapped
        w_flip = w.flip(2, 3).transpose(0, 1)  # (C_in, C_out, k_h, k_w)
        dX = conv2d(G, w_flip, padding=(w.shape[2] - 1, w.shape[3] - 1))
        # dL/dW = correlation of the input with G, summed over the batch
        dW = conv2d(x.transpose(0, 1), G.transpose(0, 1)).transpose(0, 1)
        return dX, dW

    check_gradient(loss, by_hand, [x, w])


def random_pool_config(seed: int) -> dict:
    rng = random.Random(seed)
    k = (rng.randint(1, 3), rng.randint(1, 3))
    stride = None if rng.random() < 0.4 else (rng.randint(1, 3), rng.randint(1, 3))
    shape = (rng.randint(1, 3), rng.randint(1, 3), rng.randint(k[0], 9), rng.randint(k[1], 9))
    return {"shape": shape, "k": k, "stride": stride}


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_pooling_matches_torch(seed: int, pool: str) -> None:
    cfg = random_pool_config(seed)
    ours, theirs = (max_pool2d, F.max_pool2d) if pool == "max" else (avg_pool2d, F.avg_pool2d)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(cfg["shape"], dtype=torch.float64, generator=gen)
    check_against_torch(
        lambda t: ours(t, cfg["k"], cfg["stride"]),
        lambda t: theirs(t, cfg["k"], cfg["stride"]),
        [x],
        seed=seed,
    )


@pytest.mark.parametrize(
    ("n", "k", "s", "p"), [(28, 5, 1, 0), (28, 5, 1, 2), (7, 3, 2, 1), (10, 4, 3, 0), (5, 5, 1, 0)]
)
def test_output_size_matches_torch(n: int, k: int, s: int, p: int) -> None:
    y = F.conv2d(torch.zeros(1, 1, n, n), torch.zeros(1, 1, k, k), stride=s, padding=p)
    assert output_size(n, k, s, p) == y.shape[-1]


def test_mixed_dtypes_are_converted_to_the_weights() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, generator=gen)
    w, b = torch.randn(4, 3, 3, 3, generator=gen), torch.randn(4, dtype=torch.float64, generator=gen)
    for conv in (conv2d, conv2d_direct):
        y = conv(x, w, b)
        assert y.dtype == torch.float32
        torch.testing.assert_close(y, F.conv2d(x.float(), w, b.float()))
    model, images = LeNet(LeNetConfig()), torch.rand(2, 1, 28, 28, dtype=torch.float64)
    for backend in ("torch", "scratch"):
        model.backend = backend
        torch.testing.assert_close(model(images), model(images.float()))


def test_bad_inputs() -> None:
    x, w = torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3)
    check_bad_inputs([
        # convolution: shapes, channels, kernel too large, bias, dtype, kind, empty batch
        (lambda: conv2d(torch.randn(2, 2, 8, 8), w), ValueError, "expected x of shape (B, 3, H, W)"),
        (lambda: conv2d(torch.randn(2, 3, 2, 2), w), ValueError, "larger than the padded input"),
        (lambda: conv2d_direct(torch.randn(2, 3, 1, 8), w), ValueError, "kernel"),
        (lambda: conv2d(x[0], w), ValueError, "expected x of shape (B, 3, H, W), got (3, 8, 8)"),
        (lambda: conv2d(x, w[0]), ValueError, "weight"),
        (lambda: conv2d(x, w, torch.zeros(3)), ValueError, "expected bias of shape (4"),
        (lambda: conv2d(x[:0], w), ValueError, "x is empty"),
        (lambda: conv2d(x.long(), w), TypeError, "x"),
        (lambda: conv2d(x, w.long()), TypeError, "weight"),
        (lambda: conv2d(x.tolist(), w), TypeError, "x"),
        (lambda: conv2d(x, None), TypeError, "weight"),
        (lambda: conv2d_direct(x, w, [0.0] * 4), TypeError, "bias"),
        # stride, padding, kernel sizes: zero, negative, float, bool, wrong length
        (lambda: conv2d(x, w, stride=0), ValueError, "stride"),
        (lambda: conv2d(x, w, padding=-1), ValueError, "padding"),
        (lambda: conv2d(x, w, padding=1.5), TypeError, "padding"),
        (lambda: conv2d(x, w, stride=True), TypeError, "stride"),
        (lambda: conv2d(x, w, stride=(1, 2, 3)), ValueError, "stride"),
        (lambda: conv2d_direct(x, w, stride=(1, 0)), ValueError, "stride[1]"),
        (lambda: im2col(x, 0), ValueError, "kernel_size"),
        (lambda: im2col(x[0], 2), ValueError, "x"),
        (lambda: col2im(torch.randn(1, 9, 5), (1, 1, 4, 4), 3), ValueError, "cols"),
        (lambda: col2im(torch.randn(1, 9, 4), (1, 1, 4), 3), ValueError, "input_shape"),
        (lambda: col2im(torch.randn(1, 9, 4), (1, 1, 4, 0), 3), ValueError, "input_shape[3]"),
        # pooling
        (lambda: max_pool2d(torch.randn(1, 1, 3, 3), 4), ValueError, "kernel"),
        (lambda: avg_pool2d(torch.randn(1, 3, 3), 2), ValueError, "x"),
        (lambda: max_pool2d(x, 2, stride=0), ValueError, "stride"),
        (lambda: avg_pool2d(x, (2, 2.0)), TypeError, "kernel_size[1]"),
        (lambda: max_pool2d(x.int(), 2), TypeError, "x"),
        (lambda: avg_pool2d(None, 2), TypeError, "x"),
        # sizes
        (lambda: output_size(0, 3), ValueError, "n"),
        (lambda: output_size(5, 3, stride=0), ValueError, "stride"),
        (lambda: output_size(5, 3, padding=-1), ValueError, "padding"),
        (lambda: output_size(5, 3.0), TypeError, "kernel"),
        (lambda: output_size(2, 5), ValueError, "kernel of size 5"),
        (lambda: receptive_field([(0, 1)]), ValueError, "layers[0] kernel"),
        (lambda: receptive_field([(3, 1), (2, -2)]), ValueError, "layers[1] stride"),
        (lambda: receptive_field([3]), TypeError, "layers[0]"),
        (lambda: receptive_field(None), TypeError, "layers"),
        # LeNet
        (lambda: LeNetConfig(pool="min"), ValueError, "LeNetConfig.pool"),
        (lambda: LeNetConfig(channels=(6,)), ValueError, "LeNetConfig.channels"),
        (lambda: LeNetConfig(hidden=(120, 0)), ValueError, "LeNetConfig.hidden[1]"),
        (lambda: LeNetConfig(num_classes=0), ValueError, "LeNetConfig.num_classes"),
        (lambda: LeNetConfig(image_size=8), ValueError, "kernel"),
        (lambda: LeNet(LeNetConfig())(torch.randn(2, 1, 32, 32)), ValueError, "(B, 1, 28, 28)"),
        (lambda: LeNet(LeNetConfig())(torch.randn(2, 28, 28)), ValueError, "(B, 1, 28, 28)"),
        (lambda: LeNet(LeNetConfig())(torch.zeros(2, 1, 28, 28).tolist()), TypeError, "x"),
        (lambda: LeNet(LeNetConfig(), backend="numpy"), ValueError, "backend"),
        (lambda: LeNet({"pool": "max"}), TypeError, "config"),
    ])


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_lenet_backends_agree(pool: str) -> None:
    torch.manual_seed(0)
    model = LeNet(LeNetConfig(pool=pool)).double()
    x = torch.randn(3, 1, 28, 28, dtype=torch.float64)
    y_torch = model(x)
    grads_torch = torch.autograd.grad(y_torch.sum(), list(model.parameters()))
    model.backend = "scratch"
    y_scratch = model(x)
    grads_scratch = torch.autograd.grad(y_scratch.sum(), list(model.parameters()))
    torch.testing.assert_close(y_scratch, y_torch)
    for a, b in zip(grads_scratch, grads_torch):
        torch.testing.assert_close(a, b)


@pytest.mark.slow
def test_lenet_learns_glyphs_on_held_out_fonts() -> None:
    from dlbook.data import glyphs
    from dlbook.train import accuracy, evaluate, fit

    torch.manual_seed(0)
    data = glyphs("digits", per_font=4, seed=1)
    train, _, test = data.loaders(32, seed=0)
    model = LeNet(LeNetConfig(channels=(4, 8), hidden=(32,)))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    fit(model, train, loss_fn=F.cross_entropy, optimizer=opt, epochs=5, progress="none",
        device="cpu")
    acc = evaluate(model, test, F.cross_entropy, {"acc": accuracy}, device="cpu")["acc"]
    assert acc > 0.6, f"LeNet reached only {acc:.2f} on held-out fonts (chance is 0.10)"


@pytest.mark.parametrize(("stride", "k"), [(1, 3), (2, 3), (3, 2), (2, 4)])
def test_input_gradient_with_stride_is_full_convolution_of_dilated_gradient(
    stride: int, k: int
) -> None:
    gen = torch.Generator().manual_seed(stride * 10 + k)
    x = torch.randn(2, 2, 11, 11, dtype=torch.float64, generator=gen)
    w = torch.randn(3, 2, k, k, dtype=torch.float64, generator=gen)
    b = torch.randn(3, dtype=torch.float64, generator=gen)
    n_out = output_size(11, k, stride)
    G = torch.randn(2, 3, n_out, n_out, dtype=torch.float64, generator=gen)  # upstream gradient

    def loss(x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (conv2d(x, w, b, stride=stride) * G).sum()

    def by_hand(x: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # dilate G with stride - 1 zeros, pad up to the rows the stride skipped, then full convolution
        n_dil = stride * (n_out - 1) + 1
        G_dil = torch.zeros(2, 3, n_dil, n_dil, dtype=torch.float64)
        G_dil[:, :, ::stride, ::stride] = G
        extra = x.shape[2] - (n_dil + k - 1)
        G_dil = F.pad(G_dil, (0, extra, 0, extra))
        dX = conv2d(G_dil, w.flip(2, 3).transpose(0, 1), padding=k - 1)
        # dL/db_o = sum of G over batch and positions
        return dX, G.sum(dim=(0, 2, 3))

    check_gradient(loss, by_hand, [x, b])


@pytest.mark.parametrize("seed", range(3))
def test_convolution_is_a_sparse_tied_matrix_and_shift_equivariant(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    n, k = 6, 3
    kernel = torch.randn(1, 1, k, k, dtype=torch.float64, generator=gen)
    basis = torch.eye(n * n, dtype=torch.float64).reshape(-1, 1, n, n)  # one lit pixel each
    M = conv2d_direct(basis, kernel).reshape(n * n, -1).T  # (outputs, inputs)
    x = torch.randn(1, 1, n, n, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(M @ x.flatten(), conv2d_direct(x, kernel).flatten())
    assert ((M != 0).sum(dim=1) == k * k).all()  # locality: k*k inputs per output
    # weight sharing: the matrix holds only the kernel's values
    assert set(M[M != 0].tolist()) == set(kernel.flatten().tolist())
    big = torch.randn(1, 1, 20, 20, dtype=torch.float64, generator=gen)
    shifted = torch.roll(big, (2, 3), (2, 3))
    a = torch.roll(conv2d_direct(big, kernel, padding=1), (2, 3), (2, 3))
    b = conv2d_direct(shifted, kernel, padding=1)
    torch.testing.assert_close(a[..., 5:-5, 5:-5], b[..., 5:-5, 5:-5])


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_lenet_receptive_field_matches_formula(kernel_size: int) -> None:
    config = LeNetConfig(pool="avg", kernel_size=kernel_size, image_size=32)
    probe = LeNet(config).double()
    with torch.no_grad():
        for p in probe.parameters():
            p.abs_().add_(0.01)  # every ReLU active, so the gradient reaches the whole field
    x = torch.rand(1, 1, 32, 32, dtype=torch.float64, requires_grad=True)
    pool2 = probe.features(x)["pool2"]
    centre = pool2.shape[-1] // 2
    pool2[0, 0, centre, centre].backward()
    rows, cols = x.grad[0, 0].nonzero().unbind(1)
    r = receptive_field([(kernel_size, 1), (2, 2), (kernel_size, 1), (2, 2)])
    assert (rows.max() - rows.min() + 1).item() == r
    assert (cols.max() - cols.min() + 1).item() == r


def test_receptive_field_by_hand() -> None:
    assert receptive_field([]) == 1
    assert receptive_field([(3, 1)] * 3) == 7  # three 3x3 convolutions see 7x7
    # 3x3 conv, 2x2 pool, repeated: 3, 4, 8, 10, 18, 22, 38 (the texture network)
    assert receptive_field([(3, 1), (2, 2), (3, 1), (2, 2), (3, 1), (2, 2), (3, 1)]) == 38
