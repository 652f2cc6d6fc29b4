"""dlbook.train: the generic loop learns, records, stops early, clips, and complains clearly."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import dlbook
from dlbook import data
from dlbook.train import EarlyStopping, History, accuracy, evaluate, fit


def _moons_model():
    dlbook.seed(0)
    return nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2))


@pytest.fixture(scope="module")
def moons():
    return data.moons(600, noise=0.2, seed=0)


def test_fit_learns_a_nonlinear_task_on_held_out_data(moons):
    model = _moons_model()
    train, val, test = moons.loaders(32)
    hist = fit(model, train, loss_fn=F.cross_entropy, optimizer=torch.optim.Adam(model.parameters(), 1e-2),
               epochs=25, val_loader=val, metrics={"acc": accuracy}, progress="none")
    scores = evaluate(model, test, F.cross_entropy, {"acc": accuracy})
    assert scores["acc"] > 0.93
    assert hist["train_loss"][-1] < hist["train_loss"][0] / 2
    assert hist.keys()[:5] == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc"]
    assert len(hist) == 25 and hist.last["epoch"] == 25


def test_fit_is_deterministic(moons):
    losses = []
    for _ in range(2):
        model = _moons_model()
        train, _, _ = moons.loaders(32, seed=3)
        hist = fit(model, train, loss_fn=F.cross_entropy, optimizer=torch.optim.SGD(model.parameters(), 0.1),
                   epochs=3, progress="none")
        losses.append(hist["train_loss"])
    assert losses[0] == losses[1]


def test_early_stopping_stops_and_restores_the_best_weights(moons):
    model = _moons_model()
    train, val, _ = moons.loaders(32)
    # A learning rate this large makes the validation loss bounce, so patience runs out.
    hist = fit(model, train, loss_fn=F.cross_entropy, optimizer=torch.optim.SGD(model.parameters(), 3.0),
               epochs=200, val_loader=val, early_stopping=EarlyStopping(patience=3), progress="none")
    assert hist.stopped_early and len(hist) < 200
    best = min(hist["val_loss"])
    assert hist["val_loss"][hist.best_epoch - 1] == best
    restored = evaluate(model, val, F.cross_entropy)["loss"]
    assert restored == pytest.approx(best, rel=1e-5)


def test_early_stopping_on_a_maximized_metric(moons):
    model = _moons_model()
    train, val, _ = moons.loaders(32)
    stop = EarlyStopping(patience=2, monitor="val_acc", mode="max")
    hist = fit(model, train, loss_fn=F.cross_entropy, optimizer=torch.optim.Adam(model.parameters(), 1e-2),
               epochs=60, val_loader=val, metrics={"acc": accuracy}, early_stopping=stop, progress="none")
    assert hist["val_acc"][hist.best_epoch - 1] == max(hist["val_acc"])


def test_gradient_clipping_bounds_the_update():
    model = nn.Linear(3, 1, bias=False)
    nn.init.zeros_(model.weight)
    x, y = torch.ones(4, 3) * 100, torch.zeros(4, 1)
    loader = [(x, y - 1000)]
    fit(model, loader, loss_fn=F.mse_loss, optimizer=torch.optim.SGD(model.parameters(), lr=1.0),
        epochs=1, clip_grad_norm=0.5, progress="none", device="cpu")
    # One SGD step of lr 1 with a gradient of norm at most 0.5 moves the weights at most 0.5.
    assert model.weight.norm().item() == pytest.approx(0.5, rel=1e-5)


def test_scheduler_is_stepped_once_per_epoch(moons):
    model = _moons_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    hist = fit(model, moons.loaders(64)[0], loss_fn=F.cross_entropy, optimizer=opt, epochs=3,
               scheduler=sched, progress="none")
    assert hist["lr"] == pytest.approx([0.1, 0.05, 0.025])


def test_log_mode_prints_one_line_per_logged_epoch(moons, capsys):
    model = _moons_model()
    fit(model, moons.loaders(64)[0], loss_fn=F.cross_entropy, optimizer=torch.optim.SGD(model.parameters(), 0.1),
        epochs=4, log_every=2, progress="log")
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[1] for line in lines] == ["2/4", "4/4"]


def test_auto_progress_logs_inside_the_book_build(monkeypatch, moons, capsys):
    monkeypatch.setenv("DLBOOK_BUILD", "1")
    model = _moons_model()
    fit(model, moons.loaders(64)[0], loss_fn=F.cross_entropy, optimizer=torch.optim.SGD(model.parameters(), 0.1),
        epochs=1)
    assert capsys.readouterr().out.startswith("epoch 1/1")


def test_accuracy_handles_logits_and_single_scores():
    assert accuracy(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([0, 0])).item() == 0.5
    assert accuracy(torch.tensor([1.5, -2.0, 0.3]), torch.tensor([1, 0, 0])).item() == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="one prediction per target"):
        accuracy(torch.zeros(3, 2), torch.zeros(4))


def test_history_reports_unknown_keys():
    hist = History(records=[{"epoch": 1, "train_loss": 0.5}])
    assert hist["train_loss"] == [0.5]
    with pytest.raises(KeyError, match="recorded keys"):
        hist["val_loss"]
    with pytest.raises(IndexError):
        History().last


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"epochs": 0}, ValueError, "epochs"),
        ({"epochs": 2.5}, ValueError, "epochs"),
        ({"clip_grad_norm": -1.0}, ValueError, "clip_grad_norm"),
        ({"progress": "fancy"}, ValueError, "progress"),
        ({"early_stopping": EarlyStopping()}, ValueError, "needs a val_loader"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    model = nn.Linear(2, 2)
    args = {"loss_fn": F.cross_entropy, "optimizer": torch.optim.SGD(model.parameters(), 0.1), "epochs": 1}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        fit(model, [(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long))], **args)


def test_bad_batches_and_losses_are_reported():
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), 0.1)
    with pytest.raises(ValueError, match="pairs"):
        fit(model, [torch.zeros(3, 2)], loss_fn=F.cross_entropy, optimizer=opt, epochs=1, progress="none")
    with pytest.raises(ValueError, match="scalar"):
        fit(model, [(torch.zeros(3, 2), torch.zeros(3, 2))], loss_fn=lambda a, b: (a - b) ** 2,
            optimizer=opt, epochs=1, progress="none")
    with pytest.raises(FloatingPointError, match="smaller learning rate"):
        fit(model, [(torch.zeros(3, 2), torch.zeros(3, 2))], loss_fn=lambda a, b: (a - b).sum() / 0.0,
            optimizer=opt, epochs=1, progress="none")
    with pytest.raises(ValueError, match="empty"):
        fit(model, [], loss_fn=F.cross_entropy, optimizer=opt, epochs=1, progress="none")
    with pytest.raises(TypeError, match="nn.Module"):
        fit(lambda x: x, [], loss_fn=F.cross_entropy, optimizer=opt, epochs=1)
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)
