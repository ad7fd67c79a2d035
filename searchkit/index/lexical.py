"""BM25 keyword retrieval over the products' normalised, stemmed text (stemmed words + brand_/color_ tokens: the
embedder's input, or its stemmed form when the model reads whole words; from keyword text 2, with measures written
one way, see searchkit.data.text.measures)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..arrays import load_npy
from ..errors import IndexFormatError

log = logging.getLogger(__name__)

# BM25 saturation and length normalisation, chosen on the validation split with the shipped model (docs/design-notes.md):
# short product titles repeat a term rarely, and their length says little about relevance
BM25_K1, BM25_B = 0.45, 0.5
_DATA, _INDICES, _INDPTR = "data.npy", "indices.npy", "indptr.npy"
_VOCAB, _PARAMS = "vocab.json", "params.json"
_NAMES = (_DATA, _INDICES, _INDPTR, _VOCAB, _PARAMS)
_BM25S_NAMES = ("data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy", "vocab.index.json",
                "params.index.json")


DEFER_FROM = 4096  # postings: a query word this common is looked up per row instead of merged (see Scores)
LOOKUP_COST = 8  # a binary-search lookup of one row in a posting list costs about this many merged postings


@dataclass(frozen=True)
class _Deferred:
    ids: np.ndarray  # the word's posting list (rows, ascending)
    values: np.ndarray  # its BM25 contribution to each
    bound: float  # the largest of them


class Scores:
    """One query's BM25 scores, from `LexicalIndex.scored` (valid only inside it).

    `array[row]` sums the contributions of the query's words except the deferred ones, and `rows` lists each product
    that contains one of those words, once. Deferred words are the query's common ones (posting lists of at least
    DEFER_FROM rows; the rarest word is never deferred): `of(rows)` adds their contributions by binary search, and
    `top` merges them, rarest first, only while the best rows seen so far cannot prove that a product holding only
    deferred words (score <= the sum of their largest contributions) ranks lower — the idea of MaxScore (Turtle &
    Flood 1995). Results are exactly those of scoring every product."""

    def __init__(self, array: np.ndarray, rows: np.ndarray, deferred: list[_Deferred] | None = None,
                 reach: float = np.inf):
        self.array, self.rows, self.deferred = array, rows, list(deferred or [])
        self.reach = reach  # no partial score in `array` exceeds this (the merged words' largest contributions)

    @property
    def bound(self) -> float:
        """The most the deferred words can add to any product's score (with room for float32 rounding)."""
        return float(sum(d.bound for d in self.deferred)) * (1 + 1e-5) + 1e-6

    def of(self, rows: np.ndarray) -> np.ndarray:
        """The full BM25 scores of these rows."""
        rows = np.asarray(rows, dtype=np.int64)
        values = self.array[rows]
        for word in self.deferred:
            at = np.minimum(np.searchsorted(word.ids, rows), len(word.ids) - 1)
            values = values + np.where(word.ids[at] == rows, word.values[at], values.dtype.type(0))
        return values

    def merge(self) -> None:
        """Merge the rarest deferred word into `array` and `rows`."""
        word = self.deferred.pop(0)
        self.rows = np.concatenate([self.rows, _accumulate(self.array, word.ids, word.values)])
        self.reach += word.bound


