"""Chapters as plain notebooks (book/_ext/dlbook_notebooks.py): what Binder, Colab and
the site's ``.ipynb`` downloads get.

The fast tests convert small MyST notebooks and check each construct. The
``build`` tests read every converted chapter the build wrote: no MyST syntax left,
the same code the page ran, outputs included; and (``slow``) run every one top
to bottom in a fresh kernel that cannot import MyST-NB, Jupyter Book or Sphinx,
as in Colab with only ``dlbook`` installed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from tests.site.test_book_build import NETBLOCK, ROOT

spec = importlib.util.spec_from_file_location("dlbook_notebooks", ROOT / "book" / "_ext" / "dlbook_notebooks.py")
nbconv = importlib.util.module_from_spec(spec)
sys.modules["dlbook_notebooks"] = nbconv  # dataclasses look their module up
spec.loader.exec_module(nbconv)

SOURCES = ROOT / "_build" / "html" / "_sources"


def _notebook(*cells) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    for cell in cells:
        notebook.cells.append(cell)
    return notebook


def _glue_output(name: str, text: str) -> dict:
    return nbformat.v4.new_output(
        "display_data", data={"application/papermill.record/text/plain": text},
        metadata={"scrapbook": {"name": name, "mime_prefix": "application/papermill.record/"}})


def _convert(markdown: str, *, code: nbformat.NotebookNode | None = None, **page) -> nbformat.NotebookNode:
    cells = [nbformat.v4.new_markdown_cell(markdown)]
    if code is not None:
        cells.insert(0, code)
    page.setdefault("equations", {"eq-a": "1", "eq-b": "2"})
    return nbconv.convert(_notebook(*cells), nbconv.Page("book/part/page", **page))


def _markdown(notebook) -> str:
    return "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")


# --- each construct (fast) ------------------------------------------------------------


def test_admonition_becomes_a_titled_block_quote():
    text = _markdown(_convert(":::{admonition} You will learn\n:class: tip\n- one;\n- two.\n:::\n"))
    assert text.startswith("> **You will learn**\n>\n> - one;\n> - two.")
    assert ":class:" not in text and ":::" not in text


def test_dropdown_becomes_collapsed_details_and_keeps_its_code_block():
    source = "````{dropdown} Solution 1\nBy {eq}`eq-b`:\n```python\nx = {'a': 1}\n```\n````\n"
    text = _markdown(_convert(source))
    assert "<details>\n<summary>Solution 1</summary>" in text and "</details>" in text
    assert "open" not in text.split("</summary>")[0]  # collapsed
    assert "By (2):" in text and "```python\nx = {'a': 1}\n```" in text


def test_labelled_equations_get_the_sites_numbers_and_references_match():
    source = "$$\nE = mc^2\n$$ (eq-a)\n\nand\n\n$$\ny = x\n$$ (eq-b)\n\nsee {eq}`eq-a` and {eq}`eq-b`."
    text = _markdown(_convert(source, equations={"eq-a": "3", "eq-b": "4"}))
    assert "$$\nE = mc^2\n\\tag{3}\n$$" in text and "$$\ny = x\n\\tag{4}\n$$" in text
    assert "see (3) and (4)." in text


def test_unlabelled_display_math_is_left_alone():
    assert "$$\nx^2\n$$" in _markdown(_convert("$$\nx^2\n$$\n"))


def test_citations_read_author_year_and_the_page_lists_its_references():
    source = ("Dropout {footcite:p}`srivastava2014dropout`; {footcite:t}`he2016deep` showed it.\n\n"
              "```{footbibliography}\n```\n")
    text = _markdown(_convert(source))
    assert "Dropout (Srivastava et al., 2014);" in text
    assert "He et al. (2016) showed it." in text
    references = text.split("showed it.")[1]
    assert references.index("Srivastava") < references.index("He, ") or references.index("Srivastava") < references.index("He ")
    assert "Dropout: A Simple Way" in references or "Dropout" in references


def test_accented_bibtex_names_are_plain_unicode():
    assert nbconv._plain(r"At{\i}l{\i}m G{\"u}ne{\c{s}}") == "Atılım Güneş"


def test_glued_values_are_the_builds_formatted_and_their_outputs_are_dropped():
    code = nbformat.v4.new_code_cell("glue('loss', 0.123456, display=False)")
    code.outputs = [_glue_output("loss", "0.123456"), _glue_output("name", "'GRU'")]
    notebook = _convert("loss {glue:text}`loss:.2f` by {glue:text}`name`, raw {glue:text}`loss`", code=code)
    assert "loss 0.12 by GRU, raw 0.123456" in _markdown(notebook)
    assert [c.outputs for c in notebook.cells if c.cell_type == "code"][1] == []


def test_glued_markdown_tables_are_inlined():
    code = nbformat.v4.new_code_cell("")
    code.outputs = [nbformat.v4.new_output(
        "display_data", data={"application/papermill.record/text/markdown": "| a |\n|---|\n| 1 |"},
        metadata={"scrapbook": {"name": "t", "mime_prefix": "application/papermill.record/"}})]
    assert "| a |\n|---|\n| 1 |" in _markdown(_convert("```{glue:md} t\n:format: myst\n```\n", code=code))


def test_code_in_prose_is_not_converted():
    text = _markdown(_convert("Write ``{eq}`label` `` in MyST.\n\n```md\n:::{admonition} x\n:::\n```\n"))
    assert "``{eq}`label` ``" in text and "```md\n:::{admonition} x\n:::\n```" in text


def test_hidden_cells_are_collapsed_figures_get_captions_and_install_comes_first():
    code = nbformat.v4.new_code_cell("show('dlbook.listing.show')", metadata={"tags": ["remove-input"]})
    figure = nbformat.v4.new_code_cell("plt.plot()", metadata={"mystnb": {"figure": {
        "caption": "Loss against step, by {eq}`eq-a`.", "name": "fig-loss"}}})
    notebook = nbconv.convert(_notebook(code, figure), nbconv.Page(
        "book/part/page", equations={"eq-a": "1"}, figures={"fig-loss": "2"}))
    first, shown, plotted, caption = notebook.cells
    assert first.source.startswith(nbconv.INSTALL_MARK) and "%pip install" in first.source
    assert shown.metadata["jupyter"]["source_hidden"] is True
    assert caption.cell_type == "markdown" and caption.source == "*Fig. 2: Loss against step, by (1).*"
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    nbformat.validate(notebook)


@pytest.mark.parametrize("source, message", [
    ("{sub-ref}`x`", "role {sub-ref}"),
    ("{eq}`eq-missing`", "equation 'eq-missing'"),
    ("```{figure} a.png\n```\n", "directive {figure}"),
    ("{glue:text}`nothing`", "glued value 'nothing'"),
    ("{footcite:p}`no-such-key`", "citation key 'no-such-key'"),
    (":::{admonition} open\nnever closed\n", "unclosed"),
])
def test_unknown_or_broken_myst_is_an_error_not_raw_text(source, message):
    with pytest.raises(nbconv.ConversionError, match=re.escape(message)):
        _convert(source)


def test_raw_myst_finds_what_the_converter_must_remove():
    assert nbconv.raw_myst("a {eq}`x` b") == ["{eq}`"]
    assert nbconv.raw_myst(":::{admonition} t\n:::") and nbconv.raw_myst("$$ (eq-a)")
    assert nbconv.raw_myst("```python\n{eq}`x`\n```\nplain ``{eq}`x` `` text") == []


def test_notebook_urls():
    assert nbconv.notebook_url("book/deep/dropout", service="colab") == (
        "https://colab.research.google.com/github/dlbook/dlbook/blob/notebooks/book/deep/dropout.ipynb")
    assert nbconv.notebook_url("book/deep/dropout", service="binder") == (
        "https://mybinder.org/v2/gh/dlbook/dlbook/notebooks?urlpath=lab/tree/book/deep/dropout.ipynb")
    with pytest.raises(ValueError, match="service"):
        nbconv.notebook_url("book/deep/dropout", service="kaggle")


# --- every chapter the build converted ------------------------------------------------


def _chapters() -> list[Path]:
    from tests.site.test_site import _has_code, toc_files

    return [SOURCES / f"{name}.ipynb" for name in toc_files() if _has_code(name)]


@pytest.mark.build
def test_every_converted_chapter_is_plain_and_carries_the_pages_code(built_site, measured):
    result, _ = built_site
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    import jupytext

    paths = _chapters()
    assert paths, "no chapters"
    cells = hits = 0
    for path in paths:
        assert path.is_file(), f"the build wrote no converted notebook for {path.relative_to(SOURCES)}"
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        cells += len(notebook.cells)
        raw = [h for c in notebook.cells if c.cell_type == "markdown" for h in nbconv.raw_myst(c.source)]
        hits += len(raw)
        assert raw == [], f"{path.name}: MyST left in the notebook: {raw[:5]}"
        source = ROOT / path.relative_to(SOURCES).with_suffix(".md")
        page = jupytext.read(source)
        expected = [c.source for c in page.cells if c.cell_type == "code"]
        got = [c.source for c in notebook.cells if c.cell_type == "code"]
        assert got[0].startswith(nbconv.INSTALL_MARK)
        assert got[1:] == expected, f"{path.name}: code differs from the page's"
        assert any(c.get("outputs") for c in notebook.cells if c.cell_type == "code"), path.name
    measured(f"converted notebooks: {len(paths)} chapters, {cells} cells, raw MyST hits {hits}")


BLOCKER = '''
import importlib.abc, sys
class _Absent(importlib.abc.MetaPathFinder):
    """Colab has none of the site's build tools: a page must not need them."""
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("myst_nb", "jupyter_book", "sphinx", "jupytext", "myst_parser"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: not in Colab)")
sys.meta_path.insert(0, _Absent())
'''


@pytest.mark.build
@pytest.mark.slow
def test_every_converted_chapter_runs_top_to_bottom_without_the_build_tools(built_site, tmp_path, measured):
    from nbclient import NotebookClient

    result, _ = built_site
    assert result.returncode == 0
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text((NETBLOCK / "sitecustomize.py").read_text() + BLOCKER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("MPLBACKEND", None)

    def run(path: Path) -> tuple[str, float]:
        import time

        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        start = time.perf_counter()
        client = NotebookClient(notebook, timeout=300, kernel_name="python3", allow_errors=False,
                                resources={"metadata": {"path": str(ROOT / path.relative_to(SOURCES).parent)}})
        client.execute(env=env)
        return path.name, time.perf_counter() - start

    paths = _chapters()
    with ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
        times = list(pool.map(run, paths))
    measured(f"converted notebooks run without MyST-NB: {len(times)} chapters, "
             f"{sum(t for _, t in times):.0f} s of kernel time")


# --- the Binder environment -------------------------------------------------------------

BUILD_AND_TEST_TOOLS = {"jupyter-book", "nbconvert", "django-static-mathjax", "pytest", "playwright", "nltk"}


def _requirements(path: Path) -> dict[str, str]:
    specs = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            name = re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0].lower()
            specs[name] = line
    return specs


def test_binder_installs_what_readers_need_with_the_projects_pins():
    top, binder = _requirements(ROOT / "requirements.txt"), _requirements(ROOT / "binder" / "requirements.txt")
    assert binder.pop("torch") == top.pop("torch") + "+cpu"  # the CPU wheel of the same release
    for name, spec in binder.items():
        assert top.get(name) == spec, f"binder pins {spec!r}, requirements.txt {top.get(name)!r}"
    assert set(top) - set(binder) == BUILD_AND_TEST_TOOLS, "a reader's package is missing from Binder"


def test_publishing_puts_the_notebooks_beside_the_sources_on_their_own_branch(tmp_path):
    """tools/publish-notebooks.sh on a scratch clone, pushing to a scratch remote."""
    import subprocess

    def git(*args, cwd):
        return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout

    remote, clone = tmp_path / "remote.git", tmp_path / "clone"
    git("init", "--bare", "--quiet", str(remote), cwd=tmp_path)
    (clone / "book" / "part").mkdir(parents=True)
    (clone / "tools").mkdir()
    (clone / "binder").mkdir()
    (clone / "tools" / "publish-notebooks.sh").write_text((ROOT / "tools" / "publish-notebooks.sh").read_text())
    (clone / "book" / "part" / "page.md").write_text("# Page\n")
    (clone / "binder" / "requirements.txt").write_text("numpy\n")
    (clone / ".gitignore").write_text("_build/\n*.ipynb\n")
    git("init", "--quiet", "-b", "main", cwd=clone)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "--allow-empty", "-m", "empty", cwd=clone)
    git("add", ".", cwd=clone)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "book", cwd=clone)
    converted = clone / "_build" / "html" / "_sources" / "book" / "part"
    converted.mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), converted / "page.ipynb")
    git("remote", "add", "origin", str(remote), cwd=clone)
    head = git("rev-parse", "HEAD", cwd=clone).strip()
    out = subprocess.run(["bash", "tools/publish-notebooks.sh"], cwd=clone, check=True,
                         capture_output=True, text=True).stdout
    assert "published 1 notebooks" in out
    files = git("ls-tree", "-r", "--name-only", "notebooks", cwd=remote).split()
    assert {"book/part/page.md", "book/part/page.ipynb", "binder/requirements.txt"} <= set(files)
    assert "_build" not in " ".join(files)
    # the checkout is untouched: same HEAD, clean index, no new branch
    assert git("rev-parse", "HEAD", cwd=clone).strip() == head
    assert git("status", "--porcelain", cwd=clone) == ""
    assert git("branch", "--format=%(refname:short)", cwd=clone).split() == ["main"]


def test_links_to_other_pages_point_to_the_site():
    text = _markdown(_convert("The [previous chapter](gradient-descent.md) and [its §2](../deep/dropout.md#mean) "
                              "and [the web](https://example.org/a.md) and [here](#top)."))
    site = nbconv.SITE
    assert f"[previous chapter]({site}/book/part/gradient-descent.html)" in text
    assert f"[its §2]({site}/book/deep/dropout.html#mean)" in text
    assert "(https://example.org/a.md)" in text and "[here](#top)" in text


def test_doc_references_read_the_pages_title_relative_or_absolute():
    titles = {"book/deep/dropout": "Dropout", "book/part/other": "Other"}
    text = _markdown(_convert("See {doc}`../deep/dropout`, {doc}`/book/deep/dropout`, {doc}`other` "
                              "and {doc}`that page <other>`.", titles=titles))
    assert "See *Dropout*, *Dropout*, *Other* and *that page*." in text
