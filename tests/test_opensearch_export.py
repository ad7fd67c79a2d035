"""searchkit export opensearch: the index body, pipeline and _bulk documents an OpenSearch cluster loads."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from click.testing import CliRunner

from searchkit.backends.opensearch.export import export_opensearch
from searchkit.cli import main
from searchkit.errors import IndexFormatError


def documents(folder):
    docs = []
    for name in json.loads((folder / "export.json").read_text())["files"]:
        with gzip.open(folder / name, "rt", encoding="utf-8") as lines:
            pairs = [json.loads(line) for line in lines]
        for action, doc in zip(pairs[::2], pairs[1::2], strict=True):
            assert action["index"]["_id"] == doc["product_id"]
            docs.append((action, doc))
    return docs


def test_export_writes_a_knn_mapping_and_one_document_per_product(tmp_path, built_index, searcher):
    out = tmp_path / "os"
    summary = export_opensearch(built_index, out, name="shop", shards=2, replicas=0, shard_docs=100)
    body = json.loads((out / "index.json").read_text())
    embedding = body["mappings"]["properties"]["embedding"]
    assert body["settings"]["index"]["knn"] is True and body["settings"]["index"]["number_of_shards"] == 2
    assert embedding["type"] == "knn_vector" and embedding["dimension"] == searcher.manifest.dimension
    assert embedding["method"]["engine"] == "faiss" and embedding["method"]["space_type"] == "innerproduct"
    similarity = body["settings"]["index"]["similarity"]["default"]
    assert similarity == {"type": "BM25", "k1": searcher.manifest.index.bm25.k1,
                          "b": searcher.manifest.index.bm25.b}
    properties = body["mappings"]["properties"]
    assert properties["brand"]["type"] == properties["color"]["type"] == "keyword"
    assert properties["price"]["type"] == "double" and properties["keywords"]["analyzer"] == "whitespace"
    weights = json.loads((out / "pipeline.json").read_text())["phase_results_processors"][0][
        "normalization-processor"]["combination"]["parameters"]["weights"]
    assert weights == pytest.approx([1 - searcher.fusion.alpha, searcher.fusion.alpha]) and sum(weights) == 1

    docs = documents(out)
    assert summary["documents"] == len(docs) == len(searcher) and len(summary["files"]) == 3  # 240 by 100
    assert sorted(d["product_id"] for _, d in docs) == sorted(searcher.products["product_id"])
    assert {a["index"]["_index"] for a, _ in docs} == {"shop"}
    by_id = {d["product_id"]: d for _, d in docs}
    for query in ("kohler toilet seat", "white garden hose"):
        ids = [h.product_id for h in searcher.search(query, k=5)]
        vector = searcher.embed([query])[0]
        dots = [float(np.dot(by_id[i]["embedding"], vector)) for i in ids]
        assert dots == pytest.approx(searcher.similarity(query, ids), abs=1e-6)  # the stored vector, as searched
        parsed = searcher._parse(query)  # keyword text is searchkit's own, so a match on it matches as BM25 does
        hits = searcher.search(query, k=5, mode="lexical")
        assert all(set(parsed.keywords.split()) & set(by_id[h.product_id]["keywords"].split()) for h in hits)


def test_cli_export_and_a_broken_index(tmp_path, built_index, index_copy):
    result = CliRunner().invoke(main, ["export", "opensearch", "--index", str(built_index), "--out",
                                       str(tmp_path / "os")])
    assert result.exit_code == 0, result.output
    assert "wrote 240 documents" in result.output and (tmp_path / "os" / "documents-00000.ndjson.gz").is_file()
    (index_copy / "index.faiss").write_bytes(b"broken")
    result = CliRunner().invoke(main, ["export", "opensearch", "--index", str(index_copy), "--out",
                                       str(tmp_path / "x")])
    assert result.exit_code == 1 and "index.faiss" in result.output and not (tmp_path / "x").exists()
    with pytest.raises(IndexFormatError):
        export_opensearch(tmp_path / "nowhere", tmp_path / "y")
