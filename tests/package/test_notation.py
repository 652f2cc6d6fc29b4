"""The notation page is the book's single source of symbols (issue 19, "Notation, one book").

- Every symbol in the notation page's tables is defined in exactly one row, and each row
  names an existing page where the symbol is introduced.
- The page's "Local meanings" table, the only place a letter may have a second meaning,
  names the pages that use it, and never lists a symbol whose clash the book resolved.
- Guards over every page's math and prose catch the resolved clashes coming back: the
  Kronecker delta (written ``[i = j]``), ``L`` as a count of layers or columns, ``lambda``
  as a penalty weight, ``H`` as the Hessian or a hidden width, ``b`` as a batch index,
  ``p`` as the padding.

Runs without a build: it reads the Markdown sources only.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTATION = Path("book/front/notation.md")

MAIN_HEADER = ("symbol", "meaning", "introduced in")
LOCAL_HEADER = ("symbol", "local meaning", "where")
_CELL = re.compile(r"(?<!\\)\|")
_MATH = re.compile(r"\$([^$]+)\$")
_DOC = re.compile(r"\{doc\}`([^`]+)`")
# Symbols whose clash the book resolved: one meaning everywhere, no local exception.
RESOLVED = {
    r"b", r"\delta", r"\lambda", r"\zeta", r"\omega", r"d_h", r"d_z",
    r"\ell_{\max}", r"\nabla^2 L", r"[i = j]", r"N", r"n", r"\kappa",
}
# Each must have its row in the main tables ($L$, the loss, keeps one local meaning: the
# graph Laplacian of Part 12, which never writes the loss).
REQUIRED = RESOLVED | {r"L"}


def _rows(text: str) -> list[tuple[str, tuple[str, ...], int]]:
    """(header, cells, line) of every body row of every Markdown table."""
    rows, header = [], None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.startswith("|"):
            header = None
            continue
        cells = tuple(c.strip() for c in _CELL.split(line.strip())[1:-1])
        if header is None:
            header = tuple(c.lower() for c in cells)
        elif not set("".join(cells)) <= set("-: "):
            rows.append((header, cells, number))
    return rows


def _symbols(cell: str) -> list[str]:
    return [" ".join(m.split()) for m in _MATH.findall(cell)]


def _page_exists(root: Path, target: str) -> bool:
    return (root / (target.lstrip("/") + ".md")).is_file()


def notation_problems(root: Path = ROOT) -> list[str]:
    """Everything wrong with the notation page's tables, as messages."""
    text = (root / NOTATION).read_text()
    problems, seen = [], {}
    rows = _rows(text)
    main = [(cells, line) for header, cells, line in rows if header == MAIN_HEADER]
    local = [(cells, line) for header, cells, line in rows if header == LOCAL_HEADER]
    if not main or not local:
        return [f"{NOTATION}: expected tables headed {MAIN_HEADER} and {LOCAL_HEADER}"]
    for cells, line in main:
        if len(cells) != 3 or not all(cells):
            problems.append(f"{NOTATION}:{line}: a row needs a symbol, a meaning and a page")
            continue
        symbols = _symbols(cells[0])
        if not symbols:
            problems.append(f"{NOTATION}:{line}: no $symbol$ in the first column")
        for symbol in symbols:
            if symbol in seen:
                problems.append(f"{NOTATION}:{line}: ${symbol}$ is already defined on line {seen[symbol]}")
            seen.setdefault(symbol, line)
        pages = _DOC.findall(cells[2])
        if not pages or not all(_page_exists(root, page) for page in pages):
            problems.append(f"{NOTATION}:{line}: 'introduced in' must link existing pages, got {cells[2]!r}")
    for symbol in sorted(REQUIRED - set(seen)):
        problems.append(f"{NOTATION}: no row defines ${symbol}$")
    for cells, line in local:
        pages = _DOC.findall(cells[-1]) if cells else []
        if len(cells) != 3 or not pages or not all(_page_exists(root, page) for page in pages):
            problems.append(f"{NOTATION}:{line}: a local meaning must link the existing pages that use it")
        for symbol in _symbols(cells[0]) if cells else []:
            if symbol in RESOLVED:
                problems.append(f"{NOTATION}:{line}: ${symbol}$ was given one meaning; it may not have a local one")
    return problems


