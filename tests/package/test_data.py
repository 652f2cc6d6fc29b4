"""dlbook.data (tabular, toy, fonts, the split): offline, seeded, split correctly, clear errors.

The shape scenes are tested in test_shapes.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dlbook import data
from dlbook.data import fonts as glyphs_module
from tests.helpers import check_bad_inputs

TABULAR = [data.iris, data.digits, data.breast_cancer, data.wine]
TOY = [data.moons, data.circles, data.blobs, data.imbalanced]


def _rows(split):
    return {tuple(row.tolist()) for row in split.X.reshape(len(split), -1)}


@pytest.mark.parametrize("loader", TABULAR + TOY)
def test_parts_are_disjoint_and_cover_the_data(loader):
    d = loader()
    sizes = len(d.train), len(d.val), len(d.test)
    assert min(sizes) > 0
    assert d.train.y.dtype == torch.long and d.train.X.dtype == torch.float32
    every = torch.cat([d.train.X, d.val.X, d.test.X]).reshape(sum(sizes), -1)
    if len({tuple(r.tolist()) for r in every}) == sum(sizes):  # iris has duplicate rows
        assert not (_rows(d.train) & _rows(d.test)) and not (_rows(d.train) & _rows(d.val))
    labels = torch.cat([d.train.y, d.val.y, d.test.y])
    assert set(labels.tolist()) == set(range(d.num_classes))


@pytest.mark.parametrize("loader", TABULAR + TOY)
def test_same_seed_same_data_other_seed_other_split(loader):
    a, b, c = loader(seed=3), loader(seed=3), loader(seed=4)
    assert torch.equal(a.train.X, b.train.X) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.train.X, c.train.X)


def test_splits_are_stratified():
    d = data.breast_cancer()
    rates = [split.y.float().mean().item() for split in (d.train, d.val, d.test)]
    assert max(rates) - min(rates) < 0.03
    assert d.classes == ("benign", "malignant") and 0.3 < rates[0] < 0.45


def test_standardize_uses_training_statistics_only():
    d = data.iris(standardize=True)
    assert torch.allclose(d.train.X.mean(0), torch.zeros(4), atol=1e-5)
    assert torch.allclose(d.train.X.std(0, unbiased=False), torch.ones(4), atol=1e-4)
    assert not torch.allclose(d.test.X.mean(0), torch.zeros(4), atol=1e-3)


def test_digits_shapes_and_range():
    flat, images = data.digits(), data.digits(flatten=False)
    assert flat.train.X.shape[1:] == (64,) and images.train.X.shape[1:] == (1, 8, 8)
    assert 0.0 <= flat.train.X.min() and flat.train.X.max() <= 1.0
    assert torch.equal(images.train.X.reshape(-1, 64), flat.train.X)


def test_linear_regression_returns_the_truth():
    d, w, b = data.linear_regression(500, n_features=3, noise=0.0)
    assert d.num_classes == 0 and d.train.y.dtype == torch.float32
    predicted = d.train.X.double() @ torch.as_tensor(w) + b
    assert torch.allclose(predicted.float(), d.train.y, atol=1e-4)


def test_imbalanced_has_the_requested_rate():
    d = data.imbalanced(4000, positive_fraction=0.1)
    assert abs(d.train.y.float().mean().item() - 0.1) < 0.01


def test_loaders_shuffle_training_data_reproducibly():
    d = data.moons(200)
    first = next(iter(d.loaders(16, seed=1)[0]))[1]
    again = next(iter(d.loaders(16, seed=1)[0]))[1]
    other = next(iter(d.loaders(16, seed=2)[0]))[1]
    assert torch.equal(first, again) and not torch.equal(first, other)
    _, val_loader, test_loader = d.loaders(16)
    assert sum(len(y) for _, y in test_loader) == len(d.test)
    assert torch.equal(next(iter(val_loader))[1], d.val.y[:16])  # evaluation order is fixed


def test_bad_inputs_split():
    d = data.moons(100)
    check_bad_inputs([
        (lambda: data.iris(val_fraction=-0.1), ValueError, "val_fraction"),
        (lambda: data.iris(test_fraction=1.0), ValueError, "test_fraction"),
        (lambda: data.iris(test_fraction="0.2"), TypeError, "test_fraction"),
        (lambda: data.iris(val_fraction=0.5, test_fraction=0.5), ValueError, "val_fraction + test_fraction"),
        (lambda: data.iris(seed=-1), ValueError, "seed"),
        (lambda: data.iris(standardize="yes"), TypeError, "standardize"),
        (lambda: d.loaders(0), ValueError, "batch_size"),
        (lambda: d.loaders(True), TypeError, "batch_size"),
        (lambda: d.loaders(16, seed=1.5), TypeError, "seed"),
    ])


def test_bad_inputs_tabular():
    check_bad_inputs([
        (lambda: data.digits(flatten=None), TypeError, "flatten"),
        (lambda: data.digits(seed=None), TypeError, "seed"),
        (lambda: data.breast_cancer(val_fraction=float("nan")), ValueError, "val_fraction"),
        (lambda: data.wine(test_fraction=-0.5), ValueError, "test_fraction"),
    ])


def test_bad_inputs_toy():
    check_bad_inputs([
        (lambda: data.moons(-5), ValueError, "n must be an int >= 2"),
        (lambda: data.moons(10.5), TypeError, "n"),
        (lambda: data.moons(True), TypeError, "n"),
        (lambda: data.moons(noise=-1), ValueError, "noise"),
        (lambda: data.moons(noise=float("inf")), ValueError, "noise"),
        (lambda: data.circles(factor=1.0), ValueError, "factor"),
        (lambda: data.blobs(centers=1), ValueError, "centers"),
        (lambda: data.blobs(std=-1.0), ValueError, "std"),
        (lambda: data.imbalanced(positive_fraction=1.5), ValueError, "positive_fraction"),
        (lambda: data.imbalanced(n_features=1), ValueError, "n_features"),
        (lambda: data.linear_regression(n_features=0), ValueError, "n_features"),
        (lambda: data.linear_regression(seed=-3), ValueError, "seed"),
    ])


def test_bad_inputs_fonts():
    check_bad_inputs([
        (lambda: data.glyphs("numbers"), ValueError, "charset"),
        (lambda: data.glyphs("x"), ValueError, "charset"),
        (lambda: data.glyphs("AA"), ValueError, "charset"),
        (lambda: data.glyphs("ab"), ValueError, "charset"),
        (lambda: data.glyphs(5), TypeError, "charset"),
        (lambda: data.glyphs(None), TypeError, "charset"),
        (lambda: data.glyphs("digits", per_font=0), ValueError, "per_font"),
        (lambda: data.glyphs("digits", per_font=2.0), TypeError, "per_font"),
        (lambda: data.glyphs(config="big"), TypeError, "config"),
        (lambda: data.glyphs(seed=-1), ValueError, "seed"),
        (lambda: data.GlyphConfig(rotation=-1), ValueError, "GlyphConfig.rotation"),
        (lambda: data.GlyphConfig(scale=1.0), ValueError, "GlyphConfig.scale"),
        (lambda: data.GlyphConfig(noise=float("inf")), ValueError, "GlyphConfig.noise"),
        (lambda: data.GlyphConfig(shift="2"), TypeError, "GlyphConfig.shift"),
        (lambda: data.render("A", font="Comic Sans"), ValueError, "font"),
        (lambda: data.render(["A"]), TypeError, "chars"),
        (lambda: data.render(""), ValueError, "chars"),
    ])


def test_an_unknown_charset_lists_the_valid_ones():
    with pytest.raises(ValueError) as info:
        data.glyphs("numbers")
    assert all(name in str(info.value) for name in ("'digits'", "'letters'", "'alnum'"))
    assert data.glyphs("A7", per_font=1).classes == ("A", "7")


def test_families_are_imported_lazily():
    code = (
        "import sys\n"
        "import dlbook.data\n"
        "assert not [m for m in sys.modules if m.startswith('dlbook.data.')], sys.modules\n"
        "from dlbook.data import digits, moons\n"
        "loaded = {m for m in sys.modules if m.startswith('dlbook.data.')}\n"
        "assert loaded == {'dlbook.data._split', 'dlbook.data.tabular', 'dlbook.data.toy'}, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr


def test_every_public_name_resolves():
    for name in data.__all__:
        assert getattr(data, name) is not None
        assert name in dir(data)
    with pytest.raises(AttributeError, match="no attribute 'mnist'"):
        data.mnist  # noqa: B018


def test_glyphs_are_split_by_font():
    train_fonts = set(glyphs_module.FONTS) - set(glyphs_module.TEST_FONTS) - set(glyphs_module.VAL_FONTS)
    assert not set(glyphs_module.TEST_FONTS) & (train_fonts | set(glyphs_module.VAL_FONTS))
    assert len(train_fonts) >= 10
    d = data.glyphs(per_font=3, seed=0)
    n_chars = 10
    assert len(d.train) == 3 * n_chars * len(train_fonts)
    assert len(d.test) == 3 * n_chars * len(glyphs_module.TEST_FONTS)
    assert d.train.X.shape[1:] == (1, 28, 28) and d.classes == tuple("0123456789")
    assert 0.0 <= d.train.X.min() and d.train.X.max() <= 1.0
    # Every class appears equally often in every part.
    assert torch.bincount(d.test.y).tolist() == [3 * len(glyphs_module.TEST_FONTS)] * n_chars


def test_glyphs_are_deterministic_per_seed():
    a, b, c = data.glyphs(per_font=2, seed=5), data.glyphs(per_font=2, seed=5), data.glyphs(per_font=2, seed=6)
    assert torch.equal(a.train.X, b.train.X) and torch.equal(a.train.y, b.train.y)
    assert not torch.equal(a.train.X, c.train.X)


def test_glyphs_without_jitter_are_the_clean_renders():
    still = data.GlyphConfig(rotation=0, scale=0, shift=0, noise=0)
    d = data.glyphs("AB", per_font=1, config=still, flatten=True)
    assert d.train.X.shape[1:] == (784,)
    font = [f for f in glyphs_module.FONTS if f not in glyphs_module.TEST_FONTS + glyphs_module.VAL_FONTS][0]
    clean = glyphs_module.render("AB", font).reshape(2, -1)
    matches = [any(torch.allclose(row, c, atol=1e-5) for row in d.train.X) for c in clean]
    assert all(matches)


def test_glyphs_of_different_classes_differ():
    clean = glyphs_module.render("0123456789", "DejaVuSans").reshape(10, -1)
    distances = torch.cdist(clean, clean) + torch.eye(10) * 1e9
    assert distances.min() > 1.0  # no two digits render alike
