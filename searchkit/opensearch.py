"""Serving from OpenSearch: load an export into a cluster (`searchkit push opensearch`) and search it
(`Searcher.from_opensearch`, `searchkit serve --opensearch`).

Queries are understood and embedded locally, exactly as a local index does (the index folder the export came from
supplies the text settings, spelling vocabulary and query encoder), then sent as one hybrid query: a BM25 `match` on
the `keywords` field (searchkit's own keyword text) and a `knn` clause on `embedding`, filters inside both clauses
(inside the k-NN clause OpenSearch filters while it searches, so a filter never leaves the top k short), combined by
the export's search pipeline. The client is the official `opensearch-py`, imported only here (install extra
`searchkit[opensearch]`).
"""

from __future__ import annotations

import gzip
import json
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from . import store
from .arrange import RELEVANT, Window, order_of
from .errors import QueryError, SearchkitError
from .filters import Filters, as_range, facet_counts
from .highlight import marked
from .loading import LoadOptions, load_parts
from .results import DEFAULT_MODE, SearchResult, check_mode
from .rules import NO_RULES, Rules
from .rules import loads as rules_loads
from .suggest import Suggester
from .understanding import parse, understand

log = logging.getLogger(__name__)

FACET_DEPTH = 100


def client_for(url: str) -> Any:
    try:
        from opensearchpy import OpenSearch
    except ImportError as exc:
        raise SearchkitError("OpenSearch needs the client: pip install 'searchkit[opensearch]'") from exc
    return OpenSearch(hosts=[url], timeout=60)


def _actions(folder: Path, name: str, files: list[str]) -> Iterator[dict[str, Any]]:
    for file in files:
        with gzip.open(folder / file, "rt", encoding="utf-8") as lines:
            for action_line in lines:
                doc = json.loads(next(lines))
                yield {"_op_type": "index", "_index": name, "_id": json.loads(action_line)["index"]["_id"],
                       "_source": doc}


def push_opensearch(url: str, export_dir: str | Path | None = None, index_dir: str | Path | None = None,
                    name: str | None = None, client: Any = None, chunk_size: int = 500, max_retries: int = 3,
                    progress: bool = False) -> dict[str, Any]:
    """Create the index and its hybrid pipeline on the cluster at `url` and load every document (opensearch-py's
    streaming_bulk: chunked, retried on 429). From an export folder, or from an index folder exported on the way.
    A refused document stops the load with its id and the cluster's reason."""
    if (export_dir is None) == (index_dir is None):
        raise SearchkitError("push an export folder or an index folder, one of them")
    if export_dir is None:
        from .opensearch_export import export_opensearch  # pandas and the build side: not on the query path

        with tempfile.TemporaryDirectory(prefix="searchkit-export-") as tmp:
            export_opensearch(index_dir, Path(tmp) / "export", name=name)
            return push_opensearch(url, export_dir=Path(tmp) / "export", name=name, client=client,
                                   chunk_size=chunk_size, max_retries=max_retries, progress=progress)
    from opensearchpy import helpers
    from opensearchpy.exceptions import OpenSearchException

    folder = Path(export_dir)
    try:
        summary = json.loads((folder / "export.json").read_text())
        body = json.loads((folder / "index.json").read_text())
        pipeline = json.loads((folder / "pipeline.json").read_text())
    except (OSError, ValueError) as exc:
        raise SearchkitError(f"{folder}: not a searchkit export ({exc})") from exc
    name = name or summary["name"]
    client = client or client_for(url)
    try:
        if client.indices.exists(index=name):
            raise SearchkitError(f"{url}: the index {name!r} exists already; delete it or push under another --name")
        client.indices.create(index=name, body=body)
        client.search_pipeline.put(id=f"{name}-hybrid", body=pipeline)
        loaded = 0
        bar = _bar(summary["documents"], progress)
        for ok, item in helpers.streaming_bulk(client, _actions(folder, name, summary["files"]),
                                               chunk_size=chunk_size, max_retries=max_retries,
                                               raise_on_error=False):
            if not ok:
                result = next(iter(item.values()))
                raise SearchkitError(f"{url}: document {result.get('_id')!r} refused: "
                                     f"{(result.get('error') or {}).get('reason', result.get('error'))}")
            loaded += 1
            bar.update(1)
        bar.close()
        client.indices.refresh(index=name)
    except OpenSearchException as exc:
        raise SearchkitError(f"{url}: {exc}") from exc
    return {"url": url, "name": name, "documents": loaded, "pipeline": f"{name}-hybrid",
            "dimension": summary["dimension"]}