class LexicalIndex:
    """BM25 (Lucene variant) over whitespace tokens of normalised product texts; row i = product row i.

    bm25s builds the index and writes its files; searching reads those arrays with numpy alone (a token's column
    of the CSC matrix holds its precomputed BM25 contribution to every product that contains it), so the query
    path never imports bm25s or scipy."""

    def __init__(self, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, vocab: dict[str, int], rows: int):
        vocab = {t: i for t, i in vocab.items() if t}  # bm25s adds an empty token without a column
        if (vocab and max(vocab.values()) + 2 > len(indptr)) or len(data) != len(indices) or (
                len(indices) and indices.max() >= rows):
            raise IndexFormatError("BM25 arrays are inconsistent with each other")
        self.data, self.indices, self.indptr, self.vocab, self.rows = data, indices, indptr, vocab, rows
        self._local = threading.local()  # per-thread score buffer for `scored`
        self._bounds: dict[int, float | None] = {}  # column -> its largest value (None: rows not ascending)

    @classmethod
    def build(cls, texts: list[str], k1: float = BM25_K1, b: float = BM25_B) -> LexicalIndex:
        import bm25s

        model = bm25s.BM25(k1=k1, b=b, method="lucene")
        model.index([t.split() for t in texts], show_progress=False)
        scores = model.scores
        data, indices, indptr = (np.asarray(scores[n]) for n in ("data", "indices", "indptr"))
        # bm25s numbers the words in set order, which differs from process to process: renumbered in sorted order,
        # a build writes the same bytes every time (the scores were the same either way)
        columns = len(indptr) - 1  # bm25s also numbers "" last, without a column
        words = sorted(w for w, i in model.vocab_dict.items() if i < columns)
        old = np.array([model.vocab_dict[w] for w in words], dtype=np.int64)
        sizes = indptr[old + 1] - indptr[old]
        order = np.concatenate([np.arange(indptr[c], indptr[c + 1]) for c in old]) if len(old) else np.zeros(0, int)
        new_indptr = np.zeros(len(words) + 1, dtype=indptr.dtype)
        np.cumsum(sizes, out=new_indptr[1:])
        extra = sorted(w for w, i in model.vocab_dict.items() if i >= columns)
        return cls(data[order], indices[order], new_indptr, {w: i for i, w in enumerate(words + extra)},
                   int(scores["num_docs"]))

    def save(self, folder: Path) -> None:
        np.save(folder / _DATA, self.data)
        np.save(folder / _INDICES, self.indices)
        np.save(folder / _INDPTR, self.indptr)
        (folder / _VOCAB).write_text(json.dumps(self.vocab))
        (folder / _PARAMS).write_text(json.dumps({"method": "lucene", "num_docs": self.rows}))

    @classmethod
    def load(cls, folder: Path, mmap: bool = False) -> LexicalIndex:
        """mmap: map the two big arrays (read on use) instead of reading them; for short-lived processes only."""
        names = _NAMES if (folder / _PARAMS).is_file() else _BM25S_NAMES  # also read bm25s's own file names
        data, indices, indptr, vocab, params = (folder / n for n in names)
        try:
            return cls(load_npy(data, mmap), load_npy(indices, mmap), load_npy(indptr),
                       json.loads(vocab.read_text()),
                       int(json.loads(params.read_text())["num_docs"]))
        except (OSError, ValueError, KeyError) as exc:
            raise IndexFormatError(f"{folder}: unreadable BM25 index ({type(exc).__name__}: {exc})") from exc

    def known(self, tokens: list[str]) -> list[str]:
        return [t for t in dict.fromkeys(tokens) if t in self.vocab]

    def _add(self, out: np.ndarray, columns: list[int]) -> np.ndarray:
        """Add these columns' BM25 contributions into `out` (zeros on entry); return the rows touched, each once."""
        touched: list[np.ndarray] = []
        for i in columns:
            start, end = self.indptr[i], self.indptr[i + 1]
            rows = self.indices[start:end]  # a column holds each product once
            if touched:
                touched.append(_accumulate(out, rows, self.data[start:end]))
            else:  # the first column: every row is new
                touched.append(rows)
                out[rows] = self.data[start:end]
        return np.concatenate(touched) if len(touched) > 1 else (touched[0] if touched else np.zeros(0, np.int32))

    def _columns(self, query_text: str) -> list[int]:
        return [self.vocab[t] for t in self.known(query_text.split())]

    def postings(self, query_text: str) -> int:
        """How many (word, product) entries the query's known words have: the work of scoring it in full."""
        return int(sum(self.indptr[c + 1] - self.indptr[c] for c in self._columns(query_text)))

    def together(self, terms: list[str]) -> int:
        """How many products hold every one of these words (0 when the catalog lacks one of them)."""
        found = [self.vocab.get(t) for t in dict.fromkeys(terms)]
        columns = [c for c in found if c is not None]
        if not columns or len(columns) < len(found):
            return 0
        lists = sorted((np.asarray(self.indices[self.indptr[c]:self.indptr[c + 1]]) for c in columns), key=len)
        rows = lists[0]
        for other in lists[1:]:
            rows = np.intersect1d(rows, other, assume_unique=True)
            if not len(rows):
                break
        return int(len(rows))

    def coverage(self, query_text: str, rows: np.ndarray) -> np.ndarray:
        """The share of the query's words (brand_ and color_ tokens aside) that each of these rows contains; a word
        the catalog never uses counts as missing everywhere."""
        terms = [t for t in dict.fromkeys(query_text.split()) if not t.startswith(("brand_", "color_"))]
        rows = np.asarray(rows, dtype=np.int64)
        if not terms or not len(rows):
            return np.zeros(len(rows), dtype=np.float32)
        found = np.zeros(len(rows), dtype=np.float32)
        for term in terms:
            column = self.vocab.get(term)
            if column is None:
                continue
            start, end = self.indptr[column], self.indptr[column + 1]
            ids = np.asarray(self.indices[start:end])
            if self._bound(column) is not None:  # ascending: binary search
                at = np.minimum(np.searchsorted(ids, rows), max(len(ids) - 1, 0))
                found += ids[at] == rows if len(ids) else 0
            else:
                found += np.isin(rows, ids)
        return found / len(terms)

    def scores(self, query_text: str) -> np.ndarray:
        """BM25 score of every product for a normalised query (zeros when no query word is in the catalog)."""
        out = np.zeros(self.rows, dtype=np.float32)
        self._add(out, self._columns(query_text))
        return out

    def _bound(self, column: int) -> float | None:
        """The column's largest contribution, or None when its rows are not ascending (then it is never deferred);
        measured on first use and remembered."""
        if column not in self._bounds:
            start, end = self.indptr[column], self.indptr[column + 1]
            ids = np.asarray(self.indices[start:end])
            ascending = len(ids) < 2 or bool((ids[1:] > ids[:-1]).all())
            self._bounds[column] = float(np.max(self.data[start:end])) if ascending and end > start else None
        return self._bounds[column]

    @contextmanager
    def scored(self, query_text: str) -> Iterator[Scores]:
        """The query's scores (see Scores) in a buffer this thread reuses and zeroes again on exit: no fresh array of
        every product's score per query, and common words are deferred (at a million products they would cost most of a query)."""
        out = getattr(self._local, "free", None)
        self._local.free = None  # a nested call on this thread gets its own buffer
        if out is None:
            out = np.zeros(self.rows, dtype=np.float32)
        columns = sorted(self._columns(query_text), key=lambda c: (self.indptr[c + 1] - self.indptr[c], c))
        merged, deferred = columns[:1], []  # rarest first; the rarest is always merged
        for column in columns[1:]:
            start, end = self.indptr[column], self.indptr[column + 1]
            bound = self._bound(column) if end - start >= DEFER_FROM else None
            if bound is not None:
                deferred.append(_Deferred(self.indices[start:end], self.data[start:end], bound))
            else:
                merged.append(column)
        bounds = [self._bound(c) for c in merged] if deferred else []
        known = [b for b in bounds if b is not None]
        reach = float(sum(known)) if len(known) == len(bounds) else np.inf
        scores = Scores(out, self._add(out, merged), deferred, reach)  # should this fail, the buffer is dropped
        try:
            yield scores
        finally:
            out[scores.rows] = 0
            self._local.free = out

    def search(self, query_text: str, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows with a positive score (optionally only rows where `mask` is True), best first."""
        with self.scored(query_text) as scores:
            return self.top(scores, k, mask)

    @staticmethod
    def top(scores: Scores | np.ndarray, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The best k rows with a positive score (optionally only rows where `mask` is True), ties by row; from
        `scored`, or from a score array as `scores` returns."""
        if not isinstance(scores, Scores):
            candidates = np.flatnonzero(scores > 0)
            return _best(candidates, scores[candidates], k, mask)
        while scores.deferred:
            bound = scores.bound
            if scores.reach > bound:  # else no partial score can beat the bound yet: merge without looking
                rows, partial = _masked(scores.rows, scores.array[scores.rows], mask)
                # when the k-th best partial score beats what the deferred words can add, no product holding only
                # deferred words reaches the top k, nor does one trailing that k-th partial by more than they add
                if len(rows) >= k and (kth := np.partition(partial, len(partial) - k)[len(partial) - k]) > bound:
                    rows = rows[partial >= kth - bound]
                    if len(rows) * LOOKUP_COST <= len(scores.deferred[0].ids):  # else merging is cheaper
                        return _best(rows, scores.of(rows), k, None)
            scores.merge()
        return _best(scores.rows, scores.array[scores.rows], k, mask)


def _accumulate(out: np.ndarray, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Add one word's contributions into `out` at its rows (each once), reading `out` there once; return the rows
    it had not touched yet (contributions are > 0: 0 = not yet seen)."""
    current = out[rows]
    out[rows] = current + values
    return rows[current == 0]


def _masked(rows: np.ndarray, values: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Rows (and their values) where `mask` is True. Every row a query touches scores above 0 (each word's
    contributions are), so only a filter drops any."""
    if mask is None:
        return rows, values
    keep = mask[rows]
    return rows[keep], values[keep]


def _best(rows: np.ndarray, values: np.ndarray, k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    rows, values = _masked(rows, values, mask)
    if len(rows) > k:  # keep every row scoring at least the k-th best, so ties resolve by row
        keep = values >= np.partition(values, len(values) - k)[len(values) - k]
        rows, values = rows[keep], values[keep]
    order = np.lexsort((rows, -values))[:k]
    return rows[order].astype(np.int64), values[order]
