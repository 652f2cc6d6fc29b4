"""Sphinx extension for the dlbook build: a truthful execution cache and the build report.

Jupyter Book's execution cache (jupyter-cache) keys a page on its code cells
only, so editing a ``dlbook`` function would leave every page that uses it
showing stale outputs. This extension closes that gap:

1. For each page it finds the ``dlbook`` modules the code cells import,
   follows their imports inside the package, and hashes those sources.
2. It appends one hidden cell (tag ``remove-cell``) to the page that carries
   the hash, so a changed dependency changes the page's cache key and the page
   re-executes; an unchanged tree matches the cache and executes nothing. The
   cell also calls :func:`dlbook._buildinfo.record`, which writes the device
   and versions the page ran with for the build report.
3. It registers the dependency files with Sphinx, so a page is re-read when
   one of them changes even though its own source did not.

It also serves MathJax from the site itself: the build copies MathJax 3 from
the ``django-static-mathjax`` package (plain files, no Django needed) into
``_static/mathjax``, and ``_config.yml`` points ``mathjax_path`` there, so math
renders with no network and from ``file://``.

The ``dlbook-build-report`` directive renders, at write time, a table of every
executed page: status, how it was obtained (executed now or from the cache),
run time, and the device, torch version and time it ran.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import platform
import re
import time
from datetime import datetime, timezone
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "dlbook"
_STARTED = 0.0  # when this build began (set at builder-inited)

_IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+(dlbook[\w.]*)[ \t]+import[ \t]+([^\n#]+)|import[ \t]+([^\n#]+))", re.M)
_ATTRIBUTE = re.compile(r"\bdlbook((?:\.\w+)+)")
_CODE_CELL = re.compile(r"^(`{3,}|:{3,})\{code-cell\}", re.M)


def _module_file(module: str) -> Path | None:
    """The source file of a dotted ``dlbook`` module name, if it is one."""
    parts = module.split(".")
    if parts[0] != "dlbook":
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _modules_named(source: str) -> set[str]:
    """Every ``dlbook`` module that ``source`` imports or reaches by attribute."""
    found: set[str] = set()
    for match in _IMPORT.finditer(source):
        from_module, names, plain = match.groups()
        if from_module:
            found.add(from_module)
            for name in re.split(r"[,()\s]+", names):
                name = name.split(" as ")[0].strip()
                if name:
                    found.add(f"{from_module}.{name}")
        else:
            for name in plain.split(","):
                name = name.strip().split(" ")[0]
                if name.startswith("dlbook"):
                    found.add(name)
    for match in _ATTRIBUTE.finditer(source):
        parts = ("dlbook" + match.group(1)).split(".")
        found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {m for m in found if _module_file(m) is not None}


def _imports_of(path: Path) -> set[str]:
    """The ``dlbook`` modules a package file imports (absolute or relative)."""
    tree = ast.parse(path.read_text(encoding="utf8"))
    package = ".".join(("dlbook", *path.relative_to(PACKAGE).parent.parts))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if _module_file(m) is not None}


def dependencies(source: str) -> list[Path]:
    """The ``dlbook`` files a page depends on: the closure of its imports,
    every parent package's ``__init__``, and the data files those modules use."""
    pending = _modules_named(source)
    if not pending:
        return []
    pending.add("dlbook")
    seen: set[str] = set()
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        pending.update(".".join(parts[:i]) for i in range(1, len(parts)))
        pending.update(_imports_of(_module_file(module)))
    files = {_module_file(m) for m in seen}
    return sorted(files | _data_files_used_by(files))


def _data_files_used_by(modules: set[Path]) -> set[Path]:
    """Package data files (weights, tables) that the given modules name.

    A file counts when a module's source contains its file name or its folder's
    name as a string literal (``"weights"``, ``"glyphnet-letters.pt"``), which is
    how package code reaches its data through ``importlib.resources``.
    """
    sources = [m.read_text(encoding="utf8") for m in modules]
    used = set()
    for path in PACKAGE.rglob("*"):
        if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
            continue
        names = {path.name, path.parent.name} - {PACKAGE.name}
        if any(f'"{name}"' in text or f"'{name}'" in text for name in names for text in sources):
            used.add(path)
    return used


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.relative_to(ROOT).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


