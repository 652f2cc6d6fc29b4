"""One generic training loop for every chapter (introduced in Part 3).

:func:`fit` knows nothing of any model: it moves batches to a device, calls the
model, the loss and the optimizer, and records what happened in a
:class:`History`. Early stopping, gradient clipping and a learning-rate
scheduler are opt-in. In an interactive notebook it shows a progress bar; in
the built book (and in scripts) it prints one compact line per epoch, so the
HTML shows a readable log instead of a frozen widget.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

__all__ = ["History", "EarlyStopping", "fit", "evaluate", "accuracy"]

Batch = tuple[torch.Tensor, torch.Tensor]
Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor | float]


def accuracy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Fraction of rows whose largest score is at the target class.

    ``output`` holds class scores of shape ``(B, K)``; for a single logit per
    example, shape ``(B,)`` or ``(B, 1)``, the prediction is ``output > 0``.
    """
    if output.ndim == 2 and output.shape[1] > 1:
        predicted = output.argmax(dim=1)
    else:
        predicted = (output.reshape(-1) > 0).long()
    if predicted.shape != target.reshape(-1).shape:
        raise ValueError(
            f"accuracy expects one prediction per target, got output {tuple(output.shape)} "
            f"and target {tuple(target.shape)}"
        )
    return (predicted == target.reshape(-1).long()).float().mean()


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
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {self.mode!r}")

    def improved(self, value: float, best: float) -> bool:
        """Whether ``value`` beats ``best`` by more than ``min_delta``."""
        if self.mode == "min":
            return value < best - self.min_delta
        return value > best + self.min_delta


def _to_device(batch: Iterable[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    return [t.to(device, non_blocking=True) for t in batch]


def _check_batch(batch: object) -> None:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError(
            "fit expects a loader of (inputs, targets) pairs, got a batch of type "
            f"{type(batch).__name__}" + (f" with {len(batch)} items" if hasattr(batch, "__len__") else "")
        )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[Batch],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    metrics: Mapping[str, Metric] | None = None,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Average loss and metrics of ``model`` over ``loader``, in eval mode.

    Each batch counts in proportion to its size, so a short last batch does
    not skew the average.
    """
    from dlbook import device as default_device

    device = torch.device(device) if device is not None else default_device()
    metrics = dict(metrics or {})
    was_training = model.training
    model.eval()
    totals = {"loss": 0.0, **{name: 0.0 for name in metrics}}
    count = 0
    for batch in loader:
        _check_batch(batch)
        x, y = _to_device(batch, device)
        output = model(x)
        n = len(y)
        totals["loss"] += float(loss_fn(output, y)) * n
        for name, metric in metrics.items():
            totals[name] += float(metric(output, y)) * n
        count += n
    model.train(was_training)
    if count == 0:
        raise ValueError("evaluate got an empty loader")
    return {name: total / count for name, total in totals.items()}


def _progress_mode(progress: str) -> str:
    if progress not in ("auto", "bar", "log", "none"):
        raise ValueError(f"progress must be 'auto', 'bar', 'log' or 'none', got {progress!r}")
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
        loss_fn: ``loss_fn(output, targets)`` returns a scalar tensor.
        optimizer: already built on ``model.parameters()``.
        epochs: the most passes over the training data.
        val_loader: evaluated after every epoch (needed for early stopping on
            a ``val_*`` key).
        metrics: name to ``metric(output, targets)``, averaged like the loss.
        device: where to train; :func:`dlbook.device` when left out. The model
            is moved there.
        clip_grad_norm: if given, rescale the gradients so their global L2
            norm is at most this value before each step.
        early_stopping: stop when the monitored key stops improving.
        scheduler: stepped once per epoch, after the optimizer.
        progress: ``"bar"`` (tqdm), ``"log"`` (a line per epoch), ``"none"``,
            or ``"auto"`` (a bar in a live notebook, a log in the built book).
        log_every: with a log, print every ``log_every`` epochs (and the last).

    Returns:
        The :class:`History` of the run.
    """
    from dlbook import device as default_device

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    if clip_grad_norm is not None and not clip_grad_norm > 0:
        raise ValueError(f"clip_grad_norm must be > 0 or None, got {clip_grad_norm!r}")
    if log_every < 1:
        raise ValueError(f"log_every must be >= 1, got {log_every}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if early_stopping is not None and early_stopping.monitor.startswith("val_") and val_loader is None:
        raise ValueError(f"early stopping on {early_stopping.monitor!r} needs a val_loader")
    mode = _progress_mode(progress)
    device = torch.device(device) if device is not None else default_device()
    model.to(device)
    metrics = dict(metrics or {})
    history = History()
    best_value = math.inf if early_stopping is None or early_stopping.mode == "min" else -math.inf
    best_state: dict[str, torch.Tensor] | None = None
    waited = 0

    bar = None
    if mode == "bar":
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc="epochs", leave=True)

    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        totals = {"loss": 0.0, **{name: 0.0 for name in metrics}}
        count = 0
        for batch in train_loader:
            _check_batch(batch)
            x, y = _to_device(batch, device)
            output = model(x)
            loss = loss_fn(output, y)
            if loss.ndim != 0:
                raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
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
            raise ValueError("fit got an empty train_loader")

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
            bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k.startswith(("train_", "val_"))})
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
