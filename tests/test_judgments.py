"""Search logs into judgments: the click model takes position bias out where raw click-through rate cannot."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from searchkit.cli import main
from searchkit.data.catalog import read_pairs
from searchkit.errors import CatalogError
from searchkit.eval.metrics import spearman
from searchkit.serve.app import create_app
from searchkit.training.judgments import JudgmentConfig, judgments, position_based_model


def biased_log(seed: int = 0, searches: int = 4000) -> tuple[pd.DataFrame, dict[str, float]]:
    """Ten products of one query with known attraction, shown by a ranker that puts the least attractive first."""
    rng = np.random.default_rng(seed)
    attraction = {f"P{i}": a for i, a in enumerate(np.linspace(0.2, 0.6, 10))}
    ids = np.array(list(attraction))
    order = np.argsort([attraction[p] for p in ids])  # worst first: position bias against the truth
    rows = []
    for _ in range(searches):
        shown = ids[order] if rng.random() < 0.8 else rng.permutation(ids)
        for position, product in enumerate(shown, start=1):
            examined = rng.random() < 1.0 / position ** 1.5
            rows.append(("drill", product, position, int(examined and rng.random() < attraction[product])))
    return pd.DataFrame(rows, columns=["query", "product_id", "position", "clicked"]), attraction


def test_the_click_model_recovers_attraction_better_than_ctr():
    log, truth = biased_log()
    pairs, examination = position_based_model(log)
    true = [truth[p] for p in pairs["product_id"]]
    ctr = pairs["clicks"] / pairs["impressions"]
    assert spearman(pairs["attraction"], true) > 0.9 and spearman(ctr, true) < 0  # CTR ranks the top slots first
    assert examination[0] == pytest.approx(1.0) and examination[1] < examination[0]
    graded = judgments(log)
    assert graded["relevance"].between(1, 3).all() and graded["confidence"].between(0, 1).all()
    best = graded.sort_values("relevance").iloc[-1]["product_id"]
    assert best == "P9"


def test_judgments_need_enough_impressions():
    log, _ = biased_log(searches=2)
    with pytest.raises(CatalogError, match="min-impressions"):
        judgments(log, JudgmentConfig(min_impressions=5))


def test_from_a_server_log_to_a_pairs_file_training_reads(index_copy, tmp_path):
    folder = tmp_path / "logs"
    with TestClient(create_app(index_copy, watch=False, log_dir=folder)) as client:
        for i in range(6):
            body = client.get("/search", params={"q": "kohler toilet seat", "k": 5}).json()
            picked = body["results"][i % 2]["product_id"]
            assert client.post("/events", json={"query_id": body["query_id"], "product_id": picked,
                                                "type": "click"}).status_code == 202
    out = tmp_path / "judged.csv"
    result = CliRunner().invoke(main, ["judgments", str(folder), "--out", str(out), "--min-impressions", "3",
                                       "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["searches"] == 6 and summary["pairs"] == 5 and out.is_file()
    pairs = read_pairs(out)  # what train, train-reranker and evaluate read
    assert set(pairs.columns) == {"query", "product_id", "relevance"} and pairs["relevance"].between(1, 3).all()
    shop = tmp_path / "impressions.csv"
    pd.DataFrame({"q": ["fan"] * 4, "sku": ["A", "B", "A", "B"], "pos": [1, 2, 2, 1], "clicked": [1, 0, 1, 0]}).to_csv(
        shop, index=False)
    own = CliRunner().invoke(main, ["judgments", str(shop), "--out", str(tmp_path / "own.parquet"), "--columns",
                                    "query=q,product_id=sku,position=pos", "--min-impressions", "2"])
    assert own.exit_code == 0, own.output
    judged = pd.read_parquet(tmp_path / "own.parquet").set_index("product_id")
    assert judged.loc["A", "relevance"] > judged.loc["B", "relevance"]
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"query": ["fan"], "product_id": ["A"], "position": ["first"], "clicked": [1]}).to_csv(bad, index=False)
    refused = CliRunner().invoke(main, ["judgments", str(bad), "--out", str(tmp_path / "x.csv")])
    assert refused.exit_code != 0 and "column 'position'" in refused.output


def test_the_gate_adopts_only_a_model_better_beyond_the_noise():
    from searchkit.training.release import gate

    rng = np.random.default_rng(0)
    current = rng.random(200)
    better = gate(current, current + 0.05 + rng.normal(0, 0.02, 200), current, current + 0.01)
    assert better.adopt and better.interval[0] > 0
    worse = gate(current, current - 0.05, current, current)
    assert not worse.adopt and "not better" in worse.reason
    noise = gate(current, current + rng.normal(0, 0.1, 200), current, current)
    assert not noise.adopt  # a gain the interval cannot tell from zero is refused
    judged_worse = gate(current, current + 0.05, current, current - 0.05)
    assert not judged_worse.adopt and "judged" in judged_worse.reason
    assert not gate(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0)).adopt


def test_learn_runs_the_loop_and_a_dry_run_changes_nothing(index_copy, tmp_path):
    folder = tmp_path / "logs"
    with TestClient(create_app(index_copy, watch=False, log_dir=folder)) as client:
        from tests.fixtures import BRANDS, NOUNS

        for query in [f"{brand} {noun}".strip().lower() for brand in BRANDS[:5] for noun in NOUNS]:
            for i in range(3):
                body = client.get("/search", params={"q": query, "k": 5}).json()
                client.post("/events", json={"query_id": body["query_id"], "product_id": body["results"][i % 2][
                    "product_id"], "type": "click"})
    before = (index_copy / "manifest.json").read_text()
    config = tmp_path / "train.toml"
    config.write_text("max_steps = 2\nbatch_size = 8\neval_steps = 100\nsave_steps = 100\neval_queries = 5\n"
                      "eval_corpus = 30\n[split]\nval_fraction = 0.2\ntest_fraction = 0.4\n")
    result = CliRunner().invoke(main, ["learn", str(folder), "--index", str(index_copy), "--dry-run", "--config",
                                       str(config), "--work", str(tmp_path / "work"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["dry_run"] and not report["adopted"] and report["held_out_queries"] > 0
    assert report["verdict"]["reason"] and (tmp_path / "work" / "candidate" / "modules.json").is_file()
    assert (index_copy / "manifest.json").read_text() == before  # a dry run never adopts


def test_an_adopted_candidate_is_built_into_the_index(index_copy, tmp_path, monkeypatch):
    import searchkit.training.release as release
    from searchkit import Searcher
    from searchkit.training.embedder import TrainConfig
    from tests.fixtures import BRANDS, NOUNS

    impressions = tmp_path / "impressions.csv"
    rows = [(f"{b} {n}".strip().lower(), f"P{(i * 7 + j) % 240:05d}", j + 1, int(j == i % 3))
            for i, (b, n) in enumerate((b, n) for b in BRANDS[:5] for n in NOUNS) for j in range(5) for _ in range(3)]
    pd.DataFrame(rows, columns=["query", "product_id", "position", "clicked"]).to_csv(impressions, index=False)
    before = Searcher.from_dir(index_copy).manifest.model.fingerprint
    monkeypatch.setattr(release, "gate", lambda *a: release.Verdict(True, "forced", 1, 0.1, (0.05, 0.15), 0.0,
                                                                      (0.0, 0.0)))
    template = TrainConfig(max_steps=2, batch_size=8, eval_steps=100, save_steps=100, eval_queries=5, eval_corpus=30)
    report = release.learn([impressions], index_copy, template=template)
    assert report["adopted"] and report["verdict"]["reason"] == "forced"
    after = Searcher.from_dir(index_copy)
    assert after.manifest.model.fingerprint != before and after.search("kohler toilet seat", k=3)


def test_the_cascade_model_reads_products_above_the_first_click_as_examined():
    from searchkit.training.judgments import cascade_model

    log = pd.DataFrame({"query_id": [1, 1, 1, 2, 2, 2], "query": ["fan"] * 6, "product_id": ["A", "B", "C"] * 2,
                        "position": [1, 2, 3] * 2, "clicked": [0, 1, 0, 1, 0, 0]})
    attraction = cascade_model(log)
    assert attraction["fan\tA"] == 0.5 and attraction["fan\tB"] == 1.0 and attraction["fan\tC"] == 0.0
    with pytest.raises(CatalogError, match="query_id"):
        cascade_model(log.drop(columns="query_id"))
