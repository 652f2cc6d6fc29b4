"""The book as a whole: the table of contents matches the files, and the strict,
executed build produces every page with its outputs and no errors.

The build test runs ``make html`` on the real book (reusing ``_build`` and its
execution cache when present, as ``make book`` does) with the network blocked.
"""

from __future__ import annotations

import json
import os
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from tests.site.test_book_build import ROOT, run_build

HTML = ROOT / "_build" / "html"


def toc_files() -> list[str]:
    """Every file the table of contents names, in reading order (without suffix)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))

    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        walk(part["chapters"])
    return files


def _source(name: str) -> Path:
    return next(p for p in (ROOT / f"{name}.md", ROOT / f"{name}.ipynb") if p.exists())


def _has_code(name: str) -> bool:
    return "{code-cell}" in _source(name).read_text()


def test_every_book_file_is_in_the_toc_and_every_entry_exists():
    listed = toc_files()
    assert len(listed) == len(set(listed)), "a page is listed twice"
    missing = [f for f in listed if not any((ROOT / f"{f}{ext}").exists() for ext in (".md", ".ipynb"))]
    assert not missing, f"toc entries without a file: {missing}"
    on_disk = {p.relative_to(ROOT).with_suffix("").as_posix()
               for p in (ROOT / "book").rglob("*") if p.suffix in (".md", ".ipynb") and "_ext" not in p.parts
               and ".ipynb_checkpoints" not in p.parts}
    orphans = sorted(on_disk - set(listed))
    assert not orphans, f"pages in book/ missing from _toc.yml: {orphans}"


def test_every_chapter_follows_the_page_template():
    for name in toc_files():
        text = _source(name).read_text()
        if "{code-cell}" not in text or "/back/" in name:
            continue
        assert "dlbook.seed(" in text, f"{name}: no dlbook.seed() call, so outputs are not repeatable"
        assert ":::{admonition} You will learn" in text, f"{name}: no learning objectives box"
        assert "## Exercises" in text and text.count("{dropdown}") >= 3, f"{name}: needs 3+ exercises with solutions"
        assert "{footbibliography}" in text, f"{name}: no references section"
        assert "glue(" in text, f"{name}: no glued numbers"


class _Scan(HTMLParser):
    """Collects images, error outputs and output cells from a page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.outputs = 0
        self.errors = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "img":
            self.images.append(attrs)
        if "cell_output" in classes:
            self.outputs += 1
        if "output" in classes and ("error" in classes or "traceback" in classes):
            self.errors += 1


@pytest.fixture(scope="module")
def built(built_site):
    return built_site


@pytest.mark.build
def test_the_strict_build_succeeds_without_warnings(built, measured):
    result, seconds = built
    output = result.stdout + result.stderr
    measured(f"book build (make html) took {seconds:.0f} s")
    assert result.returncode == 0, output[-5000:]
    warnings = [line for line in output.splitlines() if "WARNING" in line and "IPKernelApp" not in line]
    assert not warnings, warnings


@pytest.mark.build
def test_every_page_has_its_outputs_and_no_errors(built, measured):
    checked = 0
    for name in toc_files():
        page = HTML / f"{name}.html"
        assert page.exists(), f"{name} was not rendered"
        text = page.read_text(encoding="utf8")
        scan = _Scan()
        scan.feed(text)
        if _has_code(name) and "/back/" not in name:
            assert scan.outputs > 0, f"{name}: no cell outputs in the HTML"
            figures = _source(name).read_text().count("  figure:\n")
            plotted = sum("_images/" in (image.get("src") or "") for image in scan.images)
            assert plotted >= figures, f"{name}: {figures} figure cells but {plotted} images in the HTML"
            assert scan.errors == 0 and "Traceback (most recent call last)" not in text, f"{name}: error output"
            checked += 1
        for image in scan.images:
            if "_images/" in (image.get("src") or ""):
                assert (page.parent / image["src"]).resolve().exists(), f"{name}: missing {image['src']}"
                assert image.get("alt"), f"{name}: a figure without alt text ({image['src']})"
    measured(f"pages with outputs and no errors: {checked} executed pages")
    assert checked >= 3


