"""The book's figure style and the plots every chapter needs.

One style for all figures (:func:`use_style`): an opaque white background so a
figure reads the same in the site's light and dark themes, a colour-blind-safe
palette (Okabe and Ito), and light grid lines. The helpers each draw one kind of
figure the book needs again and again: training curves from a
:class:`~dlbook.train.History`, a grid of images, a heatmap (confusion
matrices, attention weights) and a 2-D decision boundary. Each takes an
optional ``ax`` to draw into and returns the ``Axes`` (or ``Figure`` for
multi-panel plots), so pages can combine them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from dlbook import _checks as check

__all__ = ["STYLE", "PALETTE", "use_style", "history", "image_grid", "heatmap", "decision_boundary"]

#: Okabe–Ito colours, distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")

#: The matplotlib settings behind every figure in the book.
STYLE: dict[str, Any] = {
    "figure.figsize": (6.0, 3.6),
    "figure.dpi": 110,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "axes.facecolor": "white",
    "axes.edgecolor": "#333333",
    "axes.labelcolor": "#222222",
    "axes.grid": True,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "xtick.color": "#333333",
    "ytick.color": "#333333",
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "lines.linewidth": 1.8,
    "image.cmap": "viridis",
    "figure.constrained_layout.use": True,
}


def use_style() -> None:
    """Apply :data:`STYLE` to every figure made from now on (pages call this once)."""
    mpl.rcParams.update(STYLE)


def _as_numpy(x: torch.Tensor | np.ndarray | Sequence, name: str = "x") -> np.ndarray:
    """``x`` as a real-valued NumPy array; ``None``, strings and ragged lists are refused."""
    if x is None or isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be a tensor, array or list of numbers, "
                        f"got {type(x).__name__}")
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x)
    except ValueError:
        raise ValueError(f"{name} must be a rectangular array of numbers, "
                         f"got a ragged {type(x).__name__}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr


def _ax(name: str, ax: object) -> Axes | None:
    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(f"{name} must be a matplotlib Axes or None, got {type(ax).__name__}")
    return ax


def _strings(name: str, items: object, count: int | None = None) -> list[str] | None:
    """``items`` as a list of labels, ``count`` of them if given; None passes through."""
    if items is None:
        return None
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence | np.ndarray):
        raise TypeError(f"{name} must be a sequence of labels, got {type(items).__name__}")
    return list(items)


def _axes(ax: Axes | None, figsize: tuple[float, float] | None = None) -> Axes:
    if ax is not None:
        return ax
    _, ax = plt.subplots(figsize=figsize)
    return ax


def history(
    hist: Any,
    keys: Sequence[str] = ("loss",),
    *,
    logy: bool = False,
    ax: Axes | None = None,
) -> Figure:
    """Plot training (solid) and validation (dashed) curves per epoch.

    Args:
        hist: a :class:`~dlbook.train.History`, or a mapping from key to a list
            of per-epoch values.
        keys: quantities to plot, without the ``train_``/``val_`` prefix; one
            panel each.
        logy: use a logarithmic y axis (useful for losses).
        ax: draw a single key into this ``Axes``.
    """
    if not (hasattr(hist, "keys") and hasattr(hist, "__getitem__")):
        raise TypeError("hist must be a History or a mapping of key to values, "
                        f"got {type(hist).__name__}")
    keys = _strings("keys", keys)
    if not keys:
        raise ValueError("keys must name at least one quantity to plot, got none")
    check.one_of("logy", logy, (True, False))
    _ax("ax", ax)
    if ax is not None and len(keys) != 1:
        raise ValueError(f"an ax can hold one key, got {len(keys)} keys: {keys}")
    if ax is None:
        fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2), squeeze=False)
        axes = list(axes[0])
    else:
        fig, axes = ax.figure, [ax]
    available = list(hist.keys())
    for key, axis in zip(keys, axes):
        found = False
        for prefix, style in (("train_", "-"), ("val_", "--")):
            name = prefix + key
            if name in available:
                values = list(hist[name])
                axis.plot(range(1, len(values) + 1), values, style, label=prefix.rstrip("_"))
                found = True
        if not found:
            raise KeyError(f"no train_{key} or val_{key} in history; recorded keys: {available}")
        axis.set_xlabel("epoch")
        axis.set_ylabel(key)
        if logy:
            axis.set_yscale("log")
        axis.legend()
    return fig


def image_grid(
    images: torch.Tensor | np.ndarray,
    titles: Sequence[str] | None = None,
    *,
    ncols: int = 10,
    cmap: str = "gray",
    size: float = 0.9,
) -> Figure:
    """Show images in a grid, optionally with a title above each.

    ``images`` has shape ``(N, H, W)``, ``(N, 1, H, W)`` or ``(N, 3, H, W)``.
    """
    arr = _as_numpy(images, "images")
    titles = _strings("titles", titles)
    check.positive_int("ncols", ncols)
    check.positive_float("size", size)
    if arr.ndim == 4 and arr.shape[1] in (1, 3):
        arr = arr[:, 0] if arr.shape[1] == 1 else arr.transpose(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W[, C])
    if arr.ndim not in (3, 4):
        raise ValueError(
            f"expected images of shape (N, H, W), (N, 1, H, W) or (N, 3, H, W), got {_as_numpy(images).shape}"
        )
    n = len(arr)
    if n == 0:
        raise ValueError("images is empty: image_grid needs at least one image")
    if titles is not None and len(titles) != n:
        raise ValueError(f"got {n} images but {len(titles)} titles")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, (size + (0.25 if titles else 0)) * nrows), squeeze=False
    )
    for i, axis in enumerate(axes.flat):
        axis.axis("off")
        if i < n:
            axis.imshow(arr[i], cmap=cmap, interpolation="nearest")
            if titles is not None:
                axis.set_title(str(titles[i]), fontsize=8, pad=2)
    return fig


def heatmap(
    matrix: torch.Tensor | np.ndarray,
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    annotate: bool = True,
    fmt: str = "{:.2g}",
    cmap: str = "Blues",
    colorbar: bool = True,
    ax: Axes | None = None,
) -> Axes:
    """Draw a 2-D array as a heatmap, with its values written in the cells.

    Text colour flips between dark and light with the cell's shade so numbers
    stay legible.
    """
    m = _as_numpy(matrix, "matrix")
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"matrix must be a non-empty 2-D array, got shape {m.shape}")
    row_labels, col_labels = _strings("row_labels", row_labels), _strings("col_labels", col_labels)
    check.one_of("annotate", annotate, (True, False))
    check.one_of("colorbar", colorbar, (True, False))
    if not isinstance(fmt, str):
        raise TypeError(f"fmt must be a format string such as '{{:.2g}}', got {type(fmt).__name__}")
    _ax("ax", ax)
    for name, labels, size in (("row_labels", row_labels, m.shape[0]), ("col_labels", col_labels, m.shape[1])):
        if labels is not None and len(labels) != size:
            raise ValueError(f"{name} has {len(labels)} entries for {size} {name.split('_')[0]}s")
    ax = _axes(ax)
    image = ax.imshow(m, cmap=cmap, aspect="auto")
    ax.grid(False)
    if row_labels is not None:
        ax.set_yticks(range(m.shape[0]), labels=list(row_labels))
    if col_labels is not None:
        ax.set_xticks(range(m.shape[1]), labels=list(col_labels))
    if annotate:
        lo, hi = float(np.nanmin(m)), float(np.nanmax(m))
        middle = (lo + hi) / 2
        for (i, j), value in np.ndenumerate(m):
            ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=8,
                    color="white" if value > middle else "#222222")
    if colorbar:
        ax.figure.colorbar(image, ax=ax)
    return ax


def decision_boundary(
    predict: Callable[[torch.Tensor], torch.Tensor],
    X: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    *,
    resolution: int = 200,
    margin: float = 0.5,
    ax: Axes | None = None,
) -> Axes:
    """Shade the classes a 2-D classifier predicts and scatter the data on top.

    Args:
        predict: maps a ``(N, 2)`` float tensor to ``(N,)`` integer class labels.
        X: the points, shape ``(N, 2)``.
        y: their true labels, shape ``(N,)``.
        resolution: grid points along each axis.
        margin: how far past the data the shaded region extends.
    """
    if not callable(predict):
        raise TypeError(f"predict must be callable, got {type(predict).__name__}")
    X, y = _as_numpy(X, "X"), _as_numpy(y, "y")
    if X.ndim != 2 or X.shape[1] != 2 or len(X) == 0:
        raise ValueError(f"expected X of shape (N, 2) with N >= 1, got {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("X contains NaN or infinity: the plotted region would be undefined")
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(f"X has {len(X)} points but y has shape {y.shape}: "
                         f"expected ({len(X)},) labels")
    check.positive_int("resolution", resolution, minimum=2)
    check.nonnegative_float("margin", margin)
    _ax("ax", ax)
    ax = _axes(ax, (4.5, 4.0))
    (x0, y0), (x1, y1) = X.min(0) - margin, X.max(0) + margin
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    grid = torch.tensor(np.c_[gx.ravel(), gy.ravel()], dtype=torch.float32)  # (R*R, 2)
    with torch.no_grad():
        labels = _as_numpy(predict(grid), "predict(grid)")
    if labels.shape != (len(grid),):
        raise ValueError("predict must map a (N, 2) tensor to (N,) class labels; "
                         f"for N = {len(grid)} it returned shape {labels.shape}")
    labels = labels.reshape(gx.shape)
    if min(labels.min(), y.min()) < 0:
        raise ValueError("y and predict(grid) must hold class labels >= 0")
    classes = np.unique(np.concatenate([np.unique(y), np.unique(labels)])).astype(int)
    colors = mpl.colors.ListedColormap([PALETTE[k % len(PALETTE)] for k in range(classes.max() + 1)])
    ax.contourf(gx, gy, labels, levels=np.arange(classes.max() + 2) - 0.5, cmap=colors, alpha=0.25)
    ax.scatter(X[:, 0], X[:, 1], c=y.astype(int), cmap=colors, vmin=-0.5, vmax=classes.max() + 0.5,
               s=12, edgecolors="white", linewidths=0.4)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.grid(False)
    return ax
