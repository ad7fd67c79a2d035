"""Putting a cross-encoder into an index being built: its int8 graph, tokenizer and settings (searchkit.models.
cross_encoder scores with them at query time)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ..models import graph_cache
from ..models.cross_encoder import (
    RerankerSettings,
    check_grader,
    fingerprint,
    grader_dir,
    install_grader,
    read_info,
)
from ..models.export import export_reranker
from ..models.files import RERANKER_GRAPH_NAME, TOKENIZER_FILE
from .layout import IndexFiles


def install(source: Path, staged: IndexFiles, cache: Path | None = None) -> dict[str, Any]:
    """Put the reranker at `source` into an index being built (`staged`: its folder's files): the int8 graph,
    tokenizer and settings, and its grader's int8 graph when it has one; returns what the manifest records of it.
    The graphs come from the graph cache (searchkit.models.graph_cache; `cache`: its folder, None for the default) when an
    earlier build exported the same weights."""
    meta = read_info(source)
    RerankerSettings.from_dict(meta["settings"])  # refused here, before the export, when broken
    staged.reranker_graph.parent.mkdir(parents=True, exist_ok=True)
    grader = grader_dir(source)
    if grader is not None:
        check_grader(grader)  # refused before any export
    key = fingerprint(source)
    graph_cache.graph(cache, key, RERANKER_GRAPH_NAME,
                      graph_cache.ready_or(source, RERANKER_GRAPH_NAME, lambda path: export_reranker(source, path)),
                      staged.reranker_graph)
    shutil.copyfile(source / TOKENIZER_FILE, staged.reranker_tokenizer)
    record = {"name": meta.get("name") or source.name, "source": str(source), "fingerprint": key,
              "settings": meta["settings"]}
    if grader is not None:
        record["grader"] = install_grader(grader, staged.grader_graph, staged.grader, cache)
    staged.reranker_info.write_text(json.dumps({**meta, **record}, indent=2, sort_keys=True))
    return record
