"""Searcher: normalise a query exactly as the catalog was, embed it, search, return ranked products.

Modes: dense (embeddings + FAISS), lexical (BM25 over the same words, always stemmed, with measures written one way
from keyword text 2; see searchkit.text), hybrid (both candidate lists merged, see Fusion) and rerank (hybrid, then
the index's cross-encoder reorders the top; see searchkit.rerank).
Every result's `score` is the cosine of query and product embeddings, whatever ranked it.
Queries are embedded by the index's distilled query encoder when it has one (see searchkit.distillation).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from . import store
from .ann import apply_params
from .encoder import (
    Encoder,
    ModelInfo,
    OnnxEncoder,
    StaticEncoder,
    load_encoder,
    model_fingerprint,
)
from .errors import (
    IndexFormatError,
    IndexMismatchError,
    ModelError,
    QueryError,
    SearchkitError,
)
from .filters import Filters
from .lexical import Scores
from .relevance import RelevanceModel, text_key
from .relevance import features as relevance_features
from .spell import Correction, SpellCorrector
from .text import KEYWORD_TEXTS, BrandMatcher, CachedStemmer, Normaliser, TextConfig, words

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 1000
MODES = ("dense", "lexical", "hybrid", "rerank")
DEFAULT_MODE = "hybrid"
QUERY_CACHE_SIZE = 4096
RRF_K = 60  # reciprocal rank fusion constant (Cormack et al. 2009)
# hybrid and lexical: a lone query whose words' posting lists hold this many entries in all runs its BM25 leg
# beside the embedding (+ vector search) instead of after it. Measured per query, 300 test queries on 1M products,
# two runs (overlapped minus sequential, median): above 50K entries -1.5 / -1.2 ms, 20K-50K -0.8 / -0.4 ms, 5K-20K -0.2 /
# +0.2 ms, below 5K +0.1 / +0.5 ms (the thread hand-off); at 55K products -0.1 to -0.2 ms above 5K entries
OVERLAP_FROM = 20_000


@dataclass(frozen=True)
class Fusion:
    """How hybrid mode merges dense and BM25 candidates (the top `depth` of each).

    weighted: alpha * min-max-scaled cosine + (1 - alpha) * BM25 / max BM25 over the candidates
    rrf:      reciprocal rank fusion, sum of 1 / (60 + rank)
    """

    method: str = "weighted"
    alpha: float = 0.4  # chosen on the validation split (tune_fusion.py): 0.4026 vs 0.3988 at 0.5, 0.4016 at 0.3
    depth: int = 100

    def __post_init__(self) -> None:
        if self.method not in ("weighted", "rrf") or not 0.0 <= self.alpha <= 1.0 or self.depth < 1:
            raise QueryError(f"bad fusion settings {self}")


@dataclass(frozen=True)
class SearchResult:
    product_id: str
    score: float  # cosine similarity in [-1, 1]
    rank: int  # 1 = best
    fields: dict[str, Any] = field(default_factory=dict)
    explain: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"rank": self.rank, "product_id": self.product_id, "score": round(self.score, 6), **self.fields}
        if self.explain is not None:
            out["explain"] = self.explain
        return out


@dataclass(frozen=True)
class _Query:
    text: str  # as typed
    understood: str  # words after the spelling fallback
    corrections: list[Correction]
    normalised: str  # model input: stemmed unless the model reads whole words, with a brand token
    keywords: str  # BM25 input: stemmed, with a brand token (the same text when the model reads stemmed text)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def check_query(query: str) -> str:
    if not isinstance(query, str) or not query.strip():
        raise QueryError("the query is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError(f"the query is {len(query)} characters long; at most {MAX_QUERY_CHARS} are accepted")
    return query.strip()


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise QueryError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    return mode


def rrf(rankings: list[np.ndarray], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal rank fusion: each row scores sum(1 / (k + rank)) over the rankings that hold it."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, row in enumerate(ranking, start=1):
            fused[int(row)] = fused.get(int(row), 0.0) + 1.0 / (k + rank)
    return fused


def flat_vectors(index: Any) -> np.ndarray | None:
    """A zero-copy (n, d) view of the stored vectors for flat storage (IndexFlat, IndexHNSWFlat), else None."""
    from .ann import ExactIndex

    if isinstance(index, ExactIndex):
        return index.vectors
    import faiss

    storage = faiss.downcast_index(index.storage) if hasattr(index, "storage") else index
    if not isinstance(storage, faiss.IndexFlat) or storage.ntotal == 0:
        return None
    return faiss.rev_swig_ptr(storage.get_xb(), storage.ntotal * storage.d).reshape(storage.ntotal, storage.d)


def stored_vectors(index: Any) -> np.ndarray:
    """Every stored vector: the zero-copy view of flat storage, else decoded from the index's codes."""
    vectors = flat_vectors(index)
    return vectors if vectors is not None else index.reconstruct_n(0, index.ntotal)


