"""The package's shape: no import cycles among searchkit's modules, counting imports inside functions and under
TYPE_CHECKING, and one module (store) that names the index folder's files."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "searchkit"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str, name: str, is_package: bool, modules: set[str]) -> set[str]:
    """Every searchkit module the module `name` imports, wherever the import statement stands: `from . import store`
    imports searchkit.store, `from .text import words` searchkit.text."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {m for m in found if m in modules and m != name}


def graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports(p.read_text(), module_name(p), p.name == "__init__.py", modules) for p in paths}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, or of one importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_imports_inside_functions_and_type_checking_blocks_are_counted():
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .store import IndexFiles\n"
              "def f():\n    from . import text\n    from .errors import QueryError\n")
    modules = {"searchkit.store", "searchkit.text", "searchkit.errors", "searchkit.search"}
    assert imports(source, "searchkit.search", False, modules) == {"searchkit.store", "searchkit.text",
                                                                   "searchkit.errors"}


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_only_store_names_index_files():
    names = ("manifest.json", "index.faiss", "products.parquet", "query-tokens.npy", "encoder-int8.onnx")
    pattern = re.compile("|".join(re.escape(f'"{n}"') for n in names))
    offenders = [p.name for p in PACKAGE.rglob("*.py") if p.name != "store.py" and pattern.search(p.read_text())]
    assert offenders == []
