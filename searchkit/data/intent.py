"""What a query asks for and what each product is: product types read from titles, so that the product itself ranks
above its accessories and parts ("bbq grill": grills above grill covers; "chainsaw": saws above chains).

A product's type is the head of its title: the last word of the title's first phrase, before what describes it
("Weber Grill Cover for Spirit Series" -> cover; "Oregon 18 in. Chainsaw Chain" -> chain; "Homelite 14 in. 42cc Gas
Chainsaw - Battery Not Included" -> chainsaw). A generic head ("kit", "set", "system") also names the word before it
("Swag Light Kit" -> kit, light); a slash names both sides ("String Trimmer/Edger" -> edger, trimmer). A catalog with a
category column is read the same way from its category. Types are stems, as keyword text is.

A query's type is its last word that some products have as their type, read before any "for ..." ("cover for grill"
-> cover; "cordless leaf blower" -> blower; "chain saw" -> chainsaw, the two words glued, when products are typed so).
Hybrid ranking adds a bonus to candidates of the query's type (see searchkit.search.retrieval.Fusion): the dense and BM25
legs see words, not which of them the shopper wants.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .text import UNITS, words

# words after which a title stops naming the product and starts describing it
CUT_WORDS = frozenset({"for", "with", "w/", "includes", "including", "without", "fits", "featuring", "plus", "from",
                       "to", "that", "per"})
# colours and finishes trail a product's name ("Grill Cover Black", "Faucet Chrome"): never its type
COLOURS = frozenset({"white", "black", "gray", "grey", "brown", "red", "blue", "green", "yellow", "orange", "purple",
                     "pink", "beige", "ivory", "almond", "bisque", "biscuit", "chrome", "nickel", "bronze", "silver",
                     "gold", "tan", "taupe", "cream", "clear", "satin", "matte", "brushed", "polished", "stainless",
                     "rubbed", "oiled", "antique", "espresso", "charcoal", "navy", "teal", "aqua", "sand"})
# heads that name a form rather than a type: the word before them names the type too
GENERIC = frozenset({"kit", "set", "system", "unit", "assembly", "combo", "collection", "package", "bundle", "pack",
                     "piece", "pc", "pk", "count", "ct", "case", "box", "only", "each", "pair", "lot", "value"})
# heads that name a part or an accessory of what the word before them names ("Grill Cover", "Chainsaw Chain")
PARTS = frozenset({"cover", "covers", "chain", "chains", "bag", "bags", "brush", "brushes", "attachment", "attachments",
                   "blade", "blades", "filter", "filters", "remote", "strap", "replacement", "part", "parts", "bar",
                   "line", "spool", "nozzle", "nozzles", "wand", "tip", "tips", "mount", "bracket", "stand", "cart",
                   "case", "hose", "cap", "pad", "pads", "liner", "liners", "belt", "guard", "lid", "grate", "grates",
                   "grid", "handle", "knob", "sensor", "battery", "batteries", "charger", "oil", "cleaner", "accessory",
                   "accessories", "light", "lamp", "bulb", "tool", "tools", "kit", "set", "cartridge", "cartridges",
                   "refill", "refills", "spring", "gasket", "valve", "element", "thermostat", "shelf", "rack",
                   "basket", "tray", "mat", "hook", "holder", "clip", "clips", "screen", "door", "seat", "lever",
                   "switch", "control", "button", "keypad", "opener", "dust", "wheel", "wheels", "tire", "tires",
                   "head", "heads", "spindle", "pulley", "cable", "cord", "adapter", "extension", "hardware"})
# words that never name a type (a title's trailing remarks)
NOT_TYPES = frozenset({"discontinued", "new", "included", "not", "only", "each", "the", "a", "an", "of", "or", "and",
                       "in", "x", "h", "w", "d", "l", "dia", "ft", "lb", "gal", "oz", "qt", "sq", "cu", "mm", "cm",
                       "v", "volt", "watt", "amp", "btu", "gpm", "psi", "no", "series", "style", "model", "type",
                       "grade", "duty", "rated", "certified", "listed", "compliant", "approved", "equivalent",
                       "energy", "star", "version", "edition", "technology", "small", "medium", "large", "xl",
                       "xxl", "xxxl", "xs", "mini", "jumbo", "regular", "standard", "size", "extra"}
                      | set(UNITS) | set(UNITS.values()))
_ASIDE = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")  # "(5000K)", "[2-Pack]": asides, not the end of a name
_PHRASE_END = re.compile(r"\s[-\u2013\u2014|]\s|,\s|\(|\[|;|:\s|\s-(?=[a-z])|\bw/", re.IGNORECASE)
MIN_PRODUCTS = 2  # a word is a query's type only when at least this many products have it as theirs
UNTYPED = -1
TYPE_LEG_LIMIT = 200  # products of the query's type scored by cosine as a third candidate list, at most (docs/intent.md)
SHORT, LATE, LONG = 2, 0.3, 0.3
ACCESSORY = 2.0  # a product made for the type asked for (a grill cover for "bbq grill") loses this share
NAMED = 0.5  # a product whose type another word of the query names ("angle bracket": an angle) gains this share


def head_tokens(text: str, brand: str | None) -> list[str]:
    """The words of a title's first phrase, less a leading brand and everything from a describing word on (a word
    standing alone: "Slide-In Range" keeps its "in")."""
    first = _PHRASE_END.split(_ASIDE.sub(" ", text), maxsplit=1)[0]
    chunks = [(chunk.lower().strip(".,"), words(chunk)) for chunk in first.split()]
    brand_words = words(brand)
    out: list[str] = []
    for chunk, chunk_words in chunks:
        if out and chunk in CUT_WORDS:
            break
        # "in" ends the name unless it is a measure ("18 in.") or the name is still empty
        if chunk == "in" and out and not out[-1][:1].isdigit():
            break
        out.extend(chunk_words)
    if brand_words and out[:len(brand_words)] == brand_words:
        out = out[len(brand_words):]
    return out


def typed_words(tokens: list[str]) -> list[str]:
    """The words of a head phrase that can name a type: alphabetic, longer than one letter, no colour or unit."""
    return [t for t in tokens if t.isalpha() and len(t) > 1 and t not in NOT_TYPES and t not in COLOURS]


def title_types(title: str, brand: str | None = None) -> tuple[str, ...]:
    """The words naming a title's product type, the head first (unstemmed); () when it names none."""
    phrase = head_tokens(title or "", brand)
    typed = typed_words(phrase)
    if not typed:
        return ()
    head = typed[-1]
    out = [head]
    if head in GENERIC and len(typed) > 1:
        out.append(typed[-2])
    raw = (title or "").lower()
    pair = f"{typed[-2]}/{head}" if len(typed) > 1 else ""
    # the plain test first: a pattern built per title would be compiled per title (re caches only 512)
    if pair and pair in raw and re.search(rf"\b{re.escape(pair)}\b", raw):
        out.append(typed[-2])  # "trimmer/edger": both
    return tuple(dict.fromkeys(out))