BUILD_CELL_MARK = "# Added by the build (book/_ext/dlbook_build.py)"


def _inject(app: Sphinx, docname: str, source: list[str]) -> None:
    """source-read: key the page's cache entry on its dlbook dependencies."""
    text = source[0]
    if not _CODE_CELL.search(text):
        return
    deps = dependencies(text)
    for path in deps:
        app.env.note_dependency(str(path))
    digest = _digest(deps) if deps else "none"
    source[0] = (
        text.rstrip("\n")
        + "\n\n```{code-cell} ipython3\n:tags: [remove-cell]\n\n"
        + BUILD_CELL_MARK + ": the hash keys this page's\n"
        + "# execution cache on the dlbook sources it uses; record() logs the device.\n"
        + "import dlbook._buildinfo\n\n"
        + f"dlbook._buildinfo.record({docname!r}, {digest!r})\n```\n"
    )


def _setup_environment(app: Sphinx) -> None:
    """builder-inited: tell the kernels (children of this process) they run in the build."""
    records = Path(app.outdir).parent / "exec-records"
    records.mkdir(parents=True, exist_ok=True)
    global _STARTED
    _STARTED = time.time()
    os.environ["DLBOOK_BUILD"] = "1"
    os.environ["DLBOOK_BUILD_RECORD_DIR"] = str(records)
    # Figures must reach the page: a non-interactive backend inherited from the
    # caller (a test run sets Agg) would make plt.show() display nothing.
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"


class BuildReportNode(nodes.General, nodes.Element):
    """Placeholder replaced by the report table once every page has been read."""


class BuildReportDirective(SphinxDirective):
    """``dlbook-build-report``: a table of every executed page."""

    def run(self) -> list[nodes.Node]:
        from myst_nb.sphinx_ import NbMetadataCollector

        # myst-nb re-writes documents carrying this key whenever a page executed.
        NbMetadataCollector.set_doc_data(self.env, self.env.docname, "exec_table", True)
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
                rows.append(_row(
                    link,
                    "ok" if exec_data.get("succeeded") else f"FAILED ({exec_data.get('error')})",
                    f"{runtime:.1f}",
                    record.get("device", "?"),
                    record.get("torch", "?"),
                    "this build" if exec_data.get("mtime", 0) >= _STARTED
                    else "cache of an earlier build",
                    datetime.fromtimestamp(exec_data.get("mtime", 0), timezone.utc).strftime("%Y-%m-%d %H:%M"),
                ))
            summary = nodes.paragraph(text=(
                f"{len(rows)} executed pages, {total:.1f} s of execution in all. "
                f"This build ran with Python {platform.python_version()} on {platform.machine()} "
                f"({_build_device()})."
            ))
            table = _table(["Page", "Status", "Run time (s)", "Device", "torch", "Outputs from", "Executed at (UTC)"], rows)
            placeholder.replace_self([summary, table])


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


def _write_downloads(app: Sphinx, exception: Exception | None) -> None:
    """build-finished: make each page's ``.ipynb`` download carry its outputs.

    The theme offers ``_sources/<page>.ipynb``, copied from the notebook MyST-NB
    writes; when a page's outputs came from the execution cache, that notebook
    has none (MyST-NB writes the unexecuted copy). Merge the cached outputs in,
    and leave out the build's own hidden cell.
    """
    if exception is not None or app.builder.format != "html":
        return
    import nbformat
    from jupyter_cache import get_cache
    from myst_nb.sphinx_ import NbMetadataCollector

    cache = get_cache(app.env.mystnb_config.execution_cache_path)  # as resolved by MyST-NB
    executed = Path(app.outdir).parent / "jupyter_execute"
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
        target = Path(app.outdir) / "_sources" / f"{docname}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, target)


def setup(app: Sphinx) -> dict:
    app.connect("build-finished", _write_downloads)
    app.add_js_file(None, body=THEME_MODE_DEFAULT, priority=100)
    app.connect("build-finished", _copy_mathjax)
    app.connect("html-page-context", _dedupe_scripts, priority=100)  # before handlers that end the event
    app.connect("builder-inited", _setup_environment)
    app.connect("source-read", _inject)
    app.add_node(BuildReportNode)
    app.add_directive("dlbook-build-report", BuildReportDirective)
    app.add_post_transform(BuildReportTransform)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
