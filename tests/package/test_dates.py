"""dlbook.data.dates: deterministic date pairs, split by date, clear errors."""

from __future__ import annotations

import datetime

import torch

from dlbook.data.dates import FORMATS, SOURCE_VOCAB, TARGET_VOCAB, dates, render
from tests.helpers import check_bad_inputs


def test_pairs_decode_to_their_dates_in_their_formats():
    pairs = dates(300, 50, 50, seed=1)
    for split, days, names in [(pairs.train, pairs.train_dates, pairs.train_formats),
                               (pairs.test, pairs.test_dates, pairs.test_formats)]:
        sources, targets = pairs.decode_source(split.X), pairs.decode_target(split.y)
        for source, target, day, fmt in zip(sources, targets, days, names):
            assert target == day.isoformat() and source == render(day, fmt)
    assert set(pairs.train_formats) == set(FORMATS)  # 300 rows draw all six formats


def test_test_dates_are_never_seen_in_training_and_splits_have_the_asked_sizes():
    pairs = dates(2000, 300, 400, seed=0)
    assert (len(pairs.train), len(pairs.val), len(pairs.test)) == (2000, 300, 400)
    train, val, test = map(set, (pairs.train_dates, pairs.val_dates, pairs.test_dates))
    assert len(train) == 2000 and not train & test and not train & val and not val & test
    assert pairs.train.X.shape[1] == pairs.test.X.shape[1]  # one padded width for all parts
    assert pairs.train.y.shape[1] == 10 and pairs.train.y.dtype == torch.long


def test_same_seed_same_pairs_other_seed_other_pairs():
    a, b, c = dates(100, 10, 10, seed=3), dates(100, 10, 10, seed=3), dates(100, 10, 10, seed=4)
    assert torch.equal(a.train.X, b.train.X) and a.test_dates == b.test_dates
    assert a.train_dates != c.train_dates


def test_formats_are_unambiguous_and_render_known_examples():
    day = datetime.date(2021, 3, 3)
    assert render(day, "Weekday, Month d, yyyy") == "Wednesday, March 3, 2021"
    assert render(day, "mm/dd/yy") == "03/03/21" and render(day, "dth of Month yyyy") == "3rd of March 2021"
    assert render(datetime.date(1987, 11, 12), "dth of Month yyyy") == "12th of November 1987"
    # every format maps distinct days to distinct strings over the default range
    start = datetime.date(1950, 1, 1)
    days = [start + datetime.timedelta(d) for d in range(0, 36_500, 7)]
    for fmt in FORMATS:
        assert len({render(d, fmt) for d in days}) == len(days)
    pairs = dates(50, 5, 5, formats=["mm/dd/yy"])
    assert set(pairs.train_formats) == {"mm/dd/yy"}


def test_padding_and_special_tokens_are_index_zero_and_skipped_in_decoding():
    assert SOURCE_VOCAB[0] == "<pad>" and TARGET_VOCAB[:3] == ("<pad>", "<bos>", "<eos>")
    pairs = dates(10, 2, 2)
    X = pairs.encode_source(["3 May 2001", "Mar 3, 2021"])
    assert X.shape == (2, 11) and X[0, -1] == 0
    assert pairs.decode_source(X) == ["3 May 2001", "Mar 3, 2021"]
    assert pairs.decode_target(torch.tensor([[1, 5, 0]])) == ["2"]


def test_bad_inputs():
    pairs = dates(10, 2, 2)
    check_bad_inputs([
        (lambda: dates(0, 1, 1), ValueError, "n_train"),
        (lambda: dates(True, 1, 1), TypeError, "n_train"),
        (lambda: dates(10, -1, 1), ValueError, "n_val"),
        (lambda: dates(10, 1, 2.5), TypeError, "n_test"),
        (lambda: dates(10, 1, 1, seed=-1), ValueError, "seed"),
        (lambda: dates(10, 1, 1, formats=["yyyy/mm/dd"]), ValueError, "formats"),
        (lambda: dates(10, 1, 1, formats="mm/dd/yy"), TypeError, "formats"),
        (lambda: dates(10, 1, 1, formats=[]), TypeError, "formats"),
        (lambda: dates(10, 1, 1, first_year=2000, last_year=1999), ValueError, "last_year"),
        (lambda: dates(10, 1, 1, first_year=1900, last_year=2049), ValueError, "century"),
        (lambda: dates(400, 1, 1, first_year=2000, last_year=2000, formats=["dd.mm.yyyy"]), ValueError, "366"),
        (lambda: render("2021-03-03", "mm/dd/yy"), TypeError, "date"),
        (lambda: render(datetime.date(2021, 3, 3), "ISO"), ValueError, "fmt"),
        (lambda: pairs.encode_source("3 May 2001"), TypeError, "texts"),
        (lambda: pairs.encode_source([]), TypeError, "texts"),
        (lambda: pairs.encode_source(["3 MAY 2001"]), ValueError, "vocabulary"),
        (lambda: pairs.decode_target(torch.tensor([[1.0, 2.0]])), TypeError, "y"),
        (lambda: pairs.decode_target(torch.tensor([[99]])), ValueError, "y"),
        (lambda: pairs.decode_source(torch.tensor([1, 2])), ValueError, "X"),
        (lambda: pairs.decode_source([[1, 2]]), TypeError, "X"),
    ])
