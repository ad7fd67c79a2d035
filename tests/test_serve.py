import json
import shutil
import threading
import time

import pytest
from fastapi.testclient import TestClient

from searchkit import build_index
from searchkit.arrays import is_mapped
from searchkit.serve.app import create_app


@pytest.fixture()
def client(index_copy):
    app = create_app(index_copy, watch=False)
    with TestClient(app) as c:
        yield c


def test_health(client, catalog_frame, index_copy):
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["rows"] == len(catalog_frame) and body["index"] == "idx"
    assert str(index_copy.parent) not in json.dumps(body) and "/" not in json.dumps(body["model"])  # no server paths
    head = client.head("/health")
    assert head.status_code == 200 and head.content == b""
    assert body["model"]["fingerprint"] and body["built_at"]


def test_search_says_what_it_made_of_the_query(client):
    body = client.get("/search", params={"q": "kohlr toilet seat"}).json()
    assert body["no_match"] in (True, False) and body["searched_as"] == "kohler toilet seat"
    assert body["corrections"] == [["kohlr", "kohler"]] and "did_you_mean" in body
    nothing = client.get("/search", params={"q": "🔥🔥"}).json()
    assert nothing["no_match"] is True and nothing["results"] == []
    page = client.get("/", params={"q": "🔥🔥"}).text
    assert "No products match “🔥🔥”" in page
    refused = client.get("/search", params={"q": "fan", "colour": "white", "from": 10})
    assert refused.status_code == 400 and refused.json()["detail"].startswith("unknown parameter(s) colour, from")


def test_search_returns_ranked_json(client):
    res = client.get("/search", params={"q": "kohler toilet seat", "k": 5})
    assert res.status_code == 200
    body = res.json()
    assert [r["rank"] for r in body["results"]] == [1, 2, 3, 4, 5] and body["mode"] == "hybrid"
    assert body["took_ms"] >= 0 and all(-1 <= r["cosine"] <= 1.0001 for r in body["results"])
    assert [r["score"] for r in body["results"]] == sorted((r["score"] for r in body["results"]), reverse=True)
    assert body["searched_as"] == "kohler toilet seat" and body["corrections"] == []


def test_search_says_how_it_understood_a_misspelled_query(client):
    body = client.get("/search", params={"q": "wirless door knbo", "k": 3}).json()
    assert body["query"] == "wirless door knbo" and body["searched_as"] == "wireless door knob"
    assert body["corrections"] == [["wirless", "wireless"], ["knbo", "knob"]]


def test_search_filters_and_facets(client):
    body = client.get("/search", params={"q": "light", "brand": "kohler", "color": ["black", "white"],
                                         "facets": "true", "mode": "dense"}).json()
    assert body["results"] and all(r["brand"] == "kohler" for r in body["results"])
    assert [f["value"] for f in body["facets"]["brand"]] == ["kohler"]
    assert body["facets_cover"] == "the top 100 matches"
    ranged = client.get("/search", params={"q": "fan", "filter": "price=10..20"}).json()
    assert all(10 <= r["price"] <= 20 for r in ranged["results"])


@pytest.mark.parametrize("params, fragment", [
    ({"q": ""}, "at least 1"),
    ({"q": "   "}, "query is empty"),
    ({"q": "fan", "k": 0}, "k: must be at least 1"),
    ({"q": "fan", "k": 101}, "k: must be at most 100"),
    ({"q": "fan", "k": "ten"}, "valid integer"),
    ({"q": "fan", "mode": "magic"}, "pattern"),
    ({"q": "fan", "filter": "size=xl"}, "unknown filter column 'size'"),
    ({"q": "fan", "filter": "brand"}, "COLUMN=VALUE"),
    ({"q": "x" * 1001}, "q: at most 1000 characters"),
    ({}, "q: required"),
    ({"q": "fan", "size": "10"}, "unknown parameter(s) size for /search"),
    ({"q": "fan", "offset": "-1"}, "offset: must be at least 0"),
    ({"q": "fan", "sort": "weight"}, "cannot sort by 'weight'"),
])
def test_bad_input_is_4xx_with_a_reason(client, params, fragment):
    res = client.get("/search", params=params)
    assert 400 <= res.status_code < 500
    assert fragment in res.text


def test_products_endpoint(client, catalog_frame):
    assert client.get("/products/P00003").json()["title"] == catalog_frame["title"][3]
    res = client.get("/products/nope")
    assert res.status_code == 404 and "nope" in res.json()["detail"]


