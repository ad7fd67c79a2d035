"""The one text pipeline: products and queries are normalised here, for training, indexing and querying alike.

Pure functions and small value objects, no I/O. The stemmer is passed in (a callable word -> stem) so tests can
use a fake; the default is NLTK's Porter stemmer behind a per-word cache.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

PIPELINE_VERSION = 1
# Versions of the keyword (BM25) text, saved in an index's manifest: 1 = the stemmed words; 2 = measures written one
# way first ("18v", "18-Volt" -> "18 volt"; "2x4" -> "2 x 4"; "24 inch" -> "24 in"), and queries' glued or split
# compound words looked up both ways (see Searcher.understand). An index keeps the version it was built with.
KEYWORD_TEXT = 2
KEYWORD_TEXTS = (1, 2)

_WORD = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_NUMBER_UNIT = re.compile(r"([0-9]+(?:\.[0-9]+)?)([a-z]+)")
_DIMENSIONS = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?)?(?:x[0-9]+(?:\.[0-9]+)?)+x?|[0-9]+(?:\.[0-9]+)?x")
# a unit as shoppers and titles write it after a number -> one spelling (titles say "in." and "ft."; queries say
# "inch", "24in", "feet"); single letters count only right after a number ("18v", "60 w")
UNITS = {
    "in": "in", "inch": "in", "inches": "in", "ft": "ft", "foot": "ft", "feet": "ft",
    "v": "volt", "volt": "volt", "volts": "volt", "w": "watt", "watt": "watt", "watts": "watt",
    "a": "amp", "amp": "amp", "amps": "amp", "gal": "gal", "gallon": "gal", "gallons": "gal",
    "lb": "lb", "lbs": "lb", "pound": "lb", "pounds": "lb", "oz": "oz", "ounce": "oz", "ounces": "oz",
    "qt": "qt", "quart": "qt", "quarts": "qt", "cu": "cu", "cubic": "cu", "sqft": "sq ft",
    "yd": "yd", "yard": "yd", "yards": "yd", "pk": "pack", "pack": "pack", "pc": "piece", "piece": "piece",
    "pieces": "piece", "ct": "count", "count": "count", "lm": "lumen", "lumen": "lumen", "lumens": "lumen",
    "deg": "degree", "degree": "degree", "degrees": "degree",
    **{unit: unit for unit in ("mm", "cm", "btu", "gpm", "psi", "ah", "mah", "kw", "hp", "k")},  # split off only
}
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


def measures(tokens: list[str]) -> list[str]:
    """Word tokens with measures written one way: a number glued to its unit is split and the unit spelled as
    UNITS does ("18v" -> "18 volt", "24in" -> "24 in"), a unit word after a number likewise ("24 inch" -> "24 in"),
    dimensions are split at their x ("2x4x8" -> "2 x 4 x 8"; "by" between numbers is an x). Other tokens, model
    names such as "t8" or "m18" included, are kept."""
    out: list[str] = []
    for token in tokens:
        after_number = bool(out) and _NUMBER.fullmatch(out[-1]) is not None
        if "x" in token and _DIMENSIONS.fullmatch(token):
            for i, part in enumerate(token.split("x")):
                out.extend((["x"] if i else []) + ([part] if part else []))
        elif (glued := _NUMBER_UNIT.fullmatch(token)) and glued.group(2) in UNITS:
            out.append(glued.group(1))
            out.extend(UNITS[glued.group(2)].split())
        elif after_number and token in UNITS:
            out.extend(UNITS[token].split())
        elif after_number and token == "by":
            out.append("x")
        else:
            out.append(token)
    return out


def slug(text: str | None) -> str:
    """A brand or colour as one token body: 'Hampton Bay' -> 'hampton_bay'."""
    return "_".join(words(text))


@lru_cache(maxsize=1)
def _nltk_porter() -> Stemmer:
    """NLTK's Porter stemmer. Importing the nltk package is slow (its __init__ loads corpus readers, metrics,
    parsers), which a query with one word the catalog never used would pay: its stemmer module is loaded alone where
    it can be (porter_alone), else imported as usual."""
    try:
        return porter_alone()().stem
    except Exception:  # another nltk layout: the ordinary import gives the same stemmer
        from nltk.stem.porter import PorterStemmer

        return PorterStemmer().stem


def porter_alone() -> type:
    """nltk/stem/porter.py loaded on its own, without the nltk package: its imports are an abstract base class
    (StemmerI) and two helpers its demo() uses, answered here by stand-ins for the length of the load."""
    import importlib.util
    import sys
    import types

    if "nltk" in sys.modules:  # imported already: nothing to save
        from nltk.stem.porter import PorterStemmer

        return PorterStemmer
    package = importlib.util.find_spec("nltk")
    if package is None or not package.submodule_search_locations:
        raise ImportError("nltk is not installed")
    source = Path(list(package.submodule_search_locations)[0]) / "stem" / "porter.py"
    standins: dict[str, Any] = {name: types.ModuleType(name) for name in (
        "nltk", "nltk.stem", "nltk.stem.api", "nltk.redos", "nltk.termsec")}
    standins["nltk.stem.api"].StemmerI = type("StemmerI", (), {})
    standins["nltk.termsec"].safe_print = print
    standins["nltk"].redos = standins["nltk.redos"]
    spec = importlib.util.spec_from_file_location("searchkit._nltk_porter", source)
    if spec is None or spec.loader is None:
        raise ImportError(f"{source}: not loadable")
    module = importlib.util.module_from_spec(spec)
    sys.modules.update(standins)
    try:
        spec.loader.exec_module(module)
    finally:
        for name in standins:
            sys.modules.pop(name, None)
    return module.PorterStemmer


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

    def __init__(self, config: TextConfig, brands: BrandMatcher | None = None, stemmer: Stemmer | None = None,
                 keyword_text: int = 1, write_measures: bool = False):
        """keyword_text: the version of keyword text its `lexical` view writes (KEYWORD_TEXTS); write_measures: this
        normaliser writes measures one way itself (only keyword text does: models read words as trained)."""
        if keyword_text not in KEYWORD_TEXTS:
            raise ValueError(f"keyword text version must be one of {KEYWORD_TEXTS}, not {keyword_text!r}")
        self.config = config
        self.brands = brands or BrandMatcher()
        self.stemmer: Stemmer = stemmer or CachedStemmer()
        self.keyword_text = keyword_text
        self.write_measures = write_measures

    @cached_property
    def lexical(self) -> Normaliser:
        """The normaliser of keyword (BM25) text: stemmed (a model may read whole words, e.g. "ceiling fans", while
        keyword matching wants "ceil fan" either way) and, from keyword text 2, with measures written one way; this
        one when it already writes that."""
        measured = self.keyword_text >= 2
        if self.config.stem and self.write_measures == measured:
            return self
        return Normaliser(replace(self.config, stem=True), self.brands, self.stemmer, self.keyword_text, measured)

    def _stem_words(self, tokens: list[str]) -> list[str]:
        if self.write_measures:
            tokens = measures(tokens)
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
