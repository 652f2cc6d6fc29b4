"""Sphinx extension for the dlbook build: exact execution-cache keys, parallel
execution, the build report, and MathJax served from the site.

Cache keys
----------
Jupyter Book's execution cache (jupyter-cache) keys a page on its code cells
only, so editing a ``dlbook`` function would leave every page that uses it
showing stale outputs. For each page this extension

1. reads the code cells with the reader MyST-NB itself uses (so it sees exactly
   the code that executes, never the prose), turns IPython syntax into Python
   with IPython's own transformer (magics and ``!shell`` lines become calls;
   the code inside ``%time``/``%timeit``/``%%capture`` is parsed as code too)
   and parses every cell with :mod:`ast`;
2. finds every ``dlbook`` name the code reaches: ``import dlbook.x``, aliases
   (``import dlbook as D`` then ``D.linalg.solve``), ``from dlbook import conv as
   C``, ``from dlbook.data import glyphs``, attribute chains, and any string in
   the code that is a dotted ``dlbook`` name (what ``show("dlbook.conv.conv2d")``
   displays is a dependency);
3. resolves each name to the module that defines it and follows the package's
   own imports transitively (see :class:`Package` for the rules, lazy
   ``__getattr__`` packages included), adds the package data files those
   modules load (:data:`DATA_LOADERS`), and hashes all of it;
4. appends one hidden cell (tag ``remove-cell``) that carries the hash and the
   kernels' thread count, so a changed dependency changes the page's cache key
   and the page re-executes; an unchanged tree matches the cache and executes
   nothing. The cell calls :func:`dlbook._buildinfo.record`, which writes the
   device and versions the page ran with for the build report;
5. registers the dependency files with Sphinx, so a page is re-read when one of
   them changes even though its own source did not.

Parallel execution: why pre-execution into the cache
---------------------------------------------------
Jupyter Book 1 executes pages one after another, inside MyST-NB's parser. The
options, and why this extension takes the last one:

* Sphinx's parallel read (``-j N``): ``jupyter-book build`` has no flag for it;
  two extensions Jupyter Book always loads (``sphinx_jupyterbook_latex``,
  ``sphinx_multitoc_numbering``) do not declare ``parallel_read_safe``, so
  Sphinx warns and reads serially (the warning alone fails our ``-W`` build);
  sphinxcontrib-bibtex became parallel-safe only in 2.x and its footnote
  citations are the part most often reported broken under ``-j``; and Sphinx
  deals documents out in fixed chunks (``make_chunks``), so a few heavy pages
  in one chunk serialise anyway. Each forked reader would also write to the
  cache's SQLite database concurrently.
* jupyter-cache's own parallel executor (``jcache project execute``) keys and
  runs the notebook *files*; our key lives in the cell this extension appends
  while Sphinx reads the page, so it would cache notebooks Sphinx never asks
  for.
* Chosen: at ``env-before-read-docs`` (after Sphinx knows which pages it will
  read, before it reads any) build each page's notebook exactly as MyST-NB
  will (same reader, same appended cell, same kernel aliases and per-page
  options), look it up in the same jupyter-cache, and execute the misses N at
  a time, longest first when an earlier run's time is known. Each page runs in
  its own kernel process (N kernels at once), driven by a thread of this
  process through nbclient (the same ``single_nb_execution`` MyST-NB calls);
  the threads only relay messages, so the kernels are the workers, they share
  jupyter-client's port cache (no port races between simultaneous launches),
  and only this thread writes the cache database, as each page finishes.
  Sphinx then reads and renders serially and every page is a cache hit with
  outputs identical to a serial run's. A page whose execution fails is not
  cached: MyST-NB runs it once more while reading and reports the error
  exactly as it always has (the strict build fails).

``DLBOOK_JOBS`` (``make html JOBS=N``) sets N; the default is the number of
cores this process may use; ``1`` is the serial build. Every kernel runs with
one thread (OpenMP, MKL, OpenBLAS, torch's intra-op pool read the variables set
at ``builder-inited`` before any kernel starts), whatever N and the machine, so
a 2-core and a 16-core build print the same numbers and N kernels never
oversubscribe N cores.

MathJax and the report
----------------------
The build copies MathJax 3 from the ``django-static-mathjax`` package (plain
files, no Django needed) into ``_static/mathjax``; ``_config.yml`` points
``mathjax_path`` there, so math renders with no network and from ``file://``.
The ``dlbook-build-report`` directive renders, at write time, a table of every
executed page: status, run time, device, torch version, whether the outputs
come from this build or the cache, with the worker count of the build.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import hashlib
import json
import os
import platform
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import as_completed as _as_completed
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "dlbook"
LOGGER = logging.getLogger(__name__)
_STARTED = 0.0  # when this build began (set at builder-inited)

# --- 1. what a page's code refers to ---------------------------------------------

#: Package data files (glob patterns relative to ``dlbook/``) and the modules that
#: load them. A page depends on a data file when the closure of its imports
#: contains one of the file's loaders: ``dlbook.pretrained`` reads
#: ``dlbook/weights/*`` through ``importlib.resources``, and every module that
#: calls it (``dlbook.cnn.glyphnet`` does) reaches it through the import closure.
#: A data file that no pattern claims counts for every page that uses ``dlbook``
#: at all (never a missed dependency), and ``tests/site/test_cache_keys.py``
#: fails until it is added here. ``py.typed`` is a marker, not data.
DATA_LOADERS: dict[str, tuple[str, ...]] = {
    "weights/*": ("dlbook.pretrained",),
}
NOT_DATA = ("*.py", "*.pyc", "*.pyi", "py.typed")

#: Magics whose argument (line magic) or body (cell magic) runs as Python.
PYTHON_MAGICS = frozenset({"time", "timeit", "prun", "capture", "debug"})
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


def code_cells(text: str) -> list[str]:
    """The code cells of a MyST Markdown notebook, read as MyST-NB reads them.

    Only top-level ``{code-cell}`` blocks are cells; prose, Markdown code
    blocks and ``{code-cell}`` examples nested in other directives are not.
    """
    from myst_nb.core.read import read_myst_markdown_notebook
    from myst_parser.config.main import MdParserConfig

    notebook = read_myst_markdown_notebook(text, MdParserConfig())
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def _parse_loosely(code: str) -> ast.Module | None:
    """``code`` parsed, dropping leading option tokens (``-n 3 f(x)``) if needed."""
    rest = code.strip()
    for _ in range(8):
        try:
            return ast.parse(rest)
        except SyntaxError:
            head, _, rest = rest.partition(" ")
            if not rest.strip():
                return None
            rest = rest.strip()
    return None


@functools.lru_cache(maxsize=1)
def _ipython_transformer():
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager()


def python_trees(cell: str) -> list[ast.Module]:
    """The Python a cell runs, parsed: IPython syntax turned into calls by IPython's
    own transformer (so ``%matplotlib``, ``!ls`` and ``x?`` drop out), plus the code
    that magics such as ``%timeit`` and ``%%capture`` run. The body of a cell
    magic that is not Python (``%%bash``) refers to nothing."""
    try:
        code = _ipython_transformer().transform_cell(cell)
    except ImportError:  # pragma: no cover - IPython comes with every kernel
        code = "\n".join(line for line in cell.splitlines() if not line.lstrip().startswith(("%", "!")))
    try:
        trees = [ast.parse(code)]
    except SyntaxError:
        # The kernel will fail on this cell too; keep every line that parses, so
        # the imports and uses it has still count.
        trees = []
        for line in code.splitlines():
            try:
                trees.append(ast.parse(line.strip()))
            except SyntaxError:
                continue
    tree = ast.Module(body=[stmt for t in trees for stmt in t.body], type_ignores=[])
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("run_line_magic", "run_cell_magic")
                and node.args and isinstance(node.args[0], ast.Constant)
                and node.args[0].value in PYTHON_MAGICS):
            for arg in node.args[1:]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    inner = _parse_loosely(arg.value)
                    if inner is not None:
                        trees.append(inner)
    return trees


def _chain(node: ast.AST) -> list[str] | None:
    """``a.b.c`` as ``["a", "b", "c"]``; None for anything but a name chain."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


