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
    imports searchkit.index.layout, `from .text import words` searchkit.data.text."""
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
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..index.layout import IndexFiles\n"
              "def f():\n    from ..data import text\n    from ..errors import QueryError\n")
    modules = {"searchkit.index.layout", "searchkit.data.text", "searchkit.errors", "searchkit.search.searcher"}
    assert imports(source, "searchkit.search.searcher", False, modules) == {"searchkit.index.layout",
                                                                            "searchkit.data.text", "searchkit.errors"}


def test_no_import_cycles():
    assert cycles(graph()) == []


# Stages, lowest first: a module imports only from its own stage or a lower one. The top-level modules other than
# the package's face (__init__, __main__) are shared bits every stage may use.
STAGES = ("data", "models", "index", "search", "backends", "eval", "training", "serve", "cli")
FACE = {"searchkit", "searchkit.__main__"}


def stage(module: str) -> int:
    parts = module.split(".")
    if module in FACE:
        return len(STAGES)
    return STAGES.index(parts[1]) if len(parts) > 2 or parts[1] in STAGES else -1


def test_stages_import_only_downward():
    upward = sorted(f"{m} -> {t}" for m, targets in graph().items() for t in targets if stage(t) > stage(m))
    assert upward == []


def test_the_stage_rank_reads_folders():
    assert stage("searchkit.errors") == -1 and stage("searchkit.data.text") == 0
    assert stage("searchkit.search.searcher") < stage("searchkit.training.embedder") < stage("searchkit.cli")


def reachable(start: set[str], edges: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), list(start)
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(edges.get(m, ()))
    return seen


HEAVY = re.compile(r"^\s*(import|from)\s+(torch|transformers|sentence_transformers|datasets|accelerate)\b", re.M)


def test_the_query_path_holds_no_training_code_and_no_torch():
    """Everything the search stage reaches, at any depth and inside functions, is free of the training stage and of
    torch imports; the torch encoder is reached through models.encoder's backend table, named by string."""
    edges = graph()
    query_path = reachable({m for m in edges if m.startswith("searchkit.search.")}, edges)
    assert not [m for m in query_path if m.startswith(("searchkit.training", "searchkit.eval"))]
    heavy = [m for m in query_path if HEAVY.search(module_path(m).read_text()) and m not in TORCH_BACKENDS]
    assert heavy == []


# the modules that import torch, each only inside functions of its torch backend or export path
TORCH_BACKENDS = {"searchkit.models.encoder", "searchkit.models.export", "searchkit.models.query_tower"}


def module_path(module: str) -> Path:
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    return path if path.exists() else PACKAGE.parent / module.replace(".", "/") / "__init__.py"


def test_torch_is_imported_only_inside_functions():
    top_level = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] in ("torch", "transformers", "sentence_transformers") for n in names):
                top_level.append(path.name)
    assert top_level == []


def file_names(module) -> set[str]:
    return {v for k, v in vars(module).items() if k.isupper() and isinstance(v, str) and "." in v}


def written_outside(names: set[str], home: str) -> list[str]:
    pattern = re.compile("|".join(re.escape(f'"{n}"') for n in names))
    return sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                  if str(p.relative_to(PACKAGE)) != home and pattern.search(p.read_text()))


def test_one_module_names_the_index_files_and_one_the_model_files():
    from searchkit.index import layout
    from searchkit.models import files

    assert len(file_names(layout) - file_names(files)) >= 10 and len(file_names(files)) >= 8
    assert written_outside(file_names(layout) - file_names(files), "index/layout.py") == []
    assert written_outside(file_names(files), "models/files.py") == []


def test_at_most_eight_modules_at_the_top_and_none_over_500_lines():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 8, top
    long = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if len(p.read_text().splitlines()) > 500]
    assert long == []


# process-wide state a library must leave to its caller; each allowed place is the application's own entry point
PROCESS_STATE = re.compile(r"os\.environ\[[^]]+\]\s*=|os\.environ\.(setdefault|update|pop)|os\.putenv|logging\.disable"
                           r"|logging\.basicConfig|\.setLevel\(|omp_set_num_threads|disable_progress_bar")
ALLOWED_STATE = {"cli/__init__.py", "cli/common.py", "cli/serve_commands.py",  # the command's process
                 "search/threads.py"}  # set_search_threads: the explicit, documented process-wide setter


def test_library_code_leaves_process_state_to_its_caller():
    offenders = sorted(f"{p.relative_to(PACKAGE)}:{i}" for p in PACKAGE.rglob("*.py")
                       if str(p.relative_to(PACKAGE)) not in ALLOWED_STATE
                       for i, line in enumerate(p.read_text().splitlines(), 1)
                       if PROCESS_STATE.search(line.split("#")[0]))
    assert offenders == []
    threads_source = (PACKAGE / "search" / "threads.py").read_text()
    # inside set_search_threads, and where a search applies that choice in its own thread (OpenMP's count is per thread)
    assert threads_source.count("omp_set_num_threads") == 2
    assert "omp_set_num_threads" not in (PACKAGE / "search" / "searcher.py").read_text()


def test_the_search_threads_chosen_reach_the_threads_that_search(searcher):
    import threading

    import faiss

    from searchkit.search import threads

    before, main_before = threads._search_threads, faiss.omp_get_max_threads()
    seen = []

    def answer() -> None:  # as a server's worker thread does, with OpenMP's own count for a new thread
        faiss.omp_set_num_threads(3)
        searcher.search("kohler toilet seat", k=3)
        seen.append(faiss.omp_get_max_threads())

    try:
        threads.set_search_threads(1)
        worker = threading.Thread(target=answer)
        worker.start()
        worker.join()
        assert seen == [1]
    finally:
        threads._search_threads = before
        threads._this_thread.threads = before
        faiss.omp_set_num_threads(main_before)