def test_page_and_openapi_are_local(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="q"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    assert "/search" in client.get("/openapi.json").json()["paths"]
    assert 'id="first-answer"' not in page.text and '<div id="results"></div>' in page.text


def test_a_link_with_a_query_has_its_results_in_the_html(client):
    """First paint shows the results: the rows are in the HTML, and the answer for the script to take over."""
    import html
    import json
    import re

    page = client.get("/", params={"q": "kohler toilet seat </script>", "brand": "kohler"})
    assert page.status_code == 200
    cards = re.findall(r'<article class="result">(.*?)</article>', page.text)
    api = client.get("/search", params={"q": "kohler toilet seat </script>", "brand": "kohler", "k": 20,
                                        "facets": "true", "highlight": "true"}).json()
    assert len(cards) == len(api["results"]) > 0
    assert [re.search(r"id (\S+) ·", c).group(1) for c in cards] == [r["product_id"] for r in api["results"]]
    title = re.search(r'<h3 class="title">(.*?)</h3>', cards[0]).group(1)
    assert html.unescape(title.replace("<mark>", "").replace("</mark>", "")) == api["results"][0]["title"]
    assert "<mark>" in title and f'${api["results"][0]["price"]:.2f}' in cards[0]
    answer = re.search(r'<script id="first-answer" type="application/json">(.*?)</script>', page.text, re.S).group(1)
    assert json.loads(answer)["results"] == api["results"]  # "</" cannot end the script early
    assert "products 1–" in page.text and 'class="debug hidden"' in page.text
    assert client.get("/", params={"q": "fan", "mode": "magic"}).text.count("<article") == 0  # the script says why
    second = client.get("/", params={"q": "fan", "page": 2}).text
    assert "products 21–40" in second


def test_reload_swaps_and_a_broken_rebuild_keeps_the_old_index(client, index_copy, catalog_frame, tiny_model,
                                                                  tmp_path):
    smaller = tmp_path / "small.parquet"
    catalog_frame.head(40).to_parquet(smaller, index=False)
    build_index(smaller, index_copy, model=tiny_model)
    assert client.post("/reload").json()["rows"] == 40
    assert client.get("/health").json()["rows"] == 40
    (index_copy / "index.faiss").write_bytes(b"garbage")
    res = client.post("/reload")
    assert res.status_code == 409 and "still serving the old index" in res.json()["detail"]
    assert client.get("/health").json()["rows"] == 40
    assert client.get("/search", params={"q": "fan"}).status_code == 200


def test_watcher_reloads_without_dropping_requests(index_copy, catalog_frame, tiny_model, tmp_path, monkeypatch):
    import searchkit.serve.app as serve

    monkeypatch.setattr(serve, "WATCH_SECONDS", 0.1)
    app = create_app(index_copy, watch=True)
    statuses: list[int] = []
    stop = threading.Event()
    with TestClient(app) as c:
        def hammer():
            while not stop.is_set():
                statuses.append(c.get("/search", params={"q": "ceiling fan", "k": 3}).status_code)

        worker = threading.Thread(target=hammer)
        worker.start()
        smaller = tmp_path / "small.parquet"
        catalog_frame.head(60).to_parquet(smaller, index=False)
        build_index(smaller, index_copy, model=tiny_model)
        deadline = time.time() + 20
        while c.get("/health").json()["rows"] != 60 and time.time() < deadline:
            time.sleep(0.1)
        stop.set()
        worker.join()
        assert c.get("/health").json()["rows"] == 60
    app.state.stop_watch.set()
    assert statuses and set(statuses) == {200}
    shutil.rmtree(index_copy, ignore_errors=True)


def test_metrics_count_requests_latency_no_match_errors_and_the_index(client, catalog_frame):
    def value(text: str, line_start: str) -> float:
        found = [line for line in text.splitlines() if line.startswith(line_start)]
        assert found, line_start
        return float(found[0].rsplit(" ", 1)[1])

    before = client.get("/metrics").text
    client.get("/search", params={"q": "toilet seat"})
    client.get("/search", params={"q": "toilet seat", "mode": "dense"})
    client.get("/search", params={"q": "🙂"})  # no word to search: no match
    client.get("/search", params={"q": "fan", "k": 0})  # refused: 400
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    hybrid = 'searchkit_requests_total{endpoint="/search",mode="hybrid",status="200"}'
    assert value(text, hybrid) - (value(before, hybrid) if hybrid in before else 0) == 2
    assert value(text, 'searchkit_requests_total{endpoint="/search",mode="dense",status="200"}') >= 1
    assert value(text, 'searchkit_request_seconds_count{endpoint="/search",mode="hybrid"}') >= 2
    assert value(text, 'searchkit_no_match_total{mode="hybrid"}') >= 1
    assert value(text, 'searchkit_errors_total{endpoint="/search",status="400"}') >= 1
    assert value(text, "searchkit_index_rows ") == len(catalog_frame)
    assert value(text, "searchkit_index_version ") == 1 and "searchkit_reloads " in text
    assert client.get("/metrics", params={"x": 1}).status_code == 400
    refused = 'searchkit_errors_total{endpoint="/search",status="400"}'
    counted = value(client.get("/metrics").text, refused)
    assert client.get("/search", params={"q": "fan", "size": 10}).status_code == 400  # an unknown parameter
    assert value(client.get("/metrics").text, refused) == counted + 1


def test_the_servers_workers_map_the_index_rather_than_read_it(index_copy, monkeypatch):
    """Workers of `serve --workers N` share the vectors and BM25 arrays through the page cache."""
    from searchkit.serve.app import app_from_env

    monkeypatch.setenv("SEARCHKIT_INDEX", str(index_copy))
    monkeypatch.setenv("SEARCHKIT_NO_ADMIN", "1")
    app = app_from_env()
    try:
        searcher = app.state.holder.searcher
        assert is_mapped(searcher.lexical.data) and is_mapped(searcher.lexical.indices)
        assert searcher.search("toilet seat", k=3)
    finally:
        app.state.stop_watch.set()


def test_metrics_sum_every_worker_when_the_server_runs_several(index_copy, tmp_path):
    """With PROMETHEUS_MULTIPROC_DIR (what `serve --workers N` sets), two apps standing in for two workers count
    into one folder and either one's /metrics shows both."""
    import subprocess
    import sys

    script = f"""
from fastapi.testclient import TestClient
from searchkit.serve.app import create_app
a, b = (TestClient(create_app({str(index_copy)!r}, watch=False)) for _ in range(2))
a.get("/search", params={{"q": "toilet seat"}})
b.get("/search", params={{"q": "ceiling fan"}})
b.get("/search", params={{"q": "garden hose"}})
line = [x for x in a.get("/metrics").text.splitlines()
        if x.startswith('searchkit_requests_total{{endpoint="/search",mode="hybrid",status="200"}}')]
print(line[0].rsplit(" ", 1)[1])
"""
    env = {**__import__("os").environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.split()[-1]) == 3.0


def test_a_local_search_and_the_page_are_answered_on_the_event_loop_and_rerank_in_a_thread(index_copy):
    import asyncio

    from searchkit import Searcher

    seen = []

    def where(mode):
        try:
            asyncio.get_running_loop()
            seen.append((mode, "loop"))
        except RuntimeError:  # no event loop in this thread: a worker thread
            seen.append((mode, "thread"))

    class Recording(Searcher):
        def search(self, *args, **kwargs):
            where(kwargs.get("mode"))
            return super().search(*args, **kwargs)

        def search_with_facets(self, *args, **kwargs):  # the page's first paint
            where(kwargs.get("mode"))
            return super().search_with_facets(*args, **kwargs)

        def product(self, product_id):
            where("product")
            return super().product(product_id)

    with TestClient(create_app(index_copy, loader=Recording.from_dir, watch=False)) as c:
        seen.clear()  # the warm-up search at load
        assert c.get("/search", params={"q": "fan"}).status_code == 200
        c.get("/search", params={"q": "fan", "mode": "rerank"})  # this index has no reranker: refused, in a thread
        assert c.get("/suggest", params={"q": "fa"}).status_code == 200
        assert "fan" in c.get("/", params={"q": "fan"}).text
        first = c.get("/search", params={"q": "fan", "k": 1}).json()["results"][0]["product_id"]
        assert c.get(f"/products/{first}").json()["product_id"] == first
    assert seen == [("hybrid", "loop"), ("rerank", "thread"), ("hybrid", "loop"), ("hybrid", "loop"),
                    ("product", "loop")]


def test_an_identical_search_is_answered_from_memory_until_the_index_or_its_rules_change(index_copy):
    from searchkit import Searcher
    from searchkit.search.rules import Rules

    searched = []

    class Counting(Searcher):
        def search(self, query, *args, **kwargs):
            searched.append(query)
            return super().search(query, *args, **kwargs)

    def remembered(c) -> float:
        line = [x for x in c.get("/metrics").text.splitlines()
                if x.startswith('searchkit_search_answers_total{source="remembered"}')]
        return float(line[0].rsplit(" ", 1)[1]) if line else 0.0

    with TestClient(create_app(index_copy, loader=Counting.from_dir, watch=False)) as c:
        searched.clear()  # the warm-up search at load
        first = c.get("/search", params={"q": "kohler toilet seat", "k": 5})
        again = c.get("/search", params={"q": "kohler toilet seat", "k": 5})
        assert searched == ["kohler toilet seat"] and remembered(c) == 1
        one, two = first.json(), again.json()
        assert list(one) == list(two) and list(one)[-1] == "took_ms"  # the same fields, in the same order
        assert {**one, "took_ms": 0} == {**two, "took_ms": 0}
        assert json.loads(first.content) == one and again.headers["content-type"] == "application/json"
        c.get("/search", params={"q": "kohler toilet seat", "k": 5, "offset": 5})  # another page: another answer
        c.get("/search", params={"q": "kohler toilet seat", "k": 5, "mode": "dense"})
        assert len(searched) == 3 and remembered(c) == 1
        c.app.state.holder.searcher.set_rules(Rules())  # new rules: searched again
        c.get("/search", params={"q": "kohler toilet seat", "k": 5})
        assert len(searched) == 4
        c.post("/reload")  # a new searcher: nothing remembered
        searched.clear()
        c.get("/search", params={"q": "kohler toilet seat", "k": 5})
        assert searched == ["kohler toilet seat"] and remembered(c) == 1
    with TestClient(create_app(index_copy, loader=Counting.from_dir, watch=False, answer_cache=0)) as c:
        searched.clear()
        for _ in range(2):
            c.get("/search", params={"q": "kohler toilet seat", "k": 5})
        assert len(searched) == 2 and remembered(c) == 0


def test_the_answers_kept_are_bounded_and_none_made_under_rules_or_a_day_since_changed(monkeypatch):
    import datetime as dt
    import weakref

    import searchkit.serve.answers as answers_module
    from searchkit.serve.answers import Answer, Answers

    class Engine:
        rules = object()

    body = {"query": "fan", "no_match": False, "searched_as": "fan", "corrections": [], "did_you_mean": None,
            "mode": "hybrid", "k": 1, "offset": 0, "sort": None, "filters": {"brand": ["ünï"]},
            "results": [{"rank": 1, "product_id": "P1", "title": "Fan ünï"}], "pages_end": 1000, "took_ms": 1.5}
    answer = Answer.of(body)
    assert json.loads(answer.json(0.25, "qid")) == {**body, "took_ms": 0.25, "query_id": "qid"}
    assert answer.json(0.25, "qid") == json.dumps({**body, "took_ms": 0.25, "query_id": "qid"}, ensure_ascii=False,
                                                  separators=(",", ":")).encode()
    def asked(kept: Answers, engine: Engine, key: tuple) -> Answer | None:  # as the server asks: at this moment
        return kept.get(engine, Answers.moment(engine), key)

    engine, answers = Engine(), Answers(size=2)
    for key in ("a", "b", "c"):
        answers.keep(engine, Answers.moment(engine), (key,), answer)
    assert len(answers) == 2 and asked(answers, engine, ("a",)) is None and asked(answers, engine, ("c",)) is answer
    before = Answers.moment(engine)
    engine.rules = object()  # changed while a search ran under the old ones
    answers.keep(engine, before, ("d",), answer)
    assert asked(answers, engine, ("d",)) is None and len(answers) == 0
    assert asked(answers, Engine(), ("c",)) is None  # another searcher
    gone = weakref.ref(engine := Engine())
    asked(answers, engine, ("c",))
    del engine
    assert gone() is None  # the answers do not keep a searcher (its mapped index) alive
    engine = Engine()
    answers.keep(engine, Answers.moment(engine), ("e",), answer)
    monkeypatch.setattr(answers_module, "today", lambda: dt.date(2100, 1, 1))  # midnight: a rule's window may open
    assert asked(answers, engine, ("e",)) is None and len(answers) == 0
    answers.keep(engine, (engine.rules, dt.date(2099, 12, 31)), ("f",), answer)  # begun the day before
    assert asked(answers, engine, ("f",)) is None
    small = Answers(size=100, max_bytes=2 * len(answer.head))
    for key in ("a", "b", "c", "b"):
        small.keep(engine, Answers.moment(engine), (key,), answer)
    assert len(small) == 2 and small.bytes == 2 * len(answer.head) and asked(small, engine, ("a",)) is None


def test_a_bad_answer_cache_setting_is_refused_in_one_line_before_the_server_starts(index_copy, monkeypatch):
    from click.testing import CliRunner

    from searchkit.cli import main
    from searchkit.errors import SearchkitError
    from searchkit.serve.answers import ANSWER_CACHE_SIZE, cache_size

    assert cache_size(None) == cache_size(" ") == ANSWER_CACHE_SIZE and cache_size("0") == 0
    with pytest.raises(SearchkitError, match="SEARCHKIT_ANSWER_CACHE must be a whole number"):
        cache_size("-3")
    monkeypatch.setenv("SEARCHKIT_ANSWER_CACHE", "lots")
    out = CliRunner().invoke(main, ["serve", "--index", str(index_copy), "--port", "1"])
    assert out.exit_code == 1 and "SEARCHKIT_ANSWER_CACHE must be a whole number" in out.output and "'lots'" in out.output
