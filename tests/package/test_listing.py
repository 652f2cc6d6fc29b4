"""dlbook.listing: pages show package code by dotted name, without docstrings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dlbook.listing import Listing, glue, show, source
from tests.helpers import RAW_MARKUP, check_bad_inputs

ROOT = Path(__file__).resolve().parents[2]
SHOW_CALL = re.compile(r"""\bshow\(\s*["']([\w.]+)["']""")


def _shown_on_pages() -> list[tuple[str, str]]:
    found = []
    for page in sorted((ROOT / "book").rglob("*.md")):
        for name in SHOW_CALL.findall(page.read_text()):
            found.append((str(page.relative_to(ROOT)), name))
    return found


def test_docstrings_are_removed_and_the_code_kept():
    text = source("dlbook.listing.show")
    assert text.startswith("def show(")
    assert '"""' not in text and "return Listing(" in text
    full = source("dlbook.listing.show", docstrings=True)
    assert '"""Display the source' in full


def test_a_class_loses_every_docstring_but_keeps_its_methods():
    text = source("dlbook.listing.Listing")
    assert '"""' not in text
    assert "def _repr_markdown_" in text and "name: str" in text
    assert not re.search(r"class Listing:\n\s*\n", text), "a blank line was left where the docstring was"


def test_markdown_is_a_python_fence_longer_than_any_in_the_code():
    listing = Listing("x", "s = '```'")
    md = listing._repr_markdown_()
    assert md.startswith("````python\n") and md.rstrip().endswith("````")
    assert repr(show("dlbook.seed")).startswith("def seed(")


def test_bad_inputs():
    check_bad_inputs([
        (lambda: show("numpy.linalg.solve"), ValueError, "target"),
        (lambda: show("dlbook.no_such_module_here"), ValueError, "target"),
        (lambda: show("dlbook.listing.nothing"), ValueError, "nothing"),
        (lambda: show(3), TypeError, "target"),
    ])


def test_pages_show_package_code():
    assert len(_shown_on_pages()) > 20, "pages no longer show package code with show()"


@pytest.mark.parametrize("page, name", _shown_on_pages())
def test_every_shown_object_exists_and_reads_without_markup(page, name):
    text = source(name)
    hits = RAW_MARKUP.findall(text)
    assert not hits, f"{page} shows {name} with raw reST/TeX: {hits}"


def test_glue_is_myst_nbs_glue_where_myst_nb_is_installed(monkeypatch):
    import myst_nb

    calls = []
    monkeypatch.setattr(myst_nb, "glue", lambda *args, **kwargs: calls.append((args, kwargs)))
    glue("loss", 0.5, display=False)
    assert calls == [(("loss", 0.5), {"display": False})]


def test_glue_without_myst_nb_displays_only_when_asked(monkeypatch):
    import sys

    import IPython.display

    monkeypatch.setitem(sys.modules, "myst_nb", None)  # as in Colab: import myst_nb fails
    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    glue("loss", 0.5, display=False)
    assert shown == []
    glue("loss", 0.5)
    assert shown == [0.5]


@pytest.mark.parametrize("name", ["", "a b", "x:y", "tick`", 3])
def test_glue_rejects_names_the_prose_could_not_refer_to(name):
    with pytest.raises(ValueError, match="name must be"):
        glue(name, 1.0)
