"""Serving from OpenSearch: load an export into a cluster (`searchkit push opensearch`) and search it
(`OpenSearchSearcher.connect`, `searchkit serve --opensearch`).

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
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ...data.products import ProductTable
from ...data.spell import Correction
from ...data.suggest import Suggester
from ...errors import QueryError, SearchkitError
from ...index import layout
from ...search.arrange import RELEVANT, Window, kept_for_sort, order_of, renamed, sort_judges
from ...search.filters import Filters, conditions, facet_counts
from ...search.highlight import marked
from ...search.loading import LoadOptions, load_parts
from ...search.results import DEFAULT_MODE, Mode, SearchResult, check_mode
from ...search.rules import NO_RULES, Rules
from ...search.rules import loads as rules_loads
from ...search.understanding import ParsedQuery, parse, understand
from .names import UNSLUGGED, index_name

log = logging.getLogger(__name__)

FACET_DEPTH = 100
MAX_RESULT_WINDOW = 10_000  # index.max_result_window's default: from + size beyond it is refused by a cluster
MAX_KNN_K = 10_000  # the k-NN plugin's largest k
CHUNK_BYTES = 8 * 1024 * 1024  # a _bulk request's body: under managed services' 10 MiB http.max_content_length


@dataclass(frozen=True)
class Connection:
    """How to reach a cluster: `ca_certs` a CA bundle for a private CA (the demo certificates' root-ca.pem, say);
    verify False skips certificate checks altogether (a test cluster only)."""

    ca_certs: str | None = None
    verify: bool = True


def client_for(url: str, connection: Connection = Connection()) -> Any:
    try:
        from opensearchpy import OpenSearch
    except ImportError as exc:
        raise SearchkitError("OpenSearch needs the client: pip install 'searchkit[opensearch]'") from exc
    tls: dict[str, Any] = {}
    if url.startswith("https"):
        tls = {"use_ssl": True, "verify_certs": connection.verify, "ssl_show_warn": connection.verify}
        if connection.ca_certs:
            tls["ca_certs"] = connection.ca_certs
    return OpenSearch(hosts=[url], timeout=60, **tls)


def _actions(folder: Path, name: str, files: list[str]) -> Iterator[dict[str, Any]]:
    for file in files:
        with gzip.open(folder / file, "rt", encoding="utf-8") as lines:
            for action_line in lines:
                doc = json.loads(next(lines))
                yield {"_op_type": "index", "_index": name, "_id": json.loads(action_line)["index"]["_id"],
                       "_source": doc}


def push_opensearch(url: str, export_dir: str | Path | None = None, index_dir: str | Path | None = None,
                    name: str | None = None, client: Any = None, chunk_size: int = 500, max_retries: int = 3,
                    progress: bool = False, max_chunk_bytes: int = CHUNK_BYTES,
                    connection: Connection = Connection()) -> dict[str, Any]:
    """Create the hybrid pipeline and the index on the cluster at `url` and load every document (opensearch-py's
    streaming_bulk: chunks of at most `chunk_size` documents and `max_chunk_bytes`, retried on 429). From an export
    folder, or from an index folder exported on the way. All or nothing: a refused pipeline (no neural-search
    plugin), index or document removes what this push created, and says why in one line."""
    if (export_dir is None) == (index_dir is None):
        raise SearchkitError("push an export folder or an index folder, one of them")
    if export_dir is None:
        from .export import export_opensearch  # pandas and the build side: not on the query path

        with tempfile.TemporaryDirectory(prefix="searchkit-export-") as tmp:
            export_opensearch(Path(str(index_dir)), Path(tmp) / "export", name=name)
            return push_opensearch(url, export_dir=Path(tmp) / "export", name=name, client=client,
                                   chunk_size=chunk_size, max_retries=max_retries, progress=progress,
                                   max_chunk_bytes=max_chunk_bytes, connection=connection)
    from opensearchpy import helpers
    from opensearchpy.exceptions import OpenSearchException

    folder = Path(export_dir)
    try:
        summary = json.loads((folder / "export.json").read_text())
        body = json.loads((folder / "index.json").read_text())
        pipeline = json.loads((folder / "pipeline.json").read_text())
    except (OSError, ValueError) as exc:
        raise SearchkitError(f"{folder}: not a searchkit export ({exc})") from exc
    name = index_name(name or summary["name"])
    client = client or client_for(url, connection)
    pipeline_id, created = f"{name}-hybrid", []
    try:
        if client.indices.exists(index=name):
            raise SearchkitError(f"{url}: the index {name!r} exists already; delete it or push under another --name")
        client.search_pipeline.put(id=pipeline_id, body=pipeline)  # first: a cluster without neural-search refuses it
        created.append("pipeline")
        client.indices.create(index=name, body=body)
        created.append("index")
        loaded = 0
        bar = _bar(summary["documents"], progress)
        for ok, item in helpers.streaming_bulk(client, _actions(folder, name, summary["files"]),
                                               chunk_size=chunk_size, max_chunk_bytes=max_chunk_bytes,
                                               max_retries=max_retries, raise_on_error=False):
            if not ok:
                result = next(iter(item.values()))
                raise SearchkitError(f"{url}: document {result.get('_id')!r} refused: "
                                     f"{(result.get('error') or {}).get('reason', result.get('error'))}")
            loaded += 1
            bar.update(1)
        bar.close()
        client.indices.refresh(index=name)
    except (OpenSearchException, SearchkitError) as exc:
        _undo(client, name, pipeline_id, created)
        if isinstance(exc, SearchkitError):
            raise
        raise SearchkitError(f"{url}: {reason(exc)}") from exc
    return {"url": url, "name": name, "documents": loaded, "pipeline": f"{name}-hybrid",
            "dimension": summary["dimension"]}


def reason(exc: Exception) -> str:
    """What the cluster said, in one line: its error type and reason when it sent them."""
    info = getattr(exc, "info", None)
    error = info.get("error") if isinstance(info, dict) else None
    if isinstance(error, dict) and error.get("reason"):
        return f"{error.get('type', 'error')}: {error['reason']}"
    return str(exc)


def _undo(client: Any, name: str, pipeline_id: str, created: list[str]) -> None:
    """Remove what a failed push created, so that pushing again starts clean."""
    from opensearchpy.exceptions import OpenSearchException

    try:
        if "index" in created:
            client.indices.delete(index=name)
        if "pipeline" in created:
            client.search_pipeline.delete(id=pipeline_id)
    except OpenSearchException as exc:
        log.warning("could not remove what the failed push created (%s, %s): %s", name, pipeline_id, exc)


def _bar(total: int, on: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="doc", disable=not on)


def filter_clauses(filters: Filters | None, types: dict[str, str]) -> list[dict[str, Any]]:
    """searchkit filters as OpenSearch filter clauses, checked first by the local engine's rules (an unknown column,
    an empty list, a range on text are refused here, as locally, not answered with nothing): a range, numbers as
    terms, text as terms on the exported slugs (`slug.<column>`), so "white" finds "White" as it does locally."""
    clauses: list[dict[str, Any]] = []
    for rule in conditions(filters or {}, types):
        if rule.span is not None:
            bounds = {op: v for op, v in zip(("gte", "lte"), rule.span, strict=True) if v is not None}
            clauses.append({"range": {rule.name: bounds}})
        elif rule.numbers:
            clauses.append({"terms": {rule.name: list(rule.numbers)}})
        elif rule.name in UNSLUGGED:
            raise QueryError(f"filter {rule.name!r}: OpenSearch filters on brand, colour and the other short text "
                             "columns, not on this one")
        else:
            clauses.append({"terms": {f"slug.{rule.name}": list(rule.slugs)}})
    return clauses


def sort_hits(hits: list[SearchResult], name: str, descending: bool) -> list[SearchResult]:
    """The RELEVANT best hits ordered by a field as searchkit.search.arrange orders rows (missing last, ties in relevance
    order; text compared as lower-case)."""
    head = hits[:RELEVANT]
    values = [v.lower() if isinstance(v := h.fields.get(name), str) else v for h in head]
    return [head[i] for i in order_of(values, descending)]


def reported_score(score: float, mode: Mode, k1: float) -> float:
    """The score that ranked a hit, on the local engine's scale: in mode dense the cosine (faiss inner product comes
    back as 1 + ip for ip > 0 and 1 / (1 - ip) below: k-NN's KNNScoringUtil / FaissService), in mode lexical BM25
    as searchkit computes it (Lucene's LegacyBM25Similarity, which OpenSearch uses, multiplies by 1 + k1), in mode
    hybrid the pipeline's combined score (min-max per clause, weighted mean)."""
    if mode == Mode.DENSE:
        return score - 1.0 if score >= 1.0 else 1.0 - 1.0 / score
    if mode == Mode.LEXICAL:
        return score / (1.0 + k1)
    return score


class OpenSearchSearcher:
    """Search an index served by OpenSearch, with the same results as a local Searcher returns (SearchResult, best
    first, `score` what ranked the hit, `cosine` the embedding similarity)."""

    def __init__(self, client: Any, name: str, parts: Any, depth: int = 100, shards: int = 1):
        self.client = client
        self.name = name
        self.parts = parts
        self.manifest = parts.manifest
        self.depth = depth  # each clause's hits the hybrid fusion reads, as the local engine's candidate lists
        self.shards = shards  # more than one: BM25 statistics gathered from every shard (dfs_query_then_fetch)
        self.spell_correct = True
        self.rules: Rules = NO_RULES  # synonyms only (connect refuses the rest)

    @classmethod
    def connect(cls, url: str, name: str, index_dir: str | Path, client: Any = None,
                connection: Connection = Connection()) -> OpenSearchSearcher:
        """index_dir: the index folder the export came from (its text settings, vocabulary and query encoder embed
        queries as the catalog was embedded; its vectors and products are not read at query time)."""
        parts = load_parts(index_dir, LoadOptions())
        text = layout.read_rules_text(parts.root) if parts.root is not None else None
        rules = rules_loads(text) if text else NO_RULES
        if rules.rules or rules.signals or rules.demote:
            raise QueryError(f"{index_dir} has rules that pin, hide, boost, weigh or demote products, which only the "
                             "local engine applies; serve that index without --opensearch, or remove them "
                             "(`searchkit rules --remove`): OpenSearch serves its synonyms alone")
        client = client or client_for(url, connection)
        from opensearchpy.exceptions import OpenSearchException

        try:
            settings = client.indices.get_settings(index=name)
        except OpenSearchException as exc:
            raise SearchkitError(f"{url}: index {name!r}: {exc}") from exc
        shards = int(next(iter(settings.values()))["settings"]["index"].get("number_of_shards", 1))
        searcher = cls(client, name, parts, shards=shards)
        searcher.rules = rules
        return searcher

    @property
    def modes(self) -> tuple[str, ...]:
        return (Mode.DENSE, Mode.LEXICAL, Mode.HYBRID)

    def understand(self, query: str) -> tuple[str, list[Correction]]:
        return understand(query, self.parts.normaliser, self.parts.corrector if self.spell_correct else None)

    def embed(self, queries: list[str]) -> np.ndarray:
        texts = [parse(q, self.parts.normaliser, self.parts.corrector).normalised for q in queries]
        return np.asarray(self.parts.encoder.encode(texts, batch_size=64))

    def request(self, query: str, k: int, mode: Mode, filters: Filters | None) -> tuple[dict[str, Any], np.ndarray]:
        """The search request: one hybrid query (or its one clause in mode dense / lexical), and the query vector.
        A cluster's hybrid query gives each clause its top `size` hits per shard and scores a hit missing from a
        clause as 0 there (neural-search's HybridCollectorManager), so `size` is at least the local engine's fusion
        depth and the page is cut here; the k-NN clause carries the calibrated efSearch, which faiss reads from
        the query's method_parameters."""
        parsed = self._parse(query)
        vector = self.parts.encoder.encode([parsed.normalised])[0]
        where = filter_clauses(filters, self.manifest.catalog.types)
        size = max(k, self.depth) if mode == Mode.HYBRID else k
        if size > MAX_RESULT_WINDOW:
            raise QueryError(f"OpenSearch returns at most {MAX_RESULT_WINDOW} hits a search (index.max_result_window); "
                             f"this one asks for {size}")
        lexical = {"bool": {"must": [{"match": {"keywords": parsed.keywords}}], "filter": where}}
        ef_search = int(self.manifest.index.params.get("ef_search", 128))
        knn = {"knn": {"embedding": {"vector": vector.tolist(), "k": min(max(size, self.depth), MAX_KNN_K),
                                     "method_parameters": {"ef_search": max(ef_search, size)},
                                     **({"filter": {"bool": {"filter": where}}} if where else {})}}}
        clause = {"lexical": lexical, "dense": knn, "hybrid": {"hybrid": {"queries": [lexical, knn]}}}[mode]
        return {"size": size, "query": clause, "_source": {"excludes": ["keywords", "slug"]}}, vector

    def search(self, query: str, k: int = 10, mode: Mode | str = DEFAULT_MODE, filters: Filters | None = None,
               explain: bool = False, offset: int = 0, sort: str | None = None, highlight: bool = False
               ) -> list[SearchResult]:
        """As Searcher.search: a page from `offset`, sorted over the RELEVANT best by a field, titles highlighted;
        the cluster returns the first offset + k (or RELEVANT) hits and the rest is done here, as the local engine
        does it."""
        window = Window(k, offset, renamed(sort, self.manifest.catalog.own_names))
        return self._page(self._search(query, window.depth(), mode, filters, explain), query, window, highlight)

    def _parse(self, query: str) -> ParsedQuery:
        return parse(query, self.parts.normaliser, self.parts.corrector if self.spell_correct else None,
                     self.parts.types, rules=self.rules)

    def _page(self, hits: list[SearchResult], query: str, window: Window, highlight: bool) -> list[SearchResult]:
        """The window of the cluster's hits, sorted and highlighted here as the local engine does it."""
        parsed = None  # the query as understood, parsed once for the sort and the highlights
        if window.column is not None:
            present = [h for h in hits if window.column in h.fields]
            if hits and not present:
                raise QueryError(f"cannot sort by {window.column!r}; the documents have no such field")
            parsed = self._parse(query)
            hits = sort_hits(self._kept_for_sort(hits[:RELEVANT], parsed), window.column, window.descending)
        page = hits[window.offset:window.offset + window.k]
        keywords = (parsed or self._parse(query)).keywords if highlight else ""
        return [replace(h, rank=window.offset + i, highlight=marked(str(h.fields.get("title") or ""), keywords,
                                                                     self.parts.normaliser) if highlight else None)
                for i, h in enumerate(page, start=1)]

    def _search(self, query: str, k: int, mode: Mode | str, filters: Filters | None,
                explain: bool) -> list[SearchResult]:
        mode = check_mode(mode)
        if mode not in self.modes:
            raise QueryError(f"mode {mode!r} is not served from OpenSearch; use {', '.join(self.modes)}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise QueryError(f"k must be a positive integer, not {k!r}")
        body, vector = self.request(query, k, mode, filters)
        params = {"search_pipeline": f"{self.name}-hybrid"} if mode == Mode.HYBRID else {}
        if self.shards > 1:
            params["search_type"] = "dfs_query_then_fetch"
        from opensearchpy.exceptions import OpenSearchException

        try:
            answer = self.client.search(index=self.name, body=body, params=params)
        except OpenSearchException as exc:
            raise SearchkitError(f"OpenSearch index {self.name!r}: {reason(exc)}") from exc
        out = []
        k1 = self.manifest.index.bm25.k1
        for rank, hit in enumerate(answer["hits"]["hits"][:k], start=1):
            source = dict(hit.get("_source") or {})
            stored = np.asarray(source.pop("embedding", []), dtype=np.float32)
            cosine = float(stored @ vector) if stored.shape == vector.shape else float("nan")
            source.pop("product_id", None)
            source.pop("slug", None)
            out.append(SearchResult(str(hit["_id"]), reported_score(float(hit["_score"]), mode, k1), rank, cosine,
                                    source, {"mode": mode, "engine": "opensearch", "cluster_score": hit["_score"]}
                                    if explain else None))
        return out

    def search_with_facets(self, query: str, k: int = 10, mode: Mode | str = DEFAULT_MODE,
                           filters: Filters | None = None, explain: bool = False, depth: int = FACET_DEPTH,
                           columns: tuple[str, ...] = ("brand", "color"), offset: int = 0, sort: str | None = None,
                           highlight: bool = False) -> tuple[list[SearchResult], dict[str, list[tuple[str, int]]]]:
        """The page and facet counts over the top `depth` hits, counted as a local index counts them."""
        import pandas as pd

        window = Window(k, offset, renamed(sort, self.manifest.catalog.own_names))
        hits = self._search(query, max(depth, window.depth()), mode, filters, explain)  # one request for both
        return (self._page(hits, query, window, highlight),
                facet_counts(pd.DataFrame([h.fields for h in hits[:depth]]), columns))

    @cached_property
    def _row_of(self) -> dict[str, int]:
        """Each product's row in the local index folder, whose product types and keyword index a sort reads."""
        return ProductTable.of(self.parts.products).row_of

    def _kept_for_sort(self, hits: list[SearchResult], parsed: ParsedQuery) -> list[SearchResult]:
        """Of the best hits, those a sort reorders, kept as the local engine keeps them (arrange.kept_for_sort: of the
        type asked for, else holding the most of the query's words); all of them when the local folder lacks one."""
        rows = np.array([self._row_of.get(h.product_id, -1) for h in hits], dtype=np.int64)
        if not len(rows) or (rows < 0).any():
            return hits
        asked_for, covered = sort_judges(parsed, self.parts.types, self.parts.lexical)
        kept = {row for row, _ in kept_for_sort([(int(r), {}) for r in rows], 0, asked_for, covered)}
        return [h for h, r in zip(hits, rows, strict=True) if int(r) in kept]

    @cached_property
    def suggester(self) -> Suggester | None:
        """The completions of the local index folder the export came from, read once (not on every keystroke)."""
        saved = layout.read_suggest(layout.IndexFiles(self.parts.root)) if self.parts.root is not None else {}
        return Suggester.from_dict(saved) if saved else None

    def suggest(self, prefix: str, k: int = 8) -> list[str]:
        """Completions from the local index folder the export came from."""
        return self.suggester.complete(prefix, k) if self.suggester is not None else []

    def product(self, product_id: str) -> dict[str, Any]:
        from opensearchpy.exceptions import NotFoundError

        try:
            source: dict[str, Any] = self.client.get(index=self.name, id=str(product_id))["_source"]
        except NotFoundError:
            raise QueryError(f"unknown product id {product_id!r}") from None
        source.pop("embedding", None)
        source.pop("keywords", None)
        return source

    def relevance(self, query: str, product_ids: list[str]) -> list[float]:
        raise QueryError("the relevance estimate needs the local index's cross-encoder; it is not served from "
                         "OpenSearch")
