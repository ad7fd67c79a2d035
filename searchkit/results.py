"""What a search returns, whichever engine answered it: SearchResult, and the modes a search may run in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import QueryError

MODES = ("dense", "lexical", "hybrid", "rerank")
DEFAULT_MODE = "hybrid"


@dataclass(frozen=True)
class SearchResult:
    product_id: str
    score: float  # what ranked it: cosine (dense), BM25 (lexical), fused (hybrid), blended (rerank)
    rank: int  # 1 = best
    cosine: float  # the embedding similarity of query and product, in [-1, 1] (Searcher.similarity)
    fields: dict[str, Any] = field(default_factory=dict)
    explain: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"rank": self.rank, "product_id": self.product_id, "score": round(self.score, 6),
               "cosine": round(self.cosine, 6), **self.fields}
        if self.explain is not None:
            out["explain"] = self.explain
        return out


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise QueryError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    return mode