def _as_table(products: Any) -> Any:
    """A pyarrow Table of the products, from a Table or a pandas DataFrame."""
    import pyarrow as pa

    if isinstance(products, pa.Table):
        return products
    return pa.Table.from_pandas(products.reset_index(drop=True), preserve_index=False)


BACKENDS = ("auto", "distilled", "onnx-int8", "onnx", "torch")


def pick_backend(backend: str, files: store.IndexFiles, manifest: store.Manifest) -> str:
    """The query encoder: "distilled" (the model's shallower query encoder — int8 layers or a token table — when the
    build kept it), "onnx-int8" (the whole model's int8 graph, when the build measured it close to fp32), "onnx" (its
    fp32 graph) or "torch" (sentence-transformers). "auto" takes the first of those the index and the installation
    allow."""
    if backend not in BACKENDS:
        raise QueryError(f"unknown backend {backend!r}: use {', '.join(BACKENDS)}")
    has = {"onnx": store.ONNX_FILE in manifest.files,
           "onnx-int8": store.ONNX_INT8_FILE in manifest.files
           and bool(manifest.model.get("query_int8", {}).get("used_for_queries")),
           "distilled": store.query_encoder_file(manifest) in manifest.files
           and bool(manifest.model.get("query_tower", {}).get("used_for_queries"))}
    if backend in has and not has[backend]:
        name = {"onnx": store.ONNX_FILE, "onnx-int8": store.ONNX_INT8_FILE,
                "distilled": store.query_encoder_file(manifest)}[backend]
        raise IndexFormatError(f"{files.root}: this index has no usable {name}; rebuild it or use backend torch")
    if backend != "auto":
        return backend
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:  # a token table needs tokenizers and numpy only
        return "distilled" if has["distilled"] and store.static_query_encoder(manifest) else "torch"
    return next(b for b in ("distilled", "onnx-int8", "onnx", "torch") if has.get(b, True))


