"""One generic training loop for every chapter (infrastructure; first used in Part 3).

:func:`fit` knows nothing of any model: it moves batches to a device, calls the
model, the loss and the optimizer, and records what happened in a
:class:`History`. Early stopping, gradient clipping and a learning-rate
scheduler are opt-in. In an interactive notebook it shows a progress bar; in
the built book (and in scripts) it prints one compact line per epoch, so the
HTML shows a readable log instead of a frozen widget.

Before the first step :func:`fit` checks its arguments, including that the
optimizer holds the model's parameters. Inside the loop it checks every batch
(an ``(inputs, targets)`` pair of equal, non-zero length) and the loss (a
finite scalar). Shapes are the loss function's business, with one exception,
the silent broadcast: torch's element-wise regression losses (``mse_loss``,
``l1_loss``, ``smooth_l1_loss``, ``huber_loss`` and their modules) only *warn*
when output and target shapes differ (an output ``(B, 1)`` against targets
``(B,)`` becomes a ``(B, B)`` loss); :func:`fit` and :func:`evaluate` turn
that warning into a ``ValueError`` naming both shapes, wherever the loss
function calls them. A loss that reshapes first (``mse_loss(output.squeeze(1),
target)``) is left alone; a hand-written loss that broadcasts cannot be told
from one that means to, so reshape in the loss.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from dlbook import _checks as check
from dlbook import device as default_device

__all__ = ["History", "EarlyStopping", "fit", "evaluate", "accuracy"]

Batch = tuple[torch.Tensor, torch.Tensor]
Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor | float]


def accuracy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Fraction of examples whose predicted class is the target class, as a float64 scalar tensor.

    ``output`` holds class scores ``(B, K)`` (the prediction is the argmax), a
    single logit per example ``(B,)`` or ``(B, 1)`` (the prediction is
    ``output > 0``), or predicted class indices ``(B,)`` of an integer dtype.
    ``target`` holds class indices ``(B,)``; whole-number floats (such as the
    0/1 targets of a binary cross-entropy) are accepted. A NaN score raises:
    it predicts nothing. :func:`dlbook.metrics.accuracy` calls this on label
    arrays.

    >>> accuracy(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([0, 0]))
    tensor(0.5000, dtype=torch.float64)
    """
    predicted, num_classes = _predictions(output)
    target = _class_targets(target, num_classes)
    check.same_length(output=predicted, target=target)
    correct = int((predicted == target.to(predicted.device)).sum())
    return torch.tensor(correct / len(target), dtype=torch.float64)


def _predictions(output: object) -> tuple[torch.Tensor, int | None]:
    """Predicted class indices ``(B,)`` from scores, a logit or labels; and the class count."""
    check.tensor("output", output)
    if not output.is_floating_point():
        check.labels("output", output)  # already class indices
        return output, None
    if bool(torch.isnan(output).any()):
        raise ValueError("output contains NaN: a NaN score predicts no class "
                         f"(output of shape {tuple(output.shape)})")
    if output.ndim == 2 and output.shape[1] > 1:
        check.expect_shape(output, "B K", "output")
        return output.argmax(dim=1), output.shape[1]
    if output.ndim == 1 or (output.ndim == 2 and output.shape[1] == 1):
        check.expect_shape(output.reshape(-1), "B", "output")
        return (output.reshape(-1) > 0).long(), 2
    raise ValueError(f"expected output of shape (B, K), (B,) or (B, 1), got {tuple(output.shape)}")


def _class_targets(target: object, num_classes: int | None) -> torch.Tensor:
    """``target`` as class indices ``(B,)``; whole-number floats converted, others refused."""
    check.tensor("target", target)
    if target.ndim == 2 and target.shape[1] == 1:
        target = target[:, 0]
    if target.is_floating_point():
        if not bool((target == target.round()).all()):
            raise TypeError(f"target must hold class indices, got a {target.dtype} tensor with "
                            "fractional values (scores or probabilities where labels belong?)")
        target = target.long()
    return check.labels("target", target, num_classes)


