"""The book's figure style and the plots every chapter needs.

One style for all figures (:func:`use_style`): an opaque white background so a
figure reads the same in the site's light and dark themes, a colour-blind-safe
palette (Okabe and Ito), and light grid lines. The helpers each draw one kind of
figure the book needs again and again: training curves from a
:class:`~dlbook.train.History`, a grid of images, a heatmap (confusion
matrices, attention weights), a 2-D decision boundary, and diagrams of a
perceptron and of a fully connected network. Each takes an
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

__all__ = [
    "STYLE", "PALETTE", "use_style", "history", "image_grid", "heatmap", "decision_boundary",
    "network_diagram", "perceptron_diagram",
]

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


# Diagrams: the layout is in data units with an equal aspect, so circles stay round.
_INPUT_FILL, _UNIT_FILL, _OUTPUT_FILL, _EDGE = "#eeeeee", "#cfe3f2", "#f6d5c0", "#333333"


def _shown(n: int, cap: int | None) -> tuple[list[int], int | None]:
    """The indices (0-based) of the nodes drawn of ``n``, and the slot of the ellipsis (or None).

    A layer of more than ``cap`` nodes shows its first ``cap - cap // 2`` and its last
    ``cap // 2`` nodes with an ellipsis between them.
    """
    if cap is None or n <= cap:
        return list(range(n)), None
    head, tail = cap - cap // 2, cap // 2
    return list(range(head)) + list(range(n - tail, n)), head


def _slots(n: int, cap: int | None) -> tuple[list[int], list[float], float | None]:
    """Indices drawn, their y positions (top to bottom, centred on 0) and the ellipsis' y."""
    index, gap = _shown(n, cap)
    count = len(index) + (gap is not None)
    ys = [(count - 1) / 2 - k for k in range(count)]
    if gap is None:
        return index, ys, None
    return index, ys[:gap] + ys[gap + 1:], ys[gap]


def _widths_of(sizes: object) -> list[int]:
    """Layer widths from a list of ints or from the ``nn.Linear`` layers of a model."""
    if isinstance(sizes, torch.nn.Module):
        linears = [m for m in sizes.modules() if isinstance(m, torch.nn.Linear)]
        if not linears:
            raise ValueError("sizes is a model without nn.Linear layers: nothing to draw")
        widths = [linears[0].in_features]
        for i, layer in enumerate(linears):
            if layer.in_features != widths[-1]:
                raise ValueError(f"sizes: linear layer {i} takes {layer.in_features} inputs "
                                 f"but the layer before gives {widths[-1]}; not a chain of layers")
            widths.append(layer.out_features)
        return widths
    if isinstance(sizes, (str, bytes, torch.Tensor)) or not isinstance(sizes, Sequence):
        raise TypeError("sizes must be a list of layer widths (input ... output) or an "
                        f"nn.Module made of nn.Linear layers, got {type(sizes).__name__}")
    if len(sizes) < 2:
        raise ValueError("sizes must hold at least two widths (input ... output), "
                         f"got {list(sizes)}")
    return [check.positive_int(f"sizes[{i}]", s) for i, s in enumerate(sizes)]


