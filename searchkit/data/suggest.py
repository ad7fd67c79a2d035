"""Suggestions while typing: completions of what a shopper has typed so far, from the catalog's product types
("swag light kit", "ceiling fan"), brands, brand + type ("kohler toilet") and categories, and from popular queries when
a search log gives them. Built with the index (build-index and update), read on the first suggestion.

A completion starts with the typed text (lower-case words). When nothing does, one slip past the first two letters
is forgiven ("celing f" -> "ceiling fan"): a letter dropped, added, swapped or mistyped."""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .intent import head_tokens, typed_words
from .text import words

MIN_PRODUCTS = 2  # a type or brand + type phrase is offered when this many products have it
MAX_PHRASE_WORDS = 3
LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789"
KEEP = 2  # the first letters typed are taken as meant


def phrases(titles: Iterable[str], brands: Iterable[str | None],
            categories: Iterable[str | None] | None = None) -> Counter[str]:
    """Each completion a catalog offers, with how many products it covers."""
    counts: Counter[str] = Counter()
    brand_counts: Counter[str] = Counter()
    cats = list(categories) if categories is not None else None
    for i, (title, brand) in enumerate(zip(titles, brands, strict=True)):
        typed = typed_words(head_tokens(title or "", brand))
        found = set()
        for n in range(1, min(MAX_PHRASE_WORDS, len(typed)) + 1):
            found.add(" ".join(typed[-n:]))
        brand_words = " ".join(words(brand))
        if brand_words:
            brand_counts[brand_words] += 1
            if typed:
                found.add(f"{brand_words} {typed[-1]}")
        if cats is not None and cats[i]:
            found.add(" ".join(words(str(cats[i]))))
        counts.update(found)
    out = Counter({p: n for p, n in counts.items() if n >= MIN_PRODUCTS})
    out.update(brand_counts)
    return out


def for_catalog(titles: Iterable[str], brands: Iterable[str | None],
                categories: Iterable[str | None] | None = None) -> Suggester:
    """A catalog's completions (what build-index saves, and what a searcher made in memory computes)."""
    return Suggester.from_counts(phrases(titles, brands, categories))


@dataclass(frozen=True)
class Suggester:
    """Completions in lexical order with their weights; `complete` finds a prefix's range by binary search."""

    texts: tuple[str, ...]
    weights: tuple[float, ...]

    @classmethod
    def from_counts(cls, counts: Counter[str] | dict[str, float]) -> Suggester:
        ordered = sorted(counts.items())
        return cls(tuple(t for t, _ in ordered), tuple(float(w) for _, w in ordered))

    def to_dict(self) -> dict:
        return {"texts": list(self.texts), "weights": list(self.weights)}

    @classmethod
    def from_dict(cls, data: dict) -> Suggester:
        return cls(tuple(data.get("texts", [])), tuple(float(w) for w in data.get("weights", [])))

    def with_queries(self, popular: Mapping[str, float], weight: float = 1.0) -> Suggester:
        """These and popular queries (a search log's, weighted by how often they were searched)."""
        merged: dict[str, float] = dict(zip(self.texts, self.weights, strict=True))
        for query, n in popular.items():
            text = " ".join(words(query))
            if text:
                merged[text] = merged.get(text, 0.0) + weight * n
        return Suggester.from_counts(merged)

    def _range(self, prefix: str) -> tuple[int, int]:
        start = bisect_left(self.texts, prefix)
        end = bisect_left(self.texts, prefix + "\uffff", lo=start)
        return start, end

    def _best(self, prefixes: Iterable[str], k: int) -> list[tuple[str, float]]:
        seen: dict[str, float] = {}
        for prefix in prefixes:
            start, end = self._range(prefix)
            for i in range(start, end):
                seen[self.texts[i]] = self.weights[i]
        # most products first, then the shorter, then in lexical order: the same order whatever order the slips
        # (a set) were tried in
        return heapq.nsmallest(k, seen.items(), key=lambda tw: (-tw[1], len(tw[0]), tw[0]))

    def complete(self, typed: str, k: int = 8) -> list[str]:
        """Up to k completions of `typed`, most products first; with none, those of its one-slip variants."""
        prefix = " ".join(words(typed)) + (" " if typed[-1:].isspace() and words(typed) else "")
        if not prefix.strip():
            return []
        found = self._best([prefix], k)
        if not found and len(prefix) > KEEP:
            found = self._best(slips(prefix, self._reach(prefix)), k)
        return [text for text, _ in found]

    def _reach(self, prefix: str) -> int:
        """The length of the longest start of `prefix` that some completion starts with (they only grow shorter
        as the start grows longer, so a binary search finds it)."""
        low, high = 0, len(prefix)  # prefix[:low] starts a completion (or is empty); prefix[:high + 1] none
        while low < high:
            middle = (low + high + 1) // 2
            start, end = self._range(prefix[:middle])
            low, high = (middle, high) if start < end else (low, middle - 1)
        return low


def slips(prefix: str, reach: int | None = None) -> set[str]:
    """The prefix with one letter past the first KEEP dropped (not the last), added, swapped with the next, or
    changed; reach: only slips at or before this letter (a slip further on keeps a start that no completion has)."""
    out = set()
    for i in range(KEEP, min(len(prefix), len(prefix) if reach is None else reach) + 1):
        if i < len(prefix) - 1:  # dropping the last letter would only widen the prefix
            out.add(prefix[:i] + prefix[i + 1:])
        if i < len(prefix):
            out.update(prefix[:i] + c + prefix[i + 1:] for c in LETTERS)
        if i + 1 < len(prefix):
            out.add(prefix[:i] + prefix[i + 1] + prefix[i] + prefix[i + 2:])
        out.update(prefix[:i] + c + prefix[i:] for c in LETTERS)
    out.discard(prefix)
    return {p for p in out if p.strip()}
