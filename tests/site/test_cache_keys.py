"""Cache keys that cannot miss: what a page's code reaches in ``dlbook``.

The build extension (``book/_ext/dlbook_build.py``) hashes every ``dlbook`` file a
page's code cells reach into the page's execution-cache key. These tests run its
static analysis on a small stand-in package (written to a temporary folder, so
the cases do not move when the real package is reorganised) and, at the end, on
the real package. Fast: nothing is imported or executed.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.site.test_book_build import ROOT, _load_extension

ext = _load_extension()

MODULES = {
    "__init__.py": """
        from dlbook import _checks as check
        def seed(n): return n
    """,
    "_checks.py": "def positive_int(name, v): return v\n",
    "linalg.py": "from dlbook import _checks as check\ndef solve(a, b): return a\n",
    "probability.py": "def entropy(p): return p\n",
    "conv.py": "from ._checks import positive_int\ndef conv2d(x, w): return x\n",
    # cnn imports conv relatively, and pretrained only inside a function.
    "cnn.py": """
        from __future__ import annotations
        from typing import TYPE_CHECKING
        from .conv import conv2d
        if TYPE_CHECKING:
            from dlbook.probability import entropy   # annotations only: never runs
        class GlyphNet: ...
        def glyphnet(weights=None):
            from dlbook.pretrained import load_state_dict
            return GlyphNet()
    """,
    "pretrained.py": """
        from importlib import resources
        from dlbook.cnn import GlyphNet
        def load_state_dict(name):
            return resources.files("dlbook") / "weights" / name
    """,
    "plot.py": "import matplotlib\ndef style(): pass\n",
    "listing.py": "import importlib\ndef show(target): return target\n",
    "weights/glyphnet-letters.pt": "not really weights",
    "py.typed": "",
    # A lazy data package, the way dlbook.data is written: a table and __getattr__.
    "data/__init__.py": """
        import importlib
        from typing import TYPE_CHECKING
        _FAMILY = {"digits": "tabular", "iris": "tabular", "glyphs": "fonts", "Dataset": "_split"}
        __all__ = list(_FAMILY)
        def __getattr__(name):
            return getattr(importlib.import_module(f"dlbook.data.{_FAMILY[name]}"), name)
    """,
    "data/_split.py": "class Dataset: ...\n",
    "data/tabular.py": "from dlbook.data._split import Dataset\ndef digits(): pass\ndef iris(): pass\n",
    "data/fonts.py": "from ._split import Dataset\ndef glyphs(): pass\n",
    # Another lazy style: branches of __getattr__, no table.
    "zoo/__init__.py": """
        def __getattr__(name):
            if name == "lion":
                from .cats import lion
                return lion
            if name in ("wolf", "fox"):
                from dlbook.zoo import dogs
                return getattr(dogs, name)
            raise AttributeError(name)
    """,
    "zoo/cats.py": "def lion(): pass\n",
    "zoo/dogs.py": "def wolf(): pass\ndef fox(): pass\n",
    # A lazy package whose loader cannot be read statically: every submodule counts.
    "opaque/__init__.py": """
        import importlib
        def __getattr__(name):
            return importlib.import_module(_where(name))
    """,
    "opaque/a.py": "x = 1\n",
    "opaque/b.py": "y = 2\n",
    # An import cycle must not hang the analysis.
    "cyc_a.py": "from dlbook import cyc_b\n",
    "cyc_b.py": "from dlbook import cyc_a\n",
}


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("pkg") / "dlbook"
    for name, text in MODULES.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return directory


def page(code: str, prose: str = "Some prose.") -> str:
    return f"# A page\n\n{prose}\n\n```{{code-cell}} ipython3\n{textwrap.dedent(code).strip()}\n```\n"


def deps(package: Path, code: str, prose: str = "Some prose.") -> set[str]:
    """The dependency files of a page, relative to the package, without __init__/_checks."""
    files = ext.dependencies(page(code, prose), package)
    return {p.relative_to(package).as_posix() for p in files} - {"__init__.py", "_checks.py"}


# --- the cases -----------------------------------------------------------------------


def test_alias_of_the_package(package):
    assert deps(package, "import dlbook as D\nx = D.linalg.solve(1, 2)") == {"linalg.py"}


def test_from_import_with_alias(package):
    assert deps(package, "from dlbook import conv as C\ny = C.conv2d(1, 2)") == {"conv.py"}


def test_from_import_of_a_name(package):
    assert deps(package, "from dlbook.linalg import solve\nsolve(1, 2)") == {"linalg.py"}


def test_attribute_chain_after_a_plain_import(package):
    assert deps(package, "import dlbook\ndlbook.probability.entropy(0.5)") == {"probability.py"}
    # An alias made by assignment in one cell and used in a later one.
    two_cells = page("import dlbook\nP = dlbook.probability") + "\n```{code-cell} ipython3\nP.entropy(1)\n```\n"
    files = {p.name for p in ext.dependencies(two_cells, package)}
    assert "probability.py" in files and "linalg.py" not in files


def test_import_of_a_submodule(package):
    assert deps(package, "import dlbook.plot") == {"plot.py"}
    assert deps(package, "import dlbook.plot as P\nP.style()") == {"plot.py"}


def test_lazy_package_resolves_each_name_to_its_module(package):
    assert deps(package, "from dlbook.data import glyphs") == {"data/__init__.py", "data/fonts.py", "data/_split.py"}
    assert deps(package, "import dlbook.data\ndlbook.data.digits()") == {
        "data/__init__.py", "data/tabular.py", "data/_split.py"}
    assert deps(package, "from dlbook import data as D\nD.iris()") == {
        "data/__init__.py", "data/tabular.py", "data/_split.py"}
    # The package itself passed around as a value: any of its names may be used.
    assert {"data/fonts.py", "data/tabular.py"} <= deps(package, "import dlbook.data as D\nf(D)")


def test_lazy_package_written_with_branches(package):
    assert deps(package, "from dlbook.zoo import lion") == {"zoo/__init__.py", "zoo/cats.py"}
    assert deps(package, "from dlbook.zoo import fox") == {"zoo/__init__.py", "zoo/dogs.py"}


def test_lazy_package_that_cannot_be_read_counts_every_submodule(package):
    assert deps(package, "from dlbook.opaque import anything") == {
        "opaque/__init__.py", "opaque/a.py", "opaque/b.py"}


def test_show_string_is_a_dependency(package):
    code = 'from dlbook.listing import show\nshow("dlbook.conv.conv2d")'
    assert deps(package, code) == {"listing.py", "conv.py"}
    assert deps(package, "from dlbook.listing import show\nshow('dlbook.probability')") == {
        "listing.py", "probability.py"}
    # A dotted name built with an f-string counts as the whole module it starts with.
    assert "linalg.py" in deps(package, 'from dlbook.listing import show\nshow(f"dlbook.linalg.{name}")')


def test_prose_mention_is_not_a_dependency(package):
    prose = ("The module `dlbook.cnn` and `import dlbook.conv` in prose, and a Markdown block:\n\n"
             "```python\nimport dlbook.probability\n```\n")
    assert deps(package, "import dlbook.linalg", prose=prose) == {"linalg.py"}
    # A code-cell example nested in another directive is prose too.
    nested = "````{note}\n```{code-cell} ipython3\nimport dlbook.cnn\n```\n````"
    assert deps(package, "import dlbook.linalg", prose=nested) == {"linalg.py"}


def test_transitive_and_relative_imports(package):
    # cnn -> .conv (relative) and, inside glyphnet, dlbook.pretrained -> weights.
    found = deps(package, "from dlbook.cnn import glyphnet")
    assert {"cnn.py", "conv.py", "pretrained.py"} <= found
    # A TYPE_CHECKING import never runs: it is no dependency.
    assert "probability.py" not in found


def test_data_file_counts_through_the_module_that_loads_it(package):
    assert "weights/glyphnet-letters.pt" in deps(package, "from dlbook.cnn import glyphnet")
    assert "weights/glyphnet-letters.pt" in deps(package, "import dlbook.pretrained")
    assert not any(p.startswith("weights/") for p in deps(package, "from dlbook.linalg import solve"))
    # py.typed is a marker, not data.
    assert "py.typed" not in deps(package, "import dlbook.pretrained")


def test_unclaimed_data_file_counts_for_every_page(package, tmp_path):
    directory = tmp_path / "dlbook"
    directory.mkdir()
    (directory / "__init__.py").write_text("")
    (directory / "linalg.py").write_text("def solve(a, b): return a\n")
    (directory / "tables").mkdir()
    (directory / "tables" / "primes.csv").write_text("2,3,5\n")
    pkg = ext.Package(directory)
    assert [p.name for p in pkg.unclaimed_data()] == ["primes.csv"]
    assert "tables/primes.csv" in deps(directory, "from dlbook.linalg import solve")


def test_magics_and_shell_lines_are_dropped_but_timed_code_counts(package):
    code = """
        %matplotlib inline
        !pip list
        files = !ls
        import dlbook as D
        %timeit -n 3 D.conv.conv2d(1, 2)
        D.linalg?
    """
    assert deps(package, code) == {"conv.py"}
    cell_magic = "%%time\nimport dlbook.probability\n"
    assert deps(package, cell_magic) == {"probability.py"}
    assert deps(package, "%%bash\necho dlbook.linalg\n") == set()
    # A cell with a syntax error still counts the lines that parse.
    assert deps(package, "import dlbook.linalg\nthis is not Python\n") == {"linalg.py"}


def test_an_import_cycle_terminates(package):
    assert deps(package, "import dlbook.cyc_a") == {"cyc_a.py", "cyc_b.py"}


def test_code_without_dlbook_has_no_dependencies(package):
    # A string counts only when it is exactly a dotted dlbook name.
    assert ext.dependencies(page("print('dlbook.linalg is great')"), package) == []
    assert ext.dependencies(page("import torch\nx = torch.ones(2)"), package) == []
    assert ext.dependencies("# Prose only, about dlbook.linalg\n", package) == []


# --- the real package ------------------------------------------------------------------


def test_every_data_file_of_the_package_has_a_loader():
    pkg = ext.Package(ROOT / "dlbook")
    assert pkg.unclaimed_data() == [], "add these files to DATA_LOADERS in book/_ext/dlbook_build.py"
    for loaders in ext.DATA_LOADERS.values():
        for module in loaders:
            assert pkg.file(module) is not None, f"DATA_LOADERS names {module}, which does not exist"


def test_every_page_of_the_book_resolves():
    """Every page's code resolves to existing files, each including dlbook/__init__.py."""
    pkg_init = ROOT / "dlbook" / "__init__.py"
    pages = sorted((ROOT / "book").rglob("*.md"))
    assert pages
    for path in pages:
        files = ext.dependencies(path.read_text(encoding="utf8"))
        assert all(f.is_file() for f in files), path
        if files:
            assert pkg_init in files, path


def test_the_real_data_package_is_read_lazily():
    """``from dlbook.data import digits`` must not depend on the glyph renderer."""
    files = {p.relative_to(ROOT).as_posix() for p in ext.dependencies(page("from dlbook.data import digits"))}
    assert "dlbook/data/tabular.py" in files
    assert "dlbook/data/fonts.py" not in files
