"""The one text pipeline: products and queries are normalised here, for training, indexing and querying alike.

Pure functions and small value objects, no I/O. The stemmer is passed in (a callable word -> stem) so tests can
use a fake; the default is NLTK's Porter stemmer behind a per-word cache.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property, lru_cache

PIPELINE_VERSION = 1

_WORD = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")
_BRAND_MAX_WORDS = 5

Stemmer = Callable[[str], str]


@dataclass(frozen=True)
class TextConfig:
    """How text becomes model input. Saved with every model and index, so queries are treated as the catalog was.
    `stem` is the embedder's input only: keyword (BM25) text is always stemmed (see Normaliser.lexical)."""

    stem: bool = True
    brand_token: bool = True
    color_token: bool = True
    # How a query's brand token is chosen: "detect" matches the catalog's known brands at the start of the query
    # (falling back to no token); "first_word" is the reference recipe's brand_<first word>; "none" adds none.
    query_brand: str = "detect"
    version: int = PIPELINE_VERSION

    def __post_init__(self) -> None:
        if self.query_brand not in ("detect", "first_word", "none"):
            raise ValueError(f"query_brand must be 'detect', 'first_word' or 'none', not {self.query_brand!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TextConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown text settings: {sorted(unknown)}")
        return cls(**data)


def words(text: str | None) -> list[str]:
    """Lower-case word tokens: runs of letters and digits, keeping decimals such as 1.9 together."""
    if not text:
        return []
    return _WORD.findall(str(text).lower())


def slug(text: str | None) -> str:
    """A brand or colour as one token body: 'Hampton Bay' -> 'hampton_bay'."""
    return "_".join(words(text))


@lru_cache(maxsize=1)
def _nltk_porter() -> Stemmer:
    from nltk.stem.porter import PorterStemmer  # imported lazily: nltk costs ~2 s to import

    return PorterStemmer().stem


class CachedStemmer:
    """NLTK Porter with a per-word cache; a table of known stems (e.g. saved with an index) avoids importing NLTK."""

    def __init__(self, known: dict[str, str] | None = None, base: Stemmer | None = None) -> None:
        self._cache: dict[str, str] = dict(known or {})
        self._base = base

    def __call__(self, word: str) -> str:
        stem = self._cache.get(word)
        if stem is None:
            base = self._base or _nltk_porter()
            stem = self._cache[word] = base(word)
        return stem

    def table(self) -> dict[str, str]:
        return dict(self._cache)


@dataclass(frozen=True)
class BrandMatcher:
    """Finds a known brand at the start of a text, longest match first ('home decorators collection' over 'home')."""

    brands: frozenset[tuple[str, ...]] = field(default_factory=frozenset)

    @classmethod
    def from_names(cls, names: Iterable[str | None]) -> BrandMatcher:
        return cls(frozenset(tuple(w) for w in (words(n) for n in names) if w and len(w) <= _BRAND_MAX_WORDS))

    def match_prefix(self, tokens: list[str]) -> tuple[str, ...] | None:
        for n in range(min(_BRAND_MAX_WORDS, len(tokens)), 0, -1):
            if tuple(tokens[:n]) in self.brands:
                return tuple(tokens[:n])
        return None

    def names(self) -> list[str]:
        return sorted(" ".join(b) for b in self.brands)


class Normaliser:
    """Turns product fields and queries into model input text, the same way every time."""

    def __init__(self, config: TextConfig, brands: BrandMatcher | None = None, stemmer: Stemmer | None = None):
        self.config = config
        self.brands = brands or BrandMatcher()
        self.stemmer: Stemmer = stemmer or CachedStemmer()

    @cached_property
    def lexical(self) -> Normaliser:
        """The normaliser of keyword (BM25) text: this one when it stems, else the same settings with stemming (a
        model may read whole words, e.g. "ceiling fans", while keyword matching wants "ceil fan" either way)."""
        if self.config.stem:
            return self
        return Normaliser(replace(self.config, stem=True), self.brands, self.stemmer)

    def _stem_words(self, tokens: list[str]) -> list[str]:
        return [self.stemmer(t) for t in tokens] if self.config.stem else list(tokens)

    def product(self, title: str, brand: str | None = None, color: str | None = None) -> str:
        parts = self._stem_words(words(title))
        if self.config.brand_token and slug(brand):
            parts.append("brand_" + slug(brand))
        if self.config.color_token and slug(color):
            parts.append("color_" + slug(color))
        return " ".join(parts)

    def query_brand(self, query: str) -> str | None:
        tokens = words(query)
        if not tokens or self.config.query_brand == "none":
            return None
        if self.config.query_brand == "first_word":
            return tokens[0]
        found = self.brands.match_prefix(tokens)
        return " ".join(found) if found else None

    def query(self, query: str) -> str:
        parts = self._stem_words(words(query))
        brand = self.query_brand(query)
        if self.config.brand_token and brand:
            parts.append("brand_" + slug(brand))
        return " ".join(parts)

    def lexical_terms(self, text: str) -> list[str]:
        """Stemmed words alone (no brand/colour tokens), for keyword matching and explanations."""
        return self._stem_words(words(text))


def detect_brand(title: str, brands: BrandMatcher) -> str | None:
    """The known brand a title starts with, as the brand list spells it, or None."""
    found = brands.match_prefix(words(title))
    return " ".join(found) if found else None