def _absolute(module: str | None, level: int, package: str | None) -> str | None:
    """The absolute name of ``from <level dots><module> import ...`` inside ``package``."""
    if not level:
        return module
    if package is None:
        return None
    anchor = package.split(".")
    if level - 1 >= len(anchor):
        return None
    base = anchor[: len(anchor) - (level - 1)]
    return ".".join(base + ([module] if module else []))


class _Scan:
    """What one body of code refers to (names as dotted strings, ``x.*`` = all of x)."""

    def __init__(self) -> None:
        self.refs: set[str] = set()
        self.bindings: dict[str, set[str]] = {}


def scan(trees: list[ast.AST], *, root: str = "dlbook", package: str | None = None) -> _Scan:
    """Every ``root`` name that the code in ``trees`` imports, reaches by attribute
    or names in a string.

    Flow-insensitive on purpose: a name bound to a ``dlbook`` object anywhere
    (import, ``X = dlbook.conv``) counts everywhere, so nothing is missed when a
    cell reuses an alias from an earlier cell or a function imports lazily.
    ``package`` resolves relative imports (the package the code lives in).
    """
    result = _Scan()
    bind = result.bindings

    def add(name: str, target: str) -> None:
        bind.setdefault(name, set()).add(target)

    def ours(name: str | None) -> bool:
        return bool(name) and (name == root or name.startswith(root + "."))

    # Pass 1: imports, in every scope.
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if not ours(alias.name):
                        continue
                    result.refs.add(alias.name)
                    if alias.asname:
                        add(alias.asname, alias.name)
                    else:
                        add(alias.name.split(".")[0], root)
            elif isinstance(node, ast.ImportFrom):
                module = _absolute(node.module, node.level, package)
                if not ours(module):
                    continue
                result.refs.add(module)
                for alias in node.names:
                    if alias.name == "*":
                        result.refs.add(f"{module}.*")
                    else:
                        result.refs.add(f"{module}.{alias.name}")
                        add(alias.asname or alias.name, f"{module}.{alias.name}")

    def resolve(parts: list[str]) -> set[str]:
        return {".".join([t, *parts[1:]]) for t in bind.get(parts[0], ())}

    # Pass 2: plain assignments of a bound chain (``C = dlbook.conv``), to a fixed point.
    for _ in range(3):
        changed = False
        for tree in trees:
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    parts = _chain(node.value)
                    for target in resolve(parts) if parts else ():
                        if target not in bind.get(node.targets[0].id, ()):
                            add(node.targets[0].id, target)
                            changed = True
        if not changed:
            break

    # Pass 3: uses. The longest attribute chain on a bound name; a bound module
    # name used as a value (passed on, iterated) counts as all of it.
    for tree in trees:
        inner: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                inner.add(id(node.value))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Attribute, ast.Name)) and id(node) not in inner:
                parts = _chain(node)
                if parts and parts[0] in bind:
                    targets = resolve(parts)
                    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                        targets = {f"{t}.*" for t in targets}
                    result.refs.update(targets)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                if _DOTTED.fullmatch(node.value) and ours(node.value):
                    result.refs.add(node.value)
            elif isinstance(node, ast.JoinedStr) and node.values:
                head = node.values[0]
                if isinstance(head, ast.Constant) and isinstance(head.value, str):
                    prefix = head.value.rstrip(".")
                    if _DOTTED.fullmatch(prefix) and ours(prefix):
                        result.refs.add(f"{prefix}.*")
    return result


