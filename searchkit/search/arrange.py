"""After ranking: the merchandiser's rules (searchkit.search.rules), sorting by a column and the page a search returns.

A search ranks by relevance first, always. Rules then hide, boost, bury, blend signals into, demote and pin; a sort
(`price`, `-price`) reorders only the RELEVANT best of that arrangement, and of those, when the query asks for a
product type (searchkit.data.intent) and some are of it, only those, else those holding as many of the query's words
as any of them does (in a small shop the RELEVANT best are most of the catalog) — a price sort never brings up a
product the relevance ranking did not put among its top RELEVANT; and a page is cut from what remains: page 2 of
k = 10 is exactly ranks 11-20 of k = 20."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import QueryError
from .retrieval import Ranked
from .rules import BOOST, Rule, Rules

RELEVANT = 100  # a sorted search reorders this many of the most relevant products (facets count as many)
MAX_WINDOW = 1000  # offset + k, at most


@dataclass(frozen=True)
class Window:
    """Which results a search returns: k of them from `offset` on, sorted by `sort` (a column, "-" before it for
    descending) or by relevance; `counted` rows are also ranked for facet counts."""

    k: int
    offset: int = 0
    sort: str | None = None
    counted: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.offset, bool) or not isinstance(self.offset, int) or self.offset < 0:
            raise QueryError(f"offset must be a whole number of results to skip, not {self.offset!r}")
        if self.offset + self.k > MAX_WINDOW:
            raise QueryError(f"offset + k is {self.offset + self.k}; at most {MAX_WINDOW} results can be paged "
                             "through")
        if self.sort is not None and (not isinstance(self.sort, str) or not self.sort.lstrip("-").strip()):
            raise QueryError(f"sort takes a column name, '-' before it for descending (e.g. -price), not "
                             f"{self.sort!r}")

    @property
    def column(self) -> str | None:
        return self.sort.lstrip("-").strip() if self.sort else None

    @property
    def descending(self) -> bool:
        return bool(self.sort) and str(self.sort).startswith("-")

    def depth(self, hidden: int = 0) -> int:
        """How many ranked rows the window needs (hidden rows make room for others)."""
        return max(self.offset + self.k + hidden, self.counted, RELEVANT if self.sort else 0)


def renamed(sort: str | None, names: dict[str, str]) -> str | None:
    """A sort by a column as the shop's file names it ("-price_usd", names: {file's name: index's name}) in the
    index's name ("-price"); anything else as it is (Window refuses what is not a sort)."""
    if not isinstance(sort, str) or not sort.lstrip("-").strip():
        return sort
    column = sort.lstrip("-").strip()
    return "-" * (len(sort) - len(sort.lstrip("-"))) + names.get(column, column)


def by_rules(ranked: Ranked, rules: Rules, applied: list[Rule], columns: Any, row_of: dict[str, int],
             mask: np.ndarray | None) -> tuple[Ranked, int]:
    """The ranked rows after the rules that apply, each row's signals with "score" what ranks it now (non-increasing,
    pins included) and "rules" what touched it, and how many lead as pinned. columns: a FilterIndex over the
    catalog."""
    if rules.empty and not applied:
        return ranked, 0
    touched: dict[int, list[str]] = {}
    hidden = {row_of[p] for rule in applied for p in rule.hide if p in row_of}
    kept = [(r, s) for r, s in ranked if r not in hidden]
    rows = np.array([r for r, _ in kept], dtype=np.int64)
    scores = np.array([s["score"] for _, s in kept], dtype=np.float64)
    for rule in applied:
        for wanted, sign, word in ((rule.boost, 1.0, "boosted"), (rule.bury, -1.0, "buried")):
            if wanted and len(rows):
                hit = columns.mask({k: list(v) for k, v in wanted.items()})[rows]
                scores[hit] += sign * BOOST
                for r in rows[hit]:
                    touched.setdefault(int(r), []).append(f"{word} by {rule.name}")
    for name, weight in rules.signals.items():
        numbers = columns.column(name).numbers
        low, high = np.nanmin(numbers), np.nanmax(numbers)
        if high > low and len(rows):
            scores += weight * np.nan_to_num((numbers[rows] - low) / (high - low))
    order = np.argsort(-scores, kind="stable")
    rows, scores = rows[order], scores[order]
    kept = [kept[i] for i in order]
    if rules.demote and len(rows):
        sunk = columns.mask({k: list(v) for k, v in rules.demote.items()})[rows]
        if sunk.any():
            scores[sunk] -= (scores.max() - scores.min()) + 1.0
            order = np.concatenate([np.flatnonzero(~sunk), np.flatnonzero(sunk)])
            rows, scores, kept = rows[order], scores[order], [kept[i] for i in order]
            for r in rows[sunk[order]]:
                touched.setdefault(int(r), []).append("demoted")
    pinned = [row_of[p] for rule in applied for p in rule.pin if p in row_of]
    pinned = [r for r in dict.fromkeys(pinned) if r not in hidden and (mask is None or mask[r])]
    pins_by = {row_of[p]: rule.name for rule in applied for p in rule.pin if p in row_of}
    top = float(scores.max()) if len(scores) else 0.0
    signals_of = {r: s for r, s in kept}
    out: Ranked = [(r, {**signals_of.get(r, {}), "score": top + (len(pinned) - i) * 1e-3})
                   for i, r in enumerate(pinned)]
    for r in pinned:
        touched.setdefault(r, []).insert(0, f"pinned by {pins_by[r]}")
    pinned_set = set(pinned)
    out += [(int(r), {**s, "score": float(v)}) for (_, s), r, v in zip(kept, rows, scores, strict=True)
            if int(r) not in pinned_set]
    return [(r, {**s, "rules": touched[r]} if r in touched else s) for r, s in out], len(pinned)