@pytest.mark.build
def test_the_build_report_lists_every_executed_page(built):
    report = (HTML / "book" / "back" / "build-report.html").read_text(encoding="utf8")
    records = ROOT / "_build" / "exec-records"
    for name in toc_files():
        if _has_code(name) and "/back/" not in name:
            link = os.path.relpath(HTML / f"{name}.html", HTML / "book" / "back")
            assert f'href="{link}"' in report, f"{name} missing from the build report"
            entry = json.loads((records / f"{name.replace('/', '__')}.json").read_text())
            assert entry["torch"] and entry["device"]
    assert "executed pages" in report and "FAILED" not in report


@pytest.mark.build
def test_a_rebuild_without_changes_executes_nothing(built, measured):
    start = time.perf_counter()
    result = run_build(ROOT)
    seconds = time.perf_counter() - start
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Executing notebook" not in output
    measured(f"no-change rebuild took {seconds:.1f} s")


def test_equation_labels_are_unique_across_the_book():
    # Sphinx numbers equations per page but resolves {eq} labels book-wide, so a
    # label used on two pages makes one reference point to the wrong page.
    seen: dict[str, str] = {}
    clashes = []
    for name in toc_files():
        for label in re.findall(r"^\$\$\s*\((eq-[\w-]+)\)", _source(name).read_text(), re.M):
            if label in seen and seen[label] != name:
                clashes.append(f"{label}: {seen[label]} and {name}")
            seen.setdefault(label, name)
    assert not clashes, clashes
    assert len(seen) > 50


def test_no_control_characters_in_the_sources():
    # A TAB or form feed in a page is almost always LaTeX mangled by a string escape
    # ("\times" -> TAB + "imes"), which MathJax then renders as text.
    bad = []
    for path in sorted((ROOT / "book").rglob("*.md")) + sorted((ROOT / "dlbook").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if re.search(r"[\x00-\x08\x09\x0b\x0c\x0e-\x1f]", line):
                bad.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:60]!r}")
    assert not bad, bad


def test_every_pages_cells_and_their_metadata_parse():
    """A caption with ': ' in unquoted YAML metadata breaks the build at read time; catch it here."""
    from tests.site.test_book_build import _load_extension

    ext = _load_extension()
    for name in toc_files():
        source = _source(name)
        if source.suffix == ".md" and _has_code(name):
            ext.code_cells(source.read_text())  # raises MystMetadataParsingError on bad metadata


def _prose_lines(text: str):
    """(line number, line) of a page's Markdown, outside code cells, fences and display math."""
    fence, display = None, False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if fence:
            if stripped.startswith(fence) and stripped.strip("`~") == "":
                fence = None
            continue
        match = re.match(r"(`{3,}|~{3,})", stripped)
        if match and not stripped.startswith("````{dropdown}"):
            fence = match.group(1)
            continue
        if stripped.startswith("$$"):
            display = not display or stripped != "$$" and stripped.count("$$") == 2
            continue
        if not display:
            yield number, line


def test_no_line_of_inline_math_starts_like_a_list_item():
    """Markdown reads a line starting with '+ ', '- ' or '* ' as a new list item, which cuts an
    inline $...$ that spans lines in two and leaves raw TeX on the page."""
    bad = []
    for name in toc_files():
        source = _source(name)
        open_math = False
        for number, line in _prose_lines(source.read_text()):
            if open_math and re.match(r"\s*[-+*]\s", line):
                bad.append(f"{source.relative_to(ROOT)}:{number}: {line.strip()[:60]!r}")
            # count unescaped single dollars ($$ handled above) to know whether math is open
            dollars = len(re.findall(r"(?<![\\$])\$(?!\$)", line))
            if dollars % 2:
                open_math = not open_math
            if not line.strip():
                open_math = False
    assert not bad, bad
