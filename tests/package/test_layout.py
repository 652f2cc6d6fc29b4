"""The package's import rules (DESIGN.md, "The companion package").

- Every module's docstring says where it belongs: a chapter module names its
  chapter as ``(Part N, "Title")`` with a title that ``_toc.yml`` lists (a page's
  heading, or a part's caption for a module shared by one part's pages); a module
  that names no part is infrastructure (``dlbook``, ``train``, ``plot``, ``data``,
  ...), and infrastructure imports no chapter module, so ``train`` knows no model.
- No module imports a later chapter's module.
- No import cycles, counting imports inside functions (they must not hide one).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "dlbook"
PART = re.compile(r'Part (\d+)[,:]\s*((?:"[^"]+"(?:,?\s*(?:and\s+)?)?)+)')


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _toc_order() -> tuple[dict[str, int], dict[str, int]]:
    """Position of every toc'd page by its heading, and of every part by its caption."""
    toc = (ROOT / "_toc.yml").read_text()
    titles: dict[str, int] = {}
    parts: dict[str, int] = {}
    position = 0
    for line in toc.splitlines():
        caption = re.match(r'\s*- caption:\s*"?(?:Part \d+:\s*)?([^"]+?)"?\s*$', line)
        if caption:
            parts[caption.group(1).lower()] = position
        page = re.match(r"\s*-? ?file:\s*(\S+)", line)
        if page:
            source = (ROOT / page.group(1)).with_suffix(".md")
            heading = next((l[2:].strip() for l in source.read_text().splitlines()
                            if l.startswith("# ")), "")
            titles[heading.lower()] = position
            position += 1
    return titles, parts


TITLES, PART_CAPTIONS = _toc_order()


def _chapters(module: str) -> list[int] | None:
    """Toc positions of the chapters a module's docstring names; None for infrastructure."""
    doc = ast.get_docstring(ast.parse(MODULES[module].read_text())) or ""
    head = " ".join(doc.split("\n\n")[0].split())  # the first paragraph, on one line
    found = PART.findall(head)
    if not found:
        return None
    positions = []
    for _, quoted in found:
        for title in re.findall(r'"([^"]+)"', quoted):
            key = title.lower()
            assert key in TITLES or key in PART_CAPTIONS, (
                f"{module}'s docstring names chapter {title!r}, which _toc.yml does not list"
            )
            positions.append(TITLES.get(key, PART_CAPTIONS.get(key)))
    return positions


def _imports(module: str) -> set[str]:
    """dlbook modules that ``module`` imports anywhere in its source."""
    tree = ast.parse(MODULES[module].read_text())
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def add(name: str) -> None:
        if name in MODULES and name != module:
            found.add(name)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:
                    add(f"{base}.{alias.name}")
                else:
                    add(base)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)):
            add(str(node.args[0].value))
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def test_the_rules_see_the_package():
    assert len(MODULES) > 20 and "dlbook.train" in MODULES
    assert _chapters("dlbook.perceptron") is not None and _chapters("dlbook.train") is None


@pytest.mark.parametrize("module", sorted(MODULES))
def test_docstring_says_where_the_module_belongs(module):
    doc = ast.get_docstring(ast.parse(MODULES[module].read_text()))
    assert doc, f"{module} has no module docstring"
    _chapters(module)  # asserts every chapter it names is in _toc.yml


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def test_no_module_imports_a_later_chapter():
    problems = []
    for module, targets in GRAPH.items():
        mine = _chapters(module)
        for target in targets:
            theirs = _chapters(target)
            if theirs is None:
                continue
            if mine is None:
                problems.append(f"{module} (infrastructure) imports chapter module {target}")
            elif min(theirs) > min(mine):
                problems.append(f"{module} (chapter {min(mine)}) imports {target}, "
                                f"a later chapter's module (chapter {min(theirs)})")
    assert not problems, "\n".join(problems)


def test_train_knows_no_model():
    assert _chapters("dlbook.train") is None
    assert all(_chapters(t) is None for t in GRAPH["dlbook.train"]), GRAPH["dlbook.train"]


def test_the_rules_catch_a_violation(tmp_path):
    """The checks above can fail: a cycle and a forward import are found when planted."""
    graph = {"a": {"b"}, "b": {"a"}}
    state: dict[str, int] = {}
    found = []

    def visit(module: str) -> None:
        state[module] = 1
        for target in graph[module]:
            if state.get(target) == 1:
                found.append(target)
            elif target not in state:
                visit(target)
        state[module] = 2

    visit("a")
    assert found == ["a"]
    assert PART.findall('Metrics (Part 7, "Evaluating classifiers").')[0][0] == "7"
