"""Typo-tolerant query words: a word that appears nowhere in the catalog is replaced by the most frequent catalog
word one edit away (delete, insert, substitute or swap two neighbours), found through a deletion index (SymSpell's
idea with distance 1). Numbers, short words and words the catalog knows are never touched.

Compound words, both ways: an unknown word with no such neighbour that is two catalog words glued together is split
("carpetshampoo" -> "carpet shampoo"), and two query words that the catalog writes as one are also looked up as one
("back splash" -> "backsplash", for keyword matching only: `joined`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

MIN_LENGTH = 4  # shorter words have too many neighbours to guess safely
MIN_GLUED = 6  # a word this long may be split into two catalog words, each at least MIN_PART letters long
MIN_PART = 3
MIN_USES = 3  # a split's parts, or a joined word, must each be used by this many products


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

    def split(self, word: str) -> tuple[str, str] | None:
        """Two catalog words that glued together make this unknown word, the pair whose rarer part is most used."""
        if word in self.frequencies or len(word) < MIN_GLUED or not word.isalpha():
            return None
        best: tuple[int, str, str] | None = None
        for cut in range(MIN_PART, len(word) - MIN_PART + 1):
            head, tail = word[:cut], word[cut:]
            uses = min(self.frequencies.get(head, 0), self.frequencies.get(tail, 0))
            if uses >= MIN_USES and (best is None or uses > best[0]):
                best = (uses, head, tail)
        return (best[1], best[2]) if best else None

    def joined(self, tokens: list[str]) -> list[str]:
        """Catalog words that two neighbouring query words make together ("back", "splash" -> "backsplash")."""
        return [a + b for a, b in pairwise(tokens)
                if a.isalpha() and b.isalpha() and self.frequencies.get(a + b, 0) >= MIN_USES]

    def correct(self, tokens: list[str], compounds: bool = False) -> tuple[list[str], list[Correction]]:
        """Tokens with unknown words replaced (and, with `compounds`, glued words split), and what was changed."""
        out, fixes = [], []
        for token in tokens:
            fixed = self.suggest(token)
            parts = self.split(token) if compounds and not fixed else None
            if parts:
                fixed = " ".join(parts)
            if fixed:
                fixes.append(Correction(token, fixed))
            out.extend(fixed.split() if fixed else [token])
        return out, fixes
