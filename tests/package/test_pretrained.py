"""Tests for dlbook.pretrained (Part 8, "Pretrained CNNs and transfer learning")."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlbook.cnn import GlyphNet
from dlbook.pretrained import (
    MODES,
    WEIGHTS,
    adapt,
    glyphnet,
    load_state_dict,
    per_class_subset,
    reference_batch,
    weights_info,
)
from dlbook.train import accuracy
from tests.helpers import check_bad_inputs, check_gradient


def test_weights_load_and_reproduce_recorded_accuracy() -> None:
    info = weights_info("letters")
    model = glyphnet(weights="letters")
    assert isinstance(model, GlyphNet)
    assert not model.training and model.head.out_features == 26 == len(info.classes)
    X, y = reference_batch("letters")
    with torch.no_grad():
        acc = float(accuracy(model(X), y))
    assert acc == pytest.approx(info.reference_accuracy, abs=1.5 / len(y))
    assert info.reference_accuracy > 0.8 and info.test_accuracy > 0.8
    assert all(v.dtype != torch.float16 for v in load_state_dict("letters").values())


def test_glyphnet_new_head() -> None:
    pre = glyphnet(weights="letters")
    model = glyphnet(weights="letters", num_classes=10)
    assert model.head.out_features == 10
    torch.testing.assert_close(model.features[0].weight, pre.features[0].weight)
    assert glyphnet().head.out_features == 26 and glyphnet(num_classes=5).head.out_features == 5
    assert glyphnet().training, "a randomly initialized network is left in training mode"


def test_head_gradient_on_frozen_features() -> None:
    torch.manual_seed(0)
    net = glyphnet(weights="letters", num_classes=5).double()
    net.features.requires_grad_(False)
    x, y = torch.rand(6, 1, 28, 28, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 4, 0])
    F.cross_entropy(net(x), y).backward()
    assert all(p.grad is None for p in net.features.parameters())
    Phi = net.features(x)  # (B, D)

    def loss(W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(Phi @ W.T + b, y)

    def by_hand(W: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        P, Y = torch.softmax(Phi @ W.T + b, 1), F.one_hot(y, 5).double()
        # dL/dW = (P - Y)^T Phi / B, dL/db = column sums of (P - Y) / B
        return (P - Y).T @ Phi / len(y), (P - Y).sum(0) / len(y)

    check_gradient(loss, by_hand, [net.head.weight.detach(), net.head.bias.detach()])


def test_feature_extraction_trains_only_the_head() -> None:
    X, y = torch.rand(8, 1, 28, 28), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    pre = glyphnet(weights="letters")
    for mode in MODES:
        model = adapt(mode, X, y, 3, steps=2, seed=0)
        assert not model.training and model.head.out_features == 3
        same = torch.equal(model.features[0].weight, pre.features[0].weight)
        assert same == (mode == "features"), mode
    # a float64 batch is converted, not rejected
    assert adapt("features", X.double(), y, 3, steps=1).head.weight.dtype == torch.float32


@pytest.mark.slow
def test_transfer_beats_scratch_with_few_labels() -> None:
    from dlbook.data import glyphs

    data = glyphs("digits", per_font=2, seed=0)
    idx = per_class_subset(data.train.y, 2, seed=0)
    accs = {}
    for mode in ("features", "scratch"):
        model = adapt(mode, data.train.X[idx], data.train.y[idx], 10, steps=30, seed=0)
        with torch.no_grad():
            accs[mode] = float(accuracy(model(data.test.X), data.test.y))
    assert accs["features"] > accs["scratch"] + 0.2


def test_per_class_subset() -> None:
    y = torch.tensor([0, 0, 1, 2, 2, 2])
    picked = y[per_class_subset(y, 1, seed=3)]
    assert sorted(picked.tolist()) == [0, 1, 2]
    assert torch.equal(per_class_subset(y, 1, seed=3), per_class_subset(y, 1, seed=3))


def test_bad_inputs() -> None:
    X, y = torch.rand(6, 1, 28, 28), torch.tensor([0, 1, 0, 1, 0, 1])
    check_bad_inputs([
        # the loader: unknown weights, impossible heads
        (lambda: glyphnet(num_classes=0), ValueError, "num_classes"),
        (lambda: glyphnet(weights="letters", num_classes=-2), ValueError, "num_classes"),
        (lambda: glyphnet(weights="letters", num_classes=True), TypeError, "num_classes"),
        (lambda: glyphnet(weights="imagenet"), ValueError, "weights must be one of ['letters']"),
        (lambda: glyphnet(weights=1), TypeError, "weights"),
        (lambda: weights_info("digits"), ValueError, "name"),
        (lambda: load_state_dict(None), TypeError, "name"),
        (lambda: reference_batch("numbers"), ValueError, "charset"),
        # adapt: every argument
        (lambda: adapt("freeze", X, y, 2), ValueError, "mode"),
        (lambda: adapt("features", X, y, 2, lr=-3e-3), ValueError, "lr"),
        (lambda: adapt("features", X, y, 2, lr=float("nan")), ValueError, "lr"),
        (lambda: adapt("features", X, y[:3], 2), ValueError, "X and y"),
        (lambda: adapt("features", X[:3], y, 2), ValueError, "X and y"),
        (lambda: adapt("features", X, y, 0), ValueError, "num_classes"),
        (lambda: adapt("features", X, y + 1, 2), ValueError, "y must hold class indices < 2"),
        (lambda: adapt("features", X, y - 1, 2), ValueError, "y must hold class indices >= 0"),
        (lambda: adapt("features", X, y.float(), 2), TypeError, "y"),
        (lambda: adapt("features", X, y.tolist(), 2), TypeError, "y"),
        (lambda: adapt("features", X.tolist(), y, 2), TypeError, "X"),
        (lambda: adapt("features", X[:, 0], y, 2), ValueError, "X"),
        (lambda: adapt("features", X[:0], y[:0], 2), ValueError, "X"),
        (lambda: adapt("features", X * float("nan"), y, 2), ValueError, "X"),
        (lambda: adapt("features", X, y, 2, weights="imagenet"), ValueError, "weights"),
        (lambda: adapt("features", X, y, 2, steps=0), ValueError, "steps"),
        (lambda: adapt("features", X, y, 2, batch_size=0), ValueError, "batch_size"),
        (lambda: adapt("features", X, y, 2, seed=-1), ValueError, "seed"),
        # per_class_subset
        (lambda: per_class_subset(torch.tensor([0, 0, 1]), 2), ValueError, "per_class=2"),
        (lambda: per_class_subset(torch.tensor([0, 0, 1]), 0), ValueError, "per_class"),
        (lambda: per_class_subset(torch.tensor([0.5, 1.0]), 1), TypeError, "y"),
        (lambda: per_class_subset([0, 1], 1), TypeError, "y"),
    ])
    assert WEIGHTS == {"letters": "glyphnet-letters.pt"}