_FOR = re.compile(r"\bfor\s+(?:use\s+with\s+|most\s+|all\s+|universal\s+)?(.+)", re.IGNORECASE)


def serves(title: str, brand: str | None = None) -> tuple[str, ...]:
    """What a title's product is made for, nearest first (unstemmed): the head of its "for ..." phrase ("Cover for
    Spirit Series Gas Grills" -> grills), else, when its head is a part or accessory (PARTS), the words before it that
    are not themselves parts ("Chainsaw Chain" -> chainsaw; "BBQ Grill Tool Set" -> grill, bbq). The catalog keeps
    those that name a type (catalog_types)."""
    found = _FOR.search(_ASIDE.sub(" ", title or ""))
    if found:
        typed = typed_words(head_tokens(found.group(1), None))
        if typed:
            return (typed[-1],)
    typed = typed_words(head_tokens(title or "", brand))
    if len(typed) > 1 and typed[-1] in PARTS:
        return tuple(w for w in reversed(typed[:-1]) if w not in PARTS and w not in GENERIC)
    return ()


def catalog_types(titles: Iterable[str], brands: Iterable[str | None], stem: Callable[[str], str],
                  categories: Iterable[str | None] | None = None) -> dict:
    """Every product's type as saved with an index: {"names": [stem, ...], "head": [id per product], "also": [id per
    product], "serves": [id per product], "serves_also": [id per product], "words": [the type words as titles spell
    them]} (ids into names, -1 for none; serves: the two nearest words a product is made for that other products
    are typed as, see `serves`). A category, when the catalog has one, is read before the title."""
    names: dict[str, int] = {}
    heads, also = [], []
    spelt: set[str] = set()
    titles, brands = list(titles), list(brands)
    cats = list(categories) if categories is not None else None
    for i, (title, brand) in enumerate(zip(titles, brands, strict=True)):
        found: tuple[str, ...] = ()
        if cats is not None and cats[i]:
            last = re.split(r"\s*[>/|]\s*", str(cats[i]))[-1]
            found = title_types(last)
        if not found:
            found = title_types(title, brand)
        ids = [names.setdefault(stem(t), len(names)) for t in found[:2]]
        spelt.update(found[:2])
        heads.append(ids[0] if ids else UNTYPED)
        also.append(ids[1] if len(ids) > 1 else UNTYPED)
    typed = set(heads) | set(also)  # a product is made for a type other products are (second pass)
    made_for, made_also = [], []
    for title, brand in zip(titles, brands, strict=True):
        ids = [i for i in (names.get(stem(w)) for w in serves(title, brand)) if i is not None and i in typed][:2]
        made_for.append(ids[0] if ids else UNTYPED)
        made_also.append(ids[1] if len(ids) > 1 else UNTYPED)
    return {"names": list(names), "head": heads, "also": also, "serves": made_for, "serves_also": made_also,
            "words": sorted(spelt)}


