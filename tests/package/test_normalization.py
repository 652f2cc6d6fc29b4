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


# --- running statistics on new data: recompute (AdaBN) and freeze ---------------------------

import copy  # noqa: E402

from dlbook.normalization import (  # noqa: E402
    batch_norm_layers,
    freeze_batch_norm,
    recompute_batch_norm_statistics,
)


def _mixed_net():
    """torch's and dlbook's batch norms, a dropout that must stay off during the recompute."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Dropout(0.5), nn.BatchNorm1d(8), nn.ReLU(),
                         nn.Linear(8, 4), BatchNorm1d(4)).double()


def _batches(T=5, B=6, D=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, D, generator=g, dtype=torch.float64) * 2 + 1 for _ in range(T)]


def test_recompute_equals_the_statistics_of_the_data():
    net, batches = _mixed_net(), _batches()
    weights = {k: v.clone() for k, v in net.named_parameters()}
    assert recompute_batch_norm_statistics(net, [(x, None) for x in batches]) == len(batches)
    with torch.no_grad():
        z = torch.stack([net[0](x) for x in batches])  # (T, B, 8): what the first batch norm sees
    # equal batches: the mean of the batch means is the mean of all the data
    torch.testing.assert_close(net[2].running_mean, z.reshape(-1, 8).mean(0), atol=1e-12, rtol=0)
    # torch stores the unbiased variance: the mean of the T unbiased batch variances
    torch.testing.assert_close(net[2].running_var, z.var(dim=1, unbiased=True).mean(0), atol=1e-12, rtol=0)
    assert net[2].num_batches_tracked.item() == len(batches)
    for k, v in net.named_parameters():
        assert torch.equal(v, weights[k]), f"{k} changed"


@pytest.mark.parametrize("conv", [False, True])
def test_recompute_matches_torch_update_bn(conv):
    """torch.optim.swa_utils.update_bn resets the statistics and averages with momentum=None."""
    torch.manual_seed(1)
    if conv:
        ours = nn.Sequential(nn.Conv2d(2, 3, 3), BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 4, 3), BatchNorm2d(4)).double()
        theirs = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).double()
        g = torch.Generator().manual_seed(2)
        batches = [torch.randn(B, 2, 7, 7, generator=g, dtype=torch.float64) + 3 for B in (2, 5, 3)]
    else:
        ours = nn.Sequential(nn.Linear(5, 8), BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4), BatchNorm1d(4)).double()
        theirs = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4), nn.BatchNorm1d(4)).double()
        batches = _batches(T=4, B=7)
    theirs.load_state_dict(ours.state_dict())
    recompute_batch_norm_statistics(ours, batches)
    torch.optim.swa_utils.update_bn(batches, theirs)
    for name, value in theirs.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[name], value, atol=1e-12, rtol=1e-10)


def test_recompute_restores_flags_and_momenta():
    net = _mixed_net()
    net.train()
    net[5].eval()
    net[2].momentum = 0.3
    flags = [m.training for m in net.modules()]
    recompute_batch_norm_statistics(net, _batches())
    assert [m.training for m in net.modules()] == flags
    assert net[2].momentum == 0.3 and net[5].momentum == 0.1


@pytest.mark.parametrize("layer", [nn.BatchNorm1d, BatchNorm1d])
def test_running_mean_is_an_exponential_moving_average(layer):
    """After t batches the source statistic keeps weight (1 - m)^t, batch s gets m (1 - m)^(t - s)."""
    m, t = 0.1, 7
    bn = layer(3, momentum=m).double()
    r0 = torch.tensor([5.0, -2.0, 0.5], dtype=torch.float64)
    bn.running_mean.copy_(r0)
    batches = _batches(T=t, B=4, D=3, seed=3)
    for x in batches:
        bn(x)
    closed_form = (1 - m) ** t * r0 + sum(m * (1 - m) ** (t - s) * x.mean(0) for s, x in enumerate(batches, start=1))
    torch.testing.assert_close(bn.running_mean, closed_form, atol=1e-12, rtol=0)


@pytest.mark.parametrize("layer", [nn.BatchNorm1d, BatchNorm1d])
def test_frozen_batch_norm_survives_train_and_keeps_its_statistics(layer):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), layer(6), nn.ReLU(), nn.Linear(6, 2)).double()
    x = _batches(T=1, B=8, D=4)[0]
    recompute_batch_norm_statistics(net, [x + 1])
    stats = (net[1].running_mean.clone(), net[1].running_var.clone())
    with torch.no_grad():
        expected = net.eval()(x)
    with freeze_batch_norm(net, freeze_affine=True):
        net.train()  # what dlbook.train.fit does every epoch
        y = net(x)
        torch.testing.assert_close(y, expected)  # the running statistics, not the batch's
        y.sum().backward()
        assert net[1].weight.grad is None and net[1].bias.grad is None
        assert net[0].weight.grad is not None
        assert torch.equal(net[1].running_mean, stats[0]) and torch.equal(net[1].running_var, stats[1])
    assert net[1].training and net[1].weight.requires_grad  # back to the model's mode
    net(x)
    assert not torch.equal(net[1].running_mean, stats[0])  # training mode updates them again


def test_freeze_keeps_affine_trainable_by_default():
    net = nn.Sequential(nn.Linear(4, 6), BatchNorm1d(6)).double()
    freeze = freeze_batch_norm(net)
    net.train()
    net(_batches(T=1, B=8, D=4)[0]).sum().backward()
    assert net[1].weight.grad is not None and not net[1].training
    freeze.remove()
    net.eval()
    freeze_batch_norm(net).remove()
    assert not net[1].training  # remove() follows the model's current mode


def test_recompute_and_freeze_bad_inputs():
    net, x = _mixed_net(), _batches(T=1)[0]
    before = net[2].running_mean.clone()
    check_bad_inputs([
        (lambda: recompute_batch_norm_statistics(None, [x]), TypeError, "model"),
        (lambda: recompute_batch_norm_statistics(nn.Linear(5, 2), [x]), ValueError, "batch-norm"),
        (lambda: recompute_batch_norm_statistics(nn.BatchNorm1d(5, track_running_stats=False), [x]),
         ValueError, "running statistics"),
        (lambda: recompute_batch_norm_statistics(net, []), ValueError, "batches"),
        (lambda: recompute_batch_norm_statistics(net, x), TypeError, "batches"),
        (lambda: recompute_batch_norm_statistics(net, [x, [1.0, 2.0]]), TypeError, "batch 2"),
        (lambda: recompute_batch_norm_statistics(net, [x, torch.randn(6, 4, dtype=torch.float64)]), RuntimeError, "shapes"),
        (lambda: recompute_batch_norm_statistics(net, [x[:1]]), ValueError, "more than 1 value"),  # torch's layer
        (lambda: recompute_batch_norm_statistics(net[4:], [torch.randn(1, 8, dtype=torch.float64)]), ValueError, "at least 2"),  # ours
        (lambda: freeze_batch_norm(net, freeze_affine="yes"), ValueError, "freeze_affine"),
        (lambda: freeze_batch_norm(nn.Linear(5, 2)), ValueError, "batch-norm"),
        (lambda: batch_norm_layers([net]), TypeError, "model"),
    ])
    torch.testing.assert_close(net[2].running_mean, before)  # failed recomputes restore the statistics
    with freeze_batch_norm(net):
        check_bad_inputs([
            (lambda: freeze_batch_norm(net), ValueError, "already"),
            (lambda: recompute_batch_norm_statistics(net, [x]), ValueError, "freeze"),
        ])
    assert recompute_batch_norm_statistics(net, [x]) == 1


def test_fit_with_frozen_batch_norm_leaves_the_statistics_and_trains_the_rest():
    from dlbook.train import fit

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(2, 4, generator=g) + 3, torch.randint(0, 2, (2,), generator=g)) for _ in range(5)]
    stats = (net[1].running_mean.clone(), net[1].running_var.clone())
    first = net[0].weight.detach().clone()
    with freeze_batch_norm(net):
        fit(net, data, loss_fn=F.cross_entropy, epochs=2, device="cpu", progress="none",
            optimizer=torch.optim.SGD(net.parameters(), lr=0.1))
    assert torch.equal(net[1].running_mean, stats[0]) and torch.equal(net[1].running_var, stats[1])
    assert net[1].num_batches_tracked.item() == 0
    assert not torch.equal(net[0].weight, first)
