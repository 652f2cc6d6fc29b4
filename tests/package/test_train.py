"""dlbook.train: the generic loop learns, records, stops early, clips, and complains clearly."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import dlbook
from dlbook import data
from dlbook.train import EarlyStopping, History, accuracy, evaluate, fit
from tests.helpers import check_bad_inputs


def _moons_model():
    dlbook.seed(0)
    return nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2))


@pytest.fixture(scope="module")
def moons():
    return data.moons(600, noise=0.2, seed=0)


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


def test_accuracy_handles_logits_single_scores_and_labels():
    assert accuracy(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([0, 0])).item() == 0.5
    assert accuracy(torch.tensor([1.5, -2.0, 0.3]), torch.tensor([1, 0, 0])).item() == pytest.approx(2 / 3)
    # one logit (B, 1) with the float 0/1 targets of a binary cross-entropy
    assert accuracy(torch.tensor([[1.5], [-2.0]]), torch.tensor([[1.0], [1.0]])).item() == 0.5
    # predicted class indices
    assert accuracy(torch.tensor([2, 0, 1]), torch.tensor([2, 1, 1])).item() == pytest.approx(2 / 3)
    # exact: the fraction of a count, not a float32 mean
    assert accuracy(torch.zeros(3, 2), torch.tensor([0, 1, 1])).item() == 1 / 3


def test_nan_outputs_are_never_counted_as_correct():
    output = torch.tensor([[float("nan"), 0.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match="NaN"):
        accuracy(output, torch.tensor([0, 0]))


def test_optimizer_of_another_model_is_refused_before_training():
    model, other = nn.Linear(2, 2), nn.Linear(2, 2)
    before = model.weight.detach().clone()
    with pytest.raises(ValueError, match="optimizer holds none of the model's parameters"):
        fit(model, [(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))], loss_fn=F.cross_entropy,
            optimizer=torch.optim.SGD(other.parameters(), 0.1), epochs=3, progress="none")
    assert torch.equal(model.weight, before)


@pytest.mark.parametrize("loss_fn", [F.mse_loss, nn.MSELoss(), F.l1_loss, lambda o, t: 2 * F.smooth_l1_loss(o, t)])
def test_column_output_against_flat_targets_does_not_broadcast(loss_fn):
    """An output (B, 1) against targets (B,) would be a (B, B) loss: refused, naming both shapes."""
    model = nn.Linear(3, 1)
    loader = [(torch.randn(8, 3), torch.randn(8))]
    opt = torch.optim.SGD(model.parameters(), 0.1)
    with pytest.raises(ValueError, match=r"output of shape \(8, 1\) with target of shape \(8,\)"):
        fit(model, loader, loss_fn=loss_fn, optimizer=opt, epochs=1, progress="none")
    with pytest.raises(ValueError, match="broadcast"):
        evaluate(model, loader, loss_fn)
    # a loss that reshapes first is fine
    fit(model, loader, loss_fn=lambda o, t: F.mse_loss(o.squeeze(1), t), optimizer=opt, epochs=1, progress="none")


def test_history_lists_a_key_over_epochs():
    hist = History(records=[{"epoch": 1, "train_loss": 0.5}, {"epoch": 2, "train_loss": 0.25}])
    assert hist["train_loss"] == [0.5, 0.25] and hist.keys() == ["epoch", "train_loss"]


def test_bad_batches_and_losses_are_reported():
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), 0.1)
    with pytest.raises(FloatingPointError, match="smaller learning rate"):
        fit(model, [(torch.zeros(3, 2), torch.zeros(3, 2))], loss_fn=lambda a, b: (a - b).sum() / 0.0,
            optimizer=opt, epochs=1, progress="none")
    one_pass = (batch for batch in [(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long))])
    with pytest.raises(ValueError, match="epoch 2"):  # a generator is used up after the first epoch
        fit(model, one_pass, loss_fn=F.cross_entropy, optimizer=opt, epochs=2, progress="none")


def test_bad_inputs():
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), 0.1)
    x, y = torch.zeros(3, 2), torch.zeros(3, dtype=torch.long)
    good = [(x, y)]

    def run(loader=good, **kwargs):
        args = {"loss_fn": F.cross_entropy, "optimizer": opt, "epochs": 1, "progress": "none", **kwargs}
        return fit(model, loader, **args)

    check_bad_inputs([
        (lambda: run(epochs=0), ValueError, "epochs"),
        (lambda: run(epochs=-2), ValueError, "epochs"),
        (lambda: run(epochs=2.5), TypeError, "epochs"),
        (lambda: run(epochs=True), TypeError, "epochs"),
        (lambda: run(progress="fancy"), ValueError, "progress"),
        (lambda: run(log_every=0), ValueError, "log_every"),
        (lambda: run(clip_grad_norm=-1.0), ValueError, "clip_grad_norm"),
        (lambda: run(clip_grad_norm=float("nan")), ValueError, "clip_grad_norm"),
        (lambda: run(early_stopping=EarlyStopping()), ValueError, "val_loader"),
        (lambda: run(early_stopping="val_loss"), TypeError, "early_stopping"),
        (lambda: run(optimizer=torch.optim.SGD(nn.Linear(2, 2).parameters(), 0.1)), ValueError, "optimizer"),
        (lambda: run(optimizer=None), TypeError, "optimizer"),
        (lambda: run(scheduler=torch.optim.lr_scheduler.StepLR(torch.optim.SGD(model.parameters(), 0.1), 1)),
         ValueError, "scheduler"),
        (lambda: run(loss_fn="cross_entropy"), TypeError, "loss_fn"),
        (lambda: run(metrics={"acc": 0.5}), TypeError, "metrics"),
        (lambda: run(device="gpu"), ValueError, "device"),
        (lambda: run([]), ValueError, "train_loader"),  # empty loader
        (lambda: run(None), TypeError, "train_loader"),
        (lambda: run(x), TypeError, "train_loader"),  # a tensor is not a loader
        (lambda: run(val_loader=[]), ValueError, "val_loader"),
        (lambda: run([x]), ValueError, "train_loader"),  # not (inputs, targets) pairs
        (lambda: run([(x, y[:2])]), ValueError, "inputs and targets"),  # mismatched lengths
        (lambda: run([(x[:0], y[:0])]), ValueError, "train_loader"),  # empty batch
        (lambda: run([(x.tolist(), y)]), TypeError, "inputs"),  # a list where a tensor belongs
        (lambda: run([(x, x)], loss_fn=lambda a, b: (a - b) ** 2), ValueError, "scalar"),
        (lambda: run([(x, x)], loss_fn=lambda a, b: 0.5), ValueError, "scalar"),
        (lambda: fit(lambda v: v, good, loss_fn=F.cross_entropy, optimizer=opt, epochs=1), TypeError, "model"),
        (lambda: evaluate(model, [], F.cross_entropy), ValueError, "loader"),
        (lambda: evaluate(model, good, None), TypeError, "loss_fn"),
        (lambda: evaluate("model", good, F.cross_entropy), TypeError, "model"),
        (lambda: accuracy(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long)), ValueError, "output and target"),
        (lambda: accuracy(torch.zeros(3, 2), torch.tensor([0, 1, 2])), ValueError, "target"),  # class 2 of 2
        (lambda: accuracy(torch.zeros(3, 2), torch.tensor([0, -1, 1])), ValueError, "target"),
        (lambda: accuracy(torch.zeros(3, 2), torch.tensor([0.2, 0.7, 0.1])), TypeError, "target"),  # scores
        (lambda: accuracy(torch.zeros(3, 2).tolist(), y), TypeError, "output"),
        (lambda: accuracy(torch.zeros(3, 2), None), TypeError, "target"),
        (lambda: accuracy(torch.zeros(0, 2), y[:0]), ValueError, "output"),  # empty batch
        (lambda: accuracy(torch.zeros(3, 2, 2), y), ValueError, "output"),  # wrong ndim
        (lambda: accuracy(torch.tensor([0, -1, 1]), y), ValueError, "output"),  # negative predicted class
        (lambda: EarlyStopping(patience=0), ValueError, "patience"),
        (lambda: EarlyStopping(mode="up"), ValueError, "mode"),
        (lambda: EarlyStopping(min_delta=-1.0), ValueError, "min_delta"),
        (lambda: EarlyStopping(monitor=None), TypeError, "monitor"),
        (lambda: History()[0], TypeError, "key"),
        (lambda: History(records=[{"epoch": 1}])["val_loss"], KeyError, "recorded keys"),
        (lambda: History().last, IndexError, "empty"),
    ])
