"""The merchandiser's rules: synonyms, pinned and hidden products, boosts and burials, business signals and demotion,
read from one TOML file, validated whole, and applied to every search of an index.

    [[synonyms]]                     # multi-way: any of them finds all of them
    words = ["couch", "sofa", "settee"]
    [[synonyms]]                     # one-way: "commode" also searches "toilet", not the reverse
    from = "commode"
    to = ["toilet"]
    [[rules]]
    query = "swag light kit"         # the query as searched (lower-case words, spelling fixed); or contains = "swag"
    pin = ["104162", "202862"]       # these first, in this order
    hide = ["112276"]                # never shown for this query
    boost = { brand = "westinghouse" }   # or bury = {...}; any column = value (or a list of values)
    start = 2026-12-01               # optional validity window, both days included
    end = 2026-12-31
    redirect = "/sale"               # optional: answered with the results, for the shop's front end to follow
    [signals]                        # numeric columns blended into every ranking score (weight x value scaled 0..1)
    popularity = 0.1
    [demote]                         # products matching this sink below all others
    stock = 0

Rules act after ranking, in every mode, before a page is cut: hidden products leave, boosted and buried ones move by
BOOST, signals add weight x (value - column min) / (column max - column min), demoted products sink below the rest,
pinned products come first in their order (when they pass the search's filters). Synonyms act on the words searched
(keyword text always; the embedded text when `[settings] embed_synonyms = true`) and are words the spelling corrector
never changes.
"""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.products import NUMERIC
from ..data.text import slug, words
from ..errors import SearchkitError

BOOST = 0.5  # what a boost adds to (a burial takes from) a product's ranking score
TOP_LEVEL = {"synonyms", "rules", "signals", "demote", "settings"}
RULE_KEYS = {"query", "contains", "pin", "hide", "boost", "bury", "start", "end", "redirect", "name"}


class RulesError(SearchkitError):
    """A rules file that cannot be installed, with the entry at fault."""


@dataclass(frozen=True)
class Synonyms:
    words: tuple[str, ...]  # the words (each a phrase of one or more words, lower-case)
    one_way: bool = False  # then words[0] also searches words[1:], not the reverse


@dataclass(frozen=True)
class Rule:
    name: str
    query: str | None = None
    contains: str | None = None
    pin: tuple[str, ...] = ()
    hide: tuple[str, ...] = ()
    boost: dict[str, tuple[str, ...]] = field(default_factory=dict)
    bury: dict[str, tuple[str, ...]] = field(default_factory=dict)
    start: str | None = None  # ISO dates
    end: str | None = None
    redirect: str | None = None

    def applies(self, searched: str, today: dt.date) -> bool:
        if self.start and today < dt.date.fromisoformat(self.start):
            return False
        if self.end and today > dt.date.fromisoformat(self.end):
            return False
        if self.query is not None:
            return searched == self.query
        padded = f" {searched} "
        return self.contains is not None and f" {self.contains} " in padded


@dataclass(frozen=True)
class Rules:
    synonyms: tuple[Synonyms, ...] = ()
    rules: tuple[Rule, ...] = ()
    signals: dict[str, float] = field(default_factory=dict)
    demote: dict[str, tuple[str, ...]] = field(default_factory=dict)
    embed_synonyms: bool = False

    @property
    def empty(self) -> bool:
        return not (self.synonyms or self.rules or self.signals or self.demote)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rules:
        return cls(synonyms=tuple(Synonyms(tuple(s["words"]), bool(s["one_way"])) for s in data.get("synonyms", [])),
                   rules=tuple(Rule(**{**r, "pin": tuple(r["pin"]), "hide": tuple(r["hide"]),
                                       "boost": {k: tuple(v) for k, v in r["boost"].items()},
                                       "bury": {k: tuple(v) for k, v in r["bury"].items()}})
                               for r in data.get("rules", [])),
                   signals={k: float(v) for k, v in data.get("signals", {}).items()},
                   demote={k: tuple(v) for k, v in data.get("demote", {}).items()},
                   embed_synonyms=bool(data.get("embed_synonyms", False)))

    def expansions(self, tokens: list[str]) -> list[str]:
        """The words a query's synonyms add to it ("couch" -> "sofa settee"), each phrase once, none it holds."""
        text = f" {' '.join(tokens)} "
        added: list[str] = []
        for group in self.synonyms:
            sources = group.words[:1] if group.one_way else group.words
            if any(f" {w} " in text for w in sources):
                added += [w for w in group.words if f" {w} " not in text and w not in added]
        return added

    def vocabulary(self) -> set[str]:
        """Every word the synonyms name: the spelling corrector leaves them as typed."""
        return {w for group in self.synonyms for phrase in group.words for w in phrase.split()}

    def for_query(self, searched: str, today: dt.date | None = None) -> list[Rule]:
        today = today or dt.datetime.now(dt.timezone.utc).date()
        return [r for r in self.rules if r.applies(searched, today)]