def _is_type_checking(test: ast.AST) -> bool:
    parts = _chain(test)
    return bool(parts) and parts[-1] == "TYPE_CHECKING"


def _module_level(stmts: list[ast.stmt]):
    """Statements that run when a module is imported: the body, and the bodies of
    its ``if``/``try``/``with``/``for`` blocks, but not of functions and classes."""
    for stmt in stmts:
        yield stmt
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for block in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, block, None)
            if isinstance(inner, list):
                yield from _module_level(inner)
        for handler in getattr(stmt, "handlers", None) or []:
            yield from _module_level(handler.body)


class _Module(NamedTuple):
    """Static facts about one package module."""

    name: str
    eager: set[str]                  # names its code reaches when it runs (not lazily)
    exports: dict[str, set[str]]     # module-level name -> what it was imported from
    defined: set[str]                # names defined here
    lazy: dict[str, set[str]]        # name -> modules a module-level __getattr__ loads for it
    lazy_all: set[str]               # everything that __getattr__ can load
    has_getattr: bool


class Package:
    """Static import graph of a package (``dlbook``), read with :mod:`ast`, never imported.

    Rules, applied to every module:

    * A module depends on everything its code imports or reaches (module level,
      functions and methods alike: a function-level import runs when the function
      does), absolute or relative, plus every parent package's ``__init__``.
    * A name ``pkg.name`` resolves to the submodule ``pkg/name.py`` if there is one,
      else to where ``pkg`` got ``name`` from (its own definition, or the module it
      imported it from, also under ``if TYPE_CHECKING:``), else to the module
      ``pkg``'s lazy loader loads for it.
    * Lazy packages: the body of a module-level ``__getattr__`` (and imports under
      ``if TYPE_CHECKING:``) is not run by importing the package, so it is not an
      eager dependency. The names it serves come from (a) ``if name == "x"`` /
      ``if name in (...)`` branches and the imports or ``import_module`` strings in
      them, and (b) module-level dict literals whose keys and values name a
      submodule and the names it serves, either way round
      (``{"glyphs": "fonts"}``, ``{"glyphs": "dlbook.data.fonts"}``,
      ``{".fonts": ("glyphs", "render")}``). A name the package's ``__getattr__``
      serves but these rules cannot place resolves to every module the loader can
      reach, and if that is unknown, to every submodule of the package.
    """

    def __init__(self, directory: Path = PACKAGE) -> None:
        self.directory = Path(directory)
        self.name = self.directory.name
        self._cache: dict[Path, tuple[tuple[int, int], _Module]] = {}

    # -- files ------------------------------------------------------------------
    def file(self, module: str) -> Path | None:
        """The source file of a dotted module name of this package, if it is one."""
        parts = module.split(".")
        if parts[0] != self.name or not all(p.isidentifier() for p in parts):
            return None
        base = self.directory.joinpath(*parts[1:])
        for candidate in (base / "__init__.py", base.with_suffix(".py")):
            if candidate.is_file():
                return candidate
        return None

    def submodules(self, module: str) -> set[str]:
        path = self.file(module)
        if path is None or path.name != "__init__.py":
            return set()
        found = set()
        for child in path.parent.iterdir():
            name = child.stem if child.suffix == ".py" else child.name
            if child.name != "__init__.py" and self.file(f"{module}.{name}"):
                found.add(f"{module}.{name}")
        return found

    def data_files(self) -> list[Path]:
        return sorted(
            p for p in self.directory.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
            and not any(fnmatch.fnmatch(p.name, pattern) for pattern in NOT_DATA)
        )

    def unclaimed_data(self) -> list[Path]:
        """Data files no :data:`DATA_LOADERS` pattern claims."""
        return [p for p in self.data_files() if not self._loaders_of(p)]

    def _loaders_of(self, path: Path) -> set[str]:
        rel = path.relative_to(self.directory).as_posix()
        return {m for pattern, loaders in DATA_LOADERS.items() if fnmatch.fnmatch(rel, pattern) for m in loaders}

    # -- per-module facts ---------------------------------------------------------
    def module(self, name: str) -> _Module | None:
        path = self.file(name)
        if path is None:
            return None
        stat = path.stat()
        key = (stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(path)
        if cached and cached[0] == key:
            return cached[1]
        info = self._analyse(name, path)
        self._cache[path] = (key, info)
        return info

    def _analyse(self, name: str, path: Path) -> _Module:
        tree = ast.parse(path.read_text(encoding="utf8"))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        eager_body: list[ast.stmt] = []
        lazy_body: list[ast.stmt] = []
        for stmt in tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name in ("__getattr__", "__dir__"):
                lazy_body.append(stmt)
            elif isinstance(stmt, ast.If) and _is_type_checking(stmt.test):
                eager_body.extend(stmt.orelse)  # its body never runs; its names are read below
            else:
                eager_body.append(stmt)
        eager = scan([ast.Module(body=eager_body, type_ignores=[])], root=self.name, package=package).refs

        exports: dict[str, set[str]] = {}
        defined: set[str] = set()
        for stmt in _module_level(tree.body):
            if isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    if alias.asname:
                        exports.setdefault(alias.asname, set()).add(alias.name)
            elif isinstance(stmt, ast.ImportFrom):
                module = _absolute(stmt.module, stmt.level, package)
                for alias in stmt.names:
                    if module and alias.name != "*":
                        exports.setdefault(alias.asname or alias.name, set()).add(f"{module}.{alias.name}")
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(stmt.name)
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                for target in stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]:
                    defined.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))

        lazy: dict[str, set[str]] = {}
        lazy_all: set[str] = set()
        has_getattr = any(getattr(s, "name", None) == "__getattr__" for s in lazy_body)
        if has_getattr:
            lazy, lazy_all = self._lazy_map(tree, lazy_body, package)
        return _Module(name, eager, exports, defined, lazy, lazy_all, has_getattr)

    def _as_module(self, text: str, package: str) -> str | None:
        """A string naming a module of this package: absolute, relative or bare."""
        if text.startswith("."):
            level = len(text) - len(text.lstrip("."))
            candidate = _absolute(text[level:] or None, level, package)
        elif text == self.name or text.startswith(self.name + "."):
            candidate = text
        else:
            candidate = f"{package}.{text}"
        return candidate if candidate and self.file(candidate) else None

    def _lazy_map(self, tree: ast.Module, lazy_body: list[ast.stmt], package: str) -> tuple[dict[str, set[str]], set[str]]:
        lazy: dict[str, set[str]] = {}
        reach: set[str] = set()

        def strings(node: ast.AST) -> list[str]:
            return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]

        def imported_in(stmts: list[ast.stmt]) -> set[str]:
            found = set()
            for ref in scan([ast.Module(body=stmts, type_ignores=[])], root=self.name, package=package).refs:
                found.add(ref.removesuffix(".*"))
            for node in ast.walk(ast.Module(body=stmts, type_ignores=[])):
                if isinstance(node, ast.Call):
                    for text in strings(node):
                        module = self._as_module(text, package) if _DOTTED.fullmatch(text.lstrip(".")) else None
                        if module:
                            found.add(module)
            return {m for m in (self._module_of(r) for r in found) if m}

        # (b) dict literals anywhere at module level: {"name": "module"} either way round.
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values):
                    if key is None:
                        continue
                    texts = strings(key) + strings(value)
                    modules = {m for t in texts if _DOTTED.fullmatch(t.lstrip(".")) for m in [self._as_module(t, package)] if m}
                    if not modules:
                        continue
                    reach |= modules
                    for text in texts:
                        if text.isidentifier() and f"{package}.{text}" not in modules:
                            lazy.setdefault(text, set()).update(modules)
        # (a) branches of __getattr__ that test the name against strings.
        for function in lazy_body:
            reach |= imported_in(function.body)
            for node in ast.walk(function):
                if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
                    names = [t for t in strings(node.test) if t.isidentifier()]
                    modules = imported_in(node.body)
                    for name in names:
                        if modules:
                            lazy.setdefault(name, set()).update(modules)
        if not reach:
            reach = self.submodules(package)
        return lazy, reach

    def _module_of(self, dotted: str) -> str | None:
        """The longest prefix of ``dotted`` that is a module of this package."""
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            if self.file(".".join(parts[:cut])):
                return ".".join(parts[:cut])
        return None

    # -- resolution ---------------------------------------------------------------
    def resolve(self, dotted: str, _seen: set[str] | None = None) -> set[str]:
        """The modules that define what ``dotted`` names (``x.*``: all of module x)."""
        seen = set() if _seen is None else _seen
        if dotted in seen:
            return set()
        seen.add(dotted)
        parts = dotted.split(".")
        if parts[0] != self.name:
            return set()
        found = {self.name} if self.file(self.name) else set()
        current = self.name
        for i, part in enumerate(parts[1:], start=1):
            info = self.module(current)
            if part == "*":
                if info is not None:
                    found |= self._all_of(info, seen)
                break
            sub = f"{current}.{part}"
            if self.file(sub):
                found.add(sub)
                current = sub
                continue
            if info is None:
                break
            rest = ".".join(parts[i + 1:])
            if part in info.exports:
                for target in info.exports[part]:
                    found |= self.resolve(f"{target}.{rest}" if rest else target, seen)
            elif part in info.defined:
                pass
            elif part in info.lazy:
                for module in info.lazy[part]:
                    found |= self.resolve(module, seen)
            elif info.has_getattr:
                for module in info.lazy_all:
                    found |= self.resolve(module, seen)
            break
        return found

    def _all_of(self, info: _Module, seen: set[str]) -> set[str]:
        found = {info.name}
        for targets in info.exports.values():
            for target in targets:
                found |= self.resolve(target, seen)
        for module in info.lazy_all:
            found |= self.resolve(module, seen)
        return found

    def closure(self, refs: set[str] | frozenset[str]) -> set[str]:
        """Every module that ``refs`` reach, following the package's own imports."""
        pending = set()
        for ref in refs:
            pending |= self.resolve(ref)
        seen: set[str] = set()
        while pending:
            module = pending.pop()
            if module in seen:
                continue
            seen.add(module)
            parts = module.split(".")
            pending.update(".".join(parts[:i]) for i in range(1, len(parts)) if self.file(".".join(parts[:i])))
            info = self.module(module)
            if info is not None:
                for ref in info.eager:
                    pending |= self.resolve(ref)
        return seen

    def files(self, refs: set[str] | frozenset[str]) -> list[Path]:
        """The sources of the closure of ``refs`` and the data files they load."""
        modules = self.closure(refs)
        if not modules:
            return []
        files = {self.file(m) for m in modules}
        for path in self.data_files():
            loaders = self._loaders_of(path)
            if not loaders or loaders & modules:
                files.add(path)
        return sorted(f for f in files if f is not None)


