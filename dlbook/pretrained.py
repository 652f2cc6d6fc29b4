"""Pretrained weights and transfer learning (Part 8, "Pretrained CNNs and transfer learning").

``glyphnet(weights="letters")`` loads the weights the package ships the way
torchvision loads its models: from package data, through ``importlib.resources``,
with no download. ``adapt`` reuses them for a new task in one of three ways
(feature extraction, fine-tuning, or training from scratch for comparison).

Run ``python -m dlbook.pretrained`` to train ``GlyphNet`` on the glyph letters
A–Z and write ``dlbook/weights/glyphnet-letters.pt``. The run is seeded and
deterministic on a CPU and takes a few minutes. The file holds the state dict
and a record of how it was made, including the accuracy on a fixed held-out
batch (``reference_batch``) so that tests can check the loaded weights.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import dlbook
from dlbook import _checks as check
from dlbook.cnn import GlyphNet, GlyphNetConfig
from dlbook.data import glyphs
from dlbook.train import EarlyStopping, accuracy, evaluate, fit

__all__ = [
    "WEIGHTS", "WeightsInfo", "weights_info", "load_state_dict", "glyphnet", "reference_batch",
    "train", "per_class_subset", "MODES", "adapt", "main",
]

#: The weights dlbook ships, by name, and their files under ``dlbook/weights``.
WEIGHTS: dict[str, str] = {"letters": "glyphnet-letters.pt"}


@dataclass(frozen=True)
class WeightsInfo:
    """What a weights file records about itself.

    Attributes:
        name: the weights' name (a key of ``WEIGHTS``).
        charset: the glyphs charset it was trained on.
        classes: class names, in output order.
        channels: ``GlyphNetConfig.channels`` of the network.
        epochs: training epochs run.
        test_accuracy: accuracy on the full glyphs test split (unseen fonts).
        reference_accuracy: accuracy on ``reference_batch``.
    """

    name: str
    charset: str
    classes: tuple[str, ...]
    channels: tuple[int, int, int]
    epochs: int
    test_accuracy: float
    reference_accuracy: float


def _load(name: str) -> dict[str, Any]:
    check.one_of("name", name, WEIGHTS)
    path = resources.files("dlbook") / "weights" / WEIGHTS[name]
    if not path.is_file():
        raise FileNotFoundError(
            f"weights {name!r} are missing at {path}; "
            "run `python -m dlbook.pretrained` to make them"
        )
    with resources.as_file(path) as file:
        return torch.load(file, map_location="cpu", weights_only=True)


def weights_info(name: str) -> WeightsInfo:
    """The record stored with the weights ``name`` (a key of ``WEIGHTS``)."""
    meta = dict(_load(name)["meta"])
    meta["classes"] = tuple(meta["classes"])
    meta["channels"] = tuple(meta["channels"])
    return WeightsInfo(**meta)


def load_state_dict(name: str) -> dict[str, torch.Tensor]:
    """The state dict of the weights ``name`` (a key of ``WEIGHTS``), on the CPU, in float32."""
    state = _load(name)["state_dict"]
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def glyphnet(weights: str | None = None, *, num_classes: int | None = None) -> GlyphNet:
    """A GlyphNet, random or with the shipped ``weights``; ``num_classes`` sets a new head."""
    if num_classes is not None:
        check.positive_int("num_classes", num_classes)
    if weights is None:
        return GlyphNet(GlyphNetConfig(num_classes=num_classes or 26))
    info = weights_info(check.one_of("weights", weights, WEIGHTS))
    model = GlyphNet(GlyphNetConfig(num_classes=len(info.classes), channels=info.channels))
    model.load_state_dict(load_state_dict(weights))
    if num_classes is not None:
        # transfer learning: keep the features, start a fresh head for the new classes
        model.head = nn.Linear(model.feature_dim, num_classes)
    return model.eval()


def reference_batch(charset: str = "letters") -> tuple[torch.Tensor, torch.Tensor]:
    """A small fixed held-out batch: two jittered copies of each character in each test font."""
    test = glyphs(charset, per_font=2, seed=12345).test
    return test.X, test.y


def _accuracy_on(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy of ``model`` on ``(X, y)``, in batches on the CPU (``train.evaluate``)."""
    loader = DataLoader(TensorDataset(X, y), batch_size=512)
    scores = evaluate(model, loader, nn.functional.cross_entropy, {"acc": accuracy}, device="cpu")
    return scores["acc"]


