"""What a search returns, whichever engine answered it: SearchResult, and the modes a search may run in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, SupportsIndex, overload

from ..errors import QueryError


class Mode(str, Enum):
    """How a search ranks: by the embedding, by BM25, by both fused, or both fused and then re-read by the
    cross-encoder. A str, so "hybrid" and Mode.HYBRID are equal and JSON writes the word."""

    DENSE = "dense"
    LEXICAL = "lexical"
    HYBRID = "hybrid"
    RERANK = "rerank"

    def __str__(self) -> str:
        return self.value


MODES = tuple(m.value for m in Mode)
DEFAULT_MODE = Mode.HYBRID


@dataclass(frozen=True)
class SearchResult:
    product_id: str
    score: float  # what ranked it: cosine (dense), BM25 (lexical), fused (hybrid), blended (rerank)
    rank: int  # 1 = best
    cosine: float  # the embedding similarity of query and product, in [-1, 1] (Searcher.similarity)
    fields: dict[str, Any] = field(default_factory=dict)
    explain: dict[str, Any] | None = None
    rules: tuple[str, ...] = ()  # what the merchandiser's rules did to it ("pinned by ...", "boosted by ...")
    highlight: str | None = None  # the title, HTML-escaped, with the query's words in <mark> (highlight=True)

    def to_dict(self) -> dict[str, Any]:
        out = {"rank": self.rank, "product_id": self.product_id, "score": round(self.score, 6),
               "cosine": round(self.cosine, 6), **self.fields}
        if self.rules:
            out["rules"] = list(self.rules)
        if self.highlight is not None:
            out["highlight"] = self.highlight
        if self.explain is not None:
            out["explain"] = self.explain
        return out


class SearchResults(list[SearchResult]):
    """A search's results (a list of SearchResult, best first) and what the search made of the query:
    `no_match` (nothing in the catalog is a close match: the results, if any, are only related products),
    `searched_as` (the words searched, after spelling fixes), `corrections` ([typed, searched] pairs) and
    `did_you_mean` (a query to offer for words searched as typed that the catalog does not use, or None)."""

    def __init__(self, hits: Iterable[SearchResult] = (), *, no_match: bool = False, searched_as: str = "",
                 corrections: list[list[str]] | None = None, did_you_mean: str | None = None,
                 redirect: str | None = None) -> None:
        super().__init__(hits)
        self.no_match = no_match
        self.searched_as = searched_as
        self.corrections = list(corrections or [])
        self.did_you_mean = did_you_mean
        self.redirect = redirect  # a rule's address for the shop's front end to send the shopper to
        self.rows: Any = None  # every ranked catalog row (numpy), kept by search_with_facets for its counts

    @overload
    def __getitem__(self, item: SupportsIndex) -> SearchResult: ...

    @overload
    def __getitem__(self, item: slice) -> SearchResults: ...

    def __getitem__(self, item: SupportsIndex | slice) -> SearchResult | SearchResults:
        if isinstance(item, slice):  # a slice stays SearchResults, with the same account of the query
            return SearchResults(super().__getitem__(item), no_match=self.no_match, searched_as=self.searched_as,
                                 corrections=self.corrections, did_you_mean=self.did_you_mean,
                                 redirect=self.redirect)
        return super().__getitem__(item)

    def summary(self) -> dict[str, Any]:
        """What --json and /search say about the query beside the results."""
        out = {"no_match": self.no_match, "searched_as": self.searched_as, "corrections": self.corrections,
               "did_you_mean": self.did_you_mean}
        return {**out, "redirect": self.redirect} if self.redirect else out


def check_mode(mode: str | Mode) -> Mode:
    if mode not in MODES:
        raise QueryError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    return Mode(mode)
