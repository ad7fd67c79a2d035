"""Retrieval and fusion: candidates from the vector index and from BM25, merged for hybrid mode.

Every ranked row carries its signals: "score" (what ranked it: the vector index's similarity in mode dense, BM25 in
mode lexical, the fused score in mode hybrid), and the per-leg scores ("dense", "lexical", "fusion") it has.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ..data.intent import NO_TYPE, ProductTypes, QueryType
from ..errors import QueryError
from ..index.ann import ExactIndex, flat_vectors
from ..index.lexical import Scores
from .results import Mode

RRF_K = 60  # reciprocal rank fusion constant (Cormack et al. 2009)
EXACT_FILTERED = 8192  # a filter keeping at most this many rows is searched exactly; a broader one walks the graph
# a filter keeping at most this many rows has their cosines read in place (Retriever.cosines); more, on an exact
# index: faiss scans the flat storage with a selector (docs/speed.md)
GATHER_BELOW = EXACT_FILTERED
MAX_FILTERED_EF = 1024  # the most effort a filtered graph walk is given
# a narrow filter on a large catalog makes the walk search wide (effort / sqrt(share)); its rows are scored exactly
# instead while they number at most this many per unit of that effort (docs/speed.md)
EXACT_PER_EFFORT = 32
TYPE_SHARE = 4  # the type list holds a quarter of a leg's depth (Retriever.typed_rows)

Ranked = list[tuple[int, dict[str, Any]]]  # rows in final order with their signals (scores, and the rules applied)


@dataclass(frozen=True)
class Fusion:
    """How hybrid mode merges dense and BM25 candidates (the top `depth` of each).

    weighted: alpha * min-max-scaled cosine + (1 - alpha) * BM25 / max BM25 over the candidates
    rrf:      reciprocal rank fusion, sum of 1 / (60 + rank)
    Either way, when the query asks for a product type (searchkit.data.intent), a candidate of that type gains
    `type_weight`, and every candidate gains `cover_weight` times the share of the query's words it contains (so
    "cordless leaf blower" puts cordless blowers above corded ones). Both weights were chosen on the validation
    split (docs/intent.md); 0 turns either off.
    """

    method: str = "weighted"
    alpha: float = 0.4  # chosen on the validation split (docs/quality.md)
    depth: int = 100
    type_weight: float = 0.15
    cover_weight: float = 0.2

    def __post_init__(self) -> None:
        if self.method not in ("weighted", "rrf") or not 0.0 <= self.alpha <= 1.0 or self.depth < 1 or (
                self.type_weight < 0 or self.cover_weight < 0):
            raise QueryError(f"bad fusion settings {self}")


def _selected(index: Any, vectors: np.ndarray, depth: int, mask: np.ndarray, effort: int | None = None
              ) -> list[tuple[np.ndarray, np.ndarray]]:
    """faiss's search of `index` keeping only the rows `mask` passes (IDSelectorBitmap); effort: an HNSW walk's
    efSearch (None: an exhaustive scan)."""
    import faiss

    bits = np.packbits(mask, bitorder="little")  # kept alive for the selector, which reads it in place
    selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits))
    params: Any = (faiss.SearchParameters(sel=selector) if effort is None  # type: ignore[call-arg]
                   else faiss.SearchParametersHNSW(sel=selector, efSearch=effort))  # type: ignore[attr-defined]
    scores, ids = index.search(np.ascontiguousarray(vectors, dtype=np.float32), depth, params=params)
    return [(i[i >= 0], s[i >= 0]) for i, s in zip(ids, scores, strict=True)]


def rrf(rankings: list[np.ndarray], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal rank fusion: each row scores sum(1 / (k + rank)) over the rankings that hold it."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, row in enumerate(ranking, start=1):
            fused[int(row)] = fused.get(int(row), 0.0) + 1.0 / (k + rank)
    return fused


@dataclass(frozen=True)
class Legs:
    """What the retrieval legs found for one query: its embedding, the dense candidates (rows, cosines), the BM25
    scores of every product (searchkit.index.lexical.Scores; None when the mode reads no keywords) and BM25's top rows
    when already found."""

    vector: np.ndarray
    dense: tuple[np.ndarray, np.ndarray]
    bm25: Scores | None = None
    lex: tuple[np.ndarray, np.ndarray] | None = None


class Retriever:
    """Dense and BM25 candidates of one index, and their fusion."""

    def __init__(self, index: Any, lexical: Any, fusion: Fusion, types: ProductTypes | None = None):
        self.index = index
        self.lexical = lexical
        self.fusion = fusion
        self.types = types
        self.vectors = flat_vectors(index)
        self._efforts: dict[int, Any] = {}  # search effort -> faiss's parameters for it (Retriever._effort)

    def cosines(self, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if len(rows) == 0:
            return np.zeros(0, dtype=np.float32)
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        stored = self.vectors
        if stored is None:
            return self.index.reconstruct_batch(rows) @ vector
        faiss = self._faiss
        if (faiss is None or stored.dtype != np.float32 or not stored.flags.c_contiguous or rows.min() < 0
                or rows.max() >= len(stored)):
            return stored[rows] @ vector  # (numpy names a bad row; faiss would read past the vectors)
        # each row read where it lies rather than gathered into a copy first: the cheaper memory traffic of a
        # search's few hundred scattered rows (docs/speed.md)
        query = np.ascontiguousarray(vector, dtype=np.float32)
        out = np.empty(len(rows), dtype=np.float32)
        faiss.fvec_inner_products_by_idx(faiss.swig_ptr(out), faiss.swig_ptr(query), faiss.swig_ptr(stored),
                                         faiss.swig_ptr(rows), stored.shape[1], 1, len(rows))
        return out

    @cached_property
    def _faiss(self) -> Any:
        """faiss, for reading rows in place, or None where it is not installed (an in-memory exact index needs none)."""
        try:
            import faiss
        except ImportError:
            return None
        return faiss

    def dense(self, vectors: np.ndarray, depth: int, mask: np.ndarray | None, effort: int | None = None
              ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top rows per query vector. With a filter: exact search over the rows it keeps (no post-filter holes).
        effort: an approximate index's efSearch / nprobe for this search (None: the index's own; hybrid's dense leg
        passes the one calibrated for it, see searchkit.index.ann.hybrid_knob)."""
        if mask is None:
            params = self._effort(effort) if effort else None
            scores, ids = (self.index.search(vectors, depth) if params is None
                           else self.index.search(vectors, depth, params=params))
            return [(i[i >= 0], s[i >= 0]) for i, s in zip(ids, scores, strict=True)]
        rows = np.flatnonzero(mask)
        if len(rows) > EXACT_FILTERED and self._graph is not None:
            effort = self._filtered_effort(depth, len(rows) / len(mask))
            if len(rows) > EXACT_PER_EFFORT * effort:  # else: fewer rows than the walk would visit, read exactly
                return _selected(self._graph, vectors, depth, mask, effort)
        elif len(rows) > GATHER_BELOW and self._flat is not None:
            return self._flat_filtered(vectors, depth, mask)
        out = []
        for vector in vectors:
            scores = self.cosines(vector, rows)
            if len(rows) > depth:  # the best `depth` first, then only they are sorted
                keep = np.argpartition(-scores, depth - 1)[:depth]
                keep = keep[np.lexsort((rows[keep], -scores[keep]))]
            else:
                keep = np.lexsort((rows, -scores))
            out.append((rows[keep], scores[keep]))
        return out

    def _effort(self, value: int) -> Any:
        """faiss's per-search parameters setting this efSearch (HNSW) or nprobe (IVF), or None for an exact index;
        made once per value (faiss only reads them)."""
        if value not in self._efforts:
            import faiss

            if self._graph is not None:
                self._efforts[value] = faiss.SearchParametersHNSW(efSearch=int(value))  # type: ignore[attr-defined]
            elif self._ivf is not None:
                self._efforts[value] = faiss.SearchParametersIVF(nprobe=int(value))  # type: ignore[call-arg]
            else:
                self._efforts[value] = None
        return self._efforts[value]

    @cached_property
    def _ivf(self) -> Any:
        """The inverted-list index when the vectors are searched through one, else None."""
        if isinstance(self.index, ExactIndex):
            return None
        import faiss

        try:
            return faiss.extract_index_ivf(self.index)
        except RuntimeError:
            return None

    @cached_property
    def _graph(self) -> Any:
        """The HNSW index when the vectors are searched through one (filtered searches may then walk it), else None."""
        if isinstance(self.index, ExactIndex):
            return None
        import faiss

        index = faiss.downcast_index(self.index)
        return index if isinstance(index, faiss.IndexHNSW) else None

    @cached_property
    def _flat(self) -> Any:
        """The flat storage of the vectors as a faiss index (for exact scans with a selector), else None."""
        if isinstance(self.index, ExactIndex) or self.vectors is None:
            return None
        import faiss

        index = faiss.downcast_index(self.index)
        storage = faiss.downcast_index(index.storage) if hasattr(index, "storage") else index
        return storage if isinstance(storage, faiss.IndexFlat) else None

    def _flat_filtered(self, vectors: np.ndarray, depth: int, mask: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """A filter's exact top rows by faiss's scan of the flat storage, skipping rows the filter drops (cheaper than
        gathering a few thousand vectors into a new array)."""
        return _selected(self._flat, vectors, depth, mask)

    def _filtered_effort(self, depth: int, share: float) -> int:
        """The effort of a graph walk that keeps only rows a filter passes (faiss's IDSelectorBitmap): a narrower
        filter hides more of each neighbourhood, so the walk searches wider. A broad filter's rows come from such a
        walk: a third of the catalog through exact scores costs far more."""
        return int(min(MAX_FILTERED_EF, max(int(self._graph.hnsw.efSearch), depth) / max(share, 1e-6) ** 0.5))

    def rank(self, legs: Legs, k: int, mode: Mode, mask: np.ndarray | None, keywords: str = "",
             intent: QueryType = NO_TYPE) -> Ranked:
        """Rows in final order with their signals (keywords and intent: the query's keyword text and the product type
        it asks for, read by hybrid's fusion)."""
        bm25, vector, lex = legs.bm25, legs.vector, legs.lex
        dense_rows, dense_scores = legs.dense
        if mode == Mode.DENSE:
            return [(int(r), {"score": float(s), "dense": float(s)})
                    for r, s in zip(dense_rows[:k], dense_scores[:k], strict=True)]
        lex_rows, lex_scores = lex if lex is not None else self.lexical.top(bm25, max(k, self.fusion.depth), mask)
        if mode == Mode.LEXICAL:
            return [(int(r), {"score": float(s), "lexical": float(s)})
                    for r, s in zip(lex_rows[:k], lex_scores[:k], strict=True)]
        assert bm25 is not None  # hybrid: both legs ran
        if self.fusion.method == "rrf":
            fused = rrf([dense_rows, lex_rows])
            rows = np.fromiter(fused, dtype=np.int64, count=len(fused))
            scores = np.fromiter(fused.values(), dtype=np.float64, count=len(fused))
        else:
            rows, scores = self.weighted(vector, bm25, dense_rows, lex_rows, self.typed_rows(vector, intent, mask))
        scores = scores + self.intent_bonus(rows, keywords, intent)
        order = np.lexsort((rows, -scores))[:k]  # best fused score first, ties by row
        return [(int(r), {"score": float(f), "fusion": float(f), "lexical": float(b)})
                for r, f, b in zip(rows[order], scores[order], bm25.of(rows[order]), strict=True)]

    def typed_rows(self, vector: np.ndarray, intent: QueryType, mask: np.ndarray | None) -> np.ndarray:
        """The third candidate list of a query asking for a product type: the products of that type nearest the query
        (as many as a leg's depth / TYPE_SHARE), so that grills compete for "bbq grill" even when both legs' top 100
        are covers and brushes."""
        if not (self.fusion.type_weight and self.types is not None and intent.typed and intent.strength > 0):
            return np.zeros(0, dtype=np.int64)
        rows = self.types.rows_of(intent)
        if rows is None or not len(rows):
            return np.zeros(0, dtype=np.int64)
        if mask is not None:
            rows = rows[mask[rows]]
        depth = max(1, self.fusion.depth // TYPE_SHARE)
        if len(rows) <= depth:
            return rows
        cosines = self.cosines(vector, rows)
        return rows[np.argpartition(-cosines, depth - 1)[:depth]]

    def intent_bonus(self, rows: np.ndarray, keywords: str, intent: QueryType) -> np.ndarray:
        """What hybrid adds to each candidate's fused score for being the type asked for and holding the query's
        words (Fusion.type_weight, Fusion.cover_weight)."""
        bonus = np.zeros(len(rows), dtype=np.float64)
        if self.fusion.type_weight and self.types is not None and intent.typed and len(self.types):
            bonus += self.fusion.type_weight * self.types.match(rows, intent)
        if self.fusion.cover_weight and keywords and self.lexical is not None:
            bonus += self.fusion.cover_weight * self.lexical.coverage(keywords, rows)
        return bonus

    def weighted(self, vector: np.ndarray, bm25_all: Scores, dense_rows: np.ndarray, lex_rows: np.ndarray,
                 typed_rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The union of the candidate lists and each one's weighted fused score."""
        lists = [dense_rows, lex_rows] + ([typed_rows] if typed_rows is not None and len(typed_rows) else [])
        candidates = np.unique(np.concatenate(lists).astype(np.int64))
        if len(candidates) == 0:
            return candidates, np.zeros(0, dtype=np.float32)
        cosines = self.cosines(vector, candidates)
        low, spread = cosines.min(), cosines.max() - cosines.min()
        dense = (cosines - low) / spread if spread > 0 else np.ones_like(cosines)
        bm25 = bm25_all.of(candidates)
        top = bm25.max()
        lexical = bm25 / top if top > 0 else np.zeros_like(bm25)
        return candidates, self.fusion.alpha * dense + (1 - self.fusion.alpha) * lexical
