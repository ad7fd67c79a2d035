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
    "set_search_threads",
    "OpenSearchSearcher",
    "Mode",
    "SearchResult",
    "SearchResults",
    "MatchRule",
    "build_index",
    "update_index",
    "IndexConfig",
    "train",
    "TrainConfig",
    "train_query_tower",
    "QueryTowerConfig",
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
    "Searcher": "search.searcher",
    "set_search_threads": "search.threads",
    "OpenSearchSearcher": "backends.opensearch.cluster",
    "Mode": "search.results",
    "SearchResult": "search.results",
    "SearchResults": "search.results",
    "MatchRule": "search.match",
    "build_index": "index.build",
    "update_index": "index.update",
    "IndexConfig": "index.build",
    "train": "training.embedder",
    "TrainConfig": "training.embedder",
    "train_query_tower": "training.query_tower",
    "QueryTowerConfig": "training.query_tower",
    "train_reranker": "training.reranker",
    "RerankTrainConfig": "training.reranker",
    "TextConfig": "data.text",
    "ColumnMap": "data.catalog",
    "SearchkitError": "errors",
    "CatalogError": "errors",
    "IndexFormatError": "errors",
    "IndexMismatchError": "errors",
    "ModelError": "errors",
    "QueryError": "errors",
}

if TYPE_CHECKING:
    from .backends.opensearch.cluster import OpenSearchSearcher
    from .data.catalog import ColumnMap
    from .data.text import TextConfig
    from .errors import CatalogError, IndexFormatError, IndexMismatchError, ModelError, QueryError, SearchkitError
    from .index.build import IndexConfig, build_index
    from .index.update import update_index
    from .search.match import MatchRule
    from .search.results import Mode, SearchResult, SearchResults
    from .search.searcher import Searcher
    from .search.threads import set_search_threads
    from .training.embedder import TrainConfig, train
    from .training.query_tower import QueryTowerConfig, train_query_tower
    from .training.reranker import RerankTrainConfig, train_reranker


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        from importlib import import_module

        return getattr(import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module 'searchkit' has no attribute {name!r}")
