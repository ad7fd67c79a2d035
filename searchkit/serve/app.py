"""`searchkit serve`: an HTTP JSON API and a search page over one index, with hot reload of rebuilt indexes."""

from __future__ import annotations

import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams

from ..backends.opensearch.cluster import Connection, OpenSearchSearcher
from ..data.logs import MAX_SESSION, EventError, SearchLog, popular_queries
from ..errors import IndexFormatError, SearchkitError
from ..eval.report import admin_page, summarize
from ..index import layout
from ..search.arrange import MAX_WINDOW, RELEVANT
from ..search.filters import merge_filters, price_ranges
from ..search.searcher import DEFAULT_MODE, MAX_K, MAX_QUERY_CHARS, MODES, Searcher
from ..search.threads import set_search_threads
from ..version import __version__
from .answers import ANSWER_CACHE_SIZE, SETTING, Answer, Answers, Searched, cache_size
from .metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

WATCH_SECONDS = 2.0
# the query parameters each endpoint takes: any other is refused with a 400 naming it
MAX_EVENTS = 1000  # events one POST /events may carry
PARAMETERS = {"/search": {"q", "k", "mode", "brand", "color", "filter", "facets", "explain", "offset", "sort",
                          "highlight", "session"}, "/events": set(),
              "/suggest": {"q", "k"}, "/relevance": {"q", "id"}, "/health": set(), "/reload": set(), "/admin": set(),
              "/metrics": set(),
              "/": {"q", "mode", "brand", "color", "filter", "page", "sort", "debug"}}
PAGE_K = 20  # results the page shows
FACET_DEPTH = 100  # facet counts cover this many top matches (Searcher.search_with_facets' depth)