def _bar(total: int, on: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="doc", disable=not on)


def filter_clauses(filters: Filters | None) -> list[dict[str, Any]]:
    """searchkit filters as OpenSearch filter clauses: a range for any of the range spellings (searchkit.filters),
    terms for a list, term for one."""
    clauses = []
    for name, wanted in (filters or {}).items():
        span = as_range(name, wanted)
        if span is not None:
            bounds = {op: v for op, v in zip(("gte", "lte"), span, strict=True) if v is not None}
            clauses.append({"range": {name: bounds}})
        elif isinstance(wanted, (list, tuple, set, frozenset)):
            clauses.append({"terms": {name: list(wanted)}})
        else:
            clauses.append({"term": {name: wanted}})
    return clauses


def sort_hits(hits: list[SearchResult], name: str, descending: bool) -> list[SearchResult]:
    """The RELEVANT best hits ordered by a field as searchkit.arrange orders rows (missing last, ties in relevance
    order; text compared as lower-case)."""
    head = hits[:RELEVANT]
    values = [v.lower() if isinstance(v := h.fields.get(name), str) else v for h in head]
    return [head[i] for i in order_of(values, descending)]


class OpenSearchSearcher:
    """Search an index served by OpenSearch, with the same results as a local Searcher returns (SearchResult, best
    first, `score` what ranked the hit, `cosine` the embedding similarity)."""

    def __init__(self, client: Any, name: str, parts: Any, depth: int = 100):
        self.client = client
        self.name = name
        self.parts = parts
        self.manifest = parts.manifest
        self.depth = depth
        self.spell_correct = True
        self.rules: Rules = NO_RULES  # synonyms only (connect refuses the rest)

    @classmethod
    def connect(cls, url: str, name: str, index_dir: str | Path, client: Any = None) -> OpenSearchSearcher:
        """index_dir: the index folder the export came from (its text settings, vocabulary and query encoder embed
        queries as the catalog was embedded; its vectors and products are not read at query time)."""
        parts = load_parts(index_dir, LoadOptions())
        text = store.read_rules_text(parts.root) if parts.root is not None else None
        rules = rules_loads(text) if text else NO_RULES
        if rules.rules or rules.signals or rules.demote:
            raise QueryError(f"{index_dir} has rules that pin, hide, boost, weigh or demote products, which only the "
                             "local engine applies; serve that index without --opensearch, or remove them "
                             "(`searchkit rules --remove`): OpenSearch serves its synonyms alone")
        searcher = cls(client or client_for(url), name, parts)
        searcher.rules = rules
        return searcher

    @property
    def modes(self) -> tuple[str, ...]:
        return ("dense", "lexical", "hybrid")

    def understand(self, query: str):
        return understand(query, self.parts.normaliser, self.parts.corrector if self.spell_correct else None)

    def embed(self, queries: list[str]) -> np.ndarray:
        texts = [parse(q, self.parts.normaliser, self.parts.corrector).normalised for q in queries]
        return self.parts.encoder.encode(texts, batch_size=64)

    def request(self, query: str, k: int, mode: str, filters: Filters | None) -> tuple[dict[str, Any], np.ndarray]:
        """The search request: one hybrid query (or its one clause in mode dense / lexical), and the query vector."""
        parsed = parse(query, self.parts.normaliser, self.parts.corrector if self.spell_correct else None,
                       rules=self.rules)
        vector = self.parts.encoder.encode([parsed.normalised])[0]
        where = filter_clauses(filters)
        lexical = {"bool": {"must": [{"match": {"keywords": parsed.keywords}}], "filter": where}}
        knn = {"knn": {"embedding": {"vector": vector.tolist(), "k": max(k, self.depth),
                                     **({"filter": {"bool": {"filter": where}}} if where else {})}}}
        clause = {"lexical": lexical, "dense": knn, "hybrid": {"hybrid": {"queries": [lexical, knn]}}}[mode]
        return {"size": k, "query": clause, "_source": {"excludes": ["keywords"]}}, vector

    def search(self, query: str, k: int = 10, mode: str = DEFAULT_MODE, filters: Filters | None = None,
               explain: bool = False, offset: int = 0, sort: str | None = None, highlight: bool = False
               ) -> list[SearchResult]:
        """As Searcher.search: a page from `offset`, sorted over the RELEVANT best by a field, titles highlighted;
        the cluster returns the first offset + k (or RELEVANT) hits and the rest is done here, as the local engine
        does it."""
        window = Window(k, offset, sort)
        return self._page(self._search(query, window.depth(), mode, filters, explain), query, window, highlight)

    def _page(self, hits: list[SearchResult], query: str, window: Window, highlight: bool) -> list[SearchResult]:
        """The window of the cluster's hits, sorted and highlighted here as the local engine does it."""
        if window.column is not None:
            present = [h for h in hits if window.column in h.fields]
            if hits and not present:
                raise QueryError(f"cannot sort by {window.column!r}; the documents have no such field")
            hits = sort_hits(hits, window.column, window.descending)
        page = hits[window.offset:window.offset + window.k]
        keywords = parse(query, self.parts.normaliser, self.parts.corrector if self.spell_correct else None,
                         rules=self.rules).keywords if highlight else ""
        return [replace(h, rank=window.offset + i, highlight=marked(str(h.fields.get("title") or ""), keywords,
                                                                     self.parts.normaliser) if highlight else None)
                for i, h in enumerate(page, start=1)]

    def _search(self, query: str, k: int, mode: str, filters: Filters | None, explain: bool) -> list[SearchResult]:
        check_mode(mode)
        if mode not in self.modes:
            raise QueryError(f"mode {mode!r} is not served from OpenSearch; use {', '.join(self.modes)}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise QueryError(f"k must be a positive integer, not {k!r}")
        body, vector = self.request(query, k, mode, filters)
        params = {"search_pipeline": f"{self.name}-hybrid"} if mode == "hybrid" else {}
        from opensearchpy.exceptions import OpenSearchException

        try:
            answer = self.client.search(index=self.name, body=body, params=params)
        except OpenSearchException as exc:
            raise SearchkitError(f"OpenSearch index {self.name!r}: {exc}") from exc
        out = []
        for rank, hit in enumerate(answer["hits"]["hits"], start=1):
            source = dict(hit.get("_source") or {})
            stored = np.asarray(source.pop("embedding", []), dtype=np.float32)
            cosine = float(stored @ vector) if stored.shape == vector.shape else float("nan")
            source.pop("product_id", None)
            out.append(SearchResult(str(hit["_id"]), float(hit["_score"]), rank, cosine, source,
                                    {"mode": mode, "engine": "opensearch"} if explain else None))
        return out

    def search_with_facets(self, query: str, k: int = 10, mode: str = DEFAULT_MODE, filters: Filters | None = None,
                           explain: bool = False, depth: int = FACET_DEPTH,
                           columns: tuple[str, ...] = ("brand", "color"), offset: int = 0, sort: str | None = None,
                           highlight: bool = False):
        """The page and facet counts over the top `depth` hits, counted as a local index counts them."""
        import pandas as pd

        window = Window(k, offset, sort)
        hits = self._search(query, max(depth, window.depth()), mode, filters, explain)  # one request for both
        return (self._page(hits, query, window, highlight),
                facet_counts(pd.DataFrame([h.fields for h in hits[:depth]]), columns))

    def suggest(self, prefix: str, k: int = 8) -> list[str]:
        """Completions from the local index folder the export came from."""
        saved = store.read_suggest(store.IndexFiles(self.parts.root)) if self.parts.root is not None else {}
        return Suggester.from_dict(saved).complete(prefix, k) if saved else []

    def product(self, product_id: str) -> dict[str, Any]:
        from opensearchpy.exceptions import NotFoundError

        try:
            source = self.client.get(index=self.name, id=str(product_id))["_source"]
        except NotFoundError:
            raise QueryError(f"unknown product id {product_id!r}") from None
        source.pop("embedding", None)
        source.pop("keywords", None)
        return source

    def relevance(self, query: str, product_ids: list[str]) -> list[float]:
        raise QueryError("the relevance estimate needs the local index's cross-encoder; it is not served from "
                         "OpenSearch")
