"""dlbook.normalization: the hand-derived batch-norm backward, the functional form and the layer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlbook.normalization import BatchNorm1d, BatchNormFunction, batch_norm
from tests.helpers import check_against_torch, check_bad_inputs, check_gradient


def _bn_inputs(B, D, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, D, generator=g, dtype=torch.float64) * 3 + 1
    gamma = torch.rand(D, generator=g, dtype=torch.float64) + 0.5
    beta = torch.randn(D, generator=g, dtype=torch.float64)
    weights = torch.randn(B, D, generator=g, dtype=torch.float64)  # L = sum(weights * y)
    return x, gamma, beta, weights


def _bn_by_formula(x, gamma, beta, eps=1e-5):
    """The forward equations of the chapter, left to autograd."""
    mu, var = x.mean(0), x.var(0, unbiased=False)
    return gamma * (x - mu) / torch.sqrt(var + eps) + beta


@pytest.mark.parametrize("B, D", [(2, 1), (8, 5), (64, 32)])
@pytest.mark.parametrize("seed", [0, 1])
def test_hand_written_backward_equals_autograd(B, D, seed):
    x, gamma, beta, weights = _bn_inputs(B, D, seed)

    def loss(x, gamma, beta):
        return (_bn_by_formula(x, gamma, beta) * weights).sum()

    def by_hand(x, gamma, beta):
        x, gamma, beta = (t.clone().requires_grad_() for t in (x, gamma, beta))
        with torch.enable_grad():
            y = BatchNormFunction.apply(x, gamma, beta, 1e-5)
            # the gradients BatchNormFunction.backward returns for L = sum(weights * y)
            return torch.autograd.grad((y * weights).sum(), [x, gamma, beta])

    check_gradient(loss, by_hand, [x, gamma, beta])


@pytest.mark.parametrize("B, D", [(2, 1), (8, 5), (64, 32)])
@pytest.mark.parametrize("seed", [0, 1])
def test_batch_norm_equals_torch(B, D, seed):
    x, gamma, beta, _ = _bn_inputs(B, D, seed)
    check_against_torch(
        lambda x, g, b: batch_norm(x, g, b, training=True),
        lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True, eps=1e-5),
        [x, gamma, beta],
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_batch_norm_without_affine_equals_torch(seed):
    x, _, _, _ = _bn_inputs(16, 4, seed)
    check_against_torch(
        lambda x: batch_norm(x, training=True),
        lambda x: F.batch_norm(x, None, None, training=True, eps=1e-5),
        [x],
    )


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("momentum", [0.1, 0.5])
def test_module_matches_torch_in_train_and_eval(affine, momentum):
    D = 6
    ours = BatchNorm1d(D, momentum=momentum, affine=affine).double()
    theirs = nn.BatchNorm1d(D, momentum=momentum, affine=affine).double()
    if affine:
        with torch.no_grad():
            ours.weight.uniform_(0.5, 1.5)
            ours.bias.normal_()
        theirs.load_state_dict(ours.state_dict())
    g = torch.Generator().manual_seed(0)
    for step in range(4):
        x = torch.randn(10 + step, D, generator=g, dtype=torch.float64) * 2 + 3
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = ours(xa), theirs(xb)
        torch.testing.assert_close(ya, yb, atol=1e-10, rtol=1e-8)
        w = torch.randn(ya.shape, generator=g, dtype=torch.float64)
        (ya * w).sum().backward()
        (yb * w).sum().backward()
        torch.testing.assert_close(xa.grad, xb.grad, atol=1e-10, rtol=1e-8)
        if affine:
            torch.testing.assert_close(ours.weight.grad, theirs.weight.grad, atol=1e-10, rtol=1e-8)
            torch.testing.assert_close(ours.bias.grad, theirs.bias.grad, atol=1e-10, rtol=1e-8)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(ours, name), getattr(theirs, name), atol=1e-12, rtol=1e-10)
    ours.eval()
    theirs.eval()
    x = torch.randn(3, D, generator=g, dtype=torch.float64)
    check_against_torch(ours, theirs, [x])
    torch.testing.assert_close(ours(x[:1]), ours(x)[:1])  # eval: no dependence on the batch


def test_batch_norm_normalizes_columns():
    x, gamma, beta, _ = _bn_inputs(50, 3, 0)
    y = batch_norm(x, gamma, beta)
    torch.testing.assert_close(y.mean(0), beta, atol=1e-10, rtol=0)
    torch.testing.assert_close(y.std(0, unbiased=False), gamma, atol=1e-5, rtol=1e-5)


def test_float64_batch_into_float32_layer_is_converted():
    bn = BatchNorm1d(3)
    y = bn(torch.randn(8, 3, dtype=torch.float64))
    assert y.dtype == torch.float32
    assert bn.running_mean.dtype == torch.float32


def test_refused_batch_leaves_statistics_alone_and_backward_is_once_differentiable():
    bn = BatchNorm1d(64)
    with pytest.raises(ValueError, match=r"expected x of shape \(B, 64\), got \(32, 63\)"):
        bn(torch.randn(32, 63))
    with pytest.raises(ValueError, match="at least 2"):
        bn(torch.randn(1, 64))
    assert bn.num_batches_tracked.item() == 0
    assert bn.running_mean.abs().max().item() == 0
    x = torch.randn(8, 64, requires_grad=True)
    (dx,) = torch.autograd.grad(bn(x).pow(3).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):  # the hand-written backward refuses a second derivative
        dx.sum().backward()


def test_bad_inputs():
    x = torch.randn(4, 3)
    bn = BatchNorm1d(3)
    check_bad_inputs([
        (lambda: batch_norm(x.tolist()), TypeError, "x"),  # a list where a tensor belongs
        (lambda: batch_norm(None), TypeError, "x"),
        (lambda: batch_norm(x.long()), TypeError, "x"),  # integer dtype
        (lambda: batch_norm(torch.randn(4)), ValueError, "x"),  # wrong ndim
        (lambda: batch_norm(torch.randn(0, 3)), ValueError, "x"),  # empty batch
        (lambda: batch_norm(torch.randn(1, 3)), ValueError, "x"),  # one example in training
        (lambda: batch_norm(x, torch.ones(2)), ValueError, "weight"),
        (lambda: batch_norm(x, None, [0.0, 0.0, 0.0]), TypeError, "bias"),
        (lambda: batch_norm(x, running_mean=torch.zeros(4), running_var=torch.ones(3)), ValueError, "running_mean"),
        (lambda: batch_norm(x, training=False), ValueError, "running_mean"),
        (lambda: batch_norm(x, training="no"), ValueError, "training"),
        (lambda: batch_norm(x, momentum=1.5), ValueError, "momentum"),
        (lambda: batch_norm(x, eps=0.0), ValueError, "eps"),
        (lambda: BatchNormFunction.apply(torch.randn(5), None, None, 1e-5), ValueError, "x"),
        (lambda: BatchNorm1d(0), ValueError, "num_features"),
        (lambda: BatchNorm1d(True), TypeError, "num_features"),
        (lambda: BatchNorm1d(3.0), TypeError, "num_features"),
        (lambda: BatchNorm1d(3, momentum=-0.1), ValueError, "momentum"),
        (lambda: BatchNorm1d(3, eps=float("inf")), ValueError, "eps"),
        (lambda: BatchNorm1d(3, affine=None), ValueError, "affine"),
        (lambda: bn(torch.randn(4, 5)), ValueError, "x"),
        (lambda: bn(torch.randn(4, 3, 2)), ValueError, "x"),
        (lambda: bn(None), TypeError, "x"),
    ])


# --- batch norm for convolutions, layer norm and group norm ---------------------------------

from dlbook.normalization import BatchNorm2d, group_norm, layer_norm  # noqa: E402


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (8, 4, 1, 1), (1, 2, 3, 3)])
def test_batch_norm_2d_matches_torch_in_train_and_eval(affine, shape):
    B, C, H, W = shape
    ours = BatchNorm2d(C, affine=affine).double()
    theirs = nn.BatchNorm2d(C, affine=affine).double()
    if affine:
        with torch.no_grad():
            ours.weight.uniform_(0.5, 1.5)
            ours.bias.normal_()
        theirs.load_state_dict(ours.state_dict())
    g = torch.Generator().manual_seed(1)
    for step in range(3):
        x = torch.randn(B, C, H, W, generator=g, dtype=torch.float64) * 2 + 1
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = ours(xa), theirs(xb)
        torch.testing.assert_close(ya, yb, atol=1e-10, rtol=1e-8)
        w = torch.randn(ya.shape, generator=g, dtype=torch.float64)
        (ya * w).sum().backward()
        (yb * w).sum().backward()
        torch.testing.assert_close(xa.grad, xb.grad, atol=1e-10, rtol=1e-8)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(ours, name), getattr(theirs, name), atol=1e-12, rtol=1e-10)
    ours.eval()
    theirs.eval()
    x = torch.randn(3, C, H, W, generator=g, dtype=torch.float64)
    check_against_torch(ours, theirs, [x])


def test_batch_norm_2d_statistics_are_per_channel_over_batch_and_space():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 5, 5, generator=g, dtype=torch.float64) * torch.tensor([1.0, 5.0, 0.2]).view(1, 3, 1, 1).double()
    y = BatchNorm2d(3).double()(x)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-10, rtol=0)
    var = x.var(dim=(0, 2, 3), unbiased=False)  # per channel over (B, H, W)
    torch.testing.assert_close(y.var(dim=(0, 2, 3), unbiased=False), var / (var + 1e-5), atol=1e-10, rtol=0)


@pytest.mark.parametrize("normalized_shape", [(6,), (3, 4, 4)])
def test_layer_norm_equals_torch(normalized_shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, *normalized_shape, generator=g, dtype=torch.float64) * 3 + 2
    w = torch.rand(normalized_shape, generator=g, dtype=torch.float64) + 0.5
    b = torch.randn(normalized_shape, generator=g, dtype=torch.float64)
    check_against_torch(lambda x, w, b: layer_norm(x, normalized_shape, w, b),
                        lambda x, w, b: F.layer_norm(x, normalized_shape, w, b, eps=1e-5), [x, w, b])
    module = nn.LayerNorm(normalized_shape).double()
    with torch.no_grad():
        module.weight.copy_(w)
        module.bias.copy_(b)
    torch.testing.assert_close(layer_norm(x, normalized_shape, w, b), module(x))


@pytest.mark.parametrize("num_groups", [1, 2, 4])
@pytest.mark.parametrize("shape", [(3, 4, 5, 5), (2, 4, 7)])
def test_group_norm_equals_torch(num_groups, shape):
    g = torch.Generator().manual_seed(num_groups)
    x = torch.randn(*shape, generator=g, dtype=torch.float64) * 2 - 1
    w = torch.rand(shape[1], generator=g, dtype=torch.float64) + 0.5
    b = torch.randn(shape[1], generator=g, dtype=torch.float64)
    check_against_torch(lambda x, w, b: group_norm(x, num_groups, w, b),
                        lambda x, w, b: F.group_norm(x, num_groups, w, b, eps=1e-5), [x, w, b])
    module = nn.GroupNorm(num_groups, shape[1]).double()
    with torch.no_grad():
        module.weight.copy_(w)
        module.bias.copy_(b)
    torch.testing.assert_close(group_norm(x, num_groups, w, b), module(x))


def test_layer_and_group_norm_do_not_depend_on_the_batch_but_batch_norm_does():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, 3, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(layer_norm(x[:1], (4, 3, 3)), layer_norm(x, (4, 3, 3))[:1])
    torch.testing.assert_close(group_norm(x[:1], 2), group_norm(x, 2)[:1])
    bn = BatchNorm2d(4).double()
    assert (bn(x[:2])[:1] - bn(x)[:1]).abs().max() > 1e-3  # training-mode batch norm does


def test_normalization_bad_inputs():
    x = torch.randn(2, 4, 3, 3)
    check_bad_inputs([
        (lambda: BatchNorm2d(4)(torch.randn(2, 3, 3, 3)), ValueError, "x"),
        (lambda: BatchNorm2d(4)(torch.randn(2, 4, 3)), ValueError, "x"),
        (lambda: BatchNorm2d(4)(torch.randn(1, 4, 1, 1)), ValueError, "x"),  # one value per channel
        (lambda: layer_norm(x, (4, 3)), ValueError, "x"),
        (lambda: layer_norm(x.long(), (3,)), TypeError, "x"),
        (lambda: layer_norm(x, (3,), eps=-1.0), ValueError, "eps"),
        (lambda: group_norm(x, 3), ValueError, "num_groups"),
        (lambda: group_norm(x, 0), ValueError, "num_groups"),
        (lambda: group_norm(torch.randn(4), 2), ValueError, "x"),
        (lambda: group_norm([1.0, 2.0], 1), TypeError, "x"),
    ])