def run_search(searcher: Searcher, q: str, k: int, mode: str, brand: list[str], color: list[str],
               expressions: list[str], facets: bool, explain: bool, offset: int = 0, sort: str | None = None,
               highlight: bool = False) -> dict[str, Any]:
    """The /search answer (and the page's first paint)."""
    started = time.perf_counter()
    expressions = expressions + ([f"brand={','.join(brand)}"] if brand else [])
    expressions += [f"color={','.join(color)}"] if color else []
    filters = merge_filters(expressions) or None
    window: dict[str, Any] = {"offset": offset, "sort": sort or None, "highlight": highlight}
    if facets:
        hits, counts = searcher.search_with_facets(q, k=k, mode=mode, filters=filters, explain=explain,
                                                   depth=FACET_DEPTH, **window)
    else:
        hits, counts = searcher.search(q, k=k, mode=mode, filters=filters, explain=explain, **window), None
    if hasattr(hits, "summary"):
        said = hits.summary()
    else:  # an engine that returns a plain list (OpenSearch): what the query became, no match judged
        searched_as, corrections = searcher.understand(q)
        said = {"no_match": False, "searched_as": searched_as,
                "corrections": [[c.original, c.corrected] for c in corrections], "did_you_mean": None}
    body: dict[str, Any] = {"query": q, **said, "mode": mode, "k": k, "offset": offset, "sort": sort or None,
                            "filters": filters or {}, "results": [h.to_dict() for h in hits]}
    if counts is not None:
        body["facets"] = {c: [{"value": v, "count": n} for v, n in values[:20]] for c, values in counts.items()}
        body["facets_cover"] = f"the top {FACET_DEPTH} matches"
        rows = getattr(hits, "rows", None)
        index = getattr(searcher, "filter_index", None)
        if rows is not None and index is not None and "price" in index.names and index.column("price").numeric:
            body["price_ranges"] = price_ranges(index.column("price").numbers[rows[:FACET_DEPTH]])
    body["pages_end"] = RELEVANT if sort else MAX_WINDOW  # results a shopper can page through
    body["took_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return body


def counted(metrics: Metrics, searcher: Any, work: Callable[[], Any]) -> Any:
    """work(), with the searcher's cross-encoder counting its pairs in `metrics`."""
    metrics.count_pairs(searcher)
    return work()


async def answered(searcher: Any, work: Callable[[], Any], mode: str | None = None) -> Any:
    """work() of a search (mode None: other work on the index, such as completions), run on the server's event loop
    or handed to a worker thread. A local index's searches, rerank aside, hold the GIL for nearly all their work, so a
    thread brings a hand-over and contention for the GIL but no concurrency (docs/speed.md); the cross-encoder of
    rerank releases the GIL, and a remote engine (OpenSearch) waits on the network: those go to a thread, leaving the
    loop free for other requests."""
    if isinstance(searcher, Searcher) and mode != "rerank":
        return work()
    return await run_in_threadpool(work)


class Measured:
    """Counts and times every request by endpoint and mode (searchkit.serve.metrics). Plain ASGI rather than
    `@app.middleware`, whose per-request task and response streaming cost as much as a `/health` answer itself
    (docs/speed.md)."""

    def __init__(self, app: Any, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = scope.get("path", "")  # a request refused before routing is counted under its endpoint, if known
            endpoint = getattr(scope.get("route"), "path", None) or (path if path in PARAMETERS else "unknown")
            mode = QueryParams(scope.get("query_string", b"")).get("mode", DEFAULT_MODE) if endpoint == "/search" else ""
            self.metrics.observe(endpoint, mode if mode in MODES else "unknown", status[0],
                                 time.perf_counter() - started)


class KnownParameters:
    """Refuses a request to an endpoint of PARAMETERS that names a parameter the endpoint does not take (a 400 naming
    it), rather than ignoring it."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        allowed = PARAMETERS.get(scope.get("path", "")) if scope["type"] == "http" else None
        if allowed is not None:
            unknown = sorted(set(QueryParams(scope.get("query_string", b""))) - set(allowed))
            if unknown:
                refusal = JSONResponse(status_code=400, content={
                    "detail": f"unknown parameter(s) {', '.join(unknown)} for {scope['path']}; it takes "
                              f"{', '.join(sorted(allowed)) or 'none'}"})
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def card(r: dict[str, Any], debug: bool) -> str:
    """One result as the page's script draws it (index.html's card())."""
    from html import escape

    parts = [f'<img src="{escape(str(r["image"]))}" alt="">' if r.get("image") else ""]
    parts += [f'<span class="badge">{escape(note)}</span>' for note in r.get("rules") or []]
    title = r.get("highlight") or escape(str(r.get("title") or ""))
    if r.get("url"):
        title = f'<a href="{escape(str(r["url"]))}">{title}</a>'
    parts.append(f'<h3 class="title">{title}</h3><div class="brand">{escape(str(r.get("brand") or ""))}</div>')
    if r.get("price") is not None:
        parts.append(f'<div class="price">${float(r["price"]):.2f}</div>')
    explain = "\n" + json.dumps(r["explain"]) if r.get("explain") else ""
    parts.append(f'<div class="debug{"" if debug else " hidden"}">#{r["rank"]} · id {escape(r["product_id"])} · '
                 f'score {r["score"]:.3f} · cosine {r["cosine"]:.3f}{escape(explain)}</div>')
    return f'<article class="result">{"".join(parts)}</article>'


def prerendered(template: str, body: dict[str, Any], debug: bool = False) -> str:
    """The page with the search's results in its HTML (cards, status) and the answer for its script to take over."""
    from html import escape

    cards = "".join(card(r, debug) for r in body["results"])
    status = status_line(body)
    answer = json.dumps(body, ensure_ascii=False).replace("</", "<\\/")
    return (template.replace('<div id="status"></div>', f'<div id="status">{escape(status)}</div>')
            .replace('<div id="results"></div>', f'<div id="results">{cards}</div>')
            .replace('<script>\n"use strict";', f'<script id="first-answer" type="application/json">{answer}</script>\n'
                                                 '<script>\n"use strict";'))


def status_line(body: dict[str, Any]) -> str:
    """What the page says above the results (the page's script writes the same)."""
    if body.get("no_match"):
        related = f" · {len(body['results'])} related products below" if body["results"] else ""
        return f"No products match “{body['query']}”{related}"
    fixed = f"showing results for “{body['searched_as']}” · " if body["corrections"] else ""
    offer = f"did you mean “{body['did_you_mean']}”? · " if body.get("did_you_mean") else ""
    first = body.get("offset", 0) + 1
    shown = f"products {first}–{first + len(body['results']) - 1}" if body["results"] else "no more products"
    return f"{fixed}{offer}{shown} · server {body['took_ms']:.1f} ms"


class IndexHolder:
    """The live Searcher. A reload loads and validates the new index fully before swapping one reference, so
    requests in flight finish on the old index and a broken rebuild leaves the server where it was."""

    def __init__(self, index_dir: Path, loader=Searcher.from_dir, log_dir: Path | None = None):
        self.index_dir = Path(index_dir)
        self._loader = loader
        self.log_dir = log_dir  # popular queries there join the completions
        self._lock = threading.Lock()
        self.searcher: Searcher = self._warmed(loader(self.index_dir))
        self.stamp = self._manifest_stamp()
        self.last_error: str | None = None
        self.reloads = 0

    def _warmed(self, searcher: Searcher) -> Searcher:
        if hasattr(searcher, "warm"):  # the OpenSearch backend has nothing to warm
            searcher.warm()
            popular = popular_queries(self.log_dir) if self.log_dir is not None and self.log_dir.is_dir() else {}
            if popular:  # what shoppers search most, among the catalog's completions
                searcher.suggester = searcher.suggester.with_queries(popular)
        return searcher

    def _manifest_stamp(self) -> tuple | None:
        try:
            stat = (self.index_dir / layout.MANIFEST).stat()
            return stat.st_ino, stat.st_mtime_ns, stat.st_size
        except OSError:
            return None

    def reload(self) -> dict[str, Any]:
        with self._lock:
            stamp = self._manifest_stamp()
            try:
                fresh = self._warmed(self._loader(self.index_dir))
            except SearchkitError as exc:
                self.last_error = str(exc)
                self.stamp = stamp  # do not retry the same broken build every tick
                log.warning("reload failed, still serving the previous index: %s", exc)
                raise
            self.searcher, self.stamp, self.last_error = fresh, stamp, None
            self.reloads += 1
            return health(self)

    def reload_if_changed(self) -> None:
        if self._manifest_stamp() not in (self.stamp, None):
            try:
                self.reload()
            except SearchkitError:
                pass
        elif getattr(self.searcher, "rules_changed", lambda: False)():
            try:  # new rules: the same index, searched by them from the next request on
                self.searcher.load_rules()
                self.reloads += 1
            except SearchkitError as exc:
                self.last_error = str(exc)


def health(holder: IndexHolder) -> dict[str, Any]:
    """The server's state, with no paths of the machine it runs on."""
    manifest = holder.searcher.manifest
    model = {"name": manifest.model.name, "fingerprint": manifest.model.fingerprint,
             "by_reference": manifest.model.by_reference}  # the installed model, not a copy in the index
    return {"status": "ok", "index": holder.index_dir.name, "model": model,
            "rows": manifest.rows, "built_at": manifest.built_at, "index_type": manifest.index.type,
            "index_version": manifest.catalog.version,
            "changed_at": manifest.catalog.updated_at or manifest.built_at,
            "modes": list(holder.searcher.modes),
            "searchkit_version": __version__, "reloads": holder.reloads, "last_reload_error": holder.last_error}


def _watch(holder: IndexHolder, stop: threading.Event) -> None:
    while not stop.wait(WATCH_SECONDS):
        holder.reload_if_changed()


def create_app(index_dir: str | Path, loader=Searcher.from_dir, watch: bool = True,
               log_dir: str | Path | None = None, admin_key: str | None = None, admin: bool = True,
               answer_cache: int = ANSWER_CACHE_SIZE) -> FastAPI:
    """The app over one index; log_dir: keep the search log there (searchkit.data.logs); admin_key: what the admin
    endpoints (/admin, /reload) require as `Authorization: Bearer KEY` (None: open, for a loopback server); admin
    False: no admin endpoints at all; answer_cache: /search answers remembered (searchkit.serve.answers; 0: none)."""
    holder = IndexHolder(Path(index_dir), loader, Path(log_dir) if log_dir is not None else None)
    search_log = SearchLog(log_dir) if log_dir is not None else None
    app = FastAPI(title="searchkit", version=__version__,
                  description="Semantic product search: dense + BM25 hybrid retrieval with filters and facets.")
    app.state.holder = holder
    app.state.search_log = search_log
    metrics = app.state.metrics = Metrics(holder)
    answers = app.state.answers = Answers(answer_cache)
    stop = threading.Event()
    if watch:
        threading.Thread(target=_watch, args=(holder, stop), daemon=True, name="searchkit-index-watch").start()
    app.state.stop_watch = stop

    @app.exception_handler(SearchkitError)
    async def _user_error(request: Request, exc: SearchkitError):
        return JSONResponse(status_code=400, content={"detail": str(exc)})

    @app.exception_handler(RequestValidationError)
    async def _bad_parameter(request: Request, exc: RequestValidationError):
        return JSONResponse(status_code=400, content={"detail": one_line(exc)})

    app.add_middleware(KnownParameters)
    app.add_middleware(Measured, metrics=metrics)  # outermost: refused requests are counted too

    def query_id(searched: Searched, session: str | None = None) -> str | None:
        """The search written to the log, and its id (None: the server keeps no log)."""
        if search_log is None:
            return None
        return search_log.search(searched.query, searched.searched_as, searched.mode, searched.filters, searched.sort,
                                 searched.offset, searched.k, list(searched.product_ids), session, searched.no_match)

    def state() -> dict[str, Any]:
        return {**health(holder), **({"log": search_log.status()} if search_log is not None else {})}

    @app.get("/health")
    def get_health() -> dict[str, Any]:
        return state()

    @app.head("/health", include_in_schema=False)
    def head_health() -> dict[str, Any]:
        return state()

    @app.post("/events", status_code=202)
    async def events(request: Request) -> dict[str, Any]:
        """Shopper events on a search's results: {"query_id", "product_id", "type": click | add_to_cart | purchase}
        or a list of them; 202 once logged (durably), 400 naming the first bad one, 503 when no log is kept."""
        if search_log is None:
            raise HTTPException(status_code=503, detail="this server keeps no search log (serve --log DIR)")
        try:
            data = json.loads(await request.body() or b"null")
        except ValueError:
            raise HTTPException(status_code=400, detail="the body is not JSON") from None
        items = data if isinstance(data, list) else [data]
        if not items or len(items) > MAX_EVENTS:
            raise HTTPException(status_code=400, detail=f"send 1 to {MAX_EVENTS} events at once")
        searcher = holder.searcher
        known = (lambda p: p in searcher._row_of) if hasattr(searcher, "_row_of") else (lambda p: True)
        try:  # in a thread: the events are fsynced, which would hold up the searches answered on the loop
            accepted = await run_in_threadpool(search_log.events, items, known)
        except EventError as exc:
            code = 503 if not search_log.ok else 400
            raise HTTPException(status_code=code, detail=str(exc)) from None
        return {"accepted": accepted}

    @app.get("/search")
    async def search(
        q: str = Query(..., min_length=1, max_length=MAX_QUERY_CHARS, description="What the shopper typed."),
        k: int = Query(10, ge=1, le=MAX_K),
        mode: str = Query(DEFAULT_MODE, pattern="^(" + "|".join(MODES) + ")$"),
        brand: list[str] = Query(default=[]),
        color: list[str] = Query(default=[]),
        filter: list[str] = Query(default=[], description="COLUMN=VALUE, e.g. price=10..50; repeatable."),
        facets: bool = False,
        explain: bool = False,
        offset: int = Query(0, ge=0, le=MAX_WINDOW - 1, description="Results to skip: page 2 of k=10 is offset=10."),
        sort: str = Query("", max_length=200, description="Order the relevant results by a column: price, -price."),
        highlight: bool = False,
        session: str = Query("", max_length=MAX_SESSION, description="An opaque shopper session, logged as given."),
    ) -> Response:
        started, searcher = time.perf_counter(), holder.searcher
        key = (q, k, mode, tuple(brand), tuple(color), tuple(filter), facets, explain, offset, sort, highlight)
        local, made = isinstance(searcher, Searcher), Answers.moment(searcher)  # a cluster's: never kept
        answer = answers.get(searcher, made, key) if local else None
        metrics.answers.labels("searched" if answer is None else "remembered").inc()
        if answer is None:
            work = partial(run_search, searcher, q, k, mode, brand, color, list(filter), facets, explain, offset,
                           sort, highlight)
            if mode == "rerank":  # its cross-encoder loads on first use, in the worker thread
                work = partial(counted, metrics, searcher, work)
            answer = Answer.of(await answered(searcher, work, mode))
            if local:
                answers.keep(searcher, made, key, answer)
        if answer.searched.no_match:
            metrics.no_match.labels(mode).inc()
        took = round((time.perf_counter() - started) * 1000, 2)
        return Response(answer.json(took, query_id(answer.searched, session or None)), media_type="application/json")

    @app.get("/metrics", include_in_schema=False)
    def get_metrics() -> Response:
        """Prometheus' text format: requests and latency by endpoint and mode, no-match and error counts, the
        index's version and rows, reloads."""
        return Response(metrics.text(), media_type=CONTENT_TYPE)

    @app.get("/suggest")
    async def suggest(q: str = Query(..., max_length=MAX_QUERY_CHARS, description="What the shopper has typed so far."),
                      k: int = Query(8, ge=1, le=MAX_K)) -> dict[str, Any]:
        """Completions while typing: the catalog's product types, brands and brand + type (and popular queries)."""
        started, searcher = time.perf_counter(), holder.searcher
        answer = partial(searcher.suggest, q, k) if hasattr(searcher, "suggest") else list
        found = await answered(searcher, answer)
        return {"query": q, "suggestions": found, "took_ms": round((time.perf_counter() - started) * 1000, 3)}

    @app.get("/relevance")
    def relevance(
        q: str = Query(..., min_length=1, max_length=MAX_QUERY_CHARS, description="What the shopper typed."),
        id: list[str] = Query(..., min_length=1, max_length=MAX_K, description="Product ids to judge; repeatable."),
    ) -> dict[str, Any]:
        """Estimated relevance (1 not .. 3 highly relevant) of each product to the query: needs an index whose
        reranker has a relevance fit (`searchkit fit-relevance`)."""
        started = time.perf_counter()
        estimates = holder.searcher.relevance(q, id)
        return {"query": q, "results": [{"product_id": p, "relevance": round(r, 4)} for p, r in zip(id, estimates)],
                "took_ms": round((time.perf_counter() - started) * 1000, 2)}

    @app.get("/products/{product_id}")
    async def product(product_id: str) -> dict[str, Any]:
        searcher = holder.searcher
        answer = partial(searcher.product, product_id)
        try:
            return await answered(searcher, answer)
        except SearchkitError:
            raise HTTPException(status_code=404, detail=f"no product with id {product_id!r}") from None

    def authorised(request: Request) -> None:
        if not admin:
            raise HTTPException(status_code=404, detail="admin endpoints are off on this server")
        if admin_key:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {admin_key}".encode()):
                raise HTTPException(status_code=401, detail="this needs the admin key (Authorization: Bearer KEY)",
                                    headers={"WWW-Authenticate": "Bearer"})

    @app.get("/admin", response_class=HTMLResponse)
    def admin_page_(request: Request) -> str:
        """What shoppers searched: searches per day, top queries, no-result and rarely clicked queries, clicks by
        position (from the search log)."""
        authorised(request)
        if log_dir is None:
            raise HTTPException(status_code=404, detail="this server keeps no search log (serve --log DIR)")
        return admin_page(summarize([log_dir]))

    @app.post("/reload")
    def reload(request: Request) -> dict[str, Any]:
        authorised(request)
        try:
            return holder.reload()
        except IndexFormatError as exc:
            raise HTTPException(status_code=409, detail=f"reload refused, still serving the old index: {exc}") \
                from None

    page_template = resources.files("searchkit.serve").joinpath("static/index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse)
    async def page(q: str = "", mode: str = DEFAULT_MODE, brand: list[str] = Query(default=[]),
                   color: list[str] = Query(default=[]), filter: list[str] = Query(default=[]), page: int = 1,
                   sort: str = "", debug: str = "") -> str:
        """The search page; a link with ?q= comes with its results already in the HTML (first paint)."""
        template = page_template  # part of the package, read once with the app
        if not q.strip() or mode not in MODES or len(q) > MAX_QUERY_CHARS or page < 1:
            return template
        searcher = holder.searcher
        answer = partial(run_search, searcher, q, PAGE_K, mode, brand, color, list(filter), True, debug == "1",
                         (page - 1) * PAGE_K, sort or None, True)
        try:
            body = await answered(searcher, answer, mode)
        except SearchkitError:
            return template  # the page's script asks /search and shows the reason
        body["query_id"] = query_id(Searched.of(body))
        return prerendered(template, body, debug == "1")

    return app


def one_line(exc: RequestValidationError) -> str:
    """A request's bad parameters in one line ("q: at most 1000 characters"), not pydantic's JSON."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ())[1:]) or "request"
        context = error.get("ctx") or {}
        if error.get("type") == "string_too_long":
            what = f"at most {context.get('max_length')} characters"
        elif error.get("type") == "missing":
            what = "required"
        elif error.get("type") in ("less_than_equal", "greater_than_equal"):
            what = f"must be {'at most' if 'less' in error['type'] else 'at least'} {context.get('le', context.get('ge'))}"
        else:
            what = str(error.get("msg", "invalid"))
        parts.append(f"{where}: {what}")
    return "; ".join(parts)


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` / multi-worker serving: the index comes from SEARCHKIT_INDEX, and from the
    OpenSearch cluster SEARCHKIT_OPENSEARCH_URL (index SEARCHKIT_OPENSEARCH_NAME) when `serve --opensearch` set it;
    SEARCHKIT_LOG names the search log's folder (`serve --log`), SEARCHKIT_ADMIN_KEY the admin endpoints' key and
    SEARCHKIT_NO_ADMIN=1 turns them off; SEARCHKIT_RERANK_DEPTH sets the candidates mode rerank reads and
    SEARCHKIT_ANSWER_CACHE the /search answers each worker remembers."""
    set_search_threads(1)  # the server's process: one faiss thread per request, the other cores for other requests
    index = os.environ.get("SEARCHKIT_INDEX", "indexes/homedepot")
    url = os.environ.get("SEARCHKIT_OPENSEARCH_URL")
    logs = os.environ.get("SEARCHKIT_LOG") or None
    options: dict[str, Any] = {"admin_key": os.environ.get("SEARCHKIT_ADMIN_KEY") or None,
                               "admin": os.environ.get("SEARCHKIT_NO_ADMIN") != "1",
                               "answer_cache": cache_size(os.environ.get(SETTING))}
    if url:
        name = os.environ.get("SEARCHKIT_OPENSEARCH_NAME") or Path(index).resolve().name
        connection = Connection(ca_certs=os.environ.get("SEARCHKIT_OPENSEARCH_CA_CERTS") or None,
                                verify=os.environ.get("SEARCHKIT_OPENSEARCH_NO_VERIFY") != "1")
        return create_app(index, loader=lambda folder: OpenSearchSearcher.connect(url, name, folder,
                                                                                  connection=connection),
                          log_dir=logs, **options)
    # workers map the vectors, BM25 arrays and token table, so the page cache holds one copy for all of them: safe,
    # since searchkit never rewrites an index file in place (builds and updates write a new folder and rename it)
    depth = os.environ.get("SEARCHKIT_RERANK_DEPTH")
    return create_app(index, loader=partial(Searcher.from_dir, mmap=True, rerank_depth=int(depth) if depth else None),
                      log_dir=logs, **options)
