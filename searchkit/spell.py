"""Typo-tolerant query words: a word that appears nowhere in the catalog is replaced by the most frequent catalog
word one edit away (delete, insert, substitute or swap two neighbours), found through a deletion index (SymSpell's
idea with distance 1). Numbers, short words and words the catalog knows are never touched."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

MIN_LENGTH = 4  # shorter words have too many neighbours to guess safely


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


def _one_edit(a: str, b: str) -> bool:
    """True when a and b differ by exactly one insertion, deletion, substitution or adjacent transposition."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
                                  and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


@dataclass(frozen=True)
class Correction:
    original: str
    corrected: str


class SpellCorrector:
    def __init__(self, frequencies: Mapping[str, int]):
        self.frequencies = dict(frequencies)
        self._index: dict[str, list[str]] | None = None  # built on the first unknown word

    def _lookup(self) -> dict[str, list[str]]:
        if self._index is None:
            index: dict[str, list[str]] = {}
            for word in self.frequencies:
                if len(word) >= MIN_LENGTH - 1 and word.isalpha():
                    index.setdefault(word, []).append(word)
                    for d in _deletes(word):
                        index.setdefault(d, []).append(word)
            self._index = index
        return self._index

    def suggest(self, word: str) -> str | None:
        if word in self.frequencies or len(word) < MIN_LENGTH or not word.isalpha():
            return None
        index = self._lookup()
        candidates = set(index.get(word, []))
        for d in _deletes(word):
            candidates.update(index.get(d, []))
        best = [c for c in candidates if _one_edit(word, c)]
        if not best:
            return None
        return max(best, key=lambda c: (self.frequencies[c], c))

    def correct(self, tokens: list[str]) -> tuple[list[str], list[Correction]]:
        out, fixes = [], []
        for token in tokens:
            fixed = self.suggest(token)
            if fixed:
                fixes.append(Correction(token, fixed))
            out.append(fixed or token)
        return out, fixes
