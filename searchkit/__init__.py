"""searchkit: semantic product search for retail catalogs.

    from searchkit import Searcher
    hits = Searcher.from_dir("indexes/homedepot").search("swag light kit", k=10)

Names are imported lazily, so `import searchkit` (and the CLI) load only what they use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .version import __version__

__all__ = [
    "Searcher",
    "SearchResult",
    "SearchResults",
    "MatchRule",
    "build_index",
    "update_index",
    "IndexConfig",
    "train",
    "TrainConfig",
    "distill",
    "DistillConfig",
    "train_reranker",
    "RerankTrainConfig",
    "TextConfig",
    "ColumnMap",
    "SearchkitError",
    "CatalogError",
    "IndexFormatError",
    "IndexMismatchError",
    "ModelError",
    "QueryError",
    "__version__",
]

_HOMES = {
    "Searcher": "search",
    "SearchResult": "results",
    "SearchResults": "results",
    "MatchRule": "match",
    "build_index": "index",
    "update_index": "update",
    "IndexConfig": "index",
    "train": "training",
    "TrainConfig": "training",
    "distill": "distillation",
    "DistillConfig": "distillation",
    "train_reranker": "rerank_training",
    "RerankTrainConfig": "rerank_training",
    "TextConfig": "text",
    "ColumnMap": "catalog",
    "SearchkitError": "errors",
    "CatalogError": "errors",
    "IndexFormatError": "errors",
    "IndexMismatchError": "errors",
    "ModelError": "errors",
    "QueryError": "errors",
}

if TYPE_CHECKING:
    from .catalog import ColumnMap
    from .distillation import DistillConfig, distill
    from .errors import CatalogError, IndexFormatError, IndexMismatchError, ModelError, QueryError, SearchkitError
    from .index import IndexConfig, build_index
    from .match import MatchRule
    from .rerank_training import RerankTrainConfig, train_reranker
    from .results import SearchResult, SearchResults
    from .search import Searcher
    from .text import TextConfig
    from .training import TrainConfig, train
    from .update import update_index


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        from importlib import import_module

        return getattr(import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module 'searchkit' has no attribute {name!r}")
