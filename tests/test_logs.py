"""The search log: searches and shopper events written append-only, durably, and refused with a reason when bad."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from fastapi.testclient import TestClient

from searchkit.serve.app import create_app


def lines(folder, kind):
    return [json.loads(line) for path in sorted(folder.glob(f"{kind}-*.jsonl")) for line in path.read_text().splitlines()]


@pytest.fixture()
def logged(index_copy, tmp_path):
    folder = tmp_path / "logs"
    with TestClient(create_app(index_copy, watch=False, log_dir=folder)) as client:
        yield client, folder


def test_searches_and_events_are_logged(logged):
    client, folder = logged
    body = client.get("/search", params={"q": "kohler toilet seat", "k": 5, "offset": 5, "session": "s-1"}).json()
    assert len(body["query_id"]) == 32
    (search,) = lines(folder, "searches")
    assert search["query_id"] == body["query_id"] and search["query"] == "kohler toilet seat"
    assert search["shown"] == [r["product_id"] for r in body["results"]] and search["offset"] == 5
    assert search["session"] == "s-1" and search["mode"] == "hybrid"
    third = body["results"][2]["product_id"]
    one = client.post("/events", json={"query_id": body["query_id"], "product_id": third, "type": "click"})
    assert one.status_code == 202 and one.json() == {"accepted": 1}
    many = client.post("/events", json=[{"query_id": body["query_id"], "product_id": third, "type": t}
                                        for t in ("add_to_cart", "purchase")])
    assert many.status_code == 202 and many.json() == {"accepted": 2}
    events = lines(folder, "events")
    assert [e["type"] for e in events] == ["click", "add_to_cart", "purchase"]
    assert all(e["position"] == 8 and e["product_id"] == third for e in events)  # rank 8: offset 5 + third
    assert client.get("/health").json()["log"] == {"writing": True, "reason": None}
    again = client.get("/search", params={"q": "kohler toilet seat", "k": 5, "offset": 5, "session": "s-2"}).json()
    assert again["results"] == body["results"] and again["query_id"] != body["query_id"]  # remembered, logged anew
    second = lines(folder, "searches")[-1]
    assert second["query_id"] == again["query_id"] and second["session"] == "s-2" and second["shown"] == search["shown"]
    assert client.post("/events", json={"query_id": again["query_id"], "product_id": third,
                                        "type": "click"}).status_code == 202


@pytest.mark.parametrize("event, message", [
    ({"query_id": "nope", "product_id": "P00001", "type": "click"}, "unknown query_id"),
    ({"product_id": "P00001", "type": "click"}, "unknown query_id"),
    ({"query_id": "QID", "product_id": "P00001", "type": "like"}, "type must be one of"),
    ({"query_id": "QID", "product_id": "no-such", "type": "click"}, "unknown product_id"),
    ({"query_id": "QID", "product_id": "P00001", "type": "click", "email": "x@y"}, "unknown field(s) ['email']"),
    ([], "1 to 1000 events"),
])
def test_bad_events_are_refused_with_the_reason_and_nothing_logged(logged, event, message):
    client, folder = logged
    query_id = client.get("/search", params={"q": "fan"}).json()["query_id"]
    payload = json.loads(json.dumps(event).replace("QID", query_id))
    res = client.post("/events", json=payload)
    assert res.status_code == 400 and message in res.json()["detail"]
    assert lines(folder, "events") == []
    assert client.post("/events", content=b"not json").status_code == 400


def test_a_server_without_a_log_or_an_unwritable_one_still_searches(index_copy, tmp_path):
    with TestClient(create_app(index_copy, watch=False)) as client:
        assert "query_id" not in client.get("/search", params={"q": "fan"}).json()
        assert client.post("/events", json={}).status_code == 503
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with TestClient(create_app(index_copy, watch=False, log_dir=blocker / "logs")) as client:
        state = client.get("/health").json()["log"]
        assert state["writing"] is False and "cannot write the search log" in state["reason"]
        body = client.get("/search", params={"q": "fan"})
        assert body.status_code == 200 and body.json()["results"]
        refused = client.post("/events", json={"query_id": body.json()["query_id"], "product_id": "P00001",
                                               "type": "click"})
        assert refused.status_code == 503 and "not logged" in refused.json()["detail"]


def test_an_acknowledged_event_survives_kill_9(built_index, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tmp_path / "logs"
    server = subprocess.Popen([sys.executable, "-m", "searchkit", "serve", "--index", str(built_index), "--port",
                               str(port), "--log", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(base + "/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        with urllib.request.urlopen(base + "/search?q=ceiling+fan&k=3", timeout=10) as r:
            body = json.loads(r.read())
        event = {"query_id": body["query_id"], "product_id": body["results"][0]["product_id"], "type": "purchase"}
        request = urllib.request.Request(base + "/events", data=json.dumps(event).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 202
    finally:
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
    assert [e["type"] for e in lines(folder, "events")] == ["purchase"]
    assert lines(folder, "searches")[0]["query_id"] == body["query_id"]


def test_popular_queries_join_the_suggestions(index_copy, tmp_path):
    folder = tmp_path / "logs"
    with TestClient(create_app(index_copy, watch=False, log_dir=folder)) as client:
        for _ in range(3):
            client.get("/search", params={"q": "wireless kohler seat"})
        assert "wireless kohler seat" not in client.get("/suggest", params={"q": "wireless k"}).json()["suggestions"]
    with TestClient(create_app(index_copy, watch=False, log_dir=folder)) as client:  # read when the server starts
        assert "wireless kohler seat" in client.get("/suggest", params={"q": "wireless k"}).json()["suggestions"]


def test_report_and_the_admin_page(index_copy, tmp_path):
    from click.testing import CliRunner

    from searchkit.cli import main

    folder = tmp_path / "logs"
    with TestClient(create_app(index_copy, watch=False, log_dir=folder, admin_key="s3cret")) as client:
        for query in ["ceiling fan"] * 6 + ["kohler toilet seat"] * 2 + ["🔥"]:
            body = client.get("/search", params={"q": query, "k": 5}).json()
            if query == "kohler toilet seat":
                client.post("/events", json={"query_id": body["query_id"], "product_id": body["results"][1][
                    "product_id"], "type": "click"})
        assert client.get("/admin").status_code == 401
        assert client.get("/admin", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert client.post("/reload").status_code == 401
        page = client.get("/admin", headers={"Authorization": "Bearer s3cret"})
        assert page.status_code == 200 and '<svg id="per-day"' in page.text and "ceiling fan" in page.text
        assert "http://" not in page.text and "https://" not in page.text  # self-contained
        assert client.post("/reload", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/search", params={"q": "fan"}).status_code == 200  # search stays open
    summary = json.loads(CliRunner().invoke(main, ["report", str(folder), "--json"]).output)
    assert summary["searches"] == 10 and summary["top_queries"][0] == {"query": "ceiling fan", "searches": 6}
    assert summary["clicks_by_position"] == {"2": 2} and summary["events"] == {"click": 2}
    assert {"query": "ceiling fan", "searches": 6, "click_through_rate": 0.0} in summary["low_click_queries"]
    assert summary["no_result_queries"][0]["searches"] == 1  # the emoji query found nothing
    text = CliRunner().invoke(main, ["report", str(folder)]).output
    assert "10 searches" in text and "clicks by position: #2 2" in text
    with TestClient(create_app(index_copy, watch=False, admin=False)) as client:
        assert client.get("/admin").status_code == 404 and client.post("/reload").status_code == 404


def test_serve_refuses_open_admin_endpoints_off_loopback(built_index, monkeypatch):
    from click.testing import CliRunner

    from searchkit.cli import main

    monkeypatch.delenv("SEARCHKIT_ADMIN_KEY", raising=False)
    result = CliRunner().invoke(main, ["serve", "--index", str(built_index), "--host", "0.0.0.0"])
    assert result.exit_code != 0 and "SEARCHKIT_ADMIN_KEY" in result.output
