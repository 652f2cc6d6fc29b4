"""A text corpus: Python's own documentation topics (Part 9, "Recurrent neural networks").

CPython ships the text of its language reference's help topics in
``pydoc_data.topics`` (about 465,000 characters of English about Python), so
the corpus needs no download. :func:`corpus` splits it **by topic** into
train, validation and test text, and gives a character vocabulary
(:meth:`TextCorpus.encode`, :meth:`TextCorpus.decode`) and a word tokenizer
and vocabulary (:func:`tokenize`, :meth:`TextCorpus.words`,
:meth:`TextCorpus.vocabulary`) for the word-embedding chapter.

Several topics repeat paragraphs of others (the "if" statement appears again
inside "compound statements"), so topics that share a paragraph are grouped,
and a group goes whole into one part: no held-out paragraph was seen in
training. The text differs a little between Python versions.

>>> c = corpus()
>>> c.decode(c.encode("def f(x):")) == "def f(x):"
True
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from dlbook import _checks as check

__all__ = ["TextCorpus", "Vocabulary", "corpus", "tokenize"]

# typographic characters that occur a few dozen times, spelled in ASCII
_ASCII = {"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2014": "--", "\u2013": "-",
          "\u2026": "..."}
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")
PARTS = ("train", "validation", "test")


def tokenize(text: str) -> list[str]:
    """Lower-case words of ``text``: runs of letters, with inner apostrophes ("don't")."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class Vocabulary:
    """Words and their ids, most frequent first; id 0 is ``"<unk>"`` for every word left out."""

    tokens: tuple[str, ...]
    counts: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ids", {w: i for i, w in enumerate(self.tokens)})

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, words: Sequence[str]) -> torch.Tensor:
        """Word ids, ``(N,)`` long; unknown words become 0 (``"<unk>"``)."""
        if isinstance(words, str) or not isinstance(words, Sequence):
            raise TypeError(f"words must be a sequence of str (use tokenize(text) first), got {type(words).__name__}")
        ids = self._ids  # type: ignore[attr-defined]
        return torch.tensor([ids.get(w, 0) for w in words], dtype=torch.long)

    def decode(self, ids: torch.Tensor | Iterable[int]) -> list[str]:
        """The words for ``ids``."""
        values = _ids_list("ids", ids, len(self.tokens))
        return [self.tokens[i] for i in values]


def _ids_list(name: str, ids: object, size: int) -> list[int]:
    if isinstance(ids, torch.Tensor):
        if ids.is_floating_point() or ids.dtype == torch.bool or ids.dim() > 1:
            raise TypeError(f"{name} must be a 1-D integer tensor, got a {ids.dtype} tensor of shape {tuple(ids.shape)}")
        values = ids.tolist()
    elif isinstance(ids, (list, tuple, range)):
        values = list(ids)
        if any(isinstance(v, bool) or not isinstance(v, int) for v in values):
            raise TypeError(f"{name} must hold ints")
    else:
        raise TypeError(f"{name} must be a tensor or a list of ints, got {type(ids).__name__}")
    bad = [v for v in values if not 0 <= v < size]
    if bad:
        raise ValueError(f"{name} must hold ids in [0, {size}), got {bad[0]}")
    return values


