"""dlbook.initialization: Xavier and He initializers, the deep MLP and the layer-by-layer signal."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlbook.initialization import (
    collapse_copies,
    deep_mlp,
    he_normal_,
    he_std,
    he_uniform_,
    layer_signals,
    unit_spread,
    xavier_normal_,
    xavier_std,
    xavier_uniform_,
)
from tests.helpers import check_bad_inputs

INITS = [
    (xavier_uniform_, lambda w, g: nn.init.xavier_uniform_(w, generator=g)),
    (xavier_normal_, lambda w, g: nn.init.xavier_normal_(w, generator=g)),
    (he_uniform_, lambda w, g: nn.init.kaiming_uniform_(w, nonlinearity="relu", generator=g)),
    (he_normal_, lambda w, g: nn.init.kaiming_normal_(w, nonlinearity="relu", generator=g)),
]


@pytest.mark.parametrize("ours, theirs", INITS)
@pytest.mark.parametrize("shape", [(30, 50), (8, 3, 5, 5)])
def test_initializer_equals_torch_with_same_generator(ours, theirs, shape):
    a, b = torch.empty(shape), torch.empty(shape)
    ours(a, generator=torch.Generator().manual_seed(3))
    theirs(b, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.parametrize("fan_in, fan_out", [(400, 100), (100, 900)])
@pytest.mark.parametrize("seed", [0, 1])
def test_initializer_variance_matches_formula(fan_in, fan_out, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.empty(fan_out, fan_in, dtype=torch.float64)
    expected = {
        xavier_uniform_: 2 / (fan_in + fan_out), xavier_normal_: 2 / (fan_in + fan_out),
        he_uniform_: 2 / fan_in, he_normal_: 2 / fan_in,
    }
    for init, var in expected.items():
        init(w, generator=g)
        # 40k draws: the sample variance is within a few percent of the truth
        assert abs(w.var().item() / var - 1) < 0.05, init.__name__
        assert abs(w.mean().item()) < 0.05 * math.sqrt(var)
    bound = math.sqrt(6 / (fan_in + fan_out))
    xavier_uniform_(w, generator=g)
    assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound
    he_normal_(w, mode="fan_out", generator=g)
    assert abs(w.var().item() / (2 / fan_out) - 1) < 0.05


def test_standard_deviations_follow_the_formulas():
    assert xavier_std(100, 300) == pytest.approx(math.sqrt(2 / 400))
    assert xavier_std(100, 300, gain=5 / 3) == pytest.approx(5 / 3 * math.sqrt(2 / 400))
    assert he_std(200) == pytest.approx(0.1)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_deep_mlp_and_layer_signals_agree_with_autograd(activation):
    torch.manual_seed(0)
    model = deep_mlp(7, 16, 4, 3, activation).double()
    x, y = torch.randn(5, 7, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1])
    forward, backward = layer_signals(model, x, y, F.cross_entropy)
    assert len(forward) == len(backward) == 5
    # the first Linear's output and its gradient, computed independently
    z1 = model[0](x).detach().requires_grad_()
    F.cross_entropy(model[1:](z1), y).backward()
    assert math.isclose(forward[0], z1.pow(2).mean().sqrt().item(), rel_tol=1e-12)
    assert math.isclose(backward[0], z1.grad.pow(2).mean().sqrt().item(), rel_tol=1e-12)
    assert model[0].weight.grad is not None


def test_deep_mlp_is_the_feedforward_mlp_with_the_same_default_weights():
    """deep_mlp builds its layers with dlbook.feedforward.mlp: same layers, same random draws."""
    from dlbook.feedforward import mlp

    torch.manual_seed(4)
    ours = deep_mlp(5, 8, 3, 2, "tanh")
    torch.manual_seed(4)
    theirs = mlp([5, 8, 8, 8, 2], "tanh")
    assert [type(m) for m in ours] == [type(m) for m in theirs]
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_deep_mlp_init_redraws_weights_and_zeroes_biases():
    torch.manual_seed(1)
    by_std = deep_mlp(64, 128, 3, 10, init=0.05)
    torch.manual_seed(1)
    by_init = deep_mlp(64, 128, 3, 10, init=he_normal_)
    linears = [m for m in by_std if isinstance(m, nn.Linear)]
    assert all(bool((m.bias == 0).all()) for m in linears)
    assert linears[1].weight.std().item() == pytest.approx(0.05, rel=0.05)
    he_linear = [m for m in by_init if isinstance(m, nn.Linear)][1]
    assert he_linear.weight.std().item() == pytest.approx(math.sqrt(2 / 128), rel=0.05)


def test_layer_signals_converts_float64_into_a_float32_model():
    torch.manual_seed(0)
    model = deep_mlp(4, 8, 2, 3)
    x = torch.randn(6, 4, dtype=torch.float64)
    forward, _ = layer_signals(model, x, torch.tensor([0, 1, 2, 0, 1, 2]), F.cross_entropy)
    assert len(forward) == 3


def test_he_init_keeps_relu_signal_xavier_shrinks_it():
    torch.manual_seed(0)
    x = torch.randn(512, 256)
    # He keeps E[h^2] layer to layer (the last, linear layer doubles it); Xavier halves it per ReLU layer
    for init, lo, hi in [(he_normal_, 0.5, 5.0), (xavier_normal_, 0.0, 0.01)]:
        model = deep_mlp(256, 256, 20, 256, "relu", init=init)
        with torch.no_grad():
            ratio = model(x).pow(2).mean().item() / x.pow(2).mean().item()
        assert lo < ratio < hi, (init.__name__, ratio)


def test_unit_spread_is_the_largest_pairwise_row_difference():
    W = torch.randn(6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    brute = max((W[j] - W[k]).abs().max().item() for j in range(6) for k in range(6))
    assert unit_spread(W) == pytest.approx(brute, rel=1e-15)
    assert unit_spread(W[:1].expand(4, 5)) == 0.0


def _copied_units(seed: int) -> nn.Sequential:
    """A float64 deep MLP whose hidden units are random but copies of each other, layer by layer."""
    gen = torch.Generator().manual_seed(seed)
    net = deep_mlp(5, 7, 2, 3, "tanh").double()
    with torch.no_grad():
        # equal rows into the first hidden layer, one number for hidden to hidden, equal columns out
        net[0].weight.copy_(torch.randn(1, 5, generator=gen, dtype=torch.float64))
        net[2].weight.fill_(torch.randn((), generator=gen, dtype=torch.float64).item())
        net[4].weight.copy_(torch.randn(3, 1, generator=gen, dtype=torch.float64))
        for layer in (net[0], net[2]):
            layer.bias.fill_(torch.randn((), generator=gen, dtype=torch.float64).item())
    return net


def _train(net: nn.Module, seed: int, steps: int = 30) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (64,), generator=gen)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_copied_units_stay_copies_and_collapse_to_width_one(seed):
    net = _copied_units(seed)
    _train(net, seed)
    assert max(unit_spread(net[0].weight), unit_spread(net[2].weight)) < 1e-12
    assert unit_spread(net[4].weight.T) < 1e-12  # outgoing weights: equal columns
    narrow = collapse_copies(net)
    assert [m.out_features for m in narrow if isinstance(m, nn.Linear)] == [1, 1, 3]
    x = torch.randn(20, 5, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    torch.testing.assert_close(narrow(x), net(x), rtol=1e-10, atol=1e-12)


def test_random_units_move_apart_and_do_not_collapse():
    net = deep_mlp(5, 7, 2, 3, "tanh", init=he_normal_).double()
    _train(net, 0)
    assert unit_spread(net[0].weight) > 0.1
    with pytest.raises(ValueError, match="not copies"):
        collapse_copies(net)


def test_bad_inputs():
    model = deep_mlp(3, 4, 2, 2)
    x, y = torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 0])
    check_bad_inputs([
        (lambda: unit_spread(torch.zeros(3)), ValueError, "weight"),
        (lambda: unit_spread(torch.zeros(2, 3, dtype=torch.long)), TypeError, "weight"),
        (lambda: collapse_copies(nn.Linear(3, 2)), TypeError, "model"),
        (lambda: collapse_copies(nn.Sequential(nn.ReLU())), ValueError, "Linear"),
        (lambda: collapse_copies(model, atol=-1.0), ValueError, "atol"),
        (lambda: xavier_uniform_(torch.empty(5)), ValueError, "tensor"),  # 1-D: no fans
        (lambda: xavier_normal_([[1.0]]), TypeError, "tensor"),  # a list where a tensor belongs
        (lambda: he_normal_(None), TypeError, "tensor"),
        (lambda: he_uniform_(torch.zeros(3, 3, dtype=torch.long)), TypeError, "tensor"),  # integer weight
        (lambda: he_uniform_(torch.empty(3, 3), mode="fan_avg"), ValueError, "mode"),
        (lambda: xavier_uniform_(torch.empty(3, 3), gain=-1.0), ValueError, "gain"),
        (lambda: xavier_uniform_(torch.empty(3, 3), gain=float("nan")), ValueError, "gain"),
        (lambda: xavier_std(0, 3), ValueError, "fan_in"),
        (lambda: xavier_std(3, True), TypeError, "fan_out"),
        (lambda: he_std(-2), ValueError, "fan"),
        (lambda: deep_mlp(0, 4, 2, 2), ValueError, "in_features"),
        (lambda: deep_mlp(3, 4.0, 2, 2), TypeError, "width"),
        (lambda: deep_mlp(3, 4, 0, 2), ValueError, "depth"),  # no hidden layer: not a deep MLP
        (lambda: deep_mlp(3, 4, 2, False), TypeError, "out_features"),
        (lambda: deep_mlp(3, 4, 2, 2, "swish"), ValueError, "activation"),
        (lambda: deep_mlp(3, 4, 2, 2, init=-0.1), ValueError, "init"),
        (lambda: layer_signals(nn.Linear(3, 2), x, y, F.cross_entropy), TypeError, "model"),
        (lambda: layer_signals(model, x.tolist(), y, F.cross_entropy), TypeError, "x"),
        (lambda: layer_signals(model, x.long(), y, F.cross_entropy), TypeError, "x"),
        (lambda: layer_signals(model, x, None, F.cross_entropy), TypeError, "y"),
        (lambda: layer_signals(model, x, y, "cross_entropy"), TypeError, "loss_fn"),
        (lambda: layer_signals(model, x, y, F.cross_entropy, record=nn.Linear), TypeError, "record"),
        (lambda: layer_signals(model, x, y, F.cross_entropy, record=(nn.Conv2d,)), ValueError, "record"),
    ])
