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
    with pytest.raises(KeyError, match="no train_f1 or val_f1"):
        plot.history(hist, ["f1"])
    with pytest.raises(ValueError, match="at least one key"):
        plot.history(hist, [])


def test_image_grid_lays_out_images_with_titles():
    fig = plot.image_grid(torch.rand(7, 1, 8, 8), titles=list("abcdefg"), ncols=4)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 8 and len(shown) == 7
    assert shown[2].get_title() == "c"
    with pytest.raises(ValueError, match="7 images but 2 titles"):
        plot.image_grid(torch.rand(7, 8, 8), titles=["a", "b"])
    with pytest.raises(ValueError, match="expected images of shape"):
        plot.image_grid(torch.rand(8, 8))


def test_heatmap_annotates_every_cell():
    ax = plot.heatmap(np.array([[3, 1], [0, 5]]), row_labels=["a", "b"], col_labels=["x", "y"], fmt="{:d}")
    assert sorted(t.get_text() for t in ax.texts) == ["0", "1", "3", "5"]
    with pytest.raises(ValueError, match="2-D"):
        plot.heatmap(np.zeros(3))
    with pytest.raises(ValueError, match="row_labels has 1 entries for 2 rows"):
        plot.heatmap(np.zeros((2, 2)), row_labels=["a"])


def test_decision_boundary_shades_the_predicted_classes():
    X = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])
    y = torch.tensor([0, 1])
    ax = plot.decision_boundary(lambda g: (g[:, 0] > 0).long(), X, y, resolution=20)
    assert ax.collections  # the filled contours and the scatter
    with pytest.raises(ValueError, match="shape \\(N, 2\\)"):
        plot.decision_boundary(lambda g: g, torch.zeros(3, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="X has 3 points but y has 2 labels"):
        plot.decision_boundary(lambda g: g, torch.zeros(3, 2), torch.zeros(2))
