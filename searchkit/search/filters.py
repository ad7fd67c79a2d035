"""Filters on catalog columns and facet counts, at search speed: each column is read once into numpy (text as codes of
its values compared as words, numbers as floats), so a filter is a lookup of a few codes, not a pass over every row.

One syntax in Python, the CLI and HTTP:

    {"brand": "kohler"}                          equality (text compared as words: "Hampton-Bay" == "hampton bay")
    {"color": ["white", "biscuit"]}              any of a list
    {"price": "10..50"}, {"price": (10, 50)},    a numeric range, both bounds included; "..50" / (None, 50) and
    {"price": {"min": 10, "max": 50}}            "10.." / (10, None) leave one side open; a reversed range is an error
    {"price": 19.99}                             numeric equality

CLI and HTTP write `brand=kohler`, `color=white,biscuit`, `price=10..50`.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data.products import NUMERIC, ProductTable, column_of, factorize
from ..data.products import Column as StoredColumn
from ..data.text import slug, words
from ..errors import QueryError

Filters = dict[str, Any]
CHIP_WORDS = 4  # a facet value of more words is a note, not a value a shopper picks
Range = tuple[float | None, float | None]


def _as_number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise QueryError(f"filter {name!r}: {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise QueryError(f"filter {name!r}: {value!r} is not a number (the column is numeric)") from None
    if number != number:
        raise QueryError(f"filter {name!r}: NaN is not a bound")
    return number


def _bound(name: str, value: Any) -> float | None:
    return None if value is None or (isinstance(value, str) and not value.strip()) else _as_number(name, value)


def as_range(name: str, wanted: Any) -> Range | None:
    """The (low, high) a filter value asks for when it is a range in any of the three spellings, else None."""
    if isinstance(wanted, dict):
        unknown = set(wanted) - {"min", "max"}
        if unknown or not wanted:
            raise QueryError(f"filter {name!r}: a range takes 'min' and/or 'max', not {sorted(map(str, unknown))}")
        low, high = _bound(name, wanted.get("min")), _bound(name, wanted.get("max"))
    elif isinstance(wanted, tuple):
        if len(wanted) != 2:
            raise QueryError(f"filter {name!r}: a range is (low, high), not {wanted!r}")
        low, high = _bound(name, wanted[0]), _bound(name, wanted[1])
    elif isinstance(wanted, str) and ".." in wanted:
        left, _, right = wanted.partition("..")
        low, high = _bound(name, left), _bound(name, right)
    else:
        return None
    if low is None and high is None:
        raise QueryError(f"filter {name!r}: a range needs at least one bound (e.g. {name}=10..50)")
    if low is not None and high is not None and low > high:
        raise QueryError(f"filter {name!r}: the range {low:g}..{high:g} is reversed; write {high:g}..{low:g}")
    return low, high


@dataclass(frozen=True)
class Column:
    """One catalog column as filters read it: `numbers` (float64, NaN where missing) for a numeric column, else
    `codes` (int32 per row, -1 where empty) into `keys` (each distinct value as words, slug form) with `shown`
    (the spelling most rows use, cleaned for display)."""

    numbers: np.ndarray | None = None
    codes: np.ndarray | None = None
    keys: tuple[str, ...] = ()
    shown: tuple[str, ...] = ()
    code_of: dict[str, int] = field(default_factory=dict)

    @property
    def numeric(self) -> bool:
        return self.numbers is not None


@dataclass(frozen=True)
class Condition:
    """One filter as every engine applies it: a numeric range, a list of numbers, or text values compared as slugs
    (case, accents and punctuation ignored: "White" and "white" are one colour)."""

    name: str
    span: Range | None = None
    numbers: tuple[float, ...] = ()
    slugs: tuple[str, ...] = ()


def condition(name: str, numeric: bool, wanted: Any) -> Condition:
    """The filter `name: wanted` on a numeric or text column, refused with one clear line when it cannot match as
    meant (a range on text, an empty list, a value that is not a number)."""
    ranged = isinstance(wanted, (dict, tuple)) or (isinstance(wanted, str) and ".." in wanted)
    if ranged and not numeric:
        raise QueryError(f"filter {name!r}: ranges need a numeric column; {name!r} holds text")
    span = as_range(name, wanted)
    if span is not None:
        return Condition(name, span=span)
    values = list(wanted) if isinstance(wanted, (list, set, frozenset)) else [wanted]
    if not values:
        raise QueryError(f"filter {name!r}: an empty list matches nothing")
    if numeric:
        return Condition(name, numbers=tuple(_as_number(name, v) for v in values))
    return Condition(name, slugs=tuple(sorted({slug(str(v)) for v in values if v is not None})))


def conditions(filters: Filters, types: Mapping[str, str]) -> list[Condition]:
    """Filters checked against the catalog's column types ("number" or "text", as the manifest records them), for
    an engine that holds no columns here (OpenSearch): the same conditions and errors as FilterIndex."""
    if not isinstance(filters, dict):
        raise QueryError(f"filters are a dict of column -> value, not {type(filters).__name__}")
    unknown = sorted(str(n) for n in filters if n not in types)
    if unknown:
        raise QueryError(f"unknown filter column {unknown[0]!r}; the catalog has {sorted(types)}")
    return [condition(str(name), types[name] == "number", wanted) for name, wanted in filters.items()]


def display(value: str) -> str:
    """A brand or colour as a chip shows it: its own capitals kept, words and spaces tidied ("Black / White ")."""
    return " ".join(str(value).replace("\u00a0", " ").split())


def read_column(values: Any) -> Column:
    """A stored product column (searchkit.data.products.Column), or a list of values, into a Column."""
    stored = values if isinstance(values, StoredColumn) else column_of(values)
    if stored.kind in NUMERIC:
        return Column(numbers=stored.numbers())
    if stored.kind == "text":
        first, numbers = stored.factorized()
    else:  # flags and other values compare as their text
        first, numbers = factorize([None if v is None else str(v).lower() if stored.kind == "bool" else str(v)
                                    for v in stored.to_list()])
    counts = np.bincount(numbers, minlength=len(first))
    key_of: dict[str, int] = {}
    remap = np.full(len(first), -1, dtype=np.int32)  # a distinct value's code (-1: missing or no words)
    for i, value in enumerate(first):
        key = slug(value) if value is not None else ""
        if key:
            remap[i] = key_of.setdefault(key, len(key_of))
    codes = remap[numbers]
    spellings: list[Counter[str]] = [Counter() for _ in key_of]
    for i, value in enumerate(first):
        if remap[i] >= 0:
            spellings[remap[i]][display(str(value))] += int(counts[i])
    shown = tuple(c.most_common(1)[0][0] for c in spellings)
    return Column(codes=codes, keys=tuple(key_of), shown=shown, code_of=key_of)


class FilterIndex:
    """The catalog's columns as filters and facets read them, each read on first use and kept (thread-safe)."""

    def __init__(self, table: Any):
        self.table = ProductTable.of(table)
        self._columns: dict[str, Column] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return self.table.column_names

    def column(self, name: str) -> Column:
        found = self._columns.get(name)
        if found is None:
            if name not in self.table.columns:
                raise QueryError(f"unknown filter column {name!r}; the catalog has {sorted(self.table.column_names)}")
            with self._lock:
                found = self._columns.get(name) or read_column(self.table.columns[name])
                self._columns[name] = found
        return found

    def mask(self, filters: Filters) -> np.ndarray:
        """Rows that pass every filter (filters on different columns combine with AND)."""
        if not isinstance(filters, dict):
            raise QueryError(f"filters are a dict of column -> value, not {type(filters).__name__}")
        mask = np.ones(self.table.num_rows, dtype=bool)
        for name, wanted in filters.items():
            mask &= self._column_mask(str(name), self.column(str(name)), wanted)
        return mask

    def _column_mask(self, name: str, column: Column, wanted: Any) -> np.ndarray:
        rule = condition(name, column.numeric, wanted)
        numbers, codes = column.numbers, column.codes
        if rule.span is not None:
            assert numbers is not None  # condition() refuses ranges on text
            low, high = rule.span
            mask = ~np.isnan(numbers)
            if low is not None:
                mask &= numbers >= low
            if high is not None:
                mask &= numbers <= high
            return mask
        if numbers is not None:
            return np.isin(numbers, rule.numbers)
        assert codes is not None  # a text column
        wanted_codes = [column.code_of[k] for k in rule.slugs if k in column.code_of]
        if not wanted_codes:
            return np.zeros(len(codes), dtype=bool)
        if len(wanted_codes) == 1:
            return np.asarray(codes == wanted_codes[0])
        return np.isin(codes, wanted_codes)

    def counts(self, rows: np.ndarray, names: tuple[str, ...]) -> dict[str, list[tuple[str, int]]]:
        """Facet counts of these columns over these rows: each value (as most rows spell it) with how many of the
        rows hold it, most first. Numeric columns and unknown names are left out, and so are values too long to be a
        chip (CHIP_WORDS: catalog notes such as "Black and White Finials Included White"; they still filter)."""
        out = {}
        for name in names:
            if name not in self.table.column_names:
                continue
            column = self.column(name)
            if column.codes is None:
                continue
            codes = column.codes[np.asarray(rows, dtype=np.int64)]
            tally = np.bincount(codes[codes >= 0], minlength=len(column.keys))
            found = [i for i in np.flatnonzero(tally) if len(column.keys[i].split("_")) <= CHIP_WORDS]
            out[name] = sorted(((column.shown[i], int(tally[i])) for i in found), key=lambda kv: (-kv[1], kv[0]))
        return out


