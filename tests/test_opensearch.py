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
from searchkit.backends.opensearch.cluster import Connection, OpenSearchSearcher, client_for, push_opensearch
from searchkit.backends.opensearch.export import export_opensearch
from searchkit.cli import main
from searchkit.errors import QueryError, SearchkitError
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
    remote = OpenSearchSearcher.connect(cluster.url, "shop", built_index)
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
    assert knn["filter"] == {"bool": {"filter": [{"terms": {"slug.brand": ["kohler"]}}]}}  # filtered while searching
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

    from searchkit.serve.app import create_app

    push_opensearch(cluster.url, index_dir=built_index, name="shop")
    client = TestClient(create_app(built_index, loader=lambda folder: OpenSearchSearcher.connect(
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
    remote = OpenSearchSearcher.connect(url, name, built_index)
    try:
        hits = remote.search("kohler toilet seat", k=5)
        assert hits and [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    finally:
        remote.client.indices.delete(index=name)
        remote.client.search_pipeline.delete(id=f"{name}-hybrid")


def test_opensearch_pages_sorts_highlights_and_refuses_rules_it_cannot_apply(cluster, index_copy, tmp_path):
    from searchkit.backends.opensearch.export import export_opensearch
    from searchkit.search.rules import install

    push_opensearch(cluster.url, index_dir=index_copy, name="shop")
    remote = OpenSearchSearcher.connect(cluster.url, "shop", index_copy)
    twenty = remote.search("ceiling fan", k=20)
    page2 = remote.search("ceiling fan", k=10, offset=10)
    assert [h.product_id for h in page2] == [h.product_id for h in twenty[10:]] and page2[0].rank == 11
    prices = [h.fields["price"] for h in remote.search("ceiling fan", k=10, sort="price")]
    assert prices == sorted(prices)
    local = Searcher.from_dir(index_copy)  # a sort keeps to what the local engine keeps: here, products saying "white"
    cheap = remote.search("white", k=10, sort="price")
    rows = np.array([local._row_of[h.product_id] for h in cheap], dtype=np.int64)
    assert len(rows) and (local.lexical.coverage(local._parse("white").keywords, rows) == 1.0).all()
    assert "<mark>" in remote.search("ceiling fan", k=1, highlight=True)[0].highlight
    assert remote.search("ceiling fan", k=10, filters={"price": (10, 50)})  # the range spellings reach the cluster
    rules = tmp_path / "rules.toml"
    rules.write_text("[[synonyms]]\nwords = ['couch', 'sofa']\n")
    install(index_copy, rules)
    body = json.loads((export_opensearch(index_copy, tmp_path / "export") and tmp_path / "export" / "index.json")
                      .read_text())
    assert body["settings"]["analysis"]["filter"]["searchkit_synonyms"]["synonyms"] == ["couch, sofa"]
    assert body["mappings"]["properties"]["keywords"]["search_analyzer"] == "searchkit_keywords_search"
    OpenSearchSearcher.connect(cluster.url, "shop", index_copy)  # synonyms alone: served
    rules.write_text("[[rules]]\nquery = 'fan'\nhide = ['P00001']\n")
    install(index_copy, rules)
    with pytest.raises(QueryError, match="only the local engine applies"):
        OpenSearchSearcher.connect(cluster.url, "shop", index_copy)


def test_a_hybrid_request_reads_each_clause_as_deep_as_local_fusion_and_carries_the_calibrated_ef(cluster, built_index,
                                                                                                searcher):
    """A cluster fuses only each clause's top `size` hits: size is the local fusion depth, the page is cut here; faiss
    reads efSearch from the query's method_parameters (the mapping's parameters too), not index.knn.algo_param."""
    push_opensearch(cluster.url, index_dir=built_index, name="shop")
    remote = OpenSearchSearcher.connect(cluster.url, "shop", built_index)
    body, _ = remote.request("ceiling fan", 10, "hybrid", None)
    knn = body["query"]["hybrid"]["queries"][1]["knn"]["embedding"]
    assert body["size"] == remote.depth == 100 and knn["k"] == 100
    assert knn["method_parameters"]["ef_search"] >= int(searcher.manifest.index.params.get("ef_search", 128))
    assert len(remote.search("ceiling fan", k=10)) == 10
    index_body = json.loads(json.dumps(cluster.indices["shop"].body))
    assert "ef_search" in index_body["mappings"]["properties"]["embedding"]["method"]["parameters"]
    assert "knn.algo_param.ef_search" not in index_body["settings"]["index"]
    with pytest.raises(QueryError, match="at most 10000"):
        remote.request("ceiling fan", 10_001, "hybrid", None)


def test_filters_match_as_locally_and_are_refused_as_locally(cluster, built_index, searcher):
    push_opensearch(cluster.url, index_dir=built_index, name="shop")
    remote = OpenSearchSearcher.connect(cluster.url, "shop", built_index)
    for wanted in ("KOHLER", "Kohler", ["kohler", "no such brand"]):  # slugs: case and punctuation ignored
        local = {h.product_id for h in searcher.search("toilet seat", k=50, mode="lexical", filters={"brand": wanted})}
        there = {h.product_id for h in remote.search("toilet seat", k=50, mode="lexical", filters={"brand": wanted})}
        assert there and there == local
    for filters, message in (({"nope": "x"}, "unknown filter column"), ({"brand": []}, "empty list"),
                             ({"brand": "a..b"}, "ranges need a numeric column"),
                             ({"price": {"low": 1}}, "takes 'min' and/or 'max'")):
        with pytest.raises(QueryError, match=message):
            searcher.search("toilet seat", filters=filters)
        with pytest.raises(QueryError, match=message):
            remote.search("toilet seat", filters=filters)


def test_scores_are_reported_on_the_local_engines_scale(cluster, built_index, searcher):
    """Dense: faiss's 1 + ip back to the cosine; lexical: LegacyBM25Similarity's (1 + k1) factor taken out."""
    push_opensearch(cluster.url, index_dir=built_index, name="shop")
    remote = OpenSearchSearcher.connect(cluster.url, "shop", built_index)
    for query in QUERIES:
        dense = remote.search(query, k=5, mode="dense")
        assert [h.score for h in dense] == pytest.approx([h.cosine for h in dense], abs=1e-5)
        there = {h.product_id: h.score for h in remote.search(query, k=5, mode="lexical")}
        here = {h.product_id: h.score for h in searcher.search(query, k=5, mode="lexical")}
        shared = set(there) & set(here)
        assert shared and [there[i] for i in shared] == pytest.approx([here[i] for i in shared], rel=1e-4)


def test_names_sizes_and_chunks_fit_what_a_cluster_accepts(cluster, built_index, tmp_path):
    summary = export_opensearch(built_index, tmp_path / "e", name="Shop")
    assert summary["name"] == "shop" and len(summary["files"]) == 1  # 240 documents, 1,000 a file
    with pytest.raises(SearchkitError, match="OpenSearch refuses it"):
        export_opensearch(built_index, tmp_path / "x", name="my shop")
    with gzip.open(tmp_path / "e" / summary["files"][0], "rt", encoding="utf-8") as lines:
        line = lines.readlines()[1]
    written = line[line.index('"embedding": ') + 13:].rstrip("}\n")
    vector = np.asarray(json.loads(written), dtype=np.float32)
    assert np.array_equal(vector, searcher_vector(built_index, 0))  # reads back as the very float32s
    assert len(written) < 0.7 * len(json.dumps(vector.tolist()))  # not 17-digit doubles
    push_opensearch(cluster.url, export_dir=tmp_path / "e", max_chunk_bytes=64 * 1024)
    bulks = [size for (m, p, _), size in zip(cluster.requests, cluster.sizes) if p == "/_bulk"]
    assert len(bulks) > 1 and max(bulks) <= 64 * 1024


def searcher_vector(index, row: int) -> np.ndarray:
    from searchkit.index import layout
    from searchkit.index.ann import stored_vectors

    faiss_index = layout.read_faiss(layout.IndexFiles(index))
    return np.array(stored_vectors(faiss_index)[row], dtype=np.float32, copy=True)  # copied while it is alive


def test_a_push_is_all_or_nothing(built_index):
    with FakeOpenSearch(plugins=("opensearch-knn",)) as bare:  # no neural-search: the pipeline is refused
        for _ in range(2):  # and again: nothing was left behind to say "exists already"
            with pytest.raises(SearchkitError, match="Invalid processor type"):
                push_opensearch(bare.url, index_dir=built_index, name="shop")
        assert bare.indices == {} and bare.pipelines == {}


def test_several_shards_gather_bm25_statistics_from_all_of_them(cluster, built_index, tmp_path):
    export_opensearch(built_index, tmp_path / "e", name="sharded", shards=3)
    push_opensearch(cluster.url, export_dir=tmp_path / "e")
    remote = OpenSearchSearcher.connect(cluster.url, "sharded", built_index)
    assert remote.shards == 3 and remote.search("ceiling fan", k=3)
    assert cluster.queries[-1].get("search_type") == ["dfs_query_then_fetch"]


def test_https_with_a_private_ca_or_without_verification(tmp_path, monkeypatch):
    import opensearchpy

    seen = {}
    monkeypatch.setattr(opensearchpy, "OpenSearch", lambda **kwargs: seen.update(kwargs) or "client")
    ca = tmp_path / "root-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    client_for("https://admin:pw@localhost:9200", Connection(ca_certs=str(ca)))
    assert seen["use_ssl"] and seen["verify_certs"] and seen["ca_certs"] == str(ca)
    client_for("https://localhost:9200", Connection(verify=False))
    assert seen["verify_certs"] is False
