"""The cross-encoder stage: training a tiny reranker, keeping it in an index, mode "rerank", and refusals."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from searchkit import IndexConfig, build_index
from searchkit.cli import main
from searchkit.errors import IndexFormatError, IndexMismatchError, ModelError, QueryError, SearchkitError
from searchkit.eval.evaluate import evaluate
from searchkit.eval.selection import EvalConfig
from searchkit.index.layout import IndexFiles, has_reranker, read_manifest
from searchkit.models.cross_encoder import RERANKER_DIR, blend, read_info
from searchkit.search.searcher import Searcher
from searchkit.training.reranker import RerankTrainConfig, train_reranker, training_groups


def test_blend_weights_the_two_stages():
    logits, fused = np.array([-2.0, 0.0, 3.0]), np.array([0.9, 0.5, 0.1])
    assert np.argsort(-blend(logits, fused, 1.0)).tolist() == [2, 1, 0]  # the cross-encoder alone
    assert np.argsort(-blend(logits, fused, 0.0)).tolist() == [0, 1, 2]  # the hybrid order alone
    assert blend(logits, fused, 0.0).tolist() == [1.0, 0.5, 0.0]  # fused scores min-max scaled
    assert blend(logits, np.array([0.3, 0.3, 0.3]), 0.5)[0] == pytest.approx(0.5 / (1 + np.exp(2.0)) + 0.5)


def test_trained_reranker_folder(reranker):
    info = read_info(reranker)
    assert info["settings"] == {"depth": 30, "max_length": 64, "weight": 1.0}
    assert info["text"]["stem"] is False and info["data"]["steps"] == 6
    report = info["validation"]
    assert 0 < report["val_queries"] <= 8
    assert 0.0 <= report["ndcg@10_hybrid"] <= 1.0 and 0.0 <= report["ndcg@10_reranked"] <= 1.0
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md"):
        assert (reranker / name).is_file()
    assert "train-reranker" in (reranker / "README.md").read_text()


def test_index_keeps_the_reranker_and_rerank_mode_reorders_the_hybrid_top(reranked_index, reranker):
    manifest = read_manifest(reranked_index)
    assert has_reranker(manifest)
    assert manifest.model.reranker["name"] == "tiny-reranker"
    assert not (IndexFiles(reranked_index).model / RERANKER_DIR).exists()
    searcher = Searcher.from_dir(reranked_index)
    assert searcher.modes == ("dense", "lexical", "hybrid", "rerank")
    query = "kohler toilet seat"
    depth = searcher.reranker.settings.depth
    hybrid = searcher.search(query, k=depth, mode="hybrid", explain=True)
    reranked = searcher.search(query, k=depth, mode="rerank", explain=True)
    assert {h.product_id for h in reranked} == {h.product_id for h in hybrid}  # the same candidates, reordered
    logits = searcher.reranker.scores(query, [searcher.product(h.product_id) for h in hybrid])
    final = blend(logits, np.array([h.explain["fusion"] for h in hybrid]), searcher.reranker.settings.weight)
    expected = [hybrid[i].product_id for i in np.lexsort((np.arange(len(hybrid)), -final))]
    assert [h.product_id for h in reranked] == expected
    assert expected != [h.product_id for h in hybrid]  # this reranker does move products
    searcher.reranker.forget()
    assert searcher.reranker.scores(query, [searcher.product(hybrid[3].product_id)])[0] == pytest.approx(
        logits[3], abs=1e-6)  # a pair scores the same alone as among the candidates
    assert [h.explain["cross_encoder"] for h in reranked] == pytest.approx(
        [float(logits[[x.product_id for x in hybrid].index(h.product_id)]) for h in reranked], abs=1e-5)
    top3 = searcher.search(query, k=3, mode="rerank")
    assert [h.product_id for h in top3] == expected[:3]
    beyond = searcher.search(query, k=depth + 5, mode="rerank")
    assert [h.product_id for h in beyond[depth:]] == [
        h.product_id for h in searcher.search(query, k=depth + 5, mode="hybrid")[depth:]]  # the tail keeps its order
    # the score is what ranked each hit, falling with rank past the cross-encoder's depth too; the cosine beside it
    scores = [h.score for h in beyond]
    assert scores == sorted(scores, reverse=True) and min(scores[:depth]) > 0 >= max(scores[depth:])
    assert [h.score for h in reranked] == pytest.approx(sorted(final, reverse=True), abs=1e-6)
    assert [h.cosine for h in reranked] == pytest.approx(searcher.similarity(query, [h.product_id for h in reranked]),
                                                         abs=1e-5)


def test_evaluate_measures_rerank_mode_and_the_reranker_pairs(reranked_index, built_index, pairs_file):
    from searchkit.data.catalog import read_pairs

    report = evaluate(Searcher.from_dir(reranked_index), read_pairs(pairs_file), EvalConfig(split="all"))
    assert set(report["retrieval"]) == {"dense", "lexical", "hybrid", "rerank"}
    assert report["reranker_pairs"]["pairs"] == report["pairs"]["pairs"]
    assert "relevance_pairs" not in report and "fit-relevance" in report["relevance_unavailable"]
    plain = evaluate(Searcher.from_dir(built_index), read_pairs(pairs_file), EvalConfig(split="all"))
    assert set(plain["retrieval"]) == {"dense", "lexical", "hybrid"} and "reranker_pairs" not in plain


def test_rerank_mode_without_a_reranker_is_refused(built_index):
    searcher = Searcher.from_dir(built_index)
    assert "rerank" not in searcher.modes
    with pytest.raises(QueryError, match="--reranker"):
        searcher.search("kohler toilet seat", mode="rerank")


def test_a_folder_that_is_not_a_reranker_is_refused_before_the_old_index_is_touched(index_copy, catalog_file,
                                                                                      tiny_model, tmp_path):
    before = read_manifest(index_copy)
    with pytest.raises(ModelError, match="reranker.json"):
        build_index(catalog_file, index_copy, model=tiny_model, reranker=tmp_path)
    assert read_manifest(index_copy) == before


def test_a_changed_reranker_graph_is_refused(tmp_path, reranked_index):
    copy = tmp_path / "idx"
    shutil.copytree(reranked_index, copy)
    graph = IndexFiles(copy).reranker_graph
    graph.write_bytes(graph.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(IndexFormatError, match="reranker-int8.onnx"):
        Searcher.from_dir(copy)


def test_the_models_own_reranker_is_the_default_and_a_new_one_makes_the_index_stale(tmp_path, catalog_file,
                                                                                    tiny_model, reranker):
    from searchkit.index.build import IndexConfig, staleness

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    shutil.copytree(reranker, model / RERANKER_DIR)
    out = tmp_path / "idx"
    manifest = build_index(catalog_file, out, model=model)
    assert manifest.model.reranker["source"] == str(model / RERANKER_DIR)
    assert staleness(out, catalog_file, model) is None
    info = json.loads((model / RERANKER_DIR / "reranker.json").read_text())
    info["settings"]["depth"] = 10
    (model / RERANKER_DIR / "reranker.json").write_text(json.dumps(info))
    assert "reranker" in staleness(out, catalog_file, model)
    plain = build_index(catalog_file, tmp_path / "plain", model=model, config=IndexConfig(reranker=False))
    assert plain.model.reranker is None
    with pytest.raises(SearchkitError, match="without one"):
        build_index(catalog_file, tmp_path / "x", model=model, config=IndexConfig(reranker=False), reranker=reranker)


def test_fit_relevance_then_a_rebuilt_index_estimates_graded_relevance(tmp_path, catalog_file, tiny_model, reranker,
                                                                       pairs_file):
    from searchkit.data.catalog import read_pairs
    from searchkit.index.build import IndexConfig, staleness
    from searchkit.training.relevance import RelevanceFitConfig, fit_relevance

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    shutil.copytree(reranker, model / RERANKER_DIR)
    out = tmp_path / "idx"
    build_index(catalog_file, out, model=model)
    query = "kohler toilet seat"
    unfitted = Searcher.from_dir(out)
    ids = [h.product_id for h in unfitted.search(query, k=5, mode="rerank")]
    with pytest.raises(ModelError, match="fit-relevance"):
        unfitted.relevance(query, ids)
    assert "relevance" not in unfitted.search(query, k=5, mode="rerank", explain=True)[0].explain

    path, report = fit_relevance(RelevanceFitConfig(index=out, pairs=pairs_file, split="all"))
    assert path == model / RERANKER_DIR / "reranker.json" and "relevance" in read_info(model / RERANKER_DIR)
    assert report["cross_validated"]["pairs"] == report["pairs"] == len(read_pairs(pairs_file))
    assert report["cross_validated"]["rmse"] >= report["in_sample"]["rmse"] > 0  # held-out pairs fit worse
    assert "relevance fit" in staleness(out, catalog_file, model)
    build_index(catalog_file, out, model=model)
    assert staleness(out, catalog_file, model) is None

    searcher = Searcher.from_dir(out)
    estimates = searcher.relevance(query, ids)
    assert all(1.0 <= e <= 3.0 for e in estimates)
    assert estimates == pytest.approx(searcher.relevance_model.predict(searcher.pair_signals(query, ids)).tolist())
    hits = searcher.search(query, k=5, mode="rerank", explain=True)
    ids = [h.product_id for h in hits]
    assert [h.explain["relevance"] for h in hits] == pytest.approx(searcher.relevance(query, ids), abs=1e-5)
    assert searcher.relevance(query, ids[2:3]) == pytest.approx(searcher.relevance(query, ids)[2:3], abs=1e-6)
    measured = evaluate(searcher, read_pairs(pairs_file), EvalConfig(split="all"))
    assert measured["relevance_pairs"]["pairs"] == measured["pairs"]["pairs"]
    assert measured["relevance_pairs"]["rmse"] == pytest.approx(report["in_sample"]["rmse"], abs=1e-4)

    other = tmp_path / "other-bm25"  # the same parts but BM25 settings the fit never saw
    build_index(catalog_file, other, model=model, config=IndexConfig(bm25_k1=1.2, bm25_b=0.75))
    with pytest.raises(IndexMismatchError, match="BM25"):
        Searcher.from_dir(other).relevance(query, ids)
    result = CliRunner().invoke(main, ["fit-relevance", str(pairs_file), "--index", str(out), "--split", "all",
                                       "--reranker", str(model / RERANKER_DIR)])
    assert result.exit_code == 0, result.output
    assert "cross_validated" in result.output and "rebuild the index" in result.output
    from fastapi.testclient import TestClient

    from searchkit.serve.app import create_app

    with TestClient(create_app(out, watch=False)) as client:
        body = client.get("/relevance", params={"q": query, "id": ids[:2]}).json()
        assert [r["product_id"] for r in body["results"]] == ids[:2]
        assert [r["relevance"] for r in body["results"]] == pytest.approx(estimates[:2], abs=1e-4)
        unknown = client.get("/relevance", params={"q": query, "id": ["no-such-id"]})
        assert unknown.status_code == 400 and "no-such-id" in unknown.text
        assert client.get("/relevance", params={"q": query}).json()["detail"] == "id: required"  # no ids
    with TestClient(create_app(tmp_path / "other-bm25", watch=False)) as client:
        refused = client.get("/relevance", params={"q": query, "id": ids[:1]})
        assert refused.status_code == 400 and "BM25" in refused.text
    shown = CliRunner().invoke(main, ["query", query, "--index", str(out), "--mode", "rerank", "--explain", "-k", "2"])
    assert shown.exit_code == 0 and shown.output.count(" of 3") == 2, shown.output
    refused = CliRunner().invoke(main, ["fit-relevance", str(pairs_file), "--index", str(out), "--split", "all",
                                        "--reranker", str(reranker.parent)])
    assert refused.exit_code != 0 and "lacks model.safetensors" in refused.output


def test_a_grader_adds_its_cosine_to_the_relevance_estimate(tmp_path, catalog_file, tiny_model, reranker, pairs_file):
    from searchkit.index.build import staleness
    from searchkit.index.layout import has_grader
    from searchkit.models.encoder import load_encoder
    from searchkit.search.relevance import FEATURES, GRADER
    from searchkit.training.relevance import RelevanceFitConfig, fit_relevance

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    shutil.copytree(reranker, model / RERANKER_DIR)
    out = tmp_path / "idx"
    before = build_index(catalog_file, out, model=model).model.reranker_fingerprint
    grader = model / RERANKER_DIR / "grader"
    shutil.copytree(tiny_model, grader)
    (grader / "tokenizer.json").rename(tmp_path / "tokenizer.json")
    with pytest.raises(ModelError, match="grader lacks tokenizer.json"):
        build_index(catalog_file, out, model=model)
    assert read_manifest(out).model.reranker["fingerprint"] == before  # the old index is untouched
    (tmp_path / "tokenizer.json").rename(grader / "tokenizer.json")
    assert "reranker differs" in staleness(out, catalog_file, model)  # the grader is part of the reranker
    manifest = build_index(catalog_file, out, model=model)
    assert has_grader(manifest) and manifest.model.reranker["fingerprint"] != before
    assert manifest.model.reranker["grader"]["dimension"] == 32

    searcher = Searcher.from_dir(out)
    query, ids = "kohler toilet seat", searcher.products["product_id"].tolist()[:4]
    rows = searcher.pair_signals(query, ids)
    assert rows.shape == (4, len(FEATURES) + 1)
    # the grader's column: its cosine of query and product as its own text pipeline writes them (int8 vs torch fp32)
    tiny = load_encoder(tiny_model)
    text = searcher.reranker.grader.text
    products = [searcher.product(p) for p in ids]
    expected = tiny.encode([text.product(p["title"], p.get("brand"), p.get("color")) for p in products]) @ \
        tiny.encode([text.query(query)])[0]
    assert rows[:, -1] == pytest.approx(expected, abs=0.05)
    # alone or with others alike (float32 kernels may differ in the last bits between batch shapes)
    assert searcher.reranker.grader.cosines(query, products[:1])[0] == pytest.approx(rows[0, -1], abs=1e-5)

    _, report = fit_relevance(RelevanceFitConfig(index=out, pairs=pairs_file, split="all"))
    assert GRADER in report and read_info(model / RERANKER_DIR)["relevance"]["features"][-1] == GRADER
    build_index(catalog_file, out, model=model)
    searcher = Searcher.from_dir(out)
    assert searcher.relevance_model.features == FEATURES + (GRADER,)
    hits = searcher.search(query, k=searcher.reranker.settings.depth, mode="rerank", explain=True)
    assert [h.explain["relevance"] for h in hits] == pytest.approx(
        searcher.relevance(query, [h.product_id for h in hits]), abs=1e-4)
    shutil.rmtree(grader)  # the fit now names a grader this reranker no longer has: refused until fitted again
    build_index(catalog_file, out, model=model)
    with pytest.raises(IndexMismatchError, match="reranker"):
        Searcher.from_dir(out).relevance(query, ids)


def test_resume_continues_from_the_checkpoint(tmp_path, built_index, pairs_file, caplog):
    config = RerankTrainConfig(index=built_index, pairs=pairs_file, out=tmp_path / "rr", max_steps=4, save_steps=2,
                               negatives=1, eval_queries=4)
    train_reranker(config)
    assert [p.name for p in (tmp_path / "rr" / "checkpoints").glob("checkpoint-*")] == ["checkpoint-2"]
    with caplog.at_level("INFO", logger="searchkit.training.reranker"):
        train_reranker(RerankTrainConfig(**{**config.__dict__, "resume": True}))
    assert "resuming at step 2 of 4" in caplog.text
    with pytest.raises(SearchkitError, match="without --resume"):
        train_reranker(RerankTrainConfig(**{**config.__dict__, "resume": True, "batch_size": 8}))


def test_cli_train_reranker_build_and_query(tmp_path, built_index, pairs_file, catalog_file, tiny_model):
    runner = CliRunner()
    out = tmp_path / "rr"
    quick = tmp_path / "rr.toml"
    quick.write_text("max_steps = 3\nnegatives = 1\nmine_depth = 7\n")
    result = runner.invoke(main, ["train-reranker", str(pairs_file), "--index", str(built_index), "--out", str(out),
                                  "--config", str(quick), "--layers", "3"])
    assert result.exit_code != 0 and "has 2 transformer layers; cannot keep 3" in result.output
    result = runner.invoke(main, ["train-reranker", str(pairs_file), "--index", str(built_index), "--out", str(out),
                                  "--config", str(quick), "--layers", "1"])
    assert result.exit_code == 0, result.output
    assert "validation NDCG@10" in result.output and f"--reranker {out}" in result.output
    assert "1 unrated products per query from its hybrid top 7" in (out / "README.md").read_text()
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 1  # a shallower cross-encoder
    assert read_info(out)["data"]["layers"] == 1
    index = tmp_path / "idx"
    result = runner.invoke(main, ["build-index", str(catalog_file), "--model", str(tiny_model), "--out", str(index),
                                  "--reranker", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["query", "kohler toilet seat", "--index", str(index), "--mode", "rerank", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["results"]) == 10
    no_reranker = tmp_path / "plain.toml"
    no_reranker.write_text("reranker = false\n")
    result = runner.invoke(main, ["build-index", str(catalog_file), "--model", str(tiny_model), "--out",
                                  str(tmp_path / "x"), "--reranker", str(out), "--config", str(no_reranker)])
    assert result.exit_code != 0 and "not both" in result.output


def test_http_rerank_mode(reranked_index, built_index):
    from fastapi.testclient import TestClient

    from searchkit.serve.app import create_app

    with TestClient(create_app(reranked_index, watch=False)) as client:
        assert client.get("/health").json()["modes"] == ["dense", "lexical", "hybrid", "rerank"]
        body = client.get("/search", params={"q": "kohler toilet seat", "k": 5, "mode": "rerank"}).json()
        assert body["mode"] == "rerank" and [r["rank"] for r in body["results"]] == [1, 2, 3, 4, 5]
        again = client.get("/search", params={"q": "kohler toilet seat", "k": 5, "mode": "rerank"}).json()
        assert again["results"] == body["results"]  # the whole answer remembered: no pair read again
        head = client.get("/search", params={"q": "kohler toilet seat", "k": 3, "mode": "rerank"}).json()
        assert head["results"] == body["results"][:3]  # another answer, its pairs remembered: the same scores
        client.get("/search", params={"q": "kohler toilet seat", "k": 5, "mode": "hybrid"})
        metrics = client.get("/metrics").text
        assert 'searchkit_rerank_pairs_total{source="read"} 30.0' in metrics
        assert 'searchkit_rerank_pairs_total{source="remembered"} 30.0' in metrics
        assert 'searchkit_search_answers_total{source="remembered"} 1.0' in metrics
    with TestClient(create_app(built_index, watch=False)) as client:
        assert "rerank" not in client.get("/health").json()["modes"]
        res = client.get("/search", params={"q": "kohler toilet seat", "mode": "rerank"})
        assert res.status_code == 400 and "--reranker" in res.text


def test_listwise_groups_hold_one_query_each_best_rated_first():
    pairs = pd.DataFrame({"query": ["drill", "drill", "drill", "saw", "saw", "rope"],
                          "product_id": ["1", "2", "3", "4", "5", "6"],
                          "relevance": [1.0, 3.0, 2.0, 2.33, 1.67, 1.0]})
    mined = {"drill": ["2", "7", "8"], "saw": ["9", "4"], "rope": ["10"]}
    rows = training_groups(pairs, mined, catalog_ids=[str(i) for i in range(1, 30)], size=4, seed=3)
    groups = [rows[i:i + 4] for i in range(0, len(rows), 4)]
    by_query = {g[0][0]: g for g in groups}
    assert len(rows) == 8 and sorted(by_query) == ["drill", "saw"]  # rope: nothing rated above 1
    assert all(len({q for q, _, _ in g}) == 1 for g in groups)
    drill = by_query["drill"]
    assert [(p, y) for _, p, y in drill[:2]] == [("2", 1.0), ("3", 0.5)]  # two rated (size // 2), best first
    assert {p for _, p, _ in drill[2:]} == {"7", "8"} and all(y == 0.0 for *_, y in drill[2:])
    saw = by_query["saw"]
    assert [p for _, p, _ in saw[:2]] == ["4", "5"] and saw[2][1] == "9"
    assert saw[3][1] not in {"4", "5", "9"} and saw[3][2] == 0.0  # filled from the catalog, never a rated one
    assert rows == training_groups(pairs, mined, [str(i) for i in range(1, 30)], 4, seed=3)


def test_listwise_training_writes_a_reranker(tmp_path, built_index, pairs_file, capsys):
    with pytest.raises(SearchkitError, match="divides the batch size"):
        RerankTrainConfig(loss="listwise", group_size=6, batch_size=32)
    with pytest.raises(SearchkitError, match="unknown reranker loss"):
        RerankTrainConfig(loss="hinge")
    out = train_reranker(RerankTrainConfig(index=built_index, pairs=pairs_file, out=tmp_path / "lw", max_steps=3,
                                           loss="listwise", group_size=4, batch_size=8, eval_queries=4,
                                           progress=True))
    assert "train-reranker" in capsys.readouterr().err  # the progress bar
    info = read_info(out)
    assert info["data"]["loss"] == "listwise" and info["data"]["examples"] % 4 == 0
    assert "listwise softmax cross-entropy" in (out / "README.md").read_text()


def test_pairs_scored_side_by_side_score_as_each_alone(reranked_index, catalog_frame):
    from searchkit.models.cross_encoder import Reranker

    files = IndexFiles(reranked_index)
    info = read_info(files.reranker)
    alone = Reranker(files.reranker_graph, files.reranker_tokenizer, info, threads=1, pairs_at_once=1)
    side = Reranker(files.reranker_graph, files.reranker_tokenizer, info, threads=1, pairs_at_once=3)
    alone.cache_size = side.cache_size = 0  # every pair read by the graph
    records = catalog_frame.head(30).to_dict("records")
    for query in ("red kettle", "stainless steel sink", "drill"):
        logits = side.scores(query, records)
        assert logits.shape == (30,) and len(set(logits.round(6))) > 1
        assert np.array_equal(logits, alone.scores(query, records))
        assert np.array_equal(side.scores(query, records[:1]), alone.scores(query, records[:1]))
    assert Reranker(files.reranker_graph, files.reranker_tokenizer, info, threads=None).pairs_at_once == 1


def test_a_distribution_ships_the_cross_encoders_graphs_in_place_of_their_weights(tmp_path, catalog_file, tiny_model,
                                                                                 reranker):
    """The model distribution's build (models/searchkit-homedepot/setup.py) makes the cross-encoder's and grader's
    int8 graphs and leaves their weights out: an index built from it holds the very graphs and fingerprints an index
    built from the weights does, and reranks alike; a shipped graph of another recipe or other bytes is refused."""
    from searchkit.models import graph_cache
    from searchkit.models.cross_encoder import ship_graphs

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    shutil.copytree(reranker, model / RERANKER_DIR)
    shutil.copytree(tiny_model, model / RERANKER_DIR / "grader")
    reference = build_index(catalog_file, tmp_path / "a", model=model, config=IndexConfig(cache_dir=tmp_path / "c1"))
    shipped = tmp_path / "shipped"
    shutil.copytree(model, shipped)
    left_out = ship_graphs(model, shipped)
    assert [str(p) for p in left_out if p.name == "model.safetensors"] == ["reranker/model.safetensors",
                                                                          "reranker/grader/model.safetensors"]
    for name in left_out:
        (shipped / name).unlink(missing_ok=True)  # the tiny models have no skeletons
    built = build_index(catalog_file, tmp_path / "b", model=shipped, config=IndexConfig(cache_dir=tmp_path / "c2"))
    assert built.model.reranker_fingerprint == reference.model.reranker_fingerprint
    assert built.model.reranker["grader"]["fingerprint"] == reference.model.reranker["grader"]["fingerprint"]
    for name in ("reranker/reranker-int8.onnx", "reranker/grader-int8.onnx"):
        assert built.files[name]["sha256"] == reference.files[name]["sha256"]
    a, b = Searcher.from_dir(tmp_path / "a"), Searcher.from_dir(tmp_path / "b")
    for query in ("kohler toilet seat", "white paint"):
        assert [r.to_dict() for r in a.search(query, k=5, mode="rerank")] == [
            r.to_dict() for r in b.search(query, k=5, mode="rerank")]

    record = shipped / RERANKER_DIR / "onnx" / "ready.json"
    good = record.read_text()
    record.write_text(json.dumps({**json.loads(good), "recipe": graph_cache.RECIPE + 1}))
    with pytest.raises(ModelError, match="no model.safetensors and no reranker-int8.onnx made by this searchkit"):
        build_index(catalog_file, tmp_path / "c", model=shipped, config=IndexConfig(cache_dir=tmp_path / "c3"))
    record.write_text(good)
    graph = shipped / RERANKER_DIR / "onnx" / "reranker-int8.onnx"
    graph.write_bytes(graph.read_bytes()[:-10])
    with pytest.raises(ModelError, match="not the graph its ready.json records"):
        build_index(catalog_file, tmp_path / "d", model=shipped, config=IndexConfig(cache_dir=tmp_path / "c4"))


def test_a_pair_read_once_is_remembered_with_the_same_logit(reranked_index, catalog_frame):
    from searchkit.models.cross_encoder import Reranker

    files = IndexFiles(reranked_index)
    reranker = Reranker(files.reranker_graph, files.reranker_tokenizer, read_info(files.reranker), threads=1,
                        pairs_at_once=2)
    reads = []
    run = reranker.session.run
    reranker.session = type("Counted", (), {"run": lambda self, *a: reads.append(1) or run(*a)})()
    records = catalog_frame.head(12).to_dict("records")
    first = reranker.scores("red kettle", records)
    assert len(reads) == 12
    again = reranker.scores("red kettle", records[4:] + records[:4])  # the same pairs in another order
    assert len(reads) == 12 and np.array_equal(again, np.concatenate([first[4:], first[:4]]))
    reranker.scores("stainless sink", records[:3])  # another query: other pairs
    assert len(reads) == 15
    reranker.cache_size = 10  # the least recently used pairs go first
    reranker.scores("drill", records[:1])
    assert len(reranker._cache) == 10 and len(reads) == 16
    reranker.scores("red kettle", records[:1])  # read again last time: still remembered
    assert len(reads) == 16
    reranker.scores("red kettle", records[4:5])  # read before it, and dropped: read again, to the same logit
    assert len(reads) == 17 and reranker._cache[next(reversed(reranker._cache))] == first[4]
    reranker.forget()
    assert np.array_equal(reranker.scores("red kettle", records), first) and len(reads) == 29


def test_a_smaller_rerank_depth_reorders_only_that_many_candidates(reranked_index, monkeypatch):
    from fastapi.testclient import TestClient

    from searchkit.serve.app import app_from_env

    query = "kohler toilet seat"
    shallow = Searcher.from_dir(reranked_index, rerank_depth=5)
    assert shallow.reranker.settings.depth == 5 and Searcher.from_dir(reranked_index).reranker.settings.depth == 30
    hybrid = [h.product_id for h in shallow.search(query, k=10, mode="hybrid")]
    reranked = [h.product_id for h in shallow.search(query, k=10, mode="rerank")]
    assert sorted(reranked[:5]) == sorted(hybrid[:5]) and reranked[5:] == hybrid[5:]
    with pytest.raises(SearchkitError, match="rerank depth must be at least 1, not 0"):
        Searcher.from_dir(reranked_index, rerank_depth=0)
    result = CliRunner().invoke(main, ["serve", "--index", str(reranked_index), "--opensearch", "http://localhost:1",
                                       "--rerank-depth", "3"])
    assert result.exit_code != 0 and "--rerank-depth applies to a local index" in result.output
    monkeypatch.setenv("SEARCHKIT_INDEX", str(reranked_index))
    monkeypatch.setenv("SEARCHKIT_RERANK_DEPTH", "4")  # as `searchkit serve --rerank-depth 4` passes it on
    with TestClient(app_from_env()) as client:
        client.get("/search", params={"q": query, "mode": "rerank"})
        assert 'searchkit_rerank_pairs_total{source="read"} 4.0' in client.get("/metrics").text