def network_diagram(
    sizes: Sequence[int] | torch.nn.Module,
    *,
    labels: Sequence[str] | None = None,
    max_nodes: int | None = 10,
    ax: Axes | None = None,
) -> Axes:
    """Draw a fully connected network: its layers as columns of nodes, every weight as an edge.

    Args:
        sizes: the layer widths, input first and output last (at least two), or a
            model whose ``nn.Linear`` layers form a chain (as ``dlbook.feedforward.mlp``
            builds); their widths are read from the layers.
        labels: one caption per layer, drawn under it; by default "input", "hidden
            layer 1", ..., "output", each with its width.
        max_nodes: a layer wider than this is abbreviated: its first and last few
            units are drawn with a vertical ellipsis between them, and only the drawn
            units get edges. None draws every unit.
        ax: draw into this ``Axes``.

    Inputs are squares (they hold data and compute nothing); units are circles, each
    with one bias, and each edge is one weight. Drawn in full (``max_nodes=None``), the
    edges plus the circles therefore count the parameters of the network. The edges
    of each pair of layers form one ``LineCollection`` in ``ax.collections``.
    """
    widths = _widths_of(sizes)
    depth = len(widths) - 1
    labels = _strings("labels", labels)
    if labels is not None and len(labels) != len(widths):
        raise ValueError(f"labels has {len(labels)} captions for {len(widths)} layers")
    if max_nodes is not None:
        max_nodes = check.positive_int("max_nodes", max_nodes, minimum=2)
    _ax("ax", ax)
    if labels is None:
        names = ["input"] + [f"hidden layer {i}" for i in range(1, depth)] + ["output"]
        labels = [f"{name}\n$d_{{{i}}} = {w}$" for i, (name, w) in enumerate(zip(names, widths))]
    layout = [_slots(w, max_nodes) for w in widths]
    tallest = max(len(ys) + (gap is not None) for _, ys, gap in layout)
    gap_x, radius = 4.0, 0.3
    if ax is None:
        ax = _axes(None, (min(1.9 * depth + 2.2, 9.0), 0.3 * tallest + 1.3))
    for layer, (index, ys, ellipsis) in enumerate(layout):
        x = layer * gap_x
        if layer > 0:  # one segment per weight between the drawn units
            _, ys_in, _ = layout[layer - 1]
            segments = [[(x - gap_x, y0), (x, y1)] for y0 in ys_in for y1 in ys]
            ax.add_collection(mpl.collections.LineCollection(
                segments, colors="#777777", linewidths=0.5, alpha=0.55, zorder=1))
        fill = _INPUT_FILL if layer == 0 else (_OUTPUT_FILL if layer == depth else _UNIT_FILL)
        for y in ys:
            if layer == 0:
                node = mpl.patches.Rectangle((x - radius, y - radius), 2 * radius, 2 * radius,
                                             facecolor=fill, edgecolor=_EDGE, lw=0.9, zorder=2)
            else:
                node = mpl.patches.Circle((x, y), radius, facecolor=fill, edgecolor=_EDGE,
                                          lw=0.9, zorder=2)
            ax.add_patch(node)
        if ellipsis is not None:
            ax.text(x, ellipsis, r"$\vdots$", ha="center", va="center", fontsize=12, color=_EDGE)
        if layer in (0, depth):  # name the input and output entries by their index
            symbol, side = ("x", -1) if layer == 0 else ("z", 1)
            for i, y in zip(index, ys):
                ax.text(x + side * (radius + 0.25), y, f"${symbol}_{{{i + 1}}}$", fontsize=8,
                        ha="right" if side < 0 else "left", va="center", color=_EDGE)
        ax.text(x, -(tallest - 1) / 2 - radius - 0.35, labels[layer], ha="center", va="top",
                fontsize=9, color="#222222")
    half = (tallest - 1) / 2
    ax.set_xlim(-1.6, depth * gap_x + 1.6)
    ax.set_ylim(-half - 2.0, half + radius + 0.2)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax


