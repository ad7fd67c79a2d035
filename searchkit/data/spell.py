"""Spelling that does no harm: a query word is corrected only when it is not a word the shopper could mean, and then
to the catalog word a typist most likely meant.

A word is left as typed when the catalog uses it (or a word with its stem: "toys" when the catalog says "toy"), or when
it is a word of the language the model reads or of the shop's other vocabulary (`dictionary`: the embedder's
whole-word vocabulary, synonyms, popular queries) — "puppy chow", "bearded dragon" and "hills science diet" stay as
typed on a hardware catalog; for such a word a close catalog word is offered as "did you mean", never searched. Two
exceptions are corrected: a word the catalog uses at most RARE times that is not in the dictionary while a neighbour
is used far more ("dehumidifer" in one title, "dehumidifier" in twenty), and a word found nowhere.

Candidates are the catalog words one edit away (delete, insert, substitute or swap two neighbours; SymSpell's deletion
index), or two edits for longer words. They are ranked as a typist's slip: how likely the edit is (a dropped vowel or a
doubled letter, a swap, a neighbouring key are common; an unrelated letter is not) and how many products hold the
candidate together with the query's other words ("smoke alrm" -> alarm, not arm; "hedge trimer" -> trimmer, not
primer), then how many products use it at all.

Compound words, both ways: an unknown word with no candidate that is two catalog words glued together is split
("carpetshampoo" -> "carpet shampoo"), and two query words that the catalog writes as one are also looked up as one
("back splash" -> "backsplash", for keyword matching only: `joined`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise

MIN_LENGTH = 4  # shorter words have too many neighbours to guess without context
SHORT_LENGTH = 3  # a three-letter word is completed (a dropped letter) only when the query's other words agree
MIN_TWO_EDITS = 6  # words this long may be two edits from what was meant
MIN_GLUED = 6  # a word this long may be split into two catalog words, each at least MIN_PART letters long
MIN_PART = 3
MIN_USES = 3  # a split's parts, or a joined word, must each be used by this many products
TWO_SLIPS = 0.05  # the likelihood given to a word two edits from what was meant
UNLIKELY = 0.3  # with no other word to agree, a correction needs a slip at least this likely ("spackle" -> shackle),
LONG_WORD = 8  # unless the word is this long: long words have few neighbours ("refridgerator")
RARE = 3  # a catalog word used by at most this many products may itself be a typo in a title
CONTEXT = 0.5  # the weight of log(products agreeing) against log(the slip's likelihood)
RARE_LENGTH = 5  # ... and only in a word this long (a short rare word, "back", is as likely meant)
RARE_RATIO = 10  # ... when a neighbour is used by at least this many times as many products
VOWELS = frozenset("aeiouy")
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_KEY = {c: (r, i) for r, row in enumerate(_ROWS) for i, c in enumerate(row)}
SOUNDS_ALIKE = frozenset({frozenset(p) for p in ("sc", "sz", "ck", "ts")})

Together = Callable[[str, list[str]], int]  # products holding a word and all the given other words


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


def _one_edit(a: str, b: str) -> bool:
    """True when a and b differ by exactly one insertion, deletion, substitution or adjacent transposition."""
    return _edit_prior(a, b) is not None


def _distance(a: str, b: str) -> int:
    """Edit distance with swaps of neighbours (optimal string alignment)."""
    rows = [list(range(len(b) + 1))] + [[i] + [0] * len(b) for i in range(1, len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            rows[i][j] = min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                rows[i][j] = min(rows[i][j], rows[i - 2][j - 2] + 1)
    return rows[len(a)][len(b)]


def _near(a: str, b: str) -> bool:
    """Neighbouring keys on a QWERTY keyboard."""
    if a not in _KEY or b not in _KEY:
        return False
    (ra, ia), (rb, ib) = _KEY[a], _KEY[b]
    return abs(ra - rb) <= 1 and abs(ia - ib) <= 1


def _edit_prior(typed: str, meant: str) -> float | None:
    """How likely a typist who meant `meant` typed `typed` by one slip, or None when they are not one edit apart."""
    if typed == meant or abs(len(typed) - len(meant)) > 1:
        return None
    if len(typed) == len(meant):
        diff = [i for i in range(len(typed)) if typed[i] != meant[i]]
        if len(diff) == 2 and diff[1] == diff[0] + 1 and typed[diff[0]] == meant[diff[1]] \
                and typed[diff[1]] == meant[diff[0]]:
            return 1.0  # two neighbours swapped
        if len(diff) != 1:
            return None
        a, b = typed[diff[0]], meant[diff[0]]
        if _near(a, b) or frozenset((a, b)) in SOUNDS_ALIKE or (a in VOWELS and b in VOWELS):
            return 0.8
        return 0.15
    if len(meant) > len(typed):  # a letter dropped
        at = next((i for i in range(len(typed)) if typed[i] != meant[i]), len(typed))
        if meant[:at] + meant[at + 1:] != typed:
            return None
        letter = meant[at]
        doubled = (at > 0 and meant[at - 1] == letter) or (at + 1 < len(meant) and meant[at + 1] == letter)
        return 1.0 if letter in VOWELS or doubled else 0.6
    at = next((i for i in range(len(meant)) if typed[i] != meant[i]), len(meant))  # a letter added
    if typed[:at] + typed[at + 1:] != meant:
        return None
    extra, neighbours = typed[at], typed[max(0, at - 1):at] + typed[at + 1:at + 2]
    return 0.8 if extra in neighbours or any(_near(extra, n) for n in neighbours) else 0.1


@dataclass(frozen=True)
class Correction:
    original: str
    corrected: str


class SpellCorrector:
    def __init__(self, frequencies: Mapping[str, int], dictionary: Collection[str] | Callable[[], Collection[str]] = (),
                 stem: Callable[[str], str] | None = None):
        """frequencies: the catalog's words and how many products use each; dictionary: other words a shopper may
        mean (or a callable giving them, read on the first word that needs it); stem: the keyword stemmer, so that a
        word sharing a catalog word's stem counts as known."""
        self.frequencies = dict(frequencies)
        self._dictionary = dictionary
        self._stem = stem
        self._index: dict[str, list[str]] | None = None  # built on the first unknown word
        self.extra: frozenset[str] = frozenset()  # more words kept as typed (the merchandiser's synonyms)

    @cached_property
    def dictionary(self) -> frozenset[str]:
        words = self._dictionary() if callable(self._dictionary) else self._dictionary
        return frozenset(words)

    @cached_property
    def _stems(self) -> frozenset[str]:
        return frozenset(self._stem(w) for w in self.frequencies) if self._stem else frozenset()

    def _lookup(self) -> dict[str, list[str]]:
        if self._index is None:
            index: dict[str, list[str]] = {}
            for word in self.frequencies:
                if len(word) >= SHORT_LENGTH and word.isalpha():
                    index.setdefault(word, []).append(word)
                    for d in _deletes(word):
                        index.setdefault(d, []).append(word)
            self._index = index
        return self._index

    def known(self, word: str) -> bool:
        """The catalog uses the word, or a word with its stem."""
        return word in self.frequencies or (self._stem is not None and self._stem(word) in self._stems)

    @cached_property
    def _stem_uses(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for word, uses in self.frequencies.items():
            key = self._stem(word) if self._stem else word
            out[key] = out.get(key, 0) + uses
        return out

    def uses(self, word: str) -> int:
        """How many products use the word or a word with its stem (one product may count twice: "bolt", "bolts")."""
        return self._stem_uses.get(self._stem(word) if self._stem else word, 0)

    def is_word(self, word: str) -> bool:
        """A word a shopper may mean besides the catalog's own: the embedder's vocabulary, synonyms, popular queries."""
        return word in self.dictionary or word in self.extra

    def candidates(self, word: str) -> dict[str, float]:
        """Catalog words one edit from `word` with the edit's likelihood (_edit_prior); for a word of MIN_TWO_EDITS
        letters or more with none, those two edits away, less likely."""
        index = self._lookup()
        found: set[str] = set(index.get(word, []))
        for d in _deletes(word):
            found.update(index.get(d, []))
        out = {c: p for c in found if c != word and (p := _edit_prior(word, c)) is not None}
        if not out and len(word) >= MIN_TWO_EDITS:  # two slips: the same first two letters, checked by distance
            keys = {word} | _deletes(word)
            keys |= {d2 for d in _deletes(word) for d2 in _deletes(d)}
            for c in {c for key in keys for c in index.get(key, [])}:
                if c[:2] == word[:2] and c != word and _distance(word, c) <= 2:
                    out[c] = TWO_SLIPS
        return out

    def _best(self, word: str, context: list[str], together: Together | None) -> str | None:
        options = self.candidates(word)
        if len(word) < MIN_LENGTH:  # a short word: a dropped letter or a swap, that the other words agree with
            options = {c: p for c, p in options.items() if len(c) >= len(word)}
        usable = [w for w in context if w.isalpha() and self.known(w)]
        joint = {c: together(c, usable) for c in options} if together is not None and usable else {}
        if not any(joint.values()):  # nothing agrees: only a likely slip, and never in a short word
            if len(word) < MIN_LENGTH:
                return None
            if len(word) < LONG_WORD:
                options = {c: p for c, p in options.items() if p >= UNLIKELY}
            joint = {}
        if not options:
            return None

        def score(c: str) -> tuple[float, float, str]:
            uses = self.frequencies.get(c, 0)
            slip = math.log(options[c])
            if joint:
                return slip + CONTEXT * math.log1p(joint[c]), math.log1p(uses), c
            return slip + CONTEXT * math.log1p(uses), 0.0, c

        return max(options, key=score)

    def suggest(self, word: str, context: list[str] | None = None, together: Together | None = None) -> str | None:
        """The correction a search makes to this word (None: searched as typed)."""
        if len(word) < SHORT_LENGTH or not word.isalpha():
            return None
        uses = self.frequencies.get(word, 0)
        if uses or self.known(word):
            if uses > RARE or word in self.dictionary or word in self.extra or len(word) < RARE_LENGTH:
                return None
            best = self._best(word, context or [], together)  # a rare catalog word: a typo in a title?
            return best if best and self.frequencies.get(best, 0) >= RARE_RATIO * max(uses, 1) else None
        if word in self.dictionary or word in self.extra:
            return None
        return self._best(word, context or [], together)

    def did_you_mean(self, word: str, context: list[str] | None = None, together: Together | None = None
                     ) -> str | None:
        """A catalog word to offer for a word searched as typed that the catalog does not use (a dictionary word),
        or None."""
        if not word.isalpha() or len(word) < MIN_LENGTH or self.known(word) or word not in self.dictionary or (
                word in self.extra):
            return None
        return self._best(word, context or [], together)

    def split(self, word: str) -> tuple[str, str] | None:
        """Two catalog words that glued together make this unknown word, the pair whose rarer part is most used."""
        if word in self.frequencies or len(word) < MIN_GLUED or not word.isalpha() or word in self.dictionary or (
                word in self.extra):
            return None
        best: tuple[int, str, str] | None = None
        for cut in range(MIN_PART, len(word) - MIN_PART + 1):
            head, tail = word[:cut], word[cut:]
            uses = min(self.frequencies.get(head, 0), self.frequencies.get(tail, 0))
            if uses >= MIN_USES and (best is None or uses > best[0]):
                best = (uses, head, tail)
        return (best[1], best[2]) if best else None

    def makes(self, a: str, b: str) -> bool:
        """Whether two words written together are a word of the catalog's (both alphabetic, used MIN_USES times)."""
        return a.isalpha() and b.isalpha() and self.frequencies.get(a + b, 0) >= MIN_USES

    def joined(self, tokens: list[str]) -> list[str]:
        """Catalog words that two neighbouring query words make together ("back", "splash" -> "backsplash")."""
        return [a + b for a, b in pairwise(tokens) if self.makes(a, b)]

    def parted(self, tokens: list[str]) -> tuple[list[str], list[Correction]]:
        """Two neighbouring words that make a catalog word when one of them is not the catalog's ("ear buds" ->
        earbuds, "head phones" -> headphones, where the shop never says "buds" or "head"), written as that word."""
        out: list[str] = []
        fixes: list[Correction] = []
        for token in tokens:
            last = out[-1] if out and not (fixes and fixes[-1].corrected == out[-1]) else None
            if last is not None and self.makes(last, token) and not (self.known(last) and self.known(token)):
                fixes.append(Correction(f"{last} {token}", last + token))
                out[-1] = last + token
            else:
                out.append(token)
        return out, fixes

    def correct(self, tokens: list[str], compounds: bool = False, together: Together | None = None
                ) -> tuple[list[str], list[Correction]]:
        """Tokens with the words a shopper could not mean replaced (and, with `compounds`, glued words split and
        parted ones joined), and what was changed. together: how many products hold a word with the others (ranks
        candidates by context)."""
        tokens, fixes = self.parted(tokens) if compounds else (tokens, [])
        out = []
        for i, token in enumerate(tokens):
            context = tokens[:i] + tokens[i + 1:]
            fixed = self.suggest(token, context, together)
            parts = self.split(token) if compounds and not fixed and not self.known(token) else None
            if parts:
                fixed = " ".join(parts)
            if fixed:
                fixes.append(Correction(token, fixed))
            out.extend(fixed.split() if fixed else [token])
        return out, fixes

    def suggestions(self, tokens: list[str], together: Together | None = None) -> list[Correction]:
        """"Did you mean" offers for the words searched as typed (see did_you_mean)."""
        out = []
        for i, token in enumerate(tokens):
            offer = self.did_you_mean(token, tokens[:i] + tokens[i + 1:], together)
            if offer:
                out.append(Correction(token, offer))
        return out