class Searcher:
    """Thread-safe search over one index. Build with `Searcher.from_dir(path)`; the constructor takes parts."""

    def __init__(self, index: Any, products: Any, encoder: Encoder, manifest: store.Manifest,
                 normaliser: Normaliser, lexical: Any = None, corrector: SpellCorrector | None = None,
                 fusion: Fusion = Fusion(), reranker: Any = None):
        """reranker: a searchkit.rerank.Reranker, or a callable making one on first use (mode "rerank" only)."""
        table = _as_table(products)
        if index.ntotal != table.num_rows:
            raise IndexFormatError(f"the faiss index holds {index.ntotal} vectors for {table.num_rows} products")
        if index.d != encoder.info.dimension:
            raise IndexMismatchError(
                f"the index has dimension {index.d}, the model {encoder.info.name} embeds in {encoder.info.dimension}"
            )
        self.index = index
        self.table = table
        self.encoder = encoder
        self.manifest = manifest
        self.normaliser = normaliser
        self.lexical = lexical
        self.corrector = corrector  # None or spell_correct=False: queries are used as typed
        self.spell_correct = True
        self.fusion = fusion
        self._reranker = reranker
        self._reranker_lock = threading.Lock()
        self.search_params: dict[str, int] = {}  # the ANN knob in use (efSearch / nprobe; from_dir sets it)
        self._vectors = flat_vectors(index)
        self._encode_lock = threading.Lock()
        self._inflight_lock = threading.Lock()
        self._inflight = 0  # searches running now: legs overlap only for a searcher's sole search
        self.cache_size = QUERY_CACHE_SIZE  # recent query embeddings kept (0: none); head queries repeat a lot
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    @classmethod
    def from_dir(cls, path: str | Path, model: str | Path | None = None, device: str | None = None,
                 verify: bool = True, backend: str = "auto", search_threads: int | None = 1,
                 encode_threads: int | None = 1, mmap: bool = False,
                 target_recall: float | None = None) -> Searcher:
        """Load and validate an index folder. `model`, when given, must be the model the index was built with.

        backend: "onnx-int8" / "onnx" embed queries with onnxruntime (no torch import; the index's int8 or fp32
        graph), "torch" with sentence-transformers; "auto" prefers them in that order (see pick_backend).
        search_threads: faiss OpenMP threads per search (process-wide). One is fastest for single queries on a few
        cores (measured: 4 ms vs 12.5 ms with two on 55K x 384) and leaves the other cores to concurrent requests;
        None keeps faiss's default. encode_threads: onnxruntime threads per query batch (None: all cores).
        mmap: map the vectors and BM25 arrays instead of reading them (a 1M-product index opens ~1.6 s sooner); for
        one-shot processes like `searchkit query` — a file rewritten in place under a mapping kills the process, so
        long-lived searchers (the server) read them.
        target_recall: for an approximate index, search with the cheapest efSearch / nprobe whose recall@10 the build
        measured at or above this (its calibration curve, in the manifest) instead of the one the build chose."""
        files = store.IndexFiles(Path(path))
        manifest = store.read_manifest(files.root)
        store.verify_files(files, manifest, checksums=verify)
        expected = manifest.model.get("fingerprint")
        if model is not None and model_fingerprint(model) != expected:
            raise IndexMismatchError(
                f"{files.root} was built with model {manifest.model.get('name')!r} (fingerprint {expected[:12]}), "
                f"not with {model}; rebuild the index with that model or drop --model"
            )
        backend = pick_backend(backend, files, manifest)
        use_onnx = backend != "torch"
        if verify and not use_onnx and model_fingerprint(files.model) != expected:
            raise IndexFormatError(f"{files.model}: the model copy differs from the one the index was built with")
        text = store.read_text(files)
        config = TextConfig.from_dict(text.get("config", {}))
        if config.to_dict() != manifest.text:
            raise IndexFormatError(f"{files.text}: text settings differ from the manifest's")
        index = store.read_faiss(files, mmap=mmap)
        try:
            knob = apply_params(index, manifest.index, target_recall)
        except SearchkitError as exc:
            raise QueryError(f"{files.root}: {exc}") from exc
        if search_threads:
            import faiss

            faiss.omp_set_num_threads(search_threads)
        if index.ntotal != manifest.rows or index.d != manifest.dimension:
            raise IndexFormatError(
                f"{files.faiss}: {index.ntotal} vectors of dimension {index.d}, the manifest says "
                f"{manifest.rows} x {manifest.dimension}"
            )
        products = store.read_products(files, manifest.rows)
        lexical = store.read_lexical(files, manifest.rows, mmap=mmap)
        if use_onnx:
            info = ModelInfo(name=manifest.model["name"], path=str(files.model), fingerprint=expected,
                             dimension=manifest.dimension, text=config)
            if backend == "distilled" and store.static_query_encoder(manifest):
                encoder: Encoder = StaticEncoder(files.query_tokens, files.model, info, mmap=mmap)
            else:
                graph = {"distilled": files.query_onnx, "onnx-int8": files.onnx_int8, "onnx": files.onnx}[backend]
                encoder = OnnxEncoder(graph, files.model, info, threads=encode_threads,
                                      one_at_a_time=backend != "onnx")  # int8 graphs run one text at a time
        else:
            encoder = load_encoder(files.model, device=device)
        keyword_text = (manifest.index.get("bm25") or {}).get("text", 1)  # indexes before version 2 lack it
        if keyword_text not in KEYWORD_TEXTS:
            raise IndexFormatError(f"{files.manifest}: keyword text version {keyword_text!r} is not one of "
                                   f"{KEYWORD_TEXTS}; rebuild the index with this searchkit")
        normaliser = Normaliser(config, BrandMatcher.from_names(text.get("brands", [])),
                                CachedStemmer(text.get("stems", {})), keyword_text=keyword_text)
        reranker = None
        if store.has_reranker(manifest):
            def reranker():  # loaded on the first "rerank" search: other modes never pay for its graph
                from .rerank import Grader, Reranker, read_info

                info = read_info(files.reranker)
                grader = Grader(files.grader_graph, files.grader, info["grader"], normaliser,
                                threads=encode_threads) if store.has_grader(manifest) else None
                return Reranker(files.reranker_graph, files.reranker_tokenizer, info, threads=encode_threads,
                                grader=grader)
        searcher = cls(index, products, encoder, manifest, normaliser, lexical, SpellCorrector(text.get("vocab", {})),
                       reranker=reranker)
        searcher.search_params = knob
        return searcher

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def reranker(self) -> Any:
        """The cross-encoder of mode "rerank", or None when the index has none."""
        with self._reranker_lock:
            if callable(self._reranker) and not hasattr(self._reranker, "scores"):
                self._reranker = self._reranker()
            return self._reranker

    @property
    def modes(self) -> tuple[str, ...]:
        """The modes this searcher can run."""
        return tuple(m for m in MODES if (m == "dense" or self.lexical is not None)
                     and (m != "rerank" or self._reranker is not None))

    @cached_property
    def products(self) -> Any:
        """The catalog as a pandas DataFrame (built on first use: filters, facets, evaluation)."""
        return self.table.to_pandas()

    @cached_property
    def _row_of(self) -> dict[str, int]:
        return {str(pid): i for i, pid in enumerate(self.table.column("product_id").to_pylist())}

    @cached_property
    def _columns(self) -> list[tuple[str, Any]]:
        """(name, contiguous arrow array) per product column, for reading single rows."""
        table = self.table.combine_chunks()
        return [(name, table.column(name).chunk(0) if table.column(name).num_chunks == 1
                 else table.column(name).combine_chunks()) for name in table.column_names]

    def _rows(self, rows: list[int]) -> list[dict[str, Any]]:
        # scalar reads from whole-column arrays (0.03 ms for 10 rows; a one-row slice per row took 0.15 ms), not
        # Table.take: take loads pyarrow.compute, which imports pandas (~0.5 s on a cold start)
        columns = self._columns
        return [{name: array[int(r)].as_py() for name, array in columns} for r in rows]

    # -- embedding -------------------------------------------------------------------------------------------------

    @property
    def _compounds(self) -> bool:
        """Whether queries' compound words are looked up both ways (keyword text 2 on; see searchkit.spell)."""
        return self.normaliser.keyword_text >= 2

    def understand(self, query: str) -> tuple[str, list[Correction]]:
        """The query as searched: words unknown to the catalog replaced by their closest catalog word, or (keyword
        text 2) split into the two catalog words they glue together."""
        tokens = words(check_query(query))
        if not (self.spell_correct and self.corrector):
            return " ".join(tokens), []
        fixed, corrections = self.corrector.correct(tokens, compounds=self._compounds)
        return " ".join(fixed), corrections

    def _parse(self, query: str) -> _Query:
        understood, corrections = self.understand(query)
        normalised = self.normaliser.query(understood)
        lexical = self.normaliser.lexical
        joined = (self.corrector.joined(understood.split())
                  if self._compounds and self.spell_correct and self.corrector else [])
        keywords = " ".join([understood, *joined])  # "back splash" also looks for "backsplash"
        return _Query(query, understood, corrections, normalised,
                      normalised if lexical is self.normaliser and not joined else lexical.query(keywords))

    def _embed(self, parsed: list[_Query]) -> np.ndarray:
        """Query embeddings; the last `cache_size` distinct normalised queries are remembered (LRU)."""
        texts = [p.normalised for p in parsed]
        if not texts:
            return np.zeros((0, self.encoder.info.dimension), dtype=np.float32)
        with self._encode_lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            fresh = dict(zip(missing, self.encoder.encode(missing, batch_size=64), strict=True)) if missing else {}
            out = np.vstack([fresh[t] if t in fresh else self._cache[t] for t in texts])
            if self.cache_size > 0:
                for text in dict.fromkeys(texts):
                    if text in fresh:
                        self._cache[text] = fresh[text]
                    self._cache.move_to_end(text)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            return out

    def embed_queries(self, queries: list[str]) -> np.ndarray:
        return self._embed([self._parse(q) for q in queries])

    def _cosines(self, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if len(rows) == 0:
            return np.zeros(0, dtype=np.float32)
        stored = self._vectors[rows] if self._vectors is not None else self.index.reconstruct_batch(
            np.ascontiguousarray(rows, dtype=np.int64))
        return stored @ vector

    # -- candidate generation --------------------------------------------------------------------------------------

    def _dense(self, vectors: np.ndarray, depth: int, mask: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top rows per query vector. With a filter: exact search over the rows it keeps (no post-filter holes)."""
        if mask is None:
            scores, ids = self.index.search(vectors, depth)
            return [(i[i >= 0], s[i >= 0]) for i, s in zip(ids, scores, strict=True)]
        rows = np.flatnonzero(mask)
        out = []
        for vector in vectors:
            scores = self._cosines(vector, rows)
            top = np.argsort(-scores, kind="stable")[:depth]
            out.append((rows[top], scores[top]))
        return out

    def _rank(self, bm25: Scores | None, vector: np.ndarray, dense: tuple[np.ndarray, np.ndarray], k: int,
              mode: str, mask: np.ndarray | None, lex: tuple[np.ndarray, np.ndarray] | None = None,
              ) -> list[tuple[int, dict[str, float]]]:
        """Rows in final order with their per-signal scores (bm25: the query's BM25 scores, see LexicalIndex;
        lex: its top max(k, fusion depth) when already found)."""
        dense_rows, dense_scores = dense
        if mode == "dense":
            return [(int(r), {"dense": float(s)}) for r, s in zip(dense_rows[:k], dense_scores[:k], strict=True)]
        lex_rows, lex_scores = lex if lex is not None else self.lexical.top(bm25, max(k, self.fusion.depth), mask)
        if mode == "lexical":
            return [(int(r), {"lexical": float(s)}) for r, s in zip(lex_rows[:k], lex_scores[:k], strict=True)]
        if self.fusion.method == "rrf":
            fused = rrf([dense_rows, lex_rows])
            rows = np.fromiter(fused, dtype=np.int64, count=len(fused))
            scores = np.fromiter(fused.values(), dtype=np.float64, count=len(fused))
        else:
            rows, scores = self._weighted(vector, bm25, dense_rows, lex_rows)
        order = np.lexsort((rows, -scores))[:k]  # best fused score first, ties by row
        return [(int(r), {"fusion": float(f), "lexical": float(b)})
                for r, f, b in zip(rows[order], scores[order], bm25.of(rows[order]), strict=True)]

    def _reranked(self, query: str, ranked: list[tuple[int, dict[str, float]]]) -> list[tuple[int, dict[str, float]]]:
        """The top `depth` hybrid candidates in the cross-encoder's order (ties: hybrid order), then the rest."""
        reranker = self.reranker
        head = ranked[:reranker.settings.depth]
        if not head:
            return ranked
        logits = reranker.scores(query, self._rows([r for r, _ in head]))
        final = reranker.combine(logits, np.array([signals["fusion"] for _, signals in head]))
        order = np.lexsort((np.arange(len(head)), -final))
        return [(head[i][0], {**head[i][1], "rerank": float(final[i]), "cross_encoder": float(logits[i])})
                for i in order] + ranked[len(head):]

    def _weighted(self, vector: np.ndarray, bm25_all: Scores, dense_rows: np.ndarray,
                  lex_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The union of both candidate lists and each one's weighted fused score."""
        candidates = np.unique(np.concatenate([dense_rows, lex_rows]).astype(np.int64))
        if len(candidates) == 0:
            return candidates, np.zeros(0, dtype=np.float32)
        cosines = self._cosines(vector, candidates)
        low, spread = cosines.min(), cosines.max() - cosines.min()
        dense = (cosines - low) / spread if spread > 0 else np.ones_like(cosines)
        bm25 = bm25_all.of(candidates)
        top = bm25.max()
        lexical = bm25 / top if top > 0 else np.zeros_like(bm25)
        return candidates, self.fusion.alpha * dense + (1 - self.fusion.alpha) * lexical

    # -- public API ------------------------------------------------------------------------------------------------

    def search_batch(self, queries: list[str], k: int = 10, mode: str = DEFAULT_MODE, filters: Filters | None = None,
                     explain: bool = False) -> list[list[SearchResult]]:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise QueryError(f"k must be a positive integer, not {k!r}")
        check_mode(mode)
        if mode != "dense" and self.lexical is None:
            raise QueryError(f"mode {mode!r} needs a keyword index, and this searcher has none; use mode 'dense'")
        if mode == "rerank" and self._reranker is None:
            raise QueryError("mode 'rerank' needs a cross-encoder, and this index has none; build it with "
                             "`searchkit build-index --reranker DIR` or use mode 'hybrid'")
        if not queries:
            return []
        mask = None
        if filters:
            from .filters import filter_mask

            mask = filter_mask(self.products, filters)
        k = min(k, len(self))
        parsed = [self._parse(q) for q in queries]
        depth = k if mode == "dense" else max(k, self.fusion.depth)
        if mode == "rerank":
            depth = max(depth, self.reranker.settings.depth)
        with self._inflight_lock:
            self._inflight += 1
            alone = self._inflight == 1
        try:
            if mode != "dense" and len(parsed) == 1 and alone and (
                    self.lexical.postings(parsed[0].keywords) >= OVERLAP_FROM):
                return [self._overlapped(parsed[0], k, depth, mode, mask, explain)]
            vectors = self._embed(parsed)
            dense = self._dense(vectors, depth, mask) if mode != "lexical" else [(np.zeros(0, int), np.zeros(0))] * len(
                queries)
            return [self._results(p, v, d, k, mode, mask, explain)
                    for p, v, d in zip(parsed, vectors, dense, strict=True)]
        finally:
            with self._inflight_lock:
                self._inflight -= 1

    @cached_property
    def _pool(self) -> Any:
        from concurrent.futures import ThreadPoolExecutor

        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="searchkit-dense")

    def _dense_leg(self, parsed: _Query, depth: int, mode: str, mask: np.ndarray | None) -> tuple[np.ndarray, tuple]:
        vectors = self._embed([parsed])
        if mode == "lexical":  # the embedding only gives the results' cosines
            return vectors[0], (np.zeros(0, int), np.zeros(0))
        return vectors[0], self._dense(vectors, depth, mask)[0]

    def _overlapped(self, parsed: _Query, k: int, depth: int, mode: str, mask, explain: bool) -> list[SearchResult]:
        """One hybrid or lexical query whose BM25 leg is costly: BM25 on this thread while a worker embeds the query
        (and, for hybrid, searches the vectors; onnxruntime and faiss release the GIL), so the legs overlap on two
        cores. The same results as the sequential path."""
        future = self._pool.submit(self._dense_leg, parsed, depth, mode, mask)
        with self.lexical.scored(parsed.keywords) as bm25:
            lex = self.lexical.top(bm25, depth, mask)
            vector, dense = future.result()
            return self._scored_results(bm25, parsed, vector, dense, k, mode, mask, explain, lex)

    def _results(self, parsed: _Query, vector, dense, k, mode, mask, explain) -> list[SearchResult]:
        if mode == "dense" and not (explain and self.lexical is not None):
            return self._scored_results(None, parsed, vector, dense, k, mode, mask, explain)
        with self.lexical.scored(parsed.keywords) as bm25:  # its buffer is reused once the results are built
            return self._scored_results(bm25, parsed, vector, dense, k, mode, mask, explain)

    def _scored_results(self, bm25: Scores | None, parsed: _Query, vector, dense, k, mode, mask,
                        explain, lex: tuple[np.ndarray, np.ndarray] | None = None) -> list[SearchResult]:
        if mode == "rerank":
            depth = self.reranker.settings.depth
            ranked = self._reranked(parsed.understood, self._rank(bm25, vector, dense, max(k, depth), "hybrid", mask,
                                                                  lex))[:k]
        else:
            ranked = self._rank(bm25, vector, dense, k, mode, mask, lex)
        rows = np.array([r for r, _ in ranked], dtype=np.int64)
        cosines = self._cosines(vector, rows)
        terms = set(parsed.keywords.split()) if explain else set()
        out = []
        records = self._rows([r for r, _ in ranked])
        product_terms = self._product_terms(records) if explain else [set()] * len(records)
        graded = self._graded(parsed, ranked, records, cosines, product_terms) if explain and mode == "rerank" else {}
        for rank, ((row, signals), cosine, record, product_words) in enumerate(
                zip(ranked, cosines, records, product_terms, strict=True), start=1):
            fields = {key: _plain(v) for key, v in record.items() if key != "product_id"}
            why = None
            if explain:
                lexical = signals.get("lexical", float(bm25.of([row])[0]) if bm25 is not None else None)
                why = {"mode": mode, "dense": float(cosine), "lexical": lexical, "query_as_searched": parsed.understood,
                       "corrections": [[c.original, c.corrected] for c in parsed.corrections],
                       "matched_terms": sorted(terms & product_words),
                       **{key: signals[key] for key in ("fusion", "rerank", "cross_encoder") if key in signals}}
                if rank - 1 in graded:
                    why["relevance"] = graded[rank - 1]
            out.append(SearchResult(str(record["product_id"]), float(cosine), rank, fields, why))
        return out

    def search(self, query: str, k: int = 10, mode: str = DEFAULT_MODE, filters: Filters | None = None,
               explain: bool = False) -> list[SearchResult]:
        return self.search_batch([query], k, mode=mode, filters=filters, explain=explain)[0]

    def search_with_facets(self, query: str, k: int = 10, mode: str = DEFAULT_MODE, filters: Filters | None = None,
                           explain: bool = False, depth: int = 100, columns: tuple[str, ...] = ("brand", "color"),
                           ) -> tuple[list[SearchResult], dict[str, list[tuple[str, int]]]]:
        """The top k results and facet counts over the top `depth` candidates, from one search: the first k of a
        deeper search are the k results (every mode draws at least max(k, fusion depth) candidates)."""
        from .filters import facet_counts

        hits = self.search(query, k=max(k, depth), mode=mode, filters=filters, explain=explain)
        rows = [self._row_of[h.product_id] for h in hits[:depth]]
        return hits[:k], facet_counts(self.products.iloc[rows], columns)

    def facets(self, query: str, filters: Filters | None = None, depth: int = 100, mode: str = DEFAULT_MODE,
               columns: tuple[str, ...] = ("brand", "color")) -> dict[str, list[tuple[str, int]]]:
        """Counts of brand/colour values among the top `depth` candidates matching the filters."""
        return self.search_with_facets(query, 1, mode, filters, depth=depth, columns=columns)[1]

    def _rows_of_ids(self, product_ids: list[str]) -> np.ndarray:
        missing = [p for p in product_ids if str(p) not in self._row_of]
        if missing:
            raise QueryError(f"unknown product id(s): {missing[:5]}")
        return np.array([self._row_of[str(p)] for p in product_ids], dtype=np.int64)

    def similarity(self, query: str, product_ids: list[str]) -> list[float]:
        """Cosine of the query with each given product, as the index scores them."""
        return [float(x) for x in self._cosines(self.embed_queries([query])[0], self._rows_of_ids(product_ids))]

    # -- graded relevance (searchkit.relevance) --------------------------------------------------------------------

    @cached_property
    def relevance_model(self) -> RelevanceModel:
        """The index's fitted relevance estimate; ModelError when it has none, IndexMismatchError when it was fitted
        on another embedder, BM25 or reranker than this index's."""
        reranker = self._second_stage()
        if not reranker.info.get("relevance"):
            raise ModelError(f"the index's reranker {reranker.name!r} has no relevance fit: run `searchkit "
                             "fit-relevance --index INDEX`, then rebuild the index")
        model = RelevanceModel.from_dict(reranker.info["relevance"])
        why = model.mismatch(*self.relevance_parts())
        if why:
            raise IndexMismatchError(f"the relevance fit does not belong to this index: {why}; fit it again with "
                                     "`searchkit fit-relevance`")
        return model

    def _second_stage(self) -> Any:
        """The reranker the relevance estimate reads, with BM25 beside it; ModelError when the index lacks either."""
        reranker = self.reranker if self.lexical is not None else None
        if reranker is None:
            raise ModelError("relevance needs an index with BM25 and a reranker (build it from a model that carries "
                             "reranker/, or with --reranker)")
        return reranker

    def relevance_parts(self) -> tuple[str, tuple[float, float, int], str, str]:
        """What a relevance fit depends on: the embedder's fingerprint, BM25's k1, b and keyword text version, the
        reranker's fingerprint, the embedder's text settings (relevance.text_key)."""
        bm25 = self.manifest.index.get("bm25") or {}
        return (self.manifest.model.get("fingerprint", ""),
                (float(bm25.get("k1", -1)), float(bm25.get("b", -1)), self.normaliser.keyword_text),
                (self.manifest.model.get("reranker") or {}).get("fingerprint", ""),
                text_key(self.normaliser.config))

    def _graded(self, parsed: _Query, ranked: list[tuple[int, dict[str, float]]], records: list[dict[str, Any]],
                cosines: np.ndarray, product_terms: list[set[str]]) -> dict[int, float]:
        """{position: relevance estimate} of the reranked results, when the index has a usable fit (else empty)."""
        try:
            model = self.relevance_model
        except SearchkitError:
            return {}
        head = [i for i, (_, signals) in enumerate(ranked) if "cross_encoder" in signals]
        if not head:
            return {}
        rows = self._signals(parsed, [records[i] for i in head], cosines[head],
                             np.array([ranked[i][1]["cross_encoder"] for i in head]),
                             np.array([ranked[i][1]["lexical"] for i in head]), [product_terms[i] for i in head])
        return dict(zip(head, map(float, model.predict(rows)), strict=True))

    def pair_signals(self, query: str, product_ids: list[str]) -> np.ndarray:
        """The relevance estimate's features of each (query, product) pair (relevance.feature_names)."""
        rows = self._rows_of_ids(product_ids)
        reranker = self._second_stage()
        parsed = self._parse(query)
        records = self._rows(rows.tolist())
        return self._signals(parsed, records, self._cosines(self._embed([parsed])[0], rows),
                             reranker.scores(parsed.understood, records), self.lexical.scores(parsed.keywords)[rows],
                             self._product_terms(records))

    def _product_terms(self, records: list[dict[str, Any]]) -> list[set[str]]:
        """Each product record's keyword-index words (what BM25 and `matched_terms` compare the query with)."""
        lex = self.normaliser.lexical
        return [set(lex.product(r.get("title") or "", r.get("brand"), r.get("color")).split()) for r in records]

    def _signals(self, parsed: _Query, records: list[dict[str, Any]], cosines: np.ndarray, logits: np.ndarray,
                 bm25: np.ndarray, product_terms: list[set[str]]) -> np.ndarray:
        """Features from the signals a search already has, plus the word counts and the grader's cosine."""
        rows = relevance_features(cosines, logits, bm25, parsed.keywords.split(), product_terms)
        grader = self.reranker.grader
        return rows if grader is None else np.column_stack([rows, grader.cosines(parsed.understood, records)])

    def relevance(self, query: str, product_ids: list[str]) -> list[float]:
        """Estimated relevance of each product to the query on the raters' 1 (not) .. 3 (highly relevant) scale."""
        model = self.relevance_model
        return [float(x) for x in model.predict(self.pair_signals(query, product_ids))]

    def product(self, product_id: str) -> dict[str, Any]:
        row = self._row_of.get(str(product_id))
        if row is None:
            raise QueryError(f"unknown product id {product_id!r}")
        return {k: _plain(v) for k, v in self._rows([row])[0].items()}
