"""Serving from OpenSearch: the real opensearch-py client against a fake cluster on loopback (tests/fake_opensearch),
and a live test where SEARCHKIT_OPENSEARCH_URL names a real cluster."""

from __future__ import annotations

import gzip
import json
import os
import uuid

import numpy as np
import pytest
from click.testing import CliRunner

from searchkit import Searcher
from searchkit.cli import main
from searchkit.errors import QueryError, SearchkitError
from searchkit.opensearch import push_opensearch
from searchkit.opensearch_export import export_opensearch
from tests.fake_opensearch import FakeOpenSearch

pytest.importorskip("opensearchpy")

QUERIES = ["kohler toilet seat", "white garden hose", "ceiling fan", "swag light kit"]


@pytest.fixture()
def cluster():
    with FakeOpenSearch() as fake:
        yield fake


def test_push_creates_the_index_and_pipeline_and_loads_every_product(cluster, built_index, searcher):
    result = push_opensearch(cluster.url, index_dir=built_index, name="shop", chunk_size=50)
    assert result["documents"] == len(searcher) and result["pipeline"] == "shop-hybrid"
    calls = [(m, p) for m, p, _ in cluster.requests]
    assert ("HEAD", "/shop") in calls and ("PUT", "/shop") in calls
    assert ("PUT", "/_search/pipeline/shop-hybrid") in calls and ("POST", "/shop/_refresh") in calls
    assert sum(1 for m, p in calls if p == "/_bulk" and m == "POST") == len(searcher) // 50 + 1  # chunked
    assert len(cluster.indices["shop"].docs) == len(searcher)
    with pytest.raises(SearchkitError, match="exists already"):
        push_opensearch(cluster.url, index_dir=built_index, name="shop")


def test_the_opensearch_backend_answers_as_the_local_index(cluster, built_index, searcher):
    push_opensearch(cluster.url, index_dir=built_index, name="shop")
    remote = Searcher.from_opensearch(cluster.url, "shop", built_index)
    for query in QUERIES:
        hits = remote.search(query, k=10)
        assert [h.rank for h in hits] == list(range(1, len(hits) + 1)) and hits
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        assert [h.cosine for h in hits] == pytest.approx(searcher.similarity(query, [h.product_id for h in hits]),
                                                         abs=1e-5)
        assert np.allclose(remote.embed([query]), searcher.embed([query]), atol=1e-6)  # same query side
        local = searcher.search(query, k=10, mode="dense")  # exact k-NN over the same vectors: the same cosines
        dense = remote.search(query, k=10, mode="dense")  # (generated duplicates tie, so ids may swap at the edge)
        assert [h.cosine for h in dense] == pytest.approx([h.score for h in local], abs=1e-5)
        body, _ = remote.request(query, 10, "hybrid", None)
        assert body["query"]["hybrid"]["queries"][0]["bool"]["must"][0]["match"]["keywords"] == \
            searcher._parse(query).keywords
    method, path, _ = cluster.requests[-1]
    assert path == "/shop/_search"
    filtered = remote.search("toilet seat", k=10, filters={"brand": "kohler", "price": {"min": 10, "max": 60}})
    assert filtered and all(h.fields["brand"] == "kohler" and 10 <= h.fields["price"] <= 60 for h in filtered)
    request, _ = remote.request("toilet seat", 10, "hybrid", {"brand": "kohler"})
    knn = request["query"]["hybrid"]["queries"][1]["knn"]["embedding"]
    assert knn["filter"] == {"bool": {"filter": [{"term": {"brand": "kohler"}}]}}  # filtered while searching
    pid = searcher.products["product_id"].iloc[3]
    assert remote.product(pid)["title"] == searcher.product(pid)["title"]
    with pytest.raises(QueryError, match="unknown product id"):
        remote.product("nope")
    with pytest.raises(QueryError, match="not served from OpenSearch"):
        remote.search("fan", mode="rerank")