@dataclass(frozen=True)
class TextCorpus:
    """The corpus split into three texts, with its character vocabulary.

    Attributes:
        train, validation, test: the text of each part (topics joined by a blank line).
        topics: for each part's name, the topic names it holds.
        chars: every character of the corpus, sorted; ``chars[i]`` has id ``i``.
    """

    train: str
    validation: str
    test: str
    topics: dict[str, tuple[str, ...]]
    chars: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ids", {ch: i for i, ch in enumerate(self.chars)})

    @property
    def vocab_size(self) -> int:
        """Number of distinct characters."""
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """Character ids of ``text``, ``(N,)`` long."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        text = _to_ascii(text)
        ids = self._ids  # type: ignore[attr-defined]
        unknown = sorted(set(text) - set(ids))
        if unknown:
            raise ValueError(f"text holds characters outside the corpus vocabulary: {unknown[:10]!r}")
        return torch.tensor([ids[ch] for ch in text], dtype=torch.long)

    def decode(self, ids: torch.Tensor | Iterable[int]) -> str:
        """The text whose character ids are ``ids``."""
        return "".join(self.chars[i] for i in _ids_list("ids", ids, len(self.chars)))

    def part(self, split: str) -> str:
        """The text of ``"train"``, ``"validation"`` or ``"test"``."""
        return getattr(self, check.one_of("split", split, PARTS))

    def words(self, split: str = "train") -> list[str]:
        """The lower-case words of one part, in order (see :func:`tokenize`)."""
        return tokenize(self.part(split))

    def vocabulary(self, split: str = "train", *, min_count: int = 1,
                   max_size: int | None = None) -> Vocabulary:
        """Words of ``split`` seen at least ``min_count`` times, most frequent first (ties
        alphabetical), at most ``max_size`` of them counting ``"<unk>"``."""
        min_count = check.positive_int("min_count", min_count)
        if max_size is not None:
            max_size = check.positive_int("max_size", max_size, minimum=2)
        counts = Counter(self.words(split))
        kept = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        if max_size is not None:
            kept = kept[: max_size - 1]
        unknown = sum(counts.values()) - sum(counts[w] for w in kept)
        return Vocabulary(("<unk>", *kept), (unknown, *(counts[w] for w in kept)))

    def __repr__(self) -> str:
        sizes = ", ".join(f"{p}={len(self.part(p)):,} chars" for p in PARTS)
        return f"TextCorpus({sizes}, vocab_size={self.vocab_size})"


def _to_ascii(text: str) -> str:
    for typographic, plain in _ASCII.items():
        text = text.replace(typographic, plain)
    return text


def _topic_groups(topics: dict[str, str]) -> list[list[str]]:
    """Topics joined (union-find) when they share a paragraph of more than 40 characters."""
    parent = {name: name for name in topics}

    def root(name: str) -> str:
        while parent[name] != name:
            name = parent[name]
        return name

    first_owner: dict[str, str] = {}
    for name in sorted(topics):
        for paragraph in topics[name].split("\n\n"):
            paragraph = paragraph.strip()
            if len(paragraph) <= 40:
                continue
            other = first_owner.setdefault(paragraph, name)
            parent[root(name)] = root(other)
    groups: dict[str, list[str]] = {}
    for name in sorted(topics):
        groups.setdefault(root(name), []).append(name)
    return sorted(groups.values())


def corpus(*, val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0) -> TextCorpus:
    """Python's documentation topics, split by topic into train, validation and test text.

    Groups of topics (see the module docstring) are visited in an order fixed by
    ``seed``; each goes to test while it fits within ``test_fraction`` of the
    characters, then to validation within ``val_fraction``, else to train.
    """
    from pydoc_data.topics import topics as raw

    val_fraction = check.fraction("val_fraction", val_fraction, low=0.0, high=0.5, closed="()")
    test_fraction = check.fraction("test_fraction", test_fraction, low=0.0, high=0.5, closed="()")
    seed = check.nonnegative_int("seed", seed)
    texts = {name: _to_ascii(text).strip() for name, text in raw.items()}
    total = sum(len(t) for t in texts.values())
    groups = _topic_groups(texts)
    random.Random(seed).shuffle(groups)
    targets = {"test": test_fraction * total, "validation": val_fraction * total}
    chosen: dict[str, list[str]] = {p: [] for p in PARTS}
    filled = dict.fromkeys(PARTS, 0)
    for group in groups:
        size = sum(len(texts[name]) for name in group)
        part = next((p for p in ("test", "validation") if filled[p] + size <= targets[p]), "train")
        chosen[part].extend(group)
        filled[part] += size
    joined = {p: "\n\n".join(texts[name] for name in sorted(chosen[p])) for p in PARTS}
    chars = tuple(sorted(set("".join(texts.values()))))
    return TextCorpus(joined["train"], joined["validation"], joined["test"],
                      {p: tuple(sorted(chosen[p])) for p in PARTS}, chars)