NO_RULES = Rules()


def _text_list(where: str, value: Any) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
        raise RulesError(f"{where}: give a value or a list of values")
    return tuple(str(v) for v in values)


def _column_values(where: str, table: Any, columns: set[str]) -> dict[str, tuple[str, ...]]:
    if not isinstance(table, dict) or not table:
        raise RulesError(f"{where}: give column = value pairs, e.g. {{ brand = \"westinghouse\" }}")
    unknown = sorted(set(table) - columns)
    if unknown:
        raise RulesError(f"{where}: unknown column(s) {unknown}; the catalog has {sorted(columns)}")
    return {name: _text_list(f"{where}.{name}", value) for name, value in table.items()}


def _phrase(where: str, value: Any) -> str:
    if not isinstance(value, str) or not words(value):
        raise RulesError(f"{where}: give words, not {value!r}")
    return " ".join(words(value))


def _date(where: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise RulesError(f"{where}: {value!r} is not a date (write 2026-12-31)") from None


def parse_rules(data: dict[str, Any], columns: set[str], numeric: set[str], ids: Callable[[str], bool]) -> Rules:
    """A rules file's TOML, validated whole against an index: its columns (numeric ones for signals) and its product
    ids. The first bad entry raises RulesError naming it."""
    unknown = sorted(set(data) - TOP_LEVEL)
    if unknown:
        raise RulesError(f"unknown section(s) {unknown}; a rules file has {sorted(TOP_LEVEL)}")
    synonyms = []
    for i, entry in enumerate(data.get("synonyms", []), start=1):
        where = f"synonyms #{i}"
        if not isinstance(entry, dict):
            raise RulesError(f"{where}: write [[synonyms]] with words = [...] or from = ... and to = [...]")
        if "words" in entry and set(entry) == {"words"}:
            group = tuple(dict.fromkeys(_phrase(where, w) for w in _text_list(f"{where}.words", entry["words"])))
            if len(group) < 2:
                raise RulesError(f"{where}: words needs at least two different words")
            synonyms.append(Synonyms(group))
        elif set(entry) == {"from", "to"}:
            source = _phrase(f"{where}.from", entry["from"])
            targets = tuple(dict.fromkeys(_phrase(f"{where}.to", w) for w in _text_list(f"{where}.to", entry["to"])))
            synonyms.append(Synonyms((source, *[t for t in targets if t != source]), one_way=True))
        else:
            raise RulesError(f"{where}: give either words = [...] or from = \"...\" and to = [...], not "
                             f"{sorted(entry)}")
    rules = []
    for i, entry in enumerate(data.get("rules", []), start=1):
        name = str(entry.get("name") or f"rules #{i}") if isinstance(entry, dict) else f"rules #{i}"
        if not isinstance(entry, dict):
            raise RulesError(f"{name}: write [[rules]] tables")
        unknown = sorted(set(entry) - RULE_KEYS)
        if unknown:
            raise RulesError(f"{name}: unknown key(s) {unknown}; a rule takes {sorted(RULE_KEYS)}")
        if ("query" in entry) == ("contains" in entry):
            raise RulesError(f"{name}: give query = \"...\" or contains = \"...\" (one of them)")
        if not any(k in entry for k in ("pin", "hide", "boost", "bury", "redirect")):
            raise RulesError(f"{name}: a rule needs pin, hide, boost, bury or redirect")
        pin, hide = (_text_list(f"{name}.{k}", entry[k]) if k in entry else () for k in ("pin", "hide"))
        missing = [p for p in (*pin, *hide) if not ids(p)]
        if missing:
            raise RulesError(f"{name}: product id(s) {missing[:5]} are not in the index")
        both = sorted(set(pin) & set(hide))
        if both:
            raise RulesError(f"{name}: product id(s) {both} are both pinned and hidden")
        start, end = _date(f"{name}.start", entry.get("start")), _date(f"{name}.end", entry.get("end"))
        if start and end and start > end:
            raise RulesError(f"{name}: start {start} is after end {end}")
        redirect = entry.get("redirect")
        if redirect is not None and (not isinstance(redirect, str) or not redirect.strip()):
            raise RulesError(f"{name}.redirect: give the address to send the shopper to")
        rules.append(Rule(name=name, query=_phrase(f"{name}.query", entry["query"]) if "query" in entry else None,
                          contains=_phrase(f"{name}.contains", entry["contains"]) if "contains" in entry else None,
                          pin=pin, hide=hide,
                          boost=_column_values(f"{name}.boost", entry["boost"], columns) if "boost" in entry else {},
                          bury=_column_values(f"{name}.bury", entry["bury"], columns) if "bury" in entry else {},
                          start=start, end=end, redirect=redirect))
    signals = data.get("signals", {})
    if not isinstance(signals, dict):
        raise RulesError("signals: give column = weight pairs")
    for name, weight in signals.items():
        if name not in numeric:
            raise RulesError(f"signals.{name}: not a numeric column; numeric columns: {sorted(numeric)}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise RulesError(f"signals.{name}: the weight must be a number, not {weight!r}")
    demote = _column_values("demote", data["demote"], columns) if "demote" in data else {}
    settings = data.get("settings", {})
    if not isinstance(settings, dict) or set(settings) - {"embed_synonyms"}:
        raise RulesError("settings: only embed_synonyms = true|false")
    return Rules(tuple(synonyms), tuple(rules), {k: float(v) for k, v in signals.items()}, demote,
                 bool(settings.get("embed_synonyms", False)))


def read_rules_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesError(f"{path}: unreadable ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{path}: not valid TOML ({exc})") from exc


def dumps(rules: Rules) -> str:
    return json.dumps(rules.to_dict(), indent=1, sort_keys=True)


def loads(text: str) -> Rules:
    return Rules.from_dict(json.loads(text))


@dataclass
class Arranged:
    """Ranked rows after the rules, with what touched each row (rule names and effects)."""

    rows: list[int]
    scores: list[float]
    touched: dict[int, list[str]]
    redirect: str | None = None


def matches(column_values: Callable[[str, np.ndarray], np.ndarray], rows: np.ndarray,
            wanted: dict[str, tuple[str, ...]]) -> np.ndarray:
    """Rows whose column equals one of the wanted values, for every column given (compared as words)."""
    out = np.ones(len(rows), dtype=bool)
    for name, values in wanted.items():
        keys = {slug(v) for v in values}
        out &= np.isin(column_values(name, rows), list(keys))
    return out


def install(index_dir: str | Path, path: str | Path | None) -> Rules:
    """Validate a rules file against the index at `index_dir` and install it there atomically (path None: remove
    the index's rules). A running server picks the change up (searchkit.serve.app). Returns what is now in force."""
    from ..index import layout

    root = layout.live_dir(Path(index_dir))
    manifest = layout.read_manifest(root)
    if path is None:
        layout.write_rules_text(root, None)
        return NO_RULES
    table = layout.read_products(layout.IndexFiles(root), manifest.rows)
    columns = set(table.column_names) - {"product_id"}
    numeric = {c for c in columns if table.kind(c) in NUMERIC}
    ids = set(table.values("product_id"))
    sources = manifest.catalog.own_names
    data = read_rules_file(path)
    rules = parse_rules(_own_names(data, sources), columns, numeric, lambda p: str(p) in ids)
    layout.write_rules_text(root, dumps(rules))
    return rules


def _own_names(data: dict[str, Any], sources: dict[str, str]) -> dict[str, Any]:
    """Column names as the shop's file spelt them ("colour") read as the index's ("color")."""
    def rename(table: Any) -> Any:
        return {sources.get(k, k): v for k, v in table.items()} if isinstance(table, dict) else table

    out = dict(data)
    for key in ("signals", "demote"):
        if key in out:
            out[key] = rename(out[key])
    out["rules"] = [{**r, **{k: rename(r[k]) for k in ("boost", "bury") if k in r}} if isinstance(r, dict) else r
                    for r in out.get("rules", [])]
    return out


def describe(rules: Rules) -> str:
    """The rules in force, for `searchkit rules --show`."""
    if rules.empty:
        return "no rules"
    lines = [f"synonyms: {' = '.join(g.words) if not g.one_way else g.words[0] + ' -> ' + ', '.join(g.words[1:])}"
             for g in rules.synonyms]
    for rule in rules.rules:
        when = f"query {rule.query!r}" if rule.query is not None else f"queries containing {rule.contains!r}"
        acts = [f"{k} {v}" for k, v in (("pin", list(rule.pin)), ("hide", list(rule.hide)), ("boost", rule.boost),
                                         ("bury", rule.bury), ("redirect", rule.redirect)) if v]
        window = f" from {rule.start or '...'} to {rule.end or '...'}" if rule.start or rule.end else ""
        lines.append(f"{rule.name}: {when}: {'; '.join(acts)}{window}")
    lines += [f"signal: {k} x {v:g}" for k, v in rules.signals.items()]
    lines += [f"demote: {k} = {', '.join(v)}" for k, v in rules.demote.items()]
    return "\n".join(lines)