def train(
    charset: str = "letters", *, epochs: int = 6, per_font: int = 40, seed: int = 0
) -> tuple[nn.Module, dict[str, Any]]:
    """Train a GlyphNet on the glyphs ``charset`` on the CPU; return it and a record of the run.

    The accuracies are added to the record by ``main`` after the weights are
    rounded to half precision.
    """
    check.positive_int("epochs", epochs)
    check.nonnegative_int("seed", seed)
    dlbook.seed(seed)
    data = glyphs(charset, per_font=per_font, seed=seed)
    model = GlyphNet(GlyphNetConfig(num_classes=data.num_classes))
    train_loader, val_loader, _ = data.loaders(128, seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    history = fit(
        model, train_loader, loss_fn=nn.functional.cross_entropy, optimizer=optimizer,
        epochs=epochs, val_loader=val_loader, metrics={"acc": accuracy}, device="cpu",
        scheduler=scheduler, progress="log",
        early_stopping=EarlyStopping(patience=3, monitor="val_acc", mode="max"),
    )
    meta = {
        "name": charset,
        "charset": charset,
        "classes": list(data.classes),
        "channels": list(model.config.channels),
        "epochs": len(history),
    }
    return model, meta


def per_class_subset(y: torch.Tensor, per_class: int, *, seed: int = 0) -> torch.Tensor:
    """Indices of ``per_class`` random examples of every class in the labels ``y``.

    Raises ``ValueError`` if some class has fewer than ``per_class`` examples.

    >>> y = torch.tensor([0, 1, 0, 1, 0])
    >>> y[per_class_subset(y, 2)].tolist()
    [0, 0, 1, 1]
    """
    check.labels("y", y)
    check.positive_int("per_class", per_class)
    gen = torch.Generator().manual_seed(check.nonnegative_int("seed", seed))
    chosen = []
    for k in torch.unique(y).tolist():
        members = torch.nonzero(y == k).flatten()
        if len(members) < per_class:
            raise ValueError(
                f"class {k} has {len(members)} examples, fewer than per_class={per_class}"
            )
        picked = members[torch.randperm(len(members), generator=gen)[:per_class]]
        chosen.append(picked.sort().values)
    return torch.cat(chosen)


#: The three ways ``adapt`` can reuse (or not) the pretrained network.
MODES = ("features", "finetune", "scratch")


def adapt(
    mode: str,
    X: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    *,
    weights: str = "letters",
    steps: int = 200,
    lr: float = 3e-3,
    batch_size: int = 32,
    seed: int = 0,
) -> nn.Module:
    """Train a GlyphNet for a new task from images X (N, 1, H, W) and labels y (N,); eval mode."""
    check.one_of("mode", mode, MODES)
    check.expect_shape(check.finite("X", X), "N C H W", "X", C=1)
    check.labels("y", y, check.positive_int("num_classes", num_classes))
    check.same_length(X=X, y=y)
    check.one_of("weights", weights, WEIGHTS)
    check.positive_int("steps", steps)
    check.positive_float("lr", lr)
    check.positive_int("batch_size", batch_size)
    torch.manual_seed(check.nonnegative_int("seed", seed))
    if mode == "scratch":
        channels = weights_info(weights).channels
        model: nn.Module = GlyphNet(GlyphNetConfig(num_classes=num_classes, channels=channels))
        groups = [{"params": model.parameters(), "lr": lr}]
    else:
        model = glyphnet(weights=weights, num_classes=num_classes)
        model.features.requires_grad_(mode == "finetune")
        groups = [{"params": model.head.parameters(), "lr": lr}]
        if mode == "finetune":
            # the pretrained trunk moves ten times slower than the new head
            groups.append({"params": model.features.parameters(), "lr": lr / 10})
    device = X.device
    model.to(device).train()
    inputs, trunk = check.as_float_like("X", X, model.head.weight), model.features
    if mode == "features":
        # The frozen trunk never changes: compute its features once, train the head on them.
        with torch.no_grad():
            inputs = model.features(inputs)  # (N, feature_dim)
        trunk = nn.Identity()
    optimizer = torch.optim.Adam(groups)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = torch.randint(len(y), (min(batch_size, len(y)),), generator=gen).to(device)
        loss = nn.functional.cross_entropy(model.head(trunk(inputs[batch])), y[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    """Command line: train the letters weights and write them under ``dlbook/weights``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    default_out = Path(__file__).parent / "weights" / WEIGHTS["letters"]
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args(argv)

    torch.set_num_threads(1)  # one thread: the same floating-point sums on every machine
    model, meta = train("letters", epochs=args.epochs)
    # Half precision halves the file; the loader casts back to float32.
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    model.load_state_dict({k: v.float() for k, v in state.items()})
    meta["test_accuracy"] = _accuracy_on(model, *glyphs("letters", per_font=40, seed=0).test)
    meta["reference_accuracy"] = _accuracy_on(model, *reference_batch("letters"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, "meta": meta}, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB): "
          f"test accuracy {meta['test_accuracy']:.4f}, "
          f"reference batch {meta['reference_accuracy']:.4f}")


if __name__ == "__main__":
    main()