_PACKAGES: dict[Path, Package] = {}


def _package(directory: Path) -> Package:
    directory = Path(directory).resolve()
    if directory not in _PACKAGES:
        _PACKAGES[directory] = Package(directory)
    return _PACKAGES[directory]


@functools.lru_cache(maxsize=256)
def page_references(text: str, root: str = "dlbook") -> frozenset[str]:
    """The ``dlbook`` names a page's code cells refer to."""
    trees = [tree for cell in code_cells(text) for tree in python_trees(cell)]
    return frozenset(scan(trees, root=root).refs)


def dependencies(text: str, package: Path = PACKAGE) -> list[Path]:
    """The files a page depends on: the modules its code reaches, their imports
    within the package (transitively), and the data files those modules load."""
    pkg = _package(package)
    return pkg.files(page_references(text, pkg.name))


def code_dependencies(code: str, package: Path = PACKAGE) -> list[Path]:
    """:func:`dependencies` of one block of Python (a single code cell)."""
    pkg = _package(package)
    return pkg.files(scan(python_trees(code), root=pkg.name).refs)


def _digest(paths: list[Path], base: Path = ROOT) -> str:
    h = hashlib.sha256()
    for path in paths:
        try:
            name = path.relative_to(base).as_posix()
        except ValueError:
            name = path.name
        h.update(name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


# --- 2. the hidden cell that keys the cache ---------------------------------------

BUILD_CELL_MARK = "# Added by the build (book/_ext/dlbook_build.py)"
_CODE_CELL = re.compile(r"^(`{3,}|:{3,})\{code-cell\}", re.M)

#: Threads every kernel runs with, whatever the machine and the worker count:
#: a page's trained numbers depend on it (reductions split differently), so it
#: is part of every page's cache key.
KERNEL_THREADS = 1
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def with_build_cell(docname: str, text: str, package: Path = PACKAGE) -> tuple[str, list[Path]]:
    """The page as MyST-NB reads it (one hidden cell appended) and its dependency files."""
    if not _CODE_CELL.search(text):
        return text, []
    deps = dependencies(text, package)
    digest = _digest(deps, Path(package).parent) if deps else "none"
    return (
        text.rstrip("\n")
        + "\n\n```{code-cell} ipython3\n:tags: [remove-cell]\n\n"
        + BUILD_CELL_MARK + ": the hash keys this page's\n"
        + "# execution cache on the dlbook sources it uses and on the kernel's thread\n"
        + f"# count ({KERNEL_THREADS}: OpenMP, MKL, OpenBLAS and torch); record() logs the device.\n"
        + "import dlbook._buildinfo\n\n"
        + f"dlbook._buildinfo.record({docname!r}, {digest!r})\n```\n"
    ), deps


def _inject(app: Sphinx, docname: str, source: list[str]) -> None:
    """source-read: key the page's cache entry on its dlbook dependencies."""
    source[0], deps = with_build_cell(docname, source[0])
    for path in deps:
        app.env.note_dependency(str(path))


def workers() -> int:
    """Pages executed at once: ``$DLBOOK_JOBS``, else the cores this process may use."""
    value = os.environ.get("DLBOOK_JOBS", "").strip().lower()
    if value not in ("", "auto", "0"):
        if not value.isdigit():
            raise ValueError(f"DLBOOK_JOBS must be a positive integer (or empty for one per core), got {value!r}")
        return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _records_dir(app: Sphinx) -> Path:
    return Path(app.outdir).parent / "exec-records"


def _setup_environment(app: Sphinx) -> None:
    """builder-inited: the kernels' environment (they are children of this process)."""
    records = _records_dir(app)
    records.mkdir(parents=True, exist_ok=True)
    (records / EXECUTION_SUMMARY).unlink(missing_ok=True)
    global _STARTED
    _STARTED = time.time()
    os.environ["DLBOOK_BUILD"] = "1"
    os.environ["DLBOOK_BUILD_RECORD_DIR"] = str(records)
    # One thread per kernel, set before any kernel starts (torch sizes its
    # intra-op pool from OMP_NUM_THREADS when it is imported).
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(KERNEL_THREADS)
    # Figures must reach the page: a non-interactive backend inherited from the
    # caller (a test run sets Agg) would make plt.show() display nothing.
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"


# --- 3. parallel execution into MyST-NB's cache -----------------------------------

EXECUTION_SUMMARY = "_execution.json"


class _Job(NamedTuple):
    docname: str
    path: Path
    notebook: object
    nb_config: object
    read_fmt: dict | None


def _job(env, docname: str) -> _Job | None:
    """The notebook MyST-NB will build for ``docname`` and the options it will run it
    with (mirrors ``myst_nb.sphinx_.Parser.parse`` and ``create_client``); None if it
    will not execute it through the cache."""
    from pathlib import PurePosixPath

    from myst_nb.core.nb_to_tokens import nb_node_to_dict
    from myst_nb.core.read import create_nb_reader

    path = env.doc2path(docname)
    text = Path(path).read_text(encoding=env.config.source_encoding)
    text, _ = with_build_cell(docname, text)
    reader = create_nb_reader(path, env.myst_config, env.mystnb_config, text)
    if reader is None:
        return None
    notebook = reader.read(text)
    nb_config = env.mystnb_config
    kernel = notebook.metadata.get("kernelspec", {}).get("name", None)
    if kernel is not None and nb_config.kernel_rgx_aliases:
        for pattern, alias in nb_config.kernel_rgx_aliases.items():
            if re.fullmatch(pattern, kernel):
                notebook.metadata["kernelspec"]["name"] = alias
                break
    if nb_config.metadata_key in notebook.metadata:
        overrides = nb_node_to_dict(notebook.metadata[nb_config.metadata_key])
        overrides.pop("output_folder", None)
        nb_config = nb_config.copy(**overrides)
    if nb_config.execution_mode != "cache":
        return None
    posix = PurePosixPath(Path(path).as_posix())
    if any(posix.match(pattern) for pattern in nb_config.execution_excludepatterns or ()):
        return None
    return _Job(docname, Path(path), notebook, nb_config, reader.read_fmt)


def _run(job: _Job):
    """Execute one notebook in a fresh kernel, as MyST-NB's cache client does."""
    from contextlib import nullcontext
    from tempfile import TemporaryDirectory

    from jupyter_cache.executors.utils import single_nb_execution

    cwd_context = TemporaryDirectory() if job.nb_config.execution_in_temp else nullcontext(str(job.path.parent))
    with cwd_context as cwd:
        return single_nb_execution(
            job.notebook, cwd=os.path.abspath(cwd), allow_errors=job.nb_config.execution_allow_errors,
            timeout=job.nb_config.execution_timeout, meta_override=True,
        )


def _pre_execute(app: Sphinx, env, docnames: list[str]) -> None:
    """env-before-read-docs: execute every page Sphinx is about to read whose
    outputs are not in the cache, ``workers()`` at a time, and cache them."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    if getattr(env, "mystnb_config", None) is None or env.mystnb_config.execution_mode != "cache":
        return
    n_workers = workers()
    cache = get_cache(env.mystnb_config.execution_cache_path or ".jupyter_cache")
    jobs: list[_Job] = []
    for docname in docnames:
        try:
            job = _job(env, docname)
        except Exception as error:  # MyST-NB will meet the same problem and report it
            LOGGER.info(f"not pre-executed: {error}", location=docname)
            continue
        if job is None:
            continue
        try:
            cache.match_cache_notebook(job.notebook)
        except KeyError:
            jobs.append(job)
    summary = {"workers": n_workers, "threads_per_kernel": KERNEL_THREADS, "pages": {}, "failed": [], "wall_seconds": 0.0}
    if jobs:
        # Longest first (times of earlier runs; pages never timed go first).
        previous: dict[str, float] = {}
        for record in cache.list_cache_records():
            seconds = (record.data or {}).get("execution_seconds") or 0.0
            previous[record.uri] = max(previous.get(record.uri, 0.0), seconds)
        jobs.sort(key=lambda j: -previous.get(str(j.path.absolute()), float("inf")))
        LOGGER.info(f"executing {len(jobs)} notebook(s) with {min(n_workers, len(jobs))} worker(s), "
                    f"{KERNEL_THREADS} thread(s) per kernel")
        slots: dict[str, int] = {}
        lock = threading.Lock()

        def work(job: _Job):
            with lock:
                slot = slots.setdefault(threading.current_thread().name, len(slots) + 1)
            LOGGER.info(f"Executing notebook in worker {slot} of {n_workers}", location=job.docname)
            return slot, _run(job)

        def store(job: _Job, future) -> None:
            """Cache one finished page (on this thread: the only one that writes the cache)."""
            try:
                slot, result = future.result()
            except Exception as error:  # a kernel that would not start, say
                LOGGER.info(f"pre-execution failed ({error}); MyST-NB will run the page",
                            location=job.docname)
                summary["failed"].append(job.docname)
                return
            if result.err is not None:
                LOGGER.info(f"a cell failed ({result.err.__class__.__name__}); MyST-NB will run "
                            "the page again to report it", location=job.docname)
                summary["failed"].append(job.docname)
                return
            stage = (cache.add_nb_to_project(str(job.path), read_data=job.read_fmt) if job.read_fmt
                     else cache.add_nb_to_project(str(job.path)))
            cache.cache_notebook_bundle(
                CacheBundleIn(job.notebook, stage.uri, data={"execution_seconds": result.time}),
                check_validity=False, overwrite=True,
            )
            summary["pages"][job.docname] = {"seconds": round(result.time, 2), "worker": slot}
            LOGGER.info(f"executed in {result.time:.1f} s by worker {slot}; cached", location=job.docname)

        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="dlbook-exec") as pool:
            futures = {pool.submit(work, job): job for job in jobs}
            try:
                for future in _as_completed(futures):
                    store(futures[future], future)
            except BaseException:  # Ctrl-C: start no other page
                for future in futures:
                    future.cancel()
                raise
        summary["wall_seconds"] = round(time.perf_counter() - start, 2)
        LOGGER.info(f"executed {len(summary['pages'])} notebook(s) in {summary['wall_seconds']:.1f} s "
                    f"with {n_workers} worker(s)")
    (_records_dir(app) / EXECUTION_SUMMARY).write_text(json.dumps(summary, indent=1), encoding="utf8")


# --- 4. the build report ----------------------------------------------------------


class BuildReportNode(nodes.General, nodes.Element):
    """Placeholder replaced by the report table once every page has been read."""


class BuildReportDirective(SphinxDirective):
    """``dlbook-build-report``: a table of every executed page."""

    def run(self) -> list[nodes.Node]:
        from myst_nb.ext.execution_tables import METADATA_KEY
        from myst_nb.sphinx_ import NbMetadataCollector

        # MyST-NB writes a document carrying its execution-table key again whenever
        # any page was read, so the table never shows an earlier build's times.
        NbMetadataCollector.set_doc_data(self.env, self.env.docname, METADATA_KEY, True)
        return [BuildReportNode()]


def _row(*cells: str | nodes.Node) -> nodes.row:
    row = nodes.row()
    for cell in cells:
        entry = nodes.entry()
        entry += cell if isinstance(cell, nodes.Node) else nodes.paragraph(text=cell)
        row += entry
    return row


def _table(header: list[str], rows: list[nodes.row]) -> nodes.table:
    table = nodes.table(classes=["colwidths-auto"])
    group = nodes.tgroup(cols=len(header))
    table += group
    group.extend(nodes.colspec(colwidth=1) for _ in header)
    head = nodes.thead()
    head += _row(*header)
    body = nodes.tbody()
    body.extend(rows)
    group += head
    group += body
    return table


class BuildReportTransform(SphinxPostTransform):
    default_priority = 8  # before references are resolved

    def run(self, **kwargs) -> None:
        from myst_nb.sphinx_ import NbMetadataCollector

        records_dir = Path(os.environ.get("DLBOOK_BUILD_RECORD_DIR", ""))
        summary_path = records_dir / EXECUTION_SUMMARY
        summary = json.loads(summary_path.read_text(encoding="utf8")) if summary_path.is_file() else {}
        workers_used = summary.get("pages", {})
        doc_data = NbMetadataCollector.get_doc_data(self.env)
        for placeholder in list(self.document.findall(BuildReportNode)):
            rows, total = [], 0.0
            order = _toc_order(self.env)
            for docname in sorted(doc_data, key=lambda d: (order.get(d, len(order)), d)):
                exec_data = doc_data[docname].get("exec_data")
                if not exec_data:
                    continue
                runtime = exec_data.get("runtime") or 0.0
                total += runtime
                record = {}
                path = records_dir / f"{docname.replace('/', '__')}.json"
                if path.is_file():
                    record = json.loads(path.read_text(encoding="utf8"))
                link = nodes.paragraph()
                ref = nodes.reference("", self.env.titles[docname].astext() if docname in self.env.titles else docname,
                                      internal=True, refuri=self.app.builder.get_relative_uri(self.env.docname, docname))
                link += ref
                this_build = exec_data.get("mtime", 0) >= _STARTED
                worker = workers_used.get(docname, {}).get("worker")
                rows.append(_row(
                    link,
                    "ok" if exec_data.get("succeeded") else f"FAILED ({exec_data.get('error')})",
                    f"{runtime:.1f}",
                    record.get("device", "?"),
                    record.get("torch", "?"),
                    (f"this build (worker {worker})" if worker else "this build") if this_build
                    else "cache of an earlier build",
                    datetime.fromtimestamp(exec_data.get("mtime", 0), timezone.utc).strftime("%Y-%m-%d %H:%M"),
                ))
            n_workers = summary.get("workers", workers())
            executed = len(workers_used)
            summary_text = (
                f"{len(rows)} executed pages, {total:.1f} s of execution in all. "
                f"This build ran with Python {platform.python_version()} on {platform.machine()} "
                f"({_build_device()}), {n_workers} parallel worker{'s' if n_workers != 1 else ''} and "
                f"{summary.get('threads_per_kernel', KERNEL_THREADS)} thread per kernel; it executed "
                f"{executed} page{'s' if executed != 1 else ''}"
                + (f" in {summary.get('wall_seconds', 0.0):.1f} s of wall time." if executed else
                   " (every other page's outputs came from the cache).")
            )
            table = _table(["Page", "Status", "Run time (s)", "Device", "torch", "Outputs from", "Executed at (UTC)"], rows)
            placeholder.replace_self([nodes.paragraph(text=summary_text), table])


def _toc_order(env) -> dict[str, int]:
    """Docnames in reading order (the order of the table of contents)."""
    order: list[str] = []

    def walk(doc: str) -> None:
        if doc in order:
            return
        order.append(doc)
        for child in env.toctree_includes.get(doc, []):
            walk(child)

    walk(env.config.root_doc)
    return {doc: i for i, doc in enumerate(order)}


def _build_device() -> str:
    import torch

    from dlbook._buildinfo import describe_device

    return f"torch {torch.__version__}, {describe_device()}"


#: The parts of MathJax's es5 build the site needs: the combined TeX/MathML to
#: CommonHTML component, its fonts, the TeX extensions it loads on demand, and
#: the menu and accessibility components (with the speech rule engine).
MATHJAX_PARTS = ("tex-mml-chtml.js", "input", "output/chtml", "a11y", "ui", "sre", "adaptors")


def _copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    """build-finished: put MathJax into _static/mathjax unless it is there already."""
    if exception is not None or app.builder.format != "html":
        return
    import importlib.util
    import shutil

    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "MathJax is missing: install requirements.txt (package django-static-mathjax) "
            "so the site can serve math without a CDN"
        )
    source = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax" / "es5"
    target = Path(app.outdir) / "_static" / "mathjax"
    for part in MATHJAX_PARTS:
        src, dst = source / part, target / part
        if dst.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy2(src, dst)


def _dedupe_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """html-page-context: drop scripts registered twice (sphinx-thebe's inline
    config is, under Jupyter Book, which makes browsers report a redeclared
    ``const``)."""
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (getattr(script, "filename", script) or "", getattr(script, "attributes", {}).get("body"))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    # In place: later handlers (MathJax among them) add to this same list.
    context["script_files"][:] = unique


#: The theme stores the reader's light/dark choice in localStorage and logs a
#: console error on a first visit, when there is none; start such readers on "auto".
THEME_MODE_DEFAULT = "if (!localStorage.getItem('mode')) { document.documentElement.dataset.mode = 'auto'; }"


def _site_numbers(env) -> tuple[dict[str, str], dict[str, str]]:
    """Every equation's and figure's number as the site shows it ("7.8"), by label: numbers
    carry the chapter, so one map serves references within a page and across pages."""
    from docutils.nodes import make_id

    def number(docname: str, kind: str, ident: str) -> str | None:
        found = env.toc_fignumbers.get(docname, {}).get(kind, {}).get(ident)
        return ".".join(map(str, found)) if found else None

    equations = {}
    for label, (docname, _) in env.get_domain("math").equations.items():
        found = number(docname, "displaymath", make_id(f"equation-{label}"))
        if found:
            equations[label] = found
    figures = {ident: ".".join(map(str, n)) for numbers in env.toc_fignumbers.values()
               for ident, n in numbers.get("figure", {}).items()}
    return equations, figures


def _write_downloads(app: Sphinx, exception: Exception | None) -> None:
    """build-finished: write each chapter's plain notebook, outputs included.

    The theme offers ``_sources/<page>.ipynb``, copied from the notebook MyST-NB
    writes; when a page's outputs came from the execution cache, that notebook
    has none (MyST-NB writes the unexecuted copy). Merge the cached outputs in,
    leave out the build's own hidden cell, and convert the MyST to what Jupyter,
    Binder and Colab render (:mod:`dlbook_notebooks`) with the site's equation
    and figure numbers. The publishing workflow puts these same files on the
    notebooks branch, where the Binder and Colab buttons open them.
    """
    if exception is not None or app.builder.format != "html":
        return
    import nbformat
    from jupyter_cache import get_cache
    from myst_nb.sphinx_ import NbMetadataCollector

    import dlbook_notebooks

    cache = get_cache(app.env.mystnb_config.execution_cache_path)  # as resolved by MyST-NB
    executed = Path(app.outdir).parent / "jupyter_execute"
    citations = dlbook_notebooks.Citations(Path(app.srcdir) / "references.bib")
    titles = {doc: title.astext() for doc, title in app.env.titles.items()}
    equations, figures = _site_numbers(app.env)
    for docname, data in NbMetadataCollector.get_doc_data(app.env).items():
        source = executed / f"{docname}.ipynb"
        if not data.get("exec_data") or not source.is_file():
            continue
        notebook = nbformat.read(source, as_version=4)
        try:
            _, notebook = cache.merge_match_into_notebook(notebook)
        except KeyError:
            pass  # executed in this build: the notebook already has its outputs
        notebook.cells = [c for c in notebook.cells if not c.source.startswith(BUILD_CELL_MARK)]
        page = dlbook_notebooks.Page(docname, equations=equations, figures=figures, titles=titles,
                                     citations=citations)
        target = Path(app.outdir) / "_sources" / f"{docname}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(dlbook_notebooks.convert(notebook, page), target)


def _launch_converted(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """html-page-context, after the theme's: Binder and Colab open the converted notebook.

    The theme points both at the page's ``.md`` on the main branch, which Colab cannot
    open and JupyterLab shows as MyST source; point them at the plain notebook on
    the notebooks branch instead.
    """
    import dlbook_notebooks

    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            service = {"Binder": "binder", "Colab": "colab"}.get(button.get("text"))
            if service:
                button["url"] = dlbook_notebooks.notebook_url(pagename, service=service)


def setup(app: Sphinx) -> dict:
    app.connect("build-finished", _write_downloads)
    app.connect("html-page-context", _launch_converted, priority=502)  # after the theme's launch buttons
    app.add_js_file(None, body=THEME_MODE_DEFAULT, priority=100)
    app.connect("build-finished", _copy_mathjax)
    app.connect("html-page-context", _dedupe_scripts, priority=100)  # before handlers that end the event
    app.connect("builder-inited", _setup_environment)
    app.connect("source-read", _inject)
    app.connect("env-before-read-docs", _pre_execute)
    app.add_node(BuildReportNode)
    app.add_directive("dlbook-build-report", BuildReportDirective)
    app.add_post_transform(BuildReportTransform)
    # env_version 2: the report page registers MyST-NB's execution-table key; a saved
    # environment from before that is read again once, so the page gets the key.
    return {"version": "1.0", "env_version": 2, "parallel_read_safe": True, "parallel_write_safe": True}
