"""searchkit update: upserts and deletes without a full rebuild, checked against a full rebuild of the same catalog."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from searchkit import IndexConfig, Searcher, build_index
from searchkit.cli import main
from searchkit.errors import CatalogError, IndexFormatError, IndexMismatchError
from searchkit.index import layout
from searchkit.index.update import rollback, update_index

QUERIES = ["kohler toilet seat", "garden hose", "ceiling fan white", "shower head", "swag light kit", "deck screws",
           "black lamp", "delta faucet"]


def changes(catalog: pd.DataFrame, tmp_path, retitle: int = 12, add: int = 5, delete: int = 5, price: int = 6):
    """An upsert file (retitled products, new products, price-only changes) and a delete file, and the catalog they
    make, as a shop would send them."""
    rng = random.Random(3)
    rows = list(range(len(catalog)))
    rng.shuffle(rows)
    retitled = catalog.iloc[rows[:retitle]].copy()
    retitled["title"] = "Renamed " + retitled["title"] + " deluxe"
    priced = catalog.iloc[rows[retitle:retitle + price]].copy()
    priced["price"] = priced["price"] + 1.0
    new = catalog.iloc[rows[:add]].copy()
    new["product_id"] = [f"NEW{i}" for i in range(add)]
    new["title"] = [f"Brandnew widget gizmo {i}" for i in range(add)]
    gone = catalog["product_id"].iloc[rows[retitle + price:retitle + price + delete]].tolist()
    upsert = pd.concat([retitled, priced, new])
    upsert_path, delete_path = tmp_path / "upsert.parquet", tmp_path / "delete.txt"
    upsert.to_parquet(upsert_path, index=False)
    delete_path.write_text("\n".join(gone) + "\n")
    after = catalog.set_index("product_id")
    after.loc[retitled["product_id"]] = retitled.set_index("product_id")
    after.loc[priced["product_id"]] = priced.set_index("product_id")
    after = pd.concat([after.drop(index=gone), new.set_index("product_id")]).reset_index()
    return upsert_path, delete_path, after, retitled, new, gone


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_an_update_matches_a_full_rebuild(tmp_path, catalog_frame, catalog_file, tiny_model, index_type):
    config = IndexConfig(index_type=index_type)
    index = tmp_path / "idx"
    build_index(catalog_file, index, model=tiny_model, config=config)
    upsert, delete, after, retitled, new, gone = changes(catalog_frame, tmp_path)
    report = update_index(index, upsert=upsert, delete=delete)
    assert (report.added, report.changed, report.deleted) == (5, 18, 5)
    assert report.reembedded == 12 + 5  # the price-only changes keep their vectors
    assert report.rows == len(after) and report.unchanged == len(catalog_frame) - 5 - 18 and report.version == 2

    after_file = tmp_path / "after.parquet"
    after.to_parquet(after_file, index=False)
    full = tmp_path / "full"
    build_index(after_file, full, model=tiny_model, config=config)
    updated, rebuilt = Searcher.from_dir(index), Searcher.from_dir(full)
    assert updated.products["product_id"].tolist() == rebuilt.products["product_id"].tolist()
    overlaps = {"dense": [], "hybrid": []}
    for query in QUERIES + ["renamed deluxe", "brandnew widget gizmo"]:
        lexical = [(h.product_id, round(h.score, 4)) for h in updated.search(query, k=10, mode="lexical")]
        assert lexical == [(h.product_id, round(h.score, 4)) for h in rebuilt.search(query, k=10, mode="lexical")]
        for mode in overlaps:
            a = {h.product_id for h in updated.search(query, k=10, mode=mode)}
            b = {h.product_id for h in rebuilt.search(query, k=10, mode=mode)}
            overlaps[mode].append(len(a & b) / max(len(b), 1))
    assert all(np.mean(v) >= 0.95 for v in overlaps.values()), overlaps

    for product_id in gone:  # deleted: never returned, unknown to product()
        assert all(h.product_id != product_id for q in QUERIES for h in updated.search(q, k=50))
        with pytest.raises(Exception, match="unknown product id"):
            updated.product(product_id)
    assert updated.search("brandnew widget gizmo 3", k=1, mode="lexical")[0].product_id == "NEW3"
    renamed = retitled.iloc[0]
    assert renamed["product_id"] in [h.product_id for h in updated.search(renamed["title"], k=5, mode="hybrid")]
    assert updated.product(renamed["product_id"])["title"] == renamed["title"]
    assert json.loads((index / "manifest.json").read_text())["catalog"]["version"] == 2


def test_filters_facets_http_and_rollback_see_the_update(tmp_path, catalog_frame, catalog_file, tiny_model):
    from fastapi.testclient import TestClient

    from searchkit.serve.app import create_app

    index = tmp_path / "idx"
    build_index(catalog_file, index, model=tiny_model)
    client = TestClient(create_app(index, watch=False))
    upsert, delete, after, retitled, new, gone = changes(catalog_frame, tmp_path)
    assert client.get(f"/products/{gone[0]}").status_code == 200
    update_index(index, upsert=upsert, delete=delete)
    assert client.post("/reload").status_code == 200
    assert client.get(f"/products/{gone[0]}").status_code == 404
    assert client.get("/products/NEW1").json()["title"] == "Brandnew widget gizmo 1"
    body = client.get("/search", params={"q": "brandnew widget gizmo", "facets": "true",
                                         "brand": new["brand"].iloc[0]}).json()
    assert "NEW0" in [r["product_id"] for r in body["results"]] or new["brand"].iloc[0] != new["brand"].iloc[0]
    assert client.get("/health").json()["index_version"] == 2

    manifest = rollback(index)
    assert manifest.catalog.version == 1 and manifest.rows == len(catalog_frame)
    assert Searcher.from_dir(index).product(gone[0])["product_id"] == gone[0]
    assert rollback(index).catalog.version == 2  # a second rollback undoes the first


def test_build_index_reuses_unchanged_embeddings(tmp_path, catalog_frame, catalog_file, tiny_model):
    index = tmp_path / "idx"
    first = build_index(catalog_file, index, model=tiny_model)
    assert first.catalog.reused_embeddings == 0
    _, _, after, *_ = changes(catalog_frame, tmp_path)
    after_file = tmp_path / "after.parquet"
    after.to_parquet(after_file, index=False)
    second = build_index(after_file, index, model=tiny_model)
    assert second.catalog.embedded == 12 + 5  # retitled and new; price changes and the rest reused
    assert second.catalog.reused_embeddings == len(after) - 17
    fresh = build_index(after_file, tmp_path / "fresh", model=tiny_model, config=IndexConfig(reuse=False))
    assert fresh.catalog.embedded == len(after)
    a, b = Searcher.from_dir(index), Searcher.from_dir(tmp_path / "fresh")
    for query in QUERIES:
        assert [h.product_id for h in a.search(query, mode="lexical")] == [
            h.product_id for h in b.search(query, mode="lexical")]


def test_an_int8_update_matches_an_int8_rebuild(tmp_path, catalog_frame, catalog_file, tiny_model):
    """The default CPU encoder (int8, per-row scales) embeds a product the same whatever else is in its batch, so
    updating equals rebuilding: same vectors, same dense results. A build embedding another way reuses nothing."""
    int8 = IndexConfig(bulk="onnx-int8")
    build_index(catalog_file, tmp_path / "idx", model=tiny_model, config=int8)
    upsert, delete, after, *_ = changes(catalog_frame, tmp_path)
    update_index(tmp_path / "idx", upsert=upsert, delete=delete)
    after.to_parquet(tmp_path / "after.parquet", index=False)
    build_index(tmp_path / "after.parquet", tmp_path / "fresh", model=tiny_model,
                config=IndexConfig(bulk="onnx-int8", reuse=False))
    a, b = Searcher.from_dir(tmp_path / "idx"), Searcher.from_dir(tmp_path / "fresh")
    assert np.abs(a.similarity("garden hose", list(after["product_id"]))
                  - np.array(b.similarity("garden hose", list(after["product_id"])))).max() < 1e-5
    for query in QUERIES:
        assert [h.product_id for h in a.search(query, mode="dense")] == [
            h.product_id for h in b.search(query, mode="dense")]
    other = build_index(tmp_path / "after.parquet", tmp_path / "fresh", model=tiny_model,
                        config=IndexConfig(bulk="onnx"))
    assert other.catalog.reused_embeddings == 0 and other.catalog.embedded == len(after)


def test_an_index_embedded_by_fused_sessions_is_updated_by_them_and_rebuilt_anew(tmp_path, catalog_frame,
                                                                                   catalog_file, tiny_model,
                                                                                   monkeypatch):
    """Vectors embedded before layer norms were run apart (Encoding.ONNX_INT8_ROWS) stay as they were: an update
    embeds its products with fused sessions as their neighbours were, and a build reuses none of them."""
    import searchkit.models.encoder as encoder

    build_index(catalog_file, tmp_path / "idx", model=tiny_model, config=IndexConfig(bulk="onnx-int8"))
    path = tmp_path / "idx" / "manifest.json"
    manifest = json.loads(path.read_text())
    assert manifest["encoding"] == "onnx-int8-rows-split-norms"
    path.write_text(json.dumps({**manifest, "encoding": "onnx-int8-rows"}))  # as an older searchkit wrote it
    asked: list[bool] = []
    real = encoder.graph_session
    monkeypatch.setattr(encoder, "graph_session", lambda graph, threads=None, fused_norms=False: (
        asked.append(fused_norms) or real(graph, threads, fused_norms)))
    upsert, delete, after, *_ = changes(catalog_frame, tmp_path)
    update_index(tmp_path / "idx", upsert=upsert, delete=delete)
    assert layout.read_manifest(tmp_path / "idx").encoding.value == "onnx-int8-rows"
    assert True in asked  # the bulk runners: fused
    asked.clear()
    after.to_parquet(tmp_path / "after.parquet", index=False)
    rebuilt = build_index(tmp_path / "after.parquet", tmp_path / "idx", model=tiny_model,
                          config=IndexConfig(bulk="onnx-int8"))
    assert rebuilt.encoding.value == "onnx-int8-rows-split-norms" and True not in asked
    assert rebuilt.catalog.reused_embeddings == 0 and rebuilt.catalog.embedded == len(after)


def test_an_hnsw_graph_is_edited_in_place_then_rebuilt_past_its_share(tmp_path, catalog_frame, catalog_file,
                                                                      tiny_model):
    """Deleted and re-embedded products leave the graph, new vectors join it; recall is calibrated again and the
    results match a rebuild's; once edits pass GRAPH_EDIT_SHARE of the rows the next update rebuilds the graph."""
    from searchkit.index.update import GRAPH_EDIT_SHARE

    hnsw = IndexConfig(index_type="hnsw", target_recall=0.95)
    build_index(catalog_file, tmp_path / "idx", model=tiny_model, config=hnsw)
    upsert, delete, after, retitled, new, gone = changes(catalog_frame, tmp_path)
    update_index(tmp_path / "idx", upsert=upsert, delete=delete)
    manifest = layout.read_manifest(tmp_path / "idx")
    assert 0 < manifest.index.edited_share <= GRAPH_EDIT_SHARE
    assert manifest.index.recall_sample >= 0.95 and manifest.index.ntotal == len(after)
    after.to_parquet(tmp_path / "after.parquet", index=False)
    build_index(tmp_path / "after.parquet", tmp_path / "fresh", model=tiny_model, config=hnsw)
    a, b = Searcher.from_dir(tmp_path / "idx"), Searcher.from_dir(tmp_path / "fresh")
    assert np.allclose(a.retriever.vectors, b.retriever.vectors, atol=1e-5)  # row r holds product r's vector
    overlap = np.mean([len({h.product_id for h in a.search(q, mode="dense")}
                           & {h.product_id for h in b.search(q, mode="dense")}) / 10 for q in QUERIES])
    assert overlap >= 0.9
    assert not {h.product_id for q in QUERIES for h in a.search(q, k=50, mode="dense")} & set(gone)
    for title in new["title"]:  # new vectors are reachable: found as a rebuild finds them
        assert [h.product_id for h in a.search(title, k=10, mode="dense")] == [
            h.product_id for h in b.search(title, k=10, mode="dense")]
    upsert, delete, *_ = changes(after, tmp_path, retitle=30, add=0, delete=0, price=0)
    update_index(tmp_path / "idx", upsert=upsert)
    assert layout.read_manifest(tmp_path / "idx").index.edited_share is None  # past the share: rebuilt


