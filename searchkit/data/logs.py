"""The search log a server keeps with `searchkit serve --log DIR`: every search (what was typed and searched, mode,
filters, page, the products shown at their positions) and every shopper event on them (click, add to cart,
purchase), for learning from shoppers. No personal data: an optional opaque `session` is stored as given.

    DIR/searches-YYYY-MM-DD.jsonl      one search a line: {"query_id", "time", "query", "searched_as", "mode",
                                       "filters", "sort", "offset", "k", "shown": [product ids, position 1 first],
                                       "no_match", "session"}
    DIR/events-YYYY-MM-DD.jsonl        one event a line: {"query_id", "time", "product_id", "type", "position",
                                       "session"}

Files are append-only, rotated by UTC day (and past ROTATE_BYTES, as -1, -2 ... of the day). Each line is written
whole and flushed to the operating system before a search answers or an event is acknowledged, so a server killed
with kill -9 loses nothing it answered; events are also fsynced (a machine that loses power keeps them). A folder that
cannot be written degrades the server to serving without a log, with the reason in /health, never to failed
searches.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import SearchkitError

log = logging.getLogger(__name__)

EVENT_TYPES = ("click", "add_to_cart", "purchase")
ROTATE_BYTES = 256 * 2**20
REMEMBERED = 100_000  # recent searches whose events are accepted (older query ids are refused as unknown)
MAX_SESSION = 200


class EventError(SearchkitError):
    """An event that cannot be logged, with the reason (unknown query id or product, bad type)."""


class SearchLog:
    """Append-only daily files of searches and events (see the module's docstring); thread-safe."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.problem: str | None = None  # why the log is not written (None: it is)
        self._lock = threading.Lock()
        self._handles: dict[str, tuple[str, Any]] = {}
        self._recent: OrderedDict[str, dict[str, int]] = OrderedDict()  # query id -> {product id: position}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            probe = self.folder / f".probe-{uuid.uuid4().hex[:8]}"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            self.problem = f"{self.folder}: cannot write the search log ({exc.strerror or exc})"
            log.warning("%s; serving without a log", self.problem)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def status(self) -> dict[str, Any]:
        return {"writing": self.ok, "reason": self.problem}

    def _path(self, kind: str, day: str) -> Path:
        path = self.folder / f"{kind}-{day}.jsonl"
        part = 0
        while path.exists() and path.stat().st_size >= ROTATE_BYTES:
            part += 1
            path = self.folder / f"{kind}-{day}-{part}.jsonl"
        return path

    def _append(self, kind: str, record: dict[str, Any], sync: bool) -> None:
        day = record["time"][:10]
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            opened = self._handles.get(kind)
            if opened is None or opened[0] != day or opened[1].tell() >= ROTATE_BYTES:
                if opened is not None:
                    opened[1].close()
                opened = (day, open(self._path(kind, day), "a", encoding="utf-8"))
                self._handles[kind] = opened
            handle = opened[1]
            handle.write(line)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())

    def search(self, query: str, searched_as: str, mode: str, filters: dict[str, Any] | None, sort: str | None,
               offset: int, k: int, shown: list[str], session: str | None = None, no_match: bool = False) -> str:
        """Log a search; returns its query id (given even when the log cannot be written)."""
        query_id = uuid.uuid4().hex
        with self._lock:
            self._recent[query_id] = {p: offset + i for i, p in enumerate(shown, start=1)}
            while len(self._recent) > REMEMBERED:
                self._recent.popitem(last=False)
        if self.ok:
            record = {"query_id": query_id, "time": _now(), "query": query, "searched_as": searched_as, "mode": mode,
                      "filters": filters or {}, "sort": sort, "offset": offset, "k": k, "shown": shown,
                      "no_match": no_match, "session": session}
            try:
                self._append("searches", record, sync=False)
            except OSError as exc:
                self._fail(exc)
        return query_id

    def events(self, items: list[dict[str, Any]], known_product) -> int:
        """Check every event, then log them all (or none): returns how many. EventError names the first bad one."""
        if not self.ok:
            raise EventError(f"events are not logged: {self.problem}")
        records = []
        for i, item in enumerate(items, start=1):
            where = f"event {i}" if len(items) > 1 else "event"
            if not isinstance(item, dict):
                raise EventError(f"{where}: give an object with query_id, product_id and type")
            unknown = sorted(set(item) - {"query_id", "product_id", "type", "session"})
            if unknown:
                raise EventError(f"{where}: unknown field(s) {unknown}")
            kind, query_id, product = item.get("type"), item.get("query_id"), item.get("product_id")
            if kind not in EVENT_TYPES:
                raise EventError(f"{where}: type must be one of {', '.join(EVENT_TYPES)}, not {kind!r}")
            with self._lock:
                shown = self._recent.get(str(query_id))
            if shown is None:
                raise EventError(f"{where}: unknown query_id {query_id!r} (not a recent search of this server)")
            if not known_product(str(product)):
                raise EventError(f"{where}: unknown product_id {product!r}")
            session = item.get("session")
            if session is not None and (not isinstance(session, str) or len(session) > MAX_SESSION):
                raise EventError(f"{where}: session must be text of at most {MAX_SESSION} characters")
            records.append({"query_id": str(query_id), "time": _now(), "product_id": str(product), "type": kind,
                            "position": shown.get(str(product)), "session": session})
        try:
            for record in records:
                self._append("events", record, sync=record is records[-1])
        except OSError as exc:
            self._fail(exc)
            raise EventError(f"events are not logged: {self.problem}") from exc
        return len(records)

    def _fail(self, exc: OSError) -> None:
        self.problem = f"{self.folder}: writing the search log failed ({exc.strerror or exc}); serving without it"
        log.warning("%s", self.problem)

    def close(self) -> None:
        with self._lock:
            for _, handle in self._handles.values():
                handle.close()
            self._handles.clear()


def read_records(folder: str | Path, kind: str) -> list[dict[str, Any]]:
    """Every record of one kind ("searches" or "events") in a log folder, oldest file first; a line cut short by a
    crash mid-write is skipped, the rest of the log stands."""
    out = []
    for path in sorted(Path(folder).glob(f"{kind}-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    return out


def popular_queries(folder: str | Path, min_searches: int = 3) -> dict[str, int]:
    """Queries (as searched) the log holds at least `min_searches` times, with their counts: what shoppers type, for
    suggestions."""
    counts: dict[str, int] = {}
    for record in read_records(folder, "searches"):
        text = record.get("searched_as") or ""
        if text:
            counts[text] = counts.get(text, 0) + 1
    return {q: n for q, n in counts.items() if n >= min_searches}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
