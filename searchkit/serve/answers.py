"""The /search answers a server worker remembers: a head query asked again, by the same or another shopper, is
answered from memory instead of searched again, until the index or its rules change, or the day does (a rule's
window opens or closes with the UTC date).

An answer is kept as the JSON bytes it was sent as, less its `took_ms` and `query_id` (each request's own), plus what
the search log and the no-match counter read of it. Only a local index's answers are kept: the searcher is a
function of its index folder, its rules and the date, so a reload (a new searcher), new rules (a new rules object) or
a new UTC day drop them all; an OpenSearch cluster changes under the server, and its answers are never kept.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ..errors import SearchkitError

# answers one worker keeps (about 2.4 KiB each at k = 10; docs/design-notes.md), and the most bytes they may take (an
# answer of k = 100 with facets and explanations is up to ~60 KiB)
ANSWER_CACHE_SIZE = 2048
ANSWER_CACHE_BYTES = 16 << 20
OWN_FIELDS = ("took_ms", "query_id")  # what every request answers for itself
SETTING = "SEARCHKIT_ANSWER_CACHE"  # the environment variable that sets how many (serve's workers read it)


def today() -> dt.date:
    """The date rules are applied on (searchkit.search.rules: Rules.for_query)."""
    return dt.datetime.now(dt.timezone.utc).date()


def cache_size(value: str | None) -> int:
    """The answers to remember, as SETTING gives them (unset or empty: ANSWER_CACHE_SIZE)."""
    if value is None or not value.strip():
        return ANSWER_CACHE_SIZE
    try:
        size = int(value)
    except ValueError:
        size = -1
    if size < 0:
        raise SearchkitError(f"{SETTING} must be a whole number of answers, 0 or more (0: none), not {value!r}")
    return size


@dataclass(frozen=True)
class Searched:
    """What the search log and the no-match counter read of a search's answer."""

    query: str
    searched_as: str
    mode: str
    filters: dict[str, Any]
    sort: str | None
    offset: int
    k: int
    product_ids: tuple[str, ...]
    no_match: bool

    @classmethod
    def of(cls, body: dict[str, Any]) -> Searched:
        """Of the answer run_search made."""
        return cls(body["query"], body["searched_as"], body["mode"], body["filters"], body["sort"], body["offset"],
                   body["k"], tuple(r["product_id"] for r in body["results"]), bool(body["no_match"]))


@dataclass(frozen=True)
class Answer:
    """One /search answer, as sent less its own fields, and what the log and the counters read of it."""

    head: bytes  # the JSON object without OWN_FIELDS and without its closing brace
    searched: Searched

    @classmethod
    def of(cls, body: dict[str, Any]) -> Answer:
        """The answer run_search made (plain JSON types), as kept and sent."""
        kept = {key: value for key, value in body.items() if key not in OWN_FIELDS}
        # as FastAPI's JSONResponse writes a dict: UTF-8, no NaN, no spaces
        head = json.dumps(kept, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
        return cls(head[:-1], Searched.of(body))

    def json(self, took_ms: float, query_id: str | None = None) -> bytes:
        """The bytes sent: the kept answer with this request's time and query id last, as FastAPI would write the
        whole dict."""
        own = b',"took_ms":' + json.dumps(took_ms).encode()
        if query_id is not None:
            own += b',"query_id":' + json.dumps(query_id, ensure_ascii=False).encode("utf-8")
        return self.head + own + b"}"


class Answers:
    """The last `size` answers of one searcher under one set of rules on one day, at most `max_bytes` of them (least
    recently asked dropped first)."""

    def __init__(self, size: int = ANSWER_CACHE_SIZE, max_bytes: int = ANSWER_CACHE_BYTES):
        self.size, self.max_bytes = size, max_bytes
        self.bytes = 0  # what the kept answers' JSON takes
        self._kept: OrderedDict[tuple, Answer] = OrderedDict()
        self._lock = threading.Lock()
        self._searcher: Any = lambda: None  # a weak reference: a reloaded index is not held in memory by its answers
        self._made: tuple = ()  # the searcher's rules and the day the kept answers were made under

    def get(self, searcher: Any, made: tuple, key: tuple) -> Answer | None:
        """The answer kept for `key`, asked of `searcher` at `made` (its moment now), if any."""
        with self._lock:
            self._follow(searcher, made)
            answer = self._kept.get(key)
            if answer is not None:
                self._kept.move_to_end(key)
            return answer

    @staticmethod
    def moment(searcher: Any) -> tuple:
        """What an answer of `searcher` is made under, besides the searcher: its rules and the day."""
        return getattr(searcher, "rules", None), today()

    def keep(self, searcher: Any, made: tuple, key: tuple, answer: Answer) -> None:
        """Keep an answer `searcher` made at `made` (its moment when the search began), unless that has passed."""
        if self.size <= 0 or len(answer.head) > self.max_bytes:
            return
        with self._lock:
            self._follow(searcher, self.moment(searcher))
            if not self._current(made):
                return
            earlier = self._kept.pop(key, None)
            self.bytes += len(answer.head) - (len(earlier.head) if earlier is not None else 0)
            self._kept[key] = answer
            while len(self._kept) > self.size or self.bytes > self.max_bytes:
                self.bytes -= len(self._kept.popitem(last=False)[1].head)

    def __len__(self) -> int:
        return len(self._kept)

    def _current(self, made: tuple) -> bool:
        """Whether `made` is the moment (the same rules object, the same day) the kept answers were made at."""
        return bool(self._made) and made[0] is self._made[0] and made[1] == self._made[1]

    def _follow(self, searcher: Any, made: tuple) -> None:
        """Drop every answer when `searcher` at `made` is not the searcher and moment they were made by."""
        if self._searcher() is not searcher or not self._current(made):
            self._kept.clear()
            self.bytes = 0
            self._searcher, self._made = weakref.ref(searcher), made