def _any_of(values: np.ndarray, ids: frozenset[int]) -> np.ndarray:
    """values == any of a few ids (a comparison per id: faster than np.isin for the one or two a query has)."""
    out = np.zeros(len(values), dtype=bool)
    for i in ids:
        out |= values == i
    return out


@dataclass(frozen=True)
class QueryType:
    """The type a query asks for, and the other types its words name (ids into ProductTypes.names): "angle bracket"
    asks for a bracket and names angles."""

    wanted: frozenset[int]
    named: frozenset[int]
    strength: float = 1.0  # how surely the query is a request for that type (of_query)

    @property
    def typed(self) -> bool:
        return bool(self.wanted)


NO_TYPE = QueryType(frozenset(), frozenset())


class ProductTypes:
    """The catalog's product types (catalog_types), for reading a query's and scoring candidates."""

    def __init__(self, data: dict):
        self.names: list[str] = list(data.get("names", []))
        self.raw: list[str] = list(data.get("words", []))  # each type as a title spelt it (any one spelling)
        self.head = np.asarray(data.get("head", []), dtype=np.int32)
        self.also = np.asarray(data.get("also", []), dtype=np.int32)
        self.serves = np.asarray(data.get("serves", np.full(len(self.head), UNTYPED)), dtype=np.int32)
        self.serves_also = np.asarray(data.get("serves_also", np.full(len(self.head), UNTYPED)), dtype=np.int32)
        self.id_of = {name: i for i, name in enumerate(self.names)}
        counts = np.bincount(np.concatenate([self.head[self.head >= 0], self.also[self.also >= 0]]),
                             minlength=len(self.names)) if len(self.names) else np.zeros(0, dtype=np.int64)
        self.products = counts  # how many products have each type

    def __len__(self) -> int:
        return len(self.head)

    @cached_property
    def words(self) -> frozenset[str]:
        """The type names' own words, unstemmed where the catalog saved them (a glued query pair is looked up here
        before it is stemmed)."""
        return frozenset(self.raw) if self.raw else frozenset()

    def rows_of(self, query: QueryType, limit: int = TYPE_LEG_LIMIT) -> np.ndarray | None:
        """Every product of the type the query asks for (ascending rows), or None when there are more than `limit`
        (a type that broad adds little the two legs lack, at a cost)."""
        if not query.typed:
            return None
        wanted = np.fromiter(query.wanted, dtype=np.int32)
        if int(self.products[wanted].sum()) > limit:
            return None
        lists = self._lists
        return np.unique(np.concatenate([lists.get(int(i), np.zeros(0, np.int64)) for i in wanted]))

    @cached_property
    def _lists(self) -> dict[int, np.ndarray]:
        """Rows per type id (built on the first typed query)."""
        rows = np.concatenate([np.flatnonzero(self.head >= 0), np.flatnonzero(self.also >= 0)])
        ids = np.concatenate([self.head[self.head >= 0], self.also[self.also >= 0]])
        order = np.argsort(ids, kind="stable")
        ids, rows = ids[order], rows[order]
        cuts = np.flatnonzero(np.diff(ids)) + 1
        return {int(group_ids[0]): np.sort(group_rows) for group_ids, group_rows in
                zip(np.split(ids, cuts), np.split(rows, cuts), strict=True) if len(group_ids)}

    def _known(self, stem: str) -> int | None:
        i = self.id_of.get(stem)
        return i if i is not None and self.products[i] >= MIN_PRODUCTS else None

    def of_query(self, tokens: list[str], stem: Callable[[str], str]) -> QueryType:
        """The type the query's words ask for: its last word (before "for") that products are typed as; when two
        neighbouring words glued together are a type ("chain saw" -> chainsaw), that."""
        if not len(self.names):
            return NO_TYPE
        if "for" in tokens[1:]:
            tokens = tokens[:tokens.index("for", 1)]
        stems = [stem(t) for t in tokens]
        named = frozenset(i for i in map(self._known, stems) if i is not None)
        for i in range(len(tokens) - 1, -1, -1):
            if not tokens[i].isalpha():
                continue
            glued_word = tokens[i - 1] + tokens[i] if i > 0 else ""
            if glued_word in self.words and (glued := self._known(stem(glued_word))) is not None:
                # the glued word's type and its last word's ("chain saw": a chainsaw, or a saw titled Chain Saw);
                # its first half names no type of its own (it asks for no chain)
                wanted = {glued} | ({last} if (last := self._known(stems[i])) is not None else set())
                named = named - {self._known(stems[i - 1])}
            elif (found := self._known(stems[i])) is not None:
                wanted = {found}
                if self.names[found] in GENERIC and i > 0 and (before := self._known(stems[i - 1])) is not None:
                    wanted.add(before)
            else:
                continue
            return QueryType(frozenset(wanted), named - wanted, self._strength(tokens, i))
        return QueryType(frozenset(), named)

    @staticmethod
    def _strength(tokens: list[str], at: int) -> float:
        """A short query ending in its type ("bbq grill") asks for that type surely; in a longer one ("2 way wall
        light outdoor", "36 inch single bowl stainless sink") its other words already pick the products."""
        content = [t for t in tokens if t.isalpha() and t not in NOT_TYPES]
        last = at == len(tokens) - 1
        return (1.0 if last else LATE) * (1.0 if len(content) <= SHORT else LONG)

    def match(self, rows: np.ndarray, query: QueryType, named: float = NAMED, accessory: float = ACCESSORY
              ) -> np.ndarray:
        """Per row: 1.0 when it is of the type the query asks for, `named` when of a type another of the query's
        words names, -`accessory` when it is made for the type asked for without being one (a grill cover for "bbq
        grill"), else 0.0; times the query's strength."""
        if not query.typed or not len(rows):
            return np.zeros(len(rows), dtype=np.float32)
        out = np.zeros(len(rows), dtype=np.float32)
        head, also = self.head[rows], self.also[rows]
        is_type = _any_of(head, query.wanted) | _any_of(also, query.wanted)
        if query.named:
            out[_any_of(head, query.named) | _any_of(also, query.named)] = named
        made_for = _any_of(self.serves[rows], query.wanted) | _any_of(self.serves_also[rows], query.wanted)
        out[made_for & ~is_type] = -accessory
        out[is_type] = 1.0
        return out * query.strength