def parse_filter(expression: str) -> tuple[str, Any]:
    """CLI/HTTP syntax: 'brand=kohler', 'color=white,biscuit', 'price=10..50', 'price=..50'."""
    name, sep, value = expression.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise QueryError(f"filter {expression!r}: write COLUMN=VALUE (e.g. brand=kohler)")
    name, value = name.strip(), value.strip()
    if ".." in value:
        span = as_range(name, value)
        assert span is not None  # ".." is a range
        low, high = span
        return name, {k: v for k, v in (("min", low), ("max", high)) if v is not None}
    parts = [p.strip() for p in value.split(",") if p.strip()]
    return name, parts if len(parts) > 1 else parts[0]


def merge_filters(expressions: list[str]) -> Filters:
    filters: Filters = {}
    for expression in expressions:
        name, value = parse_filter(expression)
        if name in filters:
            raise QueryError(f"filter column {name!r} given twice; list values instead ({name}=a,b)")
        filters[name] = value
    return filters


def facet_counts(products: Any, columns: tuple[str, ...]) -> dict[str, list[tuple[str, int]]]:
    """Facet counts over a frame of results (an engine that returns records, not rows: OpenSearch)."""
    out = {}
    for column in columns:
        if column in products.columns:
            counts: Counter[str] = Counter()
            shown: dict[str, Counter[str]] = {}
            for value in products[column]:
                if value is None or not words(str(value)):
                    continue
                key = slug(str(value))
                counts[key] += 1
                shown.setdefault(key, Counter())[display(value)] += 1
            out[column] = sorted(((shown[k].most_common(1)[0][0], n) for k, n in counts.items()),
                                 key=lambda kv: (-kv[1], kv[0]))
    return out


def price_ranges(values: np.ndarray, buckets: int = 4) -> list[dict[str, float | int]]:
    """Range chips for a numeric column over some rows: about `buckets` ranges of round bounds, each with how many of
    the values it holds (bounds included, so a chip's filter finds what its count says)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if len(values) < buckets:
        return []
    edges = np.quantile(values, np.linspace(0, 1, buckets + 1))
    rounded = sorted({_round(edges[0], np.floor), *(_round(e, np.round) for e in edges[1:-1]),
                      _round(edges[-1], np.ceil)})
    out = []
    for low, high in zip(rounded, rounded[1:]):
        count = int(((values >= low) & (values <= high)).sum())
        if count:
            out.append({"min": low, "max": high, "count": count})
    return out


def _round(x: float, how) -> float:
    """Two significant figures, rounded by `how` (np.round, np.floor, np.ceil): 137.5 -> 140, 8.37 -> 8.4."""
    if x <= 0:
        return 0.0
    step = 10 ** (np.floor(np.log10(x)) - 1)
    return float(how(x / step) * step)
