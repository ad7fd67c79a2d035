"""BM25 keyword retrieval over the same normalised text the embedder sees (stemmed words + brand_/color_ tokens)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from .errors import IndexFormatError

log = logging.getLogger(__name__)

# BM25 saturation and length normalisation, chosen on the validation split with the shipped model (hybrid NDCG@10
# 0.3913 at the textbook 1.2 / 0.75, 0.3988 here, a plateau of 0.398-0.400 for k1 0.3-0.6 and b 0.2-0.5): short
# product titles repeat a term rarely, and their length says little about relevance
BM25_K1, BM25_B = 0.45, 0.5
_DATA, _INDICES, _INDPTR = "data.npy", "indices.npy", "indptr.npy"
_VOCAB, _PARAMS = "vocab.json", "params.json"
_NAMES = (_DATA, _INDICES, _INDPTR, _VOCAB, _PARAMS)
_BM25S_NAMES = ("data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy", "vocab.index.json",
                "params.index.json")


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

    @classmethod
    def build(cls, texts: list[str], k1: float = BM25_K1, b: float = BM25_B) -> LexicalIndex:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets itself to DEBUG on import
        model = bm25s.BM25(k1=k1, b=b, method="lucene")
        model.index([t.split() for t in texts], show_progress=False)
        scores = model.scores
        return cls(np.asarray(scores["data"]), np.asarray(scores["indices"]), np.asarray(scores["indptr"]),
                   dict(model.vocab_dict), int(scores["num_docs"]))

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
        mode = "r" if mmap else None
        try:
            return cls(np.load(data, mmap_mode=mode), np.load(indices, mmap_mode=mode), np.load(indptr),
                       json.loads(vocab.read_text()),
                       int(json.loads(params.read_text())["num_docs"]))
        except (OSError, ValueError, KeyError) as exc:
            raise IndexFormatError(f"{folder}: unreadable BM25 index ({type(exc).__name__}: {exc})") from exc

    def known(self, tokens: list[str]) -> list[str]:
        return [t for t in dict.fromkeys(tokens) if t in self.vocab]

    def scores(self, query_text: str) -> np.ndarray:
        """BM25 score of every product for a normalised query (zeros when no query word is in the catalog)."""
        out = np.zeros(self.rows, dtype=np.float32)
        for token in self.known(query_text.split()):
            i = self.vocab[token]
            start, end = self.indptr[i], self.indptr[i + 1]
            out[self.indices[start:end]] += self.data[start:end]  # a column holds each product once
        return out

    def search(self, query_text: str, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows with a positive score (optionally only rows where `mask` is True), best first."""
        return self.top(self.scores(query_text), k, mask)

    @staticmethod
    def top(scores: np.ndarray, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The best k rows of a score array (as `scores` returns) with a positive score, ties by row."""
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        candidates = np.flatnonzero(scores > 0)
        if len(candidates) > k:
            candidates = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
        order = candidates[np.lexsort((candidates, -scores[candidates]))]
        return order, scores[order]