def perceptron_diagram(num_inputs: int = 3, *, ax: Axes | None = None) -> Axes:
    """Draw one perceptron: inputs and a constant 1, their weights, the sum z and the step.

    The inputs x_1, ..., x_D and the constant 1 (squares) feed a summation node
    through edges labelled with the weights w_1, ..., w_D and the bias b; the node
    computes z = w^T x + b, and the step function turns z into the output. More than
    six inputs are abbreviated: the first three and the last two are drawn with a
    vertical ellipsis between them. The weighted edges are the patches of
    ``ax.patches`` whose gid is "weight".
    """
    num_inputs = check.positive_int("num_inputs", num_inputs)
    _ax("ax", ax)
    index, ys, ellipsis = _slots(num_inputs, 5 if num_inputs > 6 else None)
    ys = [y + 0.5 for y in ys]  # make room for the constant input below
    bias_y = min(ys) - 1.25
    ax = _axes(ax, (6.0, 0.5 * (len(ys) + (ellipsis is not None)) + 1.6))
    (sx, sy), (tx, ty), out_x, half, r = (4.2, 0.0), (6.6, 0.0), 8.6, 0.32, 0.5
    box = {"edgecolor": _EDGE, "lw": 1.0, "zorder": 2}
    arrow = {"arrowstyle": "-|>", "mutation_scale": 9, "lw": 1.2, "zorder": 1}
    sources = [(f"$x_{{{i + 1}}}$", f"$w_{{{i + 1}}}$", y) for i, y in zip(index, ys)]
    sources.append(("$1$", "$b$", bias_y))
    for k, (name, weight, y) in enumerate(sources):
        ax.add_patch(mpl.patches.Rectangle((-half, y - half), 2 * half, 2 * half,
                                           facecolor=_INPUT_FILL, **box))
        ax.text(0, y, name, ha="center", va="center", fontsize=10, zorder=3)
        colour = PALETTE[1] if k == len(sources) - 1 else PALETTE[0]
        # the edge stops where it meets the summation node's circle
        dx, dy = sx - half, sy - y
        end = (sx - r * dx / np.hypot(dx, dy), sy - r * dy / np.hypot(dx, dy))
        ax.add_patch(mpl.patches.FancyArrowPatch((half, y), end, shrinkA=2, shrinkB=1,
                                                 color=colour, gid="weight", **arrow))
        # the weight's name sits on its edge, about a third of the way along
        t = 0.36
        ax.text(half + t * dx, y + t * dy, weight, ha="center", va="center", fontsize=10,
                color=colour, zorder=3,
                bbox={"boxstyle": "round,pad=0.12", "facecolor": "white", "edgecolor": "none"})
    if ellipsis is not None:
        ax.text(0, ellipsis + 0.5, r"$\vdots$", ha="center", va="center", fontsize=12, color=_EDGE)
    ax.add_patch(mpl.patches.Circle((sx, sy), r, facecolor=_UNIT_FILL, **box))
    ax.text(sx, sy, r"$\Sigma$", ha="center", va="center", fontsize=14, zorder=3)
    ax.text(sx, sy - 0.75, r"$z = \mathbf{w}^\top\mathbf{x} + b$", ha="center", va="top",
            fontsize=10)
    # the step node: a box with the graph of the step function inside
    step_box = mpl.patches.FancyBboxPatch((tx - r, ty - r), 2 * r, 2 * r, boxstyle="round,pad=0.02",
                                          facecolor=_OUTPUT_FILL, **box)
    ax.add_patch(step_box)
    ax.plot([tx - 0.35, tx, tx, tx + 0.35], [ty - 0.25, ty - 0.25, ty + 0.25, ty + 0.25],
            color=_EDGE, lw=1.4, zorder=3, solid_joinstyle="miter")
    ax.text(tx, ty - 0.75, r"$\hat y = \mathrm{step}(z)$", ha="center", va="top", fontsize=10)
    for start, stop in (((sx + r, sy), (tx - r, ty)), ((tx + r, ty), (out_x - 0.35, ty))):
        ax.add_patch(mpl.patches.FancyArrowPatch(start, stop, shrinkA=1, shrinkB=1, color=_EDGE,
                                                 **arrow))
    ax.text(out_x, ty, r"$\hat y$", ha="center", va="center", fontsize=12)
    ax.text(sx + 1.2, sy + 0.12, "$z$", ha="center", va="bottom", fontsize=10)
    top = max(ys) + 0.9
    for x, caption in ((0, "inputs"), (sx, "weighted sum"), (tx, "step"), (out_x, "output")):
        ax.text(x, top, caption, ha="center", va="bottom", fontsize=9, color="#555555")
    ax.set_xlim(-1.0, out_x + 0.8)
    ax.set_ylim(bias_y - 0.7, top + 0.5)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax
