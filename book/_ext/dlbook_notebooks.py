"""Chapters as plain notebooks, for Binder, Colab and the site's ``.ipynb`` downloads.

A chapter is MyST Markdown: admonitions, dropdowns, labelled equations, ``{eq}``
references, citations and glued numbers are Sphinx constructs that JupyterLab,
Binder and Colab show as raw text or as "Unknown Directive" boxes. ``convert``
rewrites an executed chapter (the notebook MyST-NB writes, outputs included) into
a notebook that any client renders as the site does:

=====================================  =============================================
MyST                                   plain notebook
=====================================  =============================================
``:::{admonition} Title``              a block quote headed by the bold title
``````{dropdown} Solution 1``          ``<details><summary>`` (collapsed)
``$$ ... $$ (eq-label)``               ``$$ ... \\tag{n} $$``, the site's number
``{eq}`eq-label```                     ``(n)``
``{numref}`fig-x```                    ``Fig. n``; the caption under the figure
``{footcite:p}`key```                  ``(Author et al., 2014)``
``{footbibliography}``                 the page's reference list
``{glue:text}`name:.2f```              the value of the last build, formatted
``{glue:md}`` directive                its Markdown
``{doc}`page```                        the page's title
``[text](other-page.md)``              ``[text](<site>/<page>.html)``
=====================================  =============================================

Anything else in role or directive syntax is an error: a new construct must be
taught to the converter before a page can use it. The first cell installs
``dlbook`` when it is missing (Colab), and does nothing where it is installed
(Binder, a local checkout).

The build calls ``convert`` on every executed page (``dlbook_build._write_downloads``)
with the site's own equation and figure numbers; the tests call it too.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
REPOSITORY = "dlbook/dlbook"
#: The published site (GitHub Pages of REPOSITORY): links between pages point there,
#: the one address that works from Binder, Colab and a downloaded notebook alike.
SITE = "https://dlbook.github.io/dlbook"
#: The branch the publishing workflow fills with the converted notebooks (beside
#: the repository's files, so Binder builds the same environment from it).
NOTEBOOKS_BRANCH = "notebooks"

INSTALL_MARK = "# Colab: install dlbook"
INSTALL_CELL = f"""{INSTALL_MARK} (Binder and a local checkout already have it; then this does nothing)
import importlib.util

if importlib.util.find_spec("dlbook") is None:
    %pip install --quiet "dlbook @ git+https://github.com/{REPOSITORY}@main"
"""

#: Roles and directives a page may use, and nothing else.
ROLE = re.compile(r"\{(?P<name>[a-z][\w-]*(?::[\w-]+)?)\}`(?P<body>[^`]*)`")
DIRECTIVE = re.compile(r"^(?P<indent>[ ]{0,3})(?P<fence>`{3,}|:{3,})\{(?P<name>[\w:-]+)\}[ \t]*(?P<arg>.*)$")
LABELLED_MATH_END = re.compile(r"^\$\$[ \t]*\((?P<label>[\w:.-]+)\)[ \t]*$")
# syntax that must not survive conversion (the tests look for it in every chapter)
RAW_MYST = re.compile(r"\{[a-z][\w-]*(?::[\w-]+)?\}`|^\s*(`{3,}|:{3,})\{|^\$\$[ \t]*\(|^:[a-z-]+:\s", re.M)


class ConversionError(ValueError):
    """A page uses MyST syntax the converter does not know."""


@dataclass
class Citations:
    """Author–year citations and reference entries from a BibTeX file."""

    bibfile: Path = ROOT / "references.bib"
    _entries: dict = field(default_factory=dict, init=False, repr=False)

    def _entry(self, key: str):
        if not self._entries and Path(self.bibfile).is_file():  # read on the first citation
            from pybtex.database import parse_file

            self._entries = dict(parse_file(str(self.bibfile)).entries)
        try:
            return self._entries[key]
        except KeyError:
            raise ConversionError(f"citation key {key!r} is not in {self.bibfile.name}") from None

    def authors(self, key: str) -> str:
        people = self._entry(key).persons.get("author") or self._entry(key).persons.get("editor", [])
        names = [_plain(" ".join(p.last_names)) for p in people] or ["Anonymous"]
        if len(names) == 1:
            return names[0]
        if len(names) == 2:
            return f"{names[0]} and {names[1]}"
        return f"{names[0]} et al."

    def year(self, key: str) -> str:
        return _plain(self._entry(key).fields.get("year", "n.d."))

    def parenthetical(self, keys: list[str]) -> str:
        return "(" + "; ".join(f"{self.authors(k)}, {self.year(k)}" for k in keys) + ")"

    def textual(self, keys: list[str]) -> str:
        return "; ".join(f"{self.authors(k)} ({self.year(k)})" for k in keys)

    def reference(self, key: str) -> str:
        entry = self._entry(key)
        fields = entry.fields
        people = entry.persons.get("author") or entry.persons.get("editor", [])
        names = ", ".join(_plain(" ".join(p.first_names + p.middle_names + p.prelast_names + p.last_names))
                          for p in people)
        venue = next((fields[f] for f in ("journal", "booktitle", "publisher", "school", "howpublished")
                      if f in fields), "")
        parts = [f"{names} ({self.year(key)}).", f"*{_plain(fields.get('title', key))}*."]
        if venue:
            parts.append(_plain(venue) + ".")
        if "url" in fields:
            parts.append(f"<{fields['url']}>")
        return " ".join(parts)


_LATEX_ACCENTS = {'"': "\u0308", "'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303",
                  "c": "\u0327", "v": "\u030c", "=": "\u0304", "u": "\u0306", ".": "\u0307"}


def _plain(text: str) -> str:
    """BibTeX text as plain Unicode (accents, dotless i, braces)."""
    import unicodedata

    for command, letter in ((r"\i", "ı"), (r"\l", "ł"), (r"\L", "Ł"), (r"\o", "ø"), (r"\O", "Ø"),
                            (r"\ss", "ß"), (r"\ae", "æ"), (r"\aa", "å")):
        text = re.sub(r"\{?" + re.escape(command) + r"(?![A-Za-z])\}?", letter, text)
    text = text.replace("--", "–")

    def accent(match: re.Match) -> str:
        return unicodedata.normalize("NFC", match.group(2) + _LATEX_ACCENTS[match.group(1)])

    text = re.sub(r"\\([\"'`^~cv=u.])\s*\{?([A-Za-zı])\}?", accent, text)
    return text.replace("{", "").replace("}", "")


@dataclass
class Page:
    """What one page's conversion needs besides its own text."""

    docname: str
    equations: Mapping[str, str] | None = None   # label -> number, as the site numbers them
    figures: Mapping[str, str] | None = None     # figure name -> number
    titles: Mapping[str, str] | None = None      # docname -> title, for {doc}
    citations: Citations | None = None
    glued: dict[str, dict] = field(default_factory=dict)  # name -> mime bundle
    cited: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.citations = self.citations or Citations()


def glued_values(notebook: nbformat.NotebookNode) -> dict[str, dict]:
    """name -> mime bundle of every ``glue`` output in an executed notebook."""
    values = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            scrap = output.get("metadata", {}).get("scrapbook")
            if scrap:
                prefix = scrap.get("mime_prefix", "")
                values[scrap["name"]] = {mime[len(prefix):]: data for mime, data in output["data"].items()}
    return values


def _is_glue_output(output: dict) -> bool:
    return bool(output.get("metadata", {}).get("scrapbook"))


def _glue_text(page: Page, body: str) -> str:
    name, _, spec = body.partition(":")
    if name not in page.glued:
        raise ConversionError(f"{page.docname}: glued value {name!r} is not in the executed notebook")
    # MyST-NB's own formatting, so the notebook reads exactly as the site does
    from myst_nb.core.variables import format_plain_text

    text = page.glued[name].get("text/plain", "")
    try:
        return format_plain_text(text, spec)
    except (TypeError, ValueError):
        raise ConversionError(f"{page.docname}: glued value {name!r} = {text!r} does not take "
                              f"the format {spec!r}") from None


def _role(page: Page, name: str, body: str) -> str:
    if name == "eq":
        number = (page.equations or {}).get(body)
        if number is None:
            raise ConversionError(f"{page.docname}: equation {body!r} has no number")
        return f"({number})"
    if name == "numref":
        number = (page.figures or {}).get(body)
        if number is None:
            raise ConversionError(f"{page.docname}: figure {body!r} has no number")
        return f"Fig. {number}"
    if name in ("footcite:p", "footcite:t", "cite:p", "cite:t"):
        keys = [k.strip() for k in body.split(",") if k.strip()]
        for key in keys:
            if key not in page.cited:
                page.cited.append(key)
        return page.citations.parenthetical(keys) if name.endswith(":p") else page.citations.textual(keys)
    if name in ("glue:text", "glue"):
        return _glue_text(page, body)
    if name == "doc":
        target = body.split("<")[-1].rstrip(">") if "<" in body else body
        label = body.split("<")[0].strip() if "<" in body else None
        if label:
            return f"*{label}*"
        docname = (target[1:] if target.startswith("/")
                   else os.path.normpath(os.path.join(os.path.dirname(page.docname), target)))
        title = (page.titles or {}).get(docname)
        if title is None:
            raise ConversionError(f"{page.docname}: {{doc}} target {body!r} has no title")
        return f"*{title}*"
    raise ConversionError(f"{page.docname}: role {{{name}}} has no plain-notebook form")


_PAGE_LINK = re.compile(r"\]\((?![a-z]+:|#)(?P<path>[^)\s#]+)\.(?:md|ipynb)(?P<anchor>#[^)\s]*)?\)")


def _page_links(page: Page, text: str) -> str:
    """Links to other pages (``[previous chapter](gradient-descent.md)``) go to the site."""
    def absolute(match: re.Match) -> str:
        target = os.path.normpath(os.path.join(os.path.dirname(page.docname), match["path"]))
        return f"]({SITE}/{target}.html{match['anchor'] or ''})"

    return _PAGE_LINK.sub(absolute, text)


def _inline(page: Page, line: str) -> str:
    """Roles and page links in one line of prose, outside inline code spans."""
    pieces = re.split(r"(`+[^`]*`+)", line)
    pieces = [_page_links(page, p) if i % 2 == 0 else p for i, p in enumerate(pieces)]
    out = []
    for i, piece in enumerate(pieces):
        # a role's own backticks split it: `{eq}` then `label`; rejoin those
        role = re.search(r"\{([a-z][\w-]*(?::[\w-]+)?)\}$", out[-1]) if i % 2 == 1 and out else None
        if role:
            out[-1] = out[-1][: role.start()] + _role(page, role.group(1), piece.strip("`"))
            continue
        out.append(piece)
    return "".join(out)


def _directive_end(lines: list[str], start: int, fence: str) -> int:
    """Index of the line closing the directive opened at ``start``."""
    char, width = fence[0], len(fence)
    for i in range(start + 1, len(lines)):
        stripped = lines[i].strip()
        if stripped and set(stripped) == {char} and len(stripped) >= width:
            return i
    raise ConversionError(f"unclosed {fence} directive: {lines[start].strip()!r}")


def _options(body: list[str]) -> tuple[dict[str, str], list[str]]:
    options = {}
    while body and re.match(r"^:[\w-]+:", body[0]):
        key, _, value = body.pop(0)[1:].partition(":")
        options[key] = value.strip()
    return options, body


