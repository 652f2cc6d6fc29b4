"""Human-readable dates paired with ISO dates (Part 9, "Sequence tasks"; reused in Part 11).

A pair is a date written the way people write it (``"3 March 2021"``,
``"Wednesday, March 3, 2021"``, ``"03/03/21"``, ...) and the same date in ISO
form (``"2021-03-03"``). Everything is generated from a seed. The split is by
*date*: a date in the test part appears in no format in the training part, so
the test measures whether a model learned to read dates, not whether it
remembered them.

>>> pairs = dates(20, 5, 5, seed=0)
>>> pairs.decode_target(pairs.train.y[:1])[0] == pairs.iso(pairs.train_dates[0])
True
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from dlbook import _checks as check
from dlbook.data._split import Split

__all__ = ["FORMATS", "PAD", "BOS", "EOS", "SOURCE_VOCAB", "TARGET_VOCAB", "DatePairs", "dates", "render"]

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


#: The formats, by name: each turns a ``datetime.date`` into text. Only one numeric
#: format puts the month first (``/``) and one the day first (``.``), so the separator
#: tells a reader which convention is meant; two-digit years pivot at 50 (``21`` is
#: 2021, ``87`` is 1987), which is why the default range is 1950-2049.
FORMATS = {
    "d Month yyyy": lambda d: f"{d.day} {MONTHS[d.month - 1]} {d.year}",
    "Mon d, yyyy": lambda d: f"{MONTHS[d.month - 1][:3]} {d.day}, {d.year}",
    "mm/dd/yy": lambda d: f"{d.month:02d}/{d.day:02d}/{d.year % 100:02d}",
    "Weekday, Month d, yyyy": lambda d: f"{WEEKDAYS[d.weekday()]}, {MONTHS[d.month - 1]} {d.day}, {d.year}",
    "dth of Month yyyy": lambda d: f"{_ordinal(d.day)} of {MONTHS[d.month - 1]} {d.year}",
    "dd.mm.yyyy": lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",
}

#: Source characters: index 0 pads. Fixed, so every split and seed shares one vocabulary.
SOURCE_VOCAB = (PAD, *sorted(set("".join(MONTHS + WEEKDAYS) + "0123456789 ,./stndrhof")))
#: Target tokens: padding, begin and end of sequence, digits and the dash.
TARGET_VOCAB = (PAD, BOS, EOS, *"0123456789-")


def render(date: datetime.date, fmt: str) -> str:
    """``date`` written in the format named ``fmt`` (a key of ``FORMATS``)."""
    check.one_of("fmt", fmt, FORMATS)
    if not isinstance(date, datetime.date):
        raise TypeError(f"date must be a datetime.date, got {type(date).__name__} {date!r}")
    return FORMATS[fmt](date)


@dataclass(frozen=True)
class DatePairs:
    """Date pairs split by date into train, validation and test parts.

    Attributes:
        train, val, test: ``Split(X, y)`` with ``X`` the source characters, ``(N, S)``
            long, right-padded with 0, and ``y`` the ISO target, ``(N, 10)`` long
            indices into ``TARGET_VOCAB`` (every ISO date has ten characters, so
            the target needs no padding and no end token).
        train_dates, val_dates, test_dates: the ``datetime.date`` of each row.
        train_formats, val_formats, test_formats: the format name of each row.
        formats: the format names the sources were drawn from.
    """

    train: Split
    val: Split
    test: Split
    train_dates: tuple[datetime.date, ...]
    val_dates: tuple[datetime.date, ...]
    test_dates: tuple[datetime.date, ...]
    train_formats: tuple[str, ...]
    val_formats: tuple[str, ...]
    test_formats: tuple[str, ...]
    formats: tuple[str, ...]
    source_vocab: tuple[str, ...] = SOURCE_VOCAB
    target_vocab: tuple[str, ...] = TARGET_VOCAB
    pad_index: int = 0
    bos_index: int = 1
    eos_index: int = 2

    @staticmethod
    def iso(date: datetime.date) -> str:
        """The ISO form ``yyyy-mm-dd`` of ``date``."""
        return date.isoformat()

    def encode_source(self, texts: Sequence[str]) -> torch.Tensor:
        """Source strings as a right-padded ``(N, S)`` long tensor."""
        return _encode(texts, self.source_vocab, "texts")

    def decode_source(self, X: torch.Tensor) -> list[str]:
        """Source rows back to strings (padding dropped)."""
        return _decode(X, self.source_vocab, "X")

    def decode_target(self, y: torch.Tensor) -> list[str]:
        """Target rows back to strings (padding, begin and end tokens dropped)."""
        return _decode(y, self.target_vocab, "y")


def _encode(texts: Sequence[str], vocab: tuple[str, ...], name: str, width: int = 0) -> torch.Tensor:
    if isinstance(texts, str) or not isinstance(texts, Sequence) or len(texts) == 0:
        raise TypeError(f"{name} must be a non-empty list of strings, got {type(texts).__name__} {texts!r:.60}")
    index = {ch: i for i, ch in enumerate(vocab)}
    width = max(width, *(len(t) for t in texts))
    out = torch.zeros(len(texts), width, dtype=torch.long)
    for row, text in enumerate(texts):
        unknown = sorted(set(text) - set(index))
        if unknown:
            raise ValueError(f"{name}[{row}] = {text!r} holds characters outside the vocabulary: {unknown}")
        out[row, : len(text)] = torch.tensor([index[ch] for ch in text])
    return out


def _decode(X: torch.Tensor, vocab: tuple[str, ...], name: str) -> list[str]:
    check.expect_shape(X, "N S", name, allow_empty=True)
    if X.is_floating_point() or X.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer token indices, got {X.dtype}")
    if X.numel() and (int(X.min()) < 0 or int(X.max()) >= len(vocab)):
        raise ValueError(f"{name} must hold indices in [0, {len(vocab)}), got [{int(X.min())}, {int(X.max())}]")
    special = {PAD, BOS, EOS}
    return ["".join(vocab[i] for i in row if vocab[i] not in special) for row in X.tolist()]


def dates(
    n_train: int = 20_000,
    n_val: int = 1_000,
    n_test: int = 2_000,
    *,
    seed: int = 0,
    formats: Sequence[str] = tuple(FORMATS),
    first_year: int = 1950,
    last_year: int = 2049,
) -> DatePairs:
    """Generated (human-readable, ISO) date pairs, split so no test date is seen in training.

    Draws ``n_train + n_val + n_test`` *distinct* days between 1 January
    ``first_year`` and 31 December ``last_year``, deals them out to the three
    parts, and writes each in a format drawn uniformly from ``formats``.
    """
    n_train, n_val = check.positive_int("n_train", n_train), check.positive_int("n_val", n_val)
    n_test = check.positive_int("n_test", n_test)
    seed = check.nonnegative_int("seed", seed)
    if isinstance(formats, str) or not isinstance(formats, Sequence) or len(formats) == 0:
        raise TypeError(f"formats must be a non-empty list of names from {list(FORMATS)}, got {formats!r}")
    formats = tuple(check.one_of("formats", f, FORMATS) for f in formats)
    first_year = check.positive_int("first_year", first_year)
    last_year = check.positive_int("last_year", last_year, minimum=first_year)
    if "mm/dd/yy" in formats and last_year - first_year >= 100:
        raise ValueError(f"with 'mm/dd/yy' the years must span less than a century, got {first_year}-{last_year}")
    start = datetime.date(first_year, 1, 1)
    n_days = (datetime.date(last_year, 12, 31) - start).days + 1
    total = n_train + n_val + n_test
    if total > n_days:
        raise ValueError(f"n_train + n_val + n_test = {total} distinct dates asked for, "
                         f"but {first_year}-{last_year} has only {n_days} days")
    rng = np.random.default_rng(seed)
    days = rng.choice(n_days, size=total, replace=False)
    chosen = rng.integers(len(formats), size=total)
    all_dates = [start + datetime.timedelta(days=int(d)) for d in days]
    sources = [FORMATS[formats[k]](d) for d, k in zip(all_dates, chosen)]
    targets = [d.isoformat() for d in all_dates]
    width = max(len(s) for s in sources)  # one width for all three parts
    cuts = (0, n_train, n_train + n_val, total)

    def part(lo: int, hi: int) -> Split:
        return Split(_encode(sources[lo:hi], SOURCE_VOCAB, "sources", width),
                     _encode(targets[lo:hi], TARGET_VOCAB, "targets"))

    parts = [part(cuts[i], cuts[i + 1]) for i in range(3)]
    spans = [tuple(all_dates[cuts[i]:cuts[i + 1]]) for i in range(3)]
    names = [tuple(formats[k] for k in chosen[cuts[i]:cuts[i + 1]]) for i in range(3)]
    return DatePairs(*parts, *spans, *names, formats=formats)