def sorted_relevant(arranged: Ranked, pinned: int, columns: Any, window: Window, asked_for: Any = None,
                    covered: Any = None) -> Ranked:
    """The arranged rows (by_rules; the first `pinned` pinned) as the window's sort orders them: the RELEVANT best,
    kept_for_sort, sorted by its column (sorted_by), each keeping its "score"; as they are when the window has no
    sort. asked_for: rows -> whether each is of the product type the query asks for (a sort keeps to those, when the
    relevant results hold any: "dog bed" by price is beds, not the cheapest toys that mention dogs); covered: rows ->
    the share of the query's words each holds (a sort of a query asking for no type keeps to the rows holding the
    most: "headphones" by price is headphones, not the cheapest of a small shop's 100 most relevant products)."""
    if window.column is None:
        return arranged
    if window.column not in columns.names:
        raise QueryError(f"cannot sort by {window.column!r}; the catalog has {sorted(columns.names)}")
    return sorted_by(kept_for_sort(arranged[:RELEVANT], pinned, asked_for, covered), columns, window.column,
                     window.descending, pinned)


def sort_judges(parsed: Any, types: Any, lexical: Any) -> tuple[Any, Any]:
    """kept_for_sort's asked_for and covered for a parsed query (searchkit.search.understanding.ParsedQuery): rows ->
    whether each is of the product type the query asks for (None when it asks for none, or without product types),
    and rows -> the share of its words each holds (None without a keyword index)."""
    asked_for = (lambda rows: types.match(rows, parsed.intent) > 0) if (
        types is not None and parsed.intent.typed) else None
    covered = (lambda rows: lexical.coverage(parsed.keywords, rows)) if lexical is not None else None
    return asked_for, covered


def kept_for_sort(relevant: Ranked, pinned: int, asked_for: Any, covered: Any) -> Ranked:
    """Of the RELEVANT best (the first `pinned` always kept), those a sort reorders: the ones of the product type
    asked for when any are, else those holding the largest share of the query's words when any holds one."""
    rows = np.array([r for r, _ in relevant[pinned:]], dtype=np.int64)
    keep = None
    if asked_for is not None and len(rows) and (typed := asked_for(rows)).any():
        keep = typed
    elif covered is not None and len(rows) and (share := covered(rows)).max() > 0:
        keep = share >= share.max() - 1e-6
    if keep is None:
        return relevant
    return relevant[:pinned] + [x for x, k in zip(relevant[pinned:], keep, strict=True) if k]


def sorted_by(ranked: Ranked, columns: Any, name: str, descending: bool, pinned: int) -> Ranked:
    """The rows past the pinned ones sorted by a column (missing values last, ties in relevance order); a row's
    "score" stays what relevance and the rules gave it."""
    head, rest = ranked[:pinned], ranked[pinned:]
    column = columns.column(name)
    rows = np.array([r for r, _ in rest], dtype=np.int64)
    if column.numeric:
        values = list(column.numbers[rows]) if len(rows) else []
    else:
        values = [column.keys[c] if c >= 0 else "" for c in (column.codes[rows] if len(rows) else [])]
    return head + [rest[i] for i in order_of(values, descending)]


def order_of(values: list, descending: bool) -> list[int]:
    """The positions of `values` in sort order: numbers by value, else text A to Z (Z to A when descending); missing
    values (None, NaN, "") last; ties keep their order. The local engine and the OpenSearch backend sort alike."""
    missing = [v is None or v == "" or (isinstance(v, float) and v != v) for v in values]
    present = [v for v, m in zip(values, missing, strict=True) if not m]
    if all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in present):
        keys = [0.0 if m else (-float(v) if descending else float(v)) for v, m in zip(values, missing, strict=True)]
    else:
        ranks = {t: i for i, t in enumerate(sorted({str(v) for v in present}, reverse=descending))}
        keys = [0 if m else ranks[str(v)] for v, m in zip(values, missing, strict=True)]
    return sorted(range(len(values)), key=lambda i: (missing[i], keys[i], i))
