"""BM25 keyword retrieval over the same normalised text the embedder sees (stemmed words + brand_/color_ tokens)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .errors import IndexFormatError

log = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every build at DEBUG


class LexicalIndex:
    """BM25 (bm25s, Lucene variant) over whitespace tokens of normalised product texts; row i = product row i."""

    def __init__(self, model) -> None:
        self.model = model
        self.vocab: dict[str, int] = dict(model.vocab_dict)

    @classmethod
    def build(cls, texts: list[str], k1: float = 1.2, b: float = 0.75) -> LexicalIndex:
        import bm25s

        model = bm25s.BM25(k1=k1, b=b)
        model.index([t.split() for t in texts], show_progress=False)
        return cls(model)

    def save(self, folder: Path) -> None:
        self.model.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        import bm25s

        try:
            return cls(bm25s.BM25.load(str(folder), show_progress=False, verbosity=0))
        except Exception as exc:
            raise IndexFormatError(f"{folder}: unreadable BM25 index ({type(exc).__name__}: {exc})") from exc

    @property
    def rows(self) -> int:
        return int(self.model.scores["num_docs"])

    def known(self, tokens: list[str]) -> list[str]:
        return [t for t in dict.fromkeys(tokens) if t in self.vocab]

    def scores(self, query_text: str) -> np.ndarray:
        """BM25 score of every product for a normalised query (zeros when no query word is in the catalog)."""
        tokens = self.known(query_text.split())
        if not tokens:
            return np.zeros(self.rows, dtype=np.float32)
        return np.asarray(self.model.get_scores(tokens), dtype=np.float32)

    def search(self, query_text: str, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows with a positive score (optionally only rows where `mask` is True), best first."""
        scores = self.scores(query_text)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        candidates = np.flatnonzero(scores > 0)
        if len(candidates) > k:
            candidates = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
        order = candidates[np.lexsort((candidates, -scores[candidates]))]
        return order, scores[order]