def test_an_update_calibrates_its_graph_again_on_the_queries_searchkit_calibrate_kept(tmp_path, catalog_frame,
                                                                                     catalog_file, tiny_model):
    """Without them an update would calibrate on texts cut from titles and undo a calibration on shoppers' queries;
    with them it measures the same queries again, and hybrid's dense leg keeps the knob measured on them."""
    from searchkit.eval.calibrate import recalibrate

    build_index(catalog_file, tmp_path / "idx", model=tiny_model, config=IndexConfig(index_type="hnsw"))
    queries = ["kohler toilet seat", "classic garden hose", "ceiling fan", "led bulb", "patio chair"]
    recalibrate(tmp_path / "idx", queries, target_recall=0.9, source="shop log")
    kept = np.load(tmp_path / "idx" / layout.CALIBRATION_FILE)
    assert kept.shape == (5, layout.read_manifest(tmp_path / "idx").dimension)
    manifest = layout.read_manifest(tmp_path / "idx")
    facts = manifest.index.ann_facts()  # hybrid's leg as a calibration below dense search's knob would leave it
    facts["params"] = {**facts["params"], "hybrid_ef_search": 8}
    layout.rewrite_manifest(layout.IndexFiles(tmp_path / "idx"), replace(manifest, index=manifest.index.with_facts(facts)))
    upsert, delete, *_ = changes(catalog_frame, tmp_path)
    update_index(tmp_path / "idx", upsert=upsert, delete=delete)
    after = layout.read_manifest(tmp_path / "idx").index
    assert after.calibration["queries"] == 5 and after.calibration["source"] == "shop log, kept by searchkit calibrate"
    assert after.params["hybrid_ef_search"] == 8 and after.target_recall == 0.9
    assert "hybrid_curve" in after.calibration and after.edited_share
    assert np.array_equal(np.load(tmp_path / "idx" / layout.CALIBRATION_FILE), kept)  # carried into the new version
    Searcher.from_dir(tmp_path / "idx")  # verifies: the kept queries are not checksummed
    recalibrate(tmp_path / "idx", queries[:3], target_recall=0.9)  # replaced in place, the index still verifies
    assert len(np.load(tmp_path / "idx" / layout.CALIBRATION_FILE)) == 3
    Searcher.from_dir(tmp_path / "idx")
    (tmp_path / "idx" / layout.CALIBRATION_FILE).write_bytes(b"not an array")
    unchanged = (tmp_path / "idx" / "manifest.json").read_text()
    with pytest.raises(IndexFormatError, match="calibration-queries.npy: unreadable"):
        update_index(tmp_path / "idx", upsert=upsert)  # refused before anything is staged
    assert (tmp_path / "idx" / "manifest.json").read_text() == unchanged
    assert not list(tmp_path.glob(".idx.building-*"))
    build_index(catalog_file, tmp_path / "plain", model=tiny_model, config=IndexConfig(index_type="hnsw"))
    update_index(tmp_path / "plain", upsert=upsert, delete=delete)  # none kept: texts cut from titles, as before
    assert "kept" not in layout.read_manifest(tmp_path / "plain").index.calibration["source"]