def test_a_refused_document_stops_the_push_with_its_id_and_reason(cluster, tmp_path, built_index):
    export = tmp_path / "export"
    summary = export_opensearch(built_index, export, name="broken")
    path = export / summary["files"][0]
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    rows[1]["embedding"] = rows[1]["embedding"][:5]  # the first document: a vector of the wrong dimension
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.write("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(SearchkitError, match=f"document '{rows[0]['index']['_id']}' refused: Vector dimension"):
        push_opensearch(cluster.url, export_dir=export)


def test_http_serves_from_opensearch(cluster, built_index):
    from fastapi.testclient import TestClient

    from searchkit.serve import create_app

    push_opensearch(cluster.url, index_dir=built_index, name="shop")
    client = TestClient(create_app(built_index, loader=lambda folder: Searcher.from_opensearch(
        cluster.url, "shop", folder), watch=False))
    body = client.get("/search", params={"q": "kohler toilet seat", "facets": "true"}).json()
    assert body["results"] and body["facets"]["brand"]
    assert client.get("/health").json()["modes"] == ["dense", "lexical", "hybrid"]
    assert client.get("/relevance", params={"q": "fan", "id": ["P00001"]}).status_code == 400


def test_cli_push(cluster, built_index, tmp_path):
    runner = CliRunner()
    out = runner.invoke(main, ["export", "opensearch", "--index", str(built_index), "--out", str(tmp_path / "e"),
                               "--name", "cli"])
    assert out.exit_code == 0, out.output
    result = runner.invoke(main, ["push", "opensearch", "--url", cluster.url, "--export", str(tmp_path / "e")])
    assert result.exit_code == 0, result.output
    assert "loaded 240 documents into cli" in result.output
    again = runner.invoke(main, ["push", "opensearch", "--url", cluster.url, "--export", str(tmp_path / "e")])
    assert again.exit_code == 1 and "exists already" in again.output


@pytest.mark.skipif(not os.environ.get("SEARCHKIT_OPENSEARCH_URL"), reason="no OpenSearch cluster named in "
                    "SEARCHKIT_OPENSEARCH_URL")
def test_live_cluster(built_index, searcher):
    url, name = os.environ["SEARCHKIT_OPENSEARCH_URL"], f"searchkit-test-{uuid.uuid4().hex[:8]}"
    push_opensearch(url, index_dir=built_index, name=name)
    remote = Searcher.from_opensearch(url, name, built_index)
    try:
        hits = remote.search("kohler toilet seat", k=5)
        assert hits and [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    finally:
        remote.client.indices.delete(index=name)
        remote.client.search_pipeline.delete(id=f"{name}-hybrid")


def test_opensearch_pages_sorts_highlights_and_refuses_rules_it_cannot_apply(cluster, index_copy, tmp_path):
    from searchkit.opensearch_export import export_opensearch
    from searchkit.rules import install

    push_opensearch(cluster.url, index_dir=index_copy, name="shop")
    remote = Searcher.from_opensearch(cluster.url, "shop", index_copy)
    twenty = remote.search("ceiling fan", k=20)
    page2 = remote.search("ceiling fan", k=10, offset=10)
    assert [h.product_id for h in page2] == [h.product_id for h in twenty[10:]] and page2[0].rank == 11
    prices = [h.fields["price"] for h in remote.search("ceiling fan", k=10, sort="price")]
    assert prices == sorted(prices)
    assert "<mark>" in remote.search("ceiling fan", k=1, highlight=True)[0].highlight
    assert remote.search("ceiling fan", k=10, filters={"price": (10, 50)})  # the range spellings reach the cluster
    rules = tmp_path / "rules.toml"
    rules.write_text("[[synonyms]]\nwords = ['couch', 'sofa']\n")
    install(index_copy, rules)
    body = json.loads((export_opensearch(index_copy, tmp_path / "export") and tmp_path / "export" / "index.json")
                      .read_text())
    assert body["settings"]["analysis"]["filter"]["searchkit_synonyms"]["synonyms"] == ["couch, sofa"]
    assert body["mappings"]["properties"]["keywords"]["search_analyzer"] == "searchkit_keywords_search"
    Searcher.from_opensearch(cluster.url, "shop", index_copy)  # synonyms alone: served
    rules.write_text("[[rules]]\nquery = 'fan'\nhide = ['P00001']\n")
    install(index_copy, rules)
    with pytest.raises(QueryError, match="only the local engine applies"):
        Searcher.from_opensearch(cluster.url, "shop", index_copy)
