"""Show package code and glue numbers on a page (every chapter; introduced in the preface).

A chapter shows the real ``dlbook`` code it derives, never a copy. ``show``
looks an object up by dotted name, drops its docstrings (the API reference
keeps them) and displays the source as a highlighted code block. The output
is Markdown, so it renders the same in the built site, JupyterLab, Binder and
Colab; the site hides the one-line cell that calls it.

``glue`` records a computed number for the page's prose. Where the site is built
it is MyST-NB's ``glue``; in a client without MyST-NB (Colab, a bare Jupyter) the
prose already holds the last build's values, and ``glue`` only displays the value
when asked to, so the same cells run everywhere.

>>> print(show("dlbook.listing.show").text.splitlines()[0])
def show(target: str | object, *, docstrings: bool = False) -> Listing:
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from dataclasses import dataclass

__all__ = ["Listing", "glue", "show", "source"]


@dataclass(frozen=True)
class Listing:
    """Source text that displays as a highlighted Python code block."""

    name: str
    text: str

    def _repr_markdown_(self) -> str:
        fence = "```"
        while fence in self.text:
            fence += "`"
        return f"{fence}python\n{self.text}\n{fence}\n"

    def __repr__(self) -> str:
        return self.text


def _resolve(target: str | object) -> tuple[str, object]:
    if not isinstance(target, str):
        name = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', '?')}"
        return name, target
    if not target.startswith("dlbook"):
        raise ValueError(f"target must be a dotted name inside dlbook, got {target!r}")
    parts = target.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                raise ValueError(f"target {target!r} not found: {'.'.join(parts[:cut])} has no {attr!r}")
            obj = getattr(obj, attr)
        return target, obj
    raise ValueError(f"target {target!r} not found")


def _docstring_lines(tree: ast.AST) -> list[tuple[int, int, ast.AST]]:
    """(first, last, owner) line ranges of every docstring in ``tree``."""
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                spans.append((body[0].lineno, body[0].end_lineno or body[0].lineno, node))
    return spans


def source(target: str | object, *, docstrings: bool = False) -> str:
    """The source of ``target`` (an object or a dotted name), docstrings removed by default."""
    name, obj = _resolve(target)
    try:
        text = textwrap.dedent(inspect.getsource(obj))  # type: ignore[arg-type]
    except (TypeError, OSError) as error:
        raise TypeError(f"target {name!r} has no Python source to show ({error})") from None
    if docstrings:
        return text.rstrip()
    lines = text.splitlines()
    drop: set[int] = set()
    for first, last, owner in _docstring_lines(ast.parse(text)):
        only_docstring = len(owner.body) == 1  # type: ignore[attr-defined]
        if only_docstring:
            # keep the definition valid: the docstring becomes `...`
            indent = lines[first - 1][: len(lines[first - 1]) - len(lines[first - 1].lstrip())]
            lines[first - 1] = indent + "..."
            drop.update(range(first + 1, last + 1))
        else:
            drop.update(range(first, last + 1))
            # and the blank lines that separated the docstring from the body
            following = last + 1
            while following <= len(lines) and not lines[following - 1].strip():
                drop.add(following)
                following += 1
    kept = [line for i, line in enumerate(lines, start=1) if i not in drop]
    return "\n".join(kept).rstrip()


def show(target: str | object, *, docstrings: bool = False) -> Listing:
    """Display the source of ``target`` (e.g. ``"dlbook.backprop.Dense"``) as a code block."""
    name, _ = _resolve(target)
    return Listing(name, source(target, docstrings=docstrings))


def glue(name: str, value: object, display: bool = True) -> None:
    """Record ``value`` as ``name`` for the page's prose (MyST-NB's ``glue`` when installed).

    Without MyST-NB it displays ``value`` when ``display`` is true and does nothing else.
    """
    if not isinstance(name, str) or not name or any(c.isspace() or c in ":`" for c in name):
        raise ValueError(f"name must be a non-empty string without spaces, ':' or '`', got {name!r}")
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display:
            from IPython.display import display as show_value

            show_value(value)
        return
    myst_glue(name, value, display=display)
