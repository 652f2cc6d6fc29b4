"""dlbook.plot: each helper draws what it promises and rejects bad input."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dlbook import plot  # noqa: E402
from dlbook.train import History  # noqa: E402
from tests.helpers import check_bad_inputs  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_use_style_sets_an_opaque_background():
    plot.use_style()
    assert matplotlib.rcParams["figure.facecolor"] == "white"
    assert matplotlib.rcParams["axes.prop_cycle"].by_key()["color"][0] == plot.PALETTE[0]


def test_history_draws_train_and_val_curves():
    hist = History(records=[{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_acc": 0.5} for e in (1, 2, 3)])
    fig = plot.history(hist, ["loss", "acc"])
    loss_ax, acc_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["train", "val"]
    assert list(loss_ax.lines[1].get_ydata()) == pytest.approx([1.2, 0.6, 0.4])
    assert len(acc_ax.lines) == 1


def test_image_grid_lays_out_images_with_titles():
    fig = plot.image_grid(torch.rand(7, 1, 8, 8), titles=list("abcdefg"), ncols=4)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 8 and len(shown) == 7
    assert shown[2].get_title() == "c"


def test_heatmap_annotates_every_cell():
    ax = plot.heatmap(np.array([[3, 1], [0, 5]]), row_labels=["a", "b"], col_labels=["x", "y"], fmt="{:d}")
    assert sorted(t.get_text() for t in ax.texts) == ["0", "1", "3", "5"]


def test_decision_boundary_shades_the_predicted_classes():
    X = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])
    y = torch.tensor([0, 1])
    ax = plot.decision_boundary(lambda g: (g[:, 0] > 0).long(), X, y, resolution=20)
    assert ax.collections  # the filled contours and the scatter


def test_bad_inputs():
    hist = History(records=[{"epoch": 1, "train_loss": 1.0}])
    X, y = torch.zeros(3, 2), torch.tensor([0, 1, 0])
    half = lambda g: (g[:, 0] > 0).long()  # noqa: E731
    check_bad_inputs([
        (lambda: plot.history(hist, ["f1"]), KeyError, "no train_f1 or val_f1"),  # unknown name
        (lambda: plot.history(hist, []), ValueError, "keys"),
        (lambda: plot.history(hist, "loss"), TypeError, "keys"),
        (lambda: plot.history([1.0, 0.5]), TypeError, "hist"),
        (lambda: plot.history(hist, logy="yes"), ValueError, "logy"),
        (lambda: plot.history(hist, ["loss"], ax="left"), TypeError, "ax"),
        (lambda: plot.image_grid(torch.rand(7, 8, 8), titles=["a", "b"]), ValueError, "7 images but 2 titles"),
        (lambda: plot.image_grid(torch.rand(8, 8)), ValueError, "images"),  # wrong ndim
        (lambda: plot.image_grid(torch.rand(0, 8, 8)), ValueError, "images"),  # empty
        (lambda: plot.image_grid(None), TypeError, "images"),
        (lambda: plot.image_grid(torch.rand(2, 8, 8), ncols=0), ValueError, "ncols"),
        (lambda: plot.image_grid(torch.rand(2, 8, 8), ncols=True), TypeError, "ncols"),
        (lambda: plot.image_grid(torch.rand(2, 8, 8), size=-1.0), ValueError, "size"),
        (lambda: plot.heatmap(np.zeros(3)), ValueError, "matrix"),
        (lambda: plot.heatmap(np.zeros((0, 2))), ValueError, "matrix"),
        (lambda: plot.heatmap(None), TypeError, "matrix"),
        (lambda: plot.heatmap(np.zeros((2, 2)), row_labels=["a"]), ValueError, "row_labels"),
        (lambda: plot.heatmap(np.zeros((2, 2)), fmt=3), TypeError, "fmt"),
        (lambda: plot.decision_boundary(half, torch.zeros(3, 3), y), ValueError, "X"),
        (lambda: plot.decision_boundary(half, X, torch.zeros(2)), ValueError, "y"),  # mismatched lengths
        (lambda: plot.decision_boundary(half, X.tolist()[:0], y[:0]), ValueError, "X"),  # empty
        (lambda: plot.decision_boundary(half, torch.full((3, 2), float("nan")), y), ValueError, "X"),
        (lambda: plot.decision_boundary("half", X, y), TypeError, "predict"),
        (lambda: plot.decision_boundary(half, X, y, resolution=1), ValueError, "resolution"),
        (lambda: plot.decision_boundary(half, X, y, margin=-0.5), ValueError, "margin"),
        (lambda: plot.decision_boundary(lambda g: g, X, y, resolution=5), ValueError, "predict"),  # scores, not labels
    ])