def _markdown(page: Page, text: str) -> str:
    """Convert the MyST in one Markdown cell."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        directive = DIRECTIVE.match(line)
        plain_fence = re.match(r"^\s*(`{3,}|~{3,})(?!\{)", line)
        if directive:
            end = _directive_end(lines, i, directive["fence"])
            options, body = _options(lines[i + 1:end])
            out.append(_directive(page, directive["name"], directive["arg"].strip(), options, "\n".join(body)))
            i = end + 1
        elif plain_fence:  # a code block in prose: left exactly as written
            fence = plain_fence.group(1)
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip().startswith(fence)), len(lines) - 1)
            out.extend(lines[i:end + 1])
            i = end + 1
        elif line.strip() == "$$" or (line.startswith("$$") and not line.rstrip().endswith("$$")):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].lstrip().startswith("$$")), None)
            if end is None:
                raise ConversionError(f"{page.docname}: unclosed $$ block")
            math = lines[i:end]
            label = LABELLED_MATH_END.match(lines[end].strip())
            if label:
                number = (page.equations or {}).get(label["label"])
                if number is None:
                    raise ConversionError(f"{page.docname}: equation {label['label']!r} has no number")
                math.append(f"\\tag{{{number}}}")
            out.extend(math + ["$$"])
            i = end + 1
        else:
            out.append(_inline(page, line))
            i += 1
    return "\n".join(out)


def _directive(page: Page, name: str, arg: str, options: dict[str, str], body: str) -> str:
    if name == "admonition":
        inner = _markdown(page, body).strip("\n")
        quoted = "\n".join(f"> {line}".rstrip() for line in inner.split("\n"))
        return f"> **{_inline(page, arg)}**\n>\n{quoted}"
    if name in ("note", "tip", "warning", "important", "caution", "hint", "seealso"):
        return _directive(page, "admonition", arg or name.capitalize(), options, body)
    if name == "dropdown":
        inner = _markdown(page, body).strip("\n")
        return f"<details>\n<summary>{_inline(page, arg)}</summary>\n\n{inner}\n\n</details>"
    if name == "footbibliography":
        if not page.cited:
            return ""
        entries = "\n".join(f"- {page.citations.reference(key)}" for key in page.cited)
        return entries
    if name == "glue:md":
        key = arg
        if key not in page.glued:
            raise ConversionError(f"{page.docname}: glued value {key!r} is not in the executed notebook")
        bundle = page.glued[key]
        return bundle.get("text/markdown", bundle.get("text/plain", ""))
    raise ConversionError(f"{page.docname}: directive {{{name}}} has no plain-notebook form")


def _tags(cell: dict) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def convert(notebook: nbformat.NotebookNode, page: Page) -> nbformat.NotebookNode:
    """The executed MyST notebook ``notebook`` as a plain notebook (a new object)."""
    notebook = copy.deepcopy(notebook)
    page.glued = glued_values(notebook)
    cells = []
    figure = 0
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = _markdown(page, cell.source)
            cells.append(cell)
            continue
        if cell.cell_type != "code":
            cells.append(cell)
            continue
        tags = _tags(cell)
        meta = cell.metadata
        cell.outputs = [o for o in cell.get("outputs", []) if not _is_glue_output(o)]
        if "remove-output" in tags:
            cell.outputs = []
        if tags & {"remove-input", "remove-cell", "hide-input", "hide-cell"}:
            meta.setdefault("jupyter", {})["source_hidden"] = True
        if "remove-cell" in tags:
            meta["jupyter"]["outputs_hidden"] = True
        caption = meta.get("mystnb", {}).get("figure", {})
        cells.append(cell)
        if caption.get("caption"):
            figure += 1
            name = caption.get("name")
            number = (page.figures or {}).get(name) if name else None
            label = f"Fig. {number}" if number else "Figure"
            cells.append(nbformat.v4.new_markdown_cell(f"*{label}: {_inline(page, caption['caption'])}*"))
    notebook.cells = [nbformat.v4.new_code_cell(INSTALL_CELL)] + cells
    notebook.metadata.pop("jupytext", None)
    notebook.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    notebook.metadata["accelerator"] = "GPU"   # Colab opens it on a GPU runtime when one is free
    notebook.metadata["colab"] = {"provenance": []}
    nbformat.validator.normalize(notebook)
    return notebook


def number_equations(texts: Iterable[str]) -> dict[str, str]:
    """label -> number of the labelled equations in ``texts``, in order (1, 2, ...)."""
    labels = [m["label"] for text in texts for line in text.split("\n")
              if (m := LABELLED_MATH_END.match(line.strip()))]
    return {label: str(i) for i, label in enumerate(labels, start=1)}


def raw_myst(text: str) -> list[str]:
    """The MyST syntax left in ``text`` outside code blocks (empty when none)."""
    hits, fence = [], None
    for line in text.split("\n"):
        opening = re.match(r"^\s*(`{3,}|~{3,})", line)
        if fence:
            if line.strip().startswith(fence):
                fence = None
            continue
        if opening and not DIRECTIVE.match(line):
            fence = opening.group(1)
            continue
        prose = re.sub(r"``.+?``", "", line)  # a double-backtick code span may show a role
        hits += [m.group(0) for m in RAW_MYST.finditer(prose)]
    return hits


def notebook_url(docname: str, *, service: str) -> str:
    """Where a page's converted notebook opens: ``service`` is ``"colab"`` or ``"binder"``."""
    path = f"book/{docname}.ipynb" if not docname.startswith("book/") else f"{docname}.ipynb"
    if service == "colab":
        return f"https://colab.research.google.com/github/{REPOSITORY}/blob/{NOTEBOOKS_BRANCH}/{path}"
    if service == "binder":
        return f"https://mybinder.org/v2/gh/{REPOSITORY}/{NOTEBOOKS_BRANCH}?urlpath=lab/tree/{path}"
    raise ValueError(f"service must be 'colab' or 'binder', got {service!r}")

