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


def _edges(ax) -> int:
    return sum(len(c.get_segments()) for c in ax.collections)


def _count(ax, kind) -> int:
    return sum(isinstance(p, kind) for p in ax.patches)


def test_network_diagram_draws_one_edge_per_weight_and_one_circle_per_bias():
    from dlbook.feedforward import count_parameters, mlp
    from matplotlib.patches import Circle, Rectangle

    model = mlp([3, 5, 4, 2])
    ax = plot.network_diagram(model, max_nodes=None)
    assert _count(ax, Rectangle) == 3  # the inputs
    assert _count(ax, Circle) == 5 + 4 + 2  # the units
    assert _edges(ax) == 3 * 5 + 5 * 4 + 4 * 2
    assert _edges(ax) + _count(ax, Circle) == count_parameters(model)
    assert not any(t.get_text() == r"$\vdots$" for t in ax.texts)
    captions = [t.get_text() for t in ax.texts if "\n" in t.get_text()]
    assert captions == ["input\n$d_{0} = 3$", "hidden layer 1\n$d_{1} = 5$",
                        "hidden layer 2\n$d_{2} = 4$", "output\n$d_{3} = 2$"]
    # a list of widths draws the same picture as the model
    same = plot.network_diagram([3, 5, 4, 2], max_nodes=None)
    assert (_edges(same), _count(same, Circle)) == (_edges(ax), _count(ax, Circle))


def test_network_diagram_abbreviates_wide_layers():
    from matplotlib.patches import Circle, Rectangle

    ax = plot.network_diagram([64, 256, 10], max_nodes=6, labels=["x", "h", "z"])
    assert _count(ax, Rectangle) == 6  # three first and three last inputs
    assert _count(ax, Circle) == 6 + 6
    assert _edges(ax) == 6 * 6 + 6 * 6
    assert sum(t.get_text() == r"$\vdots$" for t in ax.texts) == 3
    names = {t.get_text() for t in ax.texts}
    assert {"$x_{1}$", "$x_{3}$", "$x_{62}$", "$x_{64}$", "$z_{1}$", "$z_{10}$"} <= names
    assert "$x_{4}$" not in names and "$z_{4}$" not in names
    assert {"x", "h", "z"} <= names
    # a layer exactly at the cap is drawn in full
    full = plot.network_diagram([2, 6], max_nodes=6)
    assert _count(full, Circle) == 6 and not any(t.get_text() == r"$\vdots$" for t in full.texts)


def test_perceptron_diagram_has_one_weighted_edge_per_parameter():
    from dlbook.perceptron import Perceptron

    for d in (1, 3, 6):
        ax = plot.perceptron_diagram(d)
        weights = [p for p in ax.patches if p.get_gid() == "weight"]
        unit = Perceptron(d)
        assert len(weights) == unit.w.numel() + unit.b.numel() == d + 1
        names = {t.get_text() for t in ax.texts}
        assert {f"$w_{{{i}}}$" for i in range(1, d + 1)} | {"$b$", "$1$", r"$\Sigma$"} <= names
    wide = plot.perceptron_diagram(9)
    names = {t.get_text() for t in wide.texts}
    assert r"$\vdots$" in names and "$x_{9}$" in names and "$x_{5}$" not in names
    assert sum(p.get_gid() == "weight" for p in wide.patches) == 5 + 1


def test_diagrams_draw_into_a_given_axes():
    fig, (left, right) = plt.subplots(1, 2)
    assert plot.perceptron_diagram(2, ax=left) is left
    assert plot.network_diagram([2, 3, 1], ax=right) is right


def test_diagram_bad_inputs():
    from torch import nn

    broken = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(5, 2))
    check_bad_inputs([
        (lambda: plot.network_diagram([3]), ValueError, "sizes"),
        (lambda: plot.network_diagram([3, 0, 2]), ValueError, "sizes[1]"),
        (lambda: plot.network_diagram([3, 2.5]), TypeError, "sizes[1]"),
        (lambda: plot.network_diagram([3, True]), TypeError, "sizes[1]"),
        (lambda: plot.network_diagram("3, 2"), TypeError, "sizes"),
        (lambda: plot.network_diagram(torch.tensor([3, 2])), TypeError, "sizes"),
        (lambda: plot.network_diagram(nn.ReLU()), ValueError, "sizes"),
        (lambda: plot.network_diagram(broken), ValueError, "sizes"),
        (lambda: plot.network_diagram([3, 2], labels=["a"]), ValueError, "labels"),
        (lambda: plot.network_diagram([3, 2], labels="ab"), TypeError, "labels"),
        (lambda: plot.network_diagram([3, 2], max_nodes=1), ValueError, "max_nodes"),
        (lambda: plot.network_diagram([3, 2], max_nodes=4.0), TypeError, "max_nodes"),
        (lambda: plot.network_diagram([3, 2], ax="left"), TypeError, "ax"),
        (lambda: plot.perceptron_diagram(0), ValueError, "num_inputs"),
        (lambda: plot.perceptron_diagram(2.0), TypeError, "num_inputs"),
        (lambda: plot.perceptron_diagram(2, ax=plt), TypeError, "ax"),
    ])
