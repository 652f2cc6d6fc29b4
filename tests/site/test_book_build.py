"""The build machinery: dependency tracking, the strict build, and the execution cache.

The fast tests check the extension's dependency analysis directly. The tests
marked ``build`` run the real ``make html`` (the command ``make book`` uses): on
scratch books, to show that a failing cell fails the build and that editing a
``dlbook`` module re-executes exactly the pages that import it; and on the book
itself in ``test_site.py``. Every build runs with the network blocked
(``tests/netblock``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NETBLOCK = ROOT / "tests" / "netblock"


def _load_extension(root: Path = ROOT):
    spec = importlib.util.spec_from_file_location(f"dlbook_build_{abs(hash(root))}", root / "book" / "_ext" / "dlbook_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_build(book_root: Path, jobs: int | None = None) -> subprocess.CompletedProcess:
    """``make html`` on ``book_root`` with the network blocked for every process;
    ``jobs`` is ``make html JOBS=...`` (pages executed at once)."""
    # the checkout's own dlbook comes first, whatever dlbook the environment has installed
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(NETBLOCK), str(ROOT)]), PYTHONDONTWRITEBYTECODE="1")
    env.pop("MPLBACKEND", None)  # the test session's Agg must not reach the kernels
    env.pop("DLBOOK_JOBS", None)
    command = ["make", "-s", "-C", str(ROOT), "html", f"BOOK_ROOT={book_root}"]
    if jobs is not None:
        command.append(f"JOBS={jobs}")
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=3000)


# --- dependency analysis (fast; the cases are in test_cache_keys.py) ---------------


def test_a_page_depends_on_what_it_imports_and_their_imports():
    ext = _load_extension()
    names = lambda deps: {p.relative_to(ROOT).as_posix() for p in deps if p.suffix == ".py"}  # noqa: E731
    deps = names(ext.dependencies("```{code-cell} ipython3\nfrom dlbook.linalg import solve\n```"))
    assert {"dlbook/__init__.py", "dlbook/linalg.py"} <= deps
    assert "dlbook/probability.py" not in deps and "dlbook/train.py" not in deps
    # Attribute access after `import dlbook` counts too.
    deps = names(ext.dependencies("```{code-cell} ipython3\nimport dlbook\nh = dlbook.train.fit\n```"))
    assert "dlbook/train.py" in deps


def test_a_page_without_dlbook_has_no_dependencies():
    ext = _load_extension()
    assert ext.dependencies("```{code-cell} ipython3\nimport torch\nprint('dlbook is great')\n```") == []


def test_the_digest_changes_with_the_source(tmp_path):
    ext = _load_extension()
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("x = 1\n")
    b.write_text("y = 2\n")
    before = ext._digest([a, b], tmp_path)
    assert ext._digest([a, b], tmp_path) == before
    a.write_text("x = 2\n")
    assert ext._digest([a, b], tmp_path) != before


def test_the_build_cell_carries_the_hash_and_the_thread_count():
    ext = _load_extension()
    page = "# T\n\n```{code-cell} ipython3\nimport dlbook.linalg\n```\n"
    text, deps = ext.with_build_cell("part/page", page)
    assert text.startswith(page.rstrip("\n")) and ext.BUILD_CELL_MARK in text
    assert ext._digest(deps) in text and f"thread\n# count ({ext.KERNEL_THREADS}" in text
    assert ext.with_build_cell("part/prose", "# Only prose\n") == ("# Only prose\n", [])


# --- scratch books (slow) ---------------------------------------------------------

PAGE = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# {title}

```{{code-cell}} ipython3
{code}
```
"""


def _scratch_book(tmp_path: Path, pages: dict[str, str]) -> Path:
    """A minimal book with the real _config.yml, extension and a copy of dlbook's sources."""
    root = tmp_path / "book"
    (root / "book" / "_ext").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", root)
    shutil.copy(ROOT / "references.bib", root)
    for extension in (ROOT / "book" / "_ext").glob("*.py"):
        shutil.copy(extension, root / "book" / "_ext")
    shutil.copytree(ROOT / "book" / "_static", root / "book" / "_static")
    shutil.copytree(ROOT / "dlbook", root / "dlbook", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "intro.md").write_text("# Scratch\n\nA scratch book for the build tests.\n")
    chapters = ""
    for name, code in pages.items():
        (root / f"{name}.md").write_text(PAGE.format(title=name.title(), code=textwrap.dedent(code)))
        chapters += f"  - file: {name}\n"
    (root / "_toc.yml").write_text(f"format: jb-book\nroot: intro\nchapters:\n{chapters}")
    return root


def _executed(log: str) -> set[str]:
    return {Path(line.split(":")[0]).stem for line in log.splitlines() if "Executing notebook" in line}


@pytest.mark.build
def test_a_failing_cell_fails_the_build(tmp_path):
    root = _scratch_book(tmp_path, {"broken": "raise RuntimeError('a deliberately failing cell')"})
    result = run_build(root)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "a deliberately failing cell" in output


@pytest.mark.build
def test_editing_dlbook_re_executes_exactly_the_pages_that_import_it(tmp_path):
    root = _scratch_book(tmp_path, {
        "uses_linalg": "from dlbook.linalg import solve\nimport torch\nprint(solve(torch.eye(2), torch.ones(2)))",
        "uses_probability": "from dlbook.probability import entropy\nimport torch\nprint(entropy(torch.ones(2) / 2))",
        "plain": "print(1 + 1)",
    })
    first = run_build(root)
    assert first.returncode == 0, first.stdout + first.stderr
    assert _executed(first.stdout + first.stderr) == {"uses_linalg", "uses_probability", "plain"}

    again = run_build(root)
    assert again.returncode == 0
    assert _executed(again.stdout + again.stderr) == set(), "an unchanged tree must execute nothing"

    linalg = root / "dlbook" / "linalg.py"
    linalg.write_text(linalg.read_text() + "\n# an edit to a dlbook module\n")
    edited = run_build(root)
    assert edited.returncode == 0, edited.stdout + edited.stderr
    assert _executed(edited.stdout + edited.stderr) == {"uses_linalg"}

    report = (root / "_build" / "exec-records" / "uses_linalg.json").read_text()
    assert '"device"' in report and '"torch"' in report