@dataclass
class History:
    """What :func:`fit` recorded: one dict of numbers per epoch.

    ``history["val_loss"]`` is the list of that quantity over epochs;
    ``history.records`` holds the raw dicts (keys ``epoch``, ``train_loss``,
    ``val_loss``, ``train_<metric>``, ``val_<metric>``, ``lr``, ``seconds``).
    """

    records: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False

    def __getitem__(self, key: str) -> list[float]:
        if not isinstance(key, str):
            raise TypeError(f"key must be a str such as 'val_loss', got {key!r}")
        if not self.records or key not in self.records[0]:
            known = sorted(self.records[0]) if self.records else []
            raise KeyError(f"no {key!r} in history; recorded keys: {known}")
        return [r[key] for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def keys(self) -> list[str]:
        """The recorded quantities, in the order they were first logged."""
        return list(self.records[0]) if self.records else []

    @property
    def last(self) -> dict[str, float]:
        """The final epoch's record."""
        if not self.records:
            raise IndexError("history is empty: fit ran no epoch")
        return self.records[-1]


@dataclass
class EarlyStopping:
    """Stop when a monitored quantity has not improved for ``patience`` epochs.

    Attributes:
        patience: epochs without improvement to wait before stopping.
        monitor: the history key to watch, for example ``"val_loss"``.
        mode: ``"min"`` if smaller is better, ``"max"`` if larger is.
        min_delta: the least change that counts as an improvement.
        restore_best: put back the weights of the best epoch when training ends.
    """

    patience: int = 5
    monitor: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    min_delta: float = 0.0
    restore_best: bool = True

    def __post_init__(self) -> None:
        check.positive_int("patience", self.patience)
        if not isinstance(self.monitor, str) or not self.monitor:
            raise TypeError(f"monitor must be a history key like 'val_loss', got {self.monitor!r}")
        check.one_of("mode", self.mode, ("min", "max"))
        check.nonnegative_float("min_delta", self.min_delta)
        check.one_of("restore_best", self.restore_best, (True, False))

    def improved(self, value: float, best: float) -> bool:
        """Whether ``value`` beats ``best`` by more than ``min_delta``."""
        if self.mode == "min":
            return value < best - self.min_delta
        return value > best + self.min_delta


def _to_device(batch: Iterable[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    return [t.to(device, non_blocking=True) for t in batch]


def _check_batch(batch: object, loader: str) -> None:
    """A batch is an ``(inputs, targets)`` pair of tensors of equal, non-zero length."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        size = f" with {len(batch)} items" if hasattr(batch, "__len__") else ""
        raise ValueError(f"{loader} must yield (inputs, targets) pairs, got a batch of type "
                         f"{type(batch).__name__}{size}")
    x, y = batch
    check.tensor(f"inputs from {loader}", x)
    check.tensor(f"targets from {loader}", y)
    if x.ndim == 0 or y.ndim == 0 or len(x) == 0:
        raise ValueError(f"{loader} yielded an empty or 0-d batch: inputs {tuple(x.shape)}, "
                         f"targets {tuple(y.shape)}")
    check.same_length(inputs=x, targets=y)


def _compute_loss(
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    output: object,
    target: torch.Tensor,
) -> torch.Tensor:
    """``loss_fn(output, target)``, refusing the broadcast torch's regression losses warn about."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Using a target size", category=UserWarning)
        try:
            loss = loss_fn(output, target)
        except UserWarning:
            shape = tuple(getattr(output, "shape", ()))
            raise ValueError(
                f"loss_fn compares output of shape {shape} "
                f"with target of shape {tuple(target.shape)}: "
                f"they would broadcast to a wrong loss; make them match, e.g. output.squeeze(1) "
                f"or target.unsqueeze(1)"
            ) from None
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        got = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn must return a scalar tensor, got {got}")
    return loss



def _callable(name: str, fn: object) -> Callable:
    if not callable(fn):
        raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
    return fn


def _loader(name: str, loader: object) -> Iterable[Batch]:
    """An iterable of batches (a DataLoader, a list of pairs, ...), refused if known to be empty."""
    if isinstance(loader, (torch.Tensor, str, bytes)) or not isinstance(loader, Iterable):
        raise TypeError(f"{name} must be an iterable of (inputs, targets) pairs, e.g. a DataLoader, "
                        f"got {type(loader).__name__}")
    if hasattr(loader, "__len__") and len(loader) == 0:
        raise ValueError(f"{name} is empty: it must yield at least one (inputs, targets) batch")
    return loader


def _metrics(metrics: object) -> dict[str, Metric]:
    if metrics is None:
        return {}
    ok = isinstance(metrics, Mapping) and all(isinstance(k, str) and callable(f) for k, f in metrics.items())
    if not ok:
        raise TypeError(f"metrics must map names to functions metric(output, targets), got {metrics!r}")
    return dict(metrics)


def _device(device: object) -> torch.device:
    """``device`` as a usable ``torch.device``; :func:`dlbook.device` when it is None."""
    if device is None:
        return default_device()
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError("device must be a torch.device or a name such as 'cpu' or 'cuda', "
                         f"got {device!r}") from None
    usable = {"cpu": True, "cuda": torch.cuda.is_available(),
              "mps": torch.backends.mps.is_available()}
    if not usable.get(device.type, True):
        raise ValueError(f"device {str(device)!r} is not available on this machine; "
                         f"available: {[k for k, ok in usable.items() if ok]}")
    return device


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[Batch],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    metrics: Mapping[str, Metric] | None = None,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Average loss and metrics of ``model`` over ``loader`` in eval mode, batches weighted by size."""
    check.module("model", model)
    _loader("loader", loader)
    _callable("loss_fn", loss_fn)
    metrics = _metrics(metrics)
    device = _device(device)
    was_training = model.training
    model.eval()
    totals = {"loss": 0.0, **{name: 0.0 for name in metrics}}
    count = 0
    try:
        for batch in loader:
            _check_batch(batch, "loader")
            x, y = _to_device(batch, device)
            output = model(x)
            n = len(y)
            totals["loss"] += float(_compute_loss(loss_fn, output, y)) * n
            for name, metric in metrics.items():
                totals[name] += float(metric(output, y)) * n
            count += n
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("loader yielded no batch: evaluate needs an (inputs, targets) pair")
    return {name: total / count for name, total in totals.items()}


def _progress_mode(progress: str) -> str:
    check.one_of("progress", progress, ("auto", "bar", "log", "none"))
    if progress != "auto":
        return progress
    # The book build sets DLBOOK_BUILD so executed pages get a plain log; a
    # notebook with a live frontend gets a bar.
    if os.environ.get("DLBOOK_BUILD"):
        return "log"
    return "bar" if "ipykernel" in sys.modules else "log"


def fit(
    model: nn.Module,
    train_loader: Iterable[Batch],
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    epochs: int,
    val_loader: Iterable[Batch] | None = None,
    metrics: Mapping[str, Metric] | None = None,
    device: torch.device | str | None = None,
    clip_grad_norm: float | None = None,
    early_stopping: EarlyStopping | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    progress: Literal["auto", "bar", "log", "none"] = "auto",
    log_every: int = 1,
) -> History:
    """Train ``model`` for up to ``epochs`` passes over ``train_loader``.

    Args:
        model: any module mapping an input batch to an output batch.
        train_loader: yields ``(inputs, targets)`` pairs.
        loss_fn: ``loss_fn(output, targets)`` returns a scalar tensor. torch's
            element-wise regression losses must see matching shapes (see the
            module docstring).
        optimizer: already built on ``model.parameters()``; one that holds
            none of them is refused before training.
        epochs: the most passes over the training data.
        val_loader: evaluated after every epoch (needed for early stopping on
            a ``val_*`` key).
        metrics: name to ``metric(output, targets)``, averaged like the loss.
        device: where to train; :func:`dlbook.device` when left out. The model
            is moved there.
        clip_grad_norm: if given, rescale the gradients so their global L2
            norm is at most this value before each step.
        early_stopping: stop when the monitored key stops improving.
        scheduler: built on ``optimizer``; stepped once per epoch, after it.
        progress: ``"bar"`` (tqdm), ``"log"`` (a line per epoch), ``"none"``,
            or ``"auto"`` (a bar in a live notebook, a log in the built book).
        log_every: with a log, print every ``log_every`` epochs (and the last).

    Returns:
        The :class:`History` of the run.
    """
    check.module("model", model)
    _loader("train_loader", train_loader)
    _callable("loss_fn", loss_fn)
    check.optimizer_for("optimizer", optimizer, model)
    check.positive_int("epochs", epochs)
    if val_loader is not None:
        _loader("val_loader", val_loader)
    metrics = _metrics(metrics)
    device = _device(device)
    if clip_grad_norm is not None:
        check.positive_float("clip_grad_norm", clip_grad_norm)
    if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        raise TypeError(f"early_stopping must be an EarlyStopping, got {early_stopping!r}")
    monitors_val = early_stopping is not None and early_stopping.monitor.startswith("val_")
    if monitors_val and val_loader is None:
        raise ValueError(f"early_stopping on {early_stopping.monitor!r} needs a val_loader")
    if scheduler is not None and getattr(scheduler, "optimizer", None) is not optimizer:
        raise ValueError("scheduler must be built on the optimizer passed to fit")
    mode = _progress_mode(progress)
    check.positive_int("log_every", log_every)
    model.to(device)
    history = History()
    best_value = math.inf if early_stopping is None or early_stopping.mode == "min" else -math.inf
    best_state: dict[str, torch.Tensor] | None = None
    waited = 0

    bar = None
    if mode == "bar":
        from tqdm.auto import tqdm  # optional: only a live notebook draws a bar

        bar = tqdm(total=epochs, desc="epochs", leave=True)

    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        totals = {"loss": 0.0, **{name: 0.0 for name in metrics}}
        count = 0
        for batch in train_loader:
            _check_batch(batch, "train_loader")
            x, y = _to_device(batch, device)
            output = model(x)
            loss = _compute_loss(loss_fn, output, y)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss became {loss.item()} at epoch {epoch}; try a smaller learning rate "
                    "or gradient clipping"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            optimizer.step()
            n = len(y)
            totals["loss"] += loss.item() * n
            with torch.no_grad():
                for name, metric in metrics.items():
                    totals[name] += float(metric(output, y)) * n
            count += n
        if count == 0:
            raise ValueError(f"train_loader yielded no batch in epoch {epoch} (a generator is "
                             "used up after one pass: pass a list or a DataLoader)")

        record: dict[str, float] = {"epoch": epoch}
        record.update({f"train_{k}": v / count for k, v in totals.items()})
        if val_loader is not None:
            scores = evaluate(model, val_loader, loss_fn, metrics, device)
            record.update({f"val_{k}": v for k, v in scores.items()})
        record["lr"] = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step()
        record["seconds"] = time.perf_counter() - start
        history.records.append(record)

        stop = False
        if early_stopping is not None:
            if early_stopping.monitor not in record:
                raise KeyError(
                    f"early stopping monitors {early_stopping.monitor!r}, which is not among "
                    f"the recorded keys {sorted(record)}"
                )
            value = record[early_stopping.monitor]
            if early_stopping.improved(value, best_value):
                best_value, waited, history.best_epoch = value, 0, epoch
                if early_stopping.restore_best:
                    best_state = copy.deepcopy(model.state_dict())
            else:
                waited += 1
                stop = waited >= early_stopping.patience

        if bar is not None:
            bar.update(1)
            shown = {k: f"{v:.4g}" for k, v in record.items() if k.startswith(("train_", "val_"))}
            bar.set_postfix(shown)
        elif mode == "log" and (epoch % log_every == 0 or epoch == epochs or stop):
            print(_format(record, epochs), flush=True)
        if stop:
            history.stopped_early = True
            if mode != "none":
                print(f"early stop: no improvement in {early_stopping.monitor} for "
                      f"{early_stopping.patience} epochs; best epoch {history.best_epoch}")
            break

    if bar is not None:
        bar.close()
    if early_stopping is not None and early_stopping.restore_best and best_state is not None:
        model.load_state_dict(best_state)
    return history


def _format(record: Mapping[str, float], epochs: int) -> str:
    width = len(str(epochs))
    parts = [f"epoch {int(record['epoch']):>{width}}/{epochs}"]
    parts += [f"{k} {v:.4f}" for k, v in record.items() if k.startswith(("train_", "val_"))]
    parts.append(f"{record['seconds']:.1f}s")
    return "  ".join(parts)