def _split(text: str) -> tuple[str, list[tuple[int, str]]]:
    """(prose with code cells blanked, [(line, math)]) of a MyST page."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.startswith("```{code-cell}"):
            inside = True
            lines.append("")
            continue
        if inside and line.startswith("```"):
            inside = False
            lines.append("")
            continue
        lines.append("" if inside else line)
    prose = "\n".join(lines)
    math = [
        (prose.count("\n", 0, m.start()) + 1, m.group(1) if m.group(1) is not None else m.group(2))
        for m in re.finditer(r"\$\$(.+?)\$\$|\$((?:[^$\n]|\n(?!\n))+?)\$", prose, re.S)
    ]
    return prose, math


# name -> (patterns searched in the math, patterns searched in the prose)
GUARDS: dict[str, tuple[list[str], list[str]]] = {
    "Kronecker delta (write the bracket [i = j])": (
        [r"\\delta_\{?[a-zA-Z]'?[a-zA-Z]'?\}"], []),
    "L as a count of layers, blocks or columns (write \\ell_{\\max}; L is the loss)": (
        [r"\\dots,\s*L(?![a-zA-Z_])",                        # l = 1, ..., L
         r"\^\{?L\}?(?![a-zA-Z_^])",                          # prod_l^L, (I + A)^L
         r"(?<![a-zA-Z\\])[ZAGW]_\{?L(?:\s*-\s*1)?\}?(?![a-zA-Z_])",  # Z_L, A_{L-1}
         r"\\mathbf\{[xh]\}_\{?L\b", r"\^\{L\s*-",                 # x_L, 2^{L-l}
         r"\\times\s*L\)", r"\\mathbb\{R\}\^\{?L\b", r"I_L\b"],     # im2col columns, a latent size
        [r"\$L\$(?:-layer| (?:layers|blocks|hidden|stacked|GCN))"]),
    "lambda as a penalty weight (write \\omega; lambda is an eigenvalue)": (
        [r"\\lambda\s*(?:\\mathbf\{w\}|W_|\\\||\\sum|\\[bB]ig\(\s*\\\|)", r"\\t?frac\{\\lambda\}\{2\}"],
        [r"(?i)(?:weight decay|penalty)[^.$]{0,40}\$\\lambda\$"]),
    "H as the Hessian (write \\nabla^2 L)": (
        [r"\\lambda_\{\\max\}\(H\)", r"\\eta\s*H(?![a-zA-Z_])", r"\^\\top H\s*\\mathbf\{g\}"],
        [r"Hessian,?\s*\$H\b", r"\$H\$ for the Hessian"]),
    "H as a hidden width (write d_h)": (
        [r"\\mathbb\{R\}\^(?:H\b|\{H\s*(?:\\times|\}))"],
        [r"hidden (?:size|width|units)\s+\$H\$", r"\$H\$ (?:hidden )?units"]),
    "b as a batch index (write n; b is a bias)": (
        [r"_\{b\s*[,a-z']", r"\\sum_\{?b(?:\s*[,}=]|\s*$)", r"(?<![a-zA-Z\\])[a-z]_b(?![a-zA-Z])(?=.*\\sum_\{?b)"],
        []),
    "p as the padding (write \\zeta; p is a probability or an index)": (
        [r"\+\s*2p(?![a-zA-Z])", r"(?<![a-zA-Z\\_])p\s*=\s*\(k\s*-\s*1\)/2"],
        [r"(?i)padding\s+\$p\$"]),
}


def _toc_pages(root: Path) -> list[Path]:
    """The pages ``_toc.yml`` lists, as paths relative to the root."""
    names = re.findall(r"^\s*(?:-\s*)?(?:file|root):\s*(\S+)", (root / "_toc.yml").read_text(), re.M)
    return [Path(name).with_suffix(".md") for name in names]


def clash_problems(root: Path = ROOT) -> list[str]:
    """Every page of the book (other than the notation page) that writes a resolved clash again."""
    problems = []
    for relative in _toc_pages(root):
        page = root / relative
        if relative == NOTATION or not page.is_file():
            continue
        prose, math = _split(page.read_text())
        for name, (math_patterns, prose_patterns) in GUARDS.items():
            for line, expression in math:
                for pattern in math_patterns:
                    if re.search(pattern, expression):
                        problems.append(f"{relative}:{line}: {name}: ${' '.join(expression.split())[:80]}$")
            for pattern in prose_patterns:
                for m in re.finditer(pattern, prose):
                    line = prose.count("\n", 0, m.start()) + 1
                    problems.append(f"{relative}:{line}: {name}: {m.group(0)!r}")
    return problems


def test_every_symbol_is_defined_once_and_linked_to_its_page():
    assert notation_problems() == []


def test_no_page_brings_a_resolved_clash_back():
    assert clash_problems() == []


@pytest.mark.parametrize("name", sorted(GUARDS))
def test_each_guard_has_a_pattern(name):
    math_patterns, prose_patterns = GUARDS[name]
    assert math_patterns or prose_patterns
    for pattern in math_patterns + prose_patterns:
        re.compile(pattern)