@pytest.mark.parametrize("what, fragment", [
    ("no-id", "missing required column"),
    ("duplicate", "duplicate"),
    ("empty-title", "empty 'title'"),
    ("both", "both upserted and deleted"),
    ("unknown-delete", "not in the index"),
    ("twice-delete", "listed twice"),
    ("other-model", "an update embeds with the index's own model"),
])
def test_bad_update_files_are_refused_and_the_index_is_untouched(tmp_path, catalog_frame, index_copy, what, fragment,
                                                                 tiny_model):
    before = (index_copy / "manifest.json").read_text()
    upsert, delete = tmp_path / "u.csv", tmp_path / "d.txt"
    pid = catalog_frame["product_id"].iloc[0]
    upsert.write_text({"no-id": "title\nLamp\n", "duplicate": "product_id,title\nA,Lamp\nA,Fan\n",
                       "empty-title": "product_id,title\nA,\n", "both": f"product_id,title\n{pid},Lamp\n"}.get(
        what, "product_id,title\nZ9,Lamp\n"))
    delete.write_text({"both": pid, "unknown-delete": "NOPE", "twice-delete": f"{pid}\n{pid}"}.get(what, ""))
    model = None
    if what == "other-model":
        from tests.fixtures import make_tiny_model

        model = make_tiny_model(tmp_path / "other", seed=99)
    with pytest.raises((CatalogError, IndexMismatchError), match=fragment):
        update_index(index_copy, upsert=upsert, delete=delete if delete.read_text() else None, model=model)
    assert (index_copy / "manifest.json").read_text() == before
    assert not list(index_copy.parent.glob(".idx.building-*"))


