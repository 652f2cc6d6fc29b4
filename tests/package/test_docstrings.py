"""Public docstrings are reST for the API reference: catch in a second what fails the build.

Sphinx reads ``|word|`` as a substitution and a lone ``*`` as the start of emphasis; both are
build errors under ``--warningiserror``. Literal text between double backticks is exempt.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "dlbook"
LITERAL = re.compile(r"``.*?``", re.S)
# reST inline markup: the start-string follows whitespace or an opening character, the
# end-string is followed by whitespace or punctuation (so |x_i|^p is plain text)
SUBSTITUTION = re.compile(r"(?:^|(?<=[\s\-:/'\"<(\[{]))\|[A-Za-z_][^|\n`]*\|(?=[\s\-.,:;!?\\/'\")\]}>]|$)")
# a '*' that starts emphasis: preceded by a space or an opening bracket, followed by a
# non-space, and never closed by another '*' on the same line
LONE_STAR = re.compile(r"(?:^|[\s(\[{])\*(?=[^\s*])")


def _docstrings(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            private = getattr(node, "name", "").startswith("_")  # autodoc renders no private name
            if doc and not private:
                yield getattr(node, "name", "<module>"), doc


def problems(doc: str) -> list[str]:
    text = LITERAL.sub("``x``", doc)
    found = [f"substitution {m.group(0)!r}" for m in SUBSTITUTION.finditer(text)]
    literal = doctest = False  # inside a literal block (after '::') or a doctest block (>>>)
    for line in text.splitlines():
        if literal and (line.startswith((" ", "\t")) or not line.strip()):
            continue
        doctest = line.lstrip().startswith(">>>") or (doctest and bool(line.strip()))
        if doctest:
            continue
        literal = line.rstrip().endswith("::")
        for m in LONE_STAR.finditer(line):
            if "*" not in line[m.end():]:
                found.append(f"unclosed emphasis in {line.strip()[:60]!r}")
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_docstrings_hold_no_accidental_rest_markup(path):
    bad = [f"{name}: {p}" for name, doc in _docstrings(path) for p in problems(doc)]
    assert not bad, bad


def test_the_checks_catch_what_broke_the_build():
    assert problems("Saliency: max of |gradient| over channels.")
    assert problems("Normalize x (B, *normalized_shape) over its trailing dimensions.")
    assert not problems("Normalize ``x`` of shape ``(B, *normalized_shape)``; ``|x|`` is fine.")
    assert not problems("The l_p norm is (sum_i |x_i|^p)^(1/p) for *p* at least 1, and a * b.")