def test_cli_update_json_and_one_line_errors(tmp_path, catalog_frame, index_copy):
    upsert, delete, *_ = changes(catalog_frame, tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["update", "--index", str(index_copy), "--upsert", str(upsert), "--delete",
                                  str(delete), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["added"] == 5 and report["deleted"] == 5 and report["reembedded"] == 17 and report["seconds"] > 0
    result = runner.invoke(main, ["update", "--index", str(index_copy), "--delete", str(tmp_path / "nope.txt")])
    assert result.exit_code == 1 and "nope.txt" in result.output and len(result.output.strip().splitlines()) == 1
    result = runner.invoke(main, ["update", "--index", str(index_copy), "--rollback"])
    assert result.exit_code == 0 and "back to version 1" in result.output


def test_searches_during_an_update_never_fail(tmp_path, catalog_frame, catalog_file, tiny_model):
    from fastapi.testclient import TestClient

    from searchkit.serve.app import create_app

    index = tmp_path / "idx"
    build_index(catalog_file, index, model=tiny_model)
    client = TestClient(create_app(index, watch=True))
    upsert, delete, *_ = changes(catalog_frame, tmp_path)
    errors, done = [], threading.Event()

    def search() -> None:
        while not done.is_set():
            res = client.get("/search", params={"q": random.choice(QUERIES)})
            if res.status_code != 200:
                errors.append(res.text)

    threads = [threading.Thread(target=search) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        update_index(index, upsert=upsert, delete=delete)
        deadline = time.time() + 15
        while client.get("/health").json()["index_version"] != 2 and time.time() < deadline:
            time.sleep(0.2)
    finally:
        done.set()
        for t in threads:
            t.join()
    assert errors == [] and client.get("/health").json()["index_version"] == 2


KILL_SCRIPT = """
import sys
from searchkit.index.update import update_index
update_index(sys.argv[1], upsert=sys.argv[2], delete=sys.argv[3])
"""


def test_kill_9_during_an_update_leaves_the_old_or_the_new_version(tmp_path, catalog_frame, catalog_file,
                                                                   tiny_model):
    index = tmp_path / "idx"
    build_index(catalog_file, index, model=tiny_model)
    upsert, delete, after, *_ = changes(catalog_frame, tmp_path)
    sizes = {len(catalog_frame): 1, len(after): 2}
    rng = random.Random(0)
    seen = set()
    for attempt in range(6):
        process = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(index), str(upsert), str(delete)],
                                   env={**os.environ, "PYTHONPATH": os.getcwd()})
        time.sleep(rng.uniform(0.5, 4.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
        searcher = Searcher.from_dir(index)  # loads and verifies every checksum
        manifest = layout.read_manifest(index)
        assert sizes[len(searcher)] == manifest.catalog.version and manifest.rows == len(searcher)
        seen.add(manifest.catalog.version)
        assert searcher.search("kohler toilet seat", k=3)
        if manifest.catalog.version == 2:
            rollback(index)
    assert seen  # each kill left a whole version behind


def test_a_swap_cut_between_its_renames_reads_the_old_version(index_copy):
    """finish() renames the old version aside, then the new one in: between the two, readers find the old one."""
    rows = len(Searcher.from_dir(index_copy))
    os.replace(index_copy, layout.previous_dir(index_copy))
    assert not index_copy.exists()
    assert len(Searcher.from_dir(index_copy)) == rows and layout.read_manifest(index_copy).rows == rows


def test_flags_lists_and_dates_keep_their_form_through_an_update(tmp_path, catalog_frame, tiny_model):
    """A catalog's true/false, list and date columns read after an update as after a build: flags stay flags (and a
    CSV's "True" is no number), lists stay lists, dates stay ISO text."""
    import datetime

    shop = catalog_frame.head(40).copy()
    shop["in_stock"] = [i % 3 > 0 for i in range(40)]
    shop["sizes"] = [["S", "M"] if i % 2 else [] for i in range(40)]
    shop["added"] = [datetime.datetime(2026, 1 + i % 12, 1, 12) for i in range(40)]
    path = tmp_path / "shop.parquet"
    shop.to_parquet(path, index=False)
    index = tmp_path / "idx"
    build_index(path, index, model=tiny_model)
    fresh = shop.head(2).copy()
    fresh["product_id"] = ["NEW1", str(shop["product_id"].iloc[1])]
    fresh.to_parquet(tmp_path / "up.parquet", index=False)
    update_index(index, upsert=tmp_path / "up.parquet")
    searcher = Searcher.from_dir(index)
    for pid, row in (("NEW1", 0), (str(shop["product_id"].iloc[5]), 5)):
        record = searcher.product(pid)
        assert record["in_stock"] is bool(shop["in_stock"].iloc[row]) and record["sizes"] == shop["sizes"].iloc[row]
        assert record["added"] == shop["added"].iloc[row].isoformat()
    assert searcher.search("toilet", k=3, filters={"in_stock": "true"})
    pd.DataFrame({"product_id": ["NEW2"], "title": ["kohler toilet seat"], "in_stock": ["False"]}).to_csv(
        tmp_path / "up.csv", index=False)
    update_index(index, upsert=tmp_path / "up.csv")  # refused as "numeric" before
    assert Searcher.from_dir(index).product("NEW2")["in_stock"] in ("False", False)


def test_an_update_reads_the_price_as_the_build_read_it(tmp_path, catalog_frame, tiny_model):
    """A price_usd column is the index's "price" when the build read it so, and stays "price_usd" in an index that
    kept it under its own name (one built before price aliases were read): an upsert lands in the same column."""
    from searchkit import ColumnMap

    shop = catalog_frame.head(40).rename(columns={"price": "price_usd"})
    shop.to_csv(tmp_path / "shop.csv", index=False)
    changed = shop.head(1).assign(price_usd=1234.5)
    changed.to_csv(tmp_path / "up.csv", index=False)
    first = shop["product_id"].iloc[0]
    for name, columns in (("price", ColumnMap()), ("price_usd", ColumnMap(price=None))):
        index = tmp_path / name
        build_index(tmp_path / "shop.csv", index, model=tiny_model, columns=columns)
        update_index(index, upsert=tmp_path / "up.csv")
        products = Searcher.from_dir(index).products
        assert name in products.columns and ({"price", "price_usd"} - {name}).isdisjoint(products.columns)
        prices = dict(zip(products["product_id"], products[name], strict=True))
        assert prices[first] == 1234.5 and len(prices) == 40
