"""The distil recipe: pseudo-queries, teacher labels cached in resumable chunks, the rows its losses read, and a
few training steps end to end with --resume."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from searchkit.cli import main
from searchkit.data.catalog import read_catalog, read_pairs
from searchkit.data.splits import split_pairs
from searchkit.data.text import TextConfig, words
from searchkit.errors import SearchkitError
from searchkit.training.embedder import DistilSettings, catalog_normaliser, distil_rows
from searchkit.training.pseudo_queries import product_type, pseudo_queries, title_measure
from searchkit.training.teacher import PLAN_FILE, LabelSettings, label_queries, read_labels, teacher_labels


def test_pseudo_queries_are_seeded_distinct_title_words(catalog_frame):
    queries = pseudo_queries(catalog_frame, 50, seed=3)
    assert queries == pseudo_queries(catalog_frame, 50, seed=3) != pseudo_queries(catalog_frame, 50, seed=4)
    assert len(queries) == len(set(queries)) == 50
    vocabulary = {w for column in ("title", "brand", "color") for t in catalog_frame[column] for w in words(t)}
    assert all(set(q.split()) <= vocabulary for q in queries)


def test_shopper_patterns_read_type_and_measure():
    tokens = words("Hampton Bay 52 in. White Ceiling Fan")
    assert product_type(tokens) == ["ceiling", "fan"] and title_measure(tokens) == ["52", "in"]
    assert title_measure(words("Cordless Drill Kit")) == []


def _rated(pairs_file):
    return split_pairs(read_pairs(pairs_file))["train"]


def test_labels_cover_every_query_and_resume_where_they_stopped(tmp_path, reranked_index, catalog_file, pairs_file):
    products, rated = read_catalog(catalog_file), _rated(pairs_file)
    settings = LabelSettings(index=reranked_index, train_queries=6, pseudo_queries=5, candidates=8, chunk=4)
    labels = teacher_labels(rated, products, settings, tmp_path / "labels")
    queries = label_queries(rated, products, settings)
    assert sorted(set(labels["query"])) == sorted(queries) and len(queries) == 11
    assert (labels.groupby("query").size() >= 8).all()
    assert labels[labels["rated"]].apply(lambda r: r["product_id"] in set(
        rated[rated["query"] == r["query"]]["product_id"]), axis=1).all()
    chunks = sorted((tmp_path / "labels").glob("labels-*.parquet"))
    assert len(chunks) == 3
    kept = chunks[0].stat().st_mtime_ns
    chunks[1].unlink()  # a run stopped before its second chunk was written
    again = teacher_labels(rated, products, settings, tmp_path / "labels")
    assert chunks[0].stat().st_mtime_ns == kept and chunks[1].is_file()
    pd.testing.assert_frame_equal(again.sort_values(["query", "product_id"]).reset_index(drop=True),
                                  labels.sort_values(["query", "product_id"]).reset_index(drop=True),
                                  atol=1e-5)
    with pytest.raises(SearchkitError, match="teacher labels made with other queries, settings"):
        teacher_labels(rated, products, LabelSettings(index=reranked_index, train_queries=6, pseudo_queries=6,
                                                      candidates=8, chunk=4), tmp_path / "labels")
    plan = json.loads((tmp_path / "labels" / PLAN_FILE).read_text())
    assert plan["settings"]["pseudo_queries"] == 5
    del plan["settings"]["teacher_device"]  # a folder labelled before that setting existed: read at its default
    (tmp_path / "labels" / PLAN_FILE).write_text(json.dumps(plan))
    assert len(teacher_labels(rated, products, settings, tmp_path / "labels")) == len(labels)


def test_labels_need_an_index_with_a_cross_encoder(tmp_path, built_index, catalog_file, pairs_file):
    with pytest.raises(SearchkitError, match="no cross-encoder to label with"):
        teacher_labels(_rated(pairs_file), read_catalog(catalog_file), LabelSettings(index=built_index), tmp_path)


@pytest.mark.parametrize("loss", ["kl", "margin_mse"])
def test_distil_rows_follow_the_teacher(catalog_frame, loss):
    labels = pd.DataFrame({"query": ["drill"] * 6 + ["fan"] * 3,
                           "product_id": list(catalog_frame["product_id"][:6]) + list(catalog_frame["product_id"][:3]),
                           "teacher": [0.5, 2.0, -1.0, 0.0, 1.0, -2.0, 1.0, 0.0, -1.0], "rated": [False] * 9})
    norm = catalog_normaliser(catalog_frame, TextConfig())
    rows = distil_rows(labels, catalog_frame, norm, DistilSettings(loss=loss, ways=4, rows_per_query=3), seed=1)
    if loss == "kl":
        assert len(rows["query"]) == 3 and set(rows) == {"query", "c1", "c2", "c3", "c4", "label"}  # fan: 3 < 4 ways
        assert all(len(label) == 4 and label[0] >= sorted(labels["teacher"][:6])[-3] for label in rows["label"])
    else:
        assert len(rows["query"]) == 6 and set(rows) == {"query", "c1", "c2", "label"}
        assert all(abs(m) <= 4.0 * 0.05 / 0.25 for m in rows["label"])  # margins in cosine units


def test_distil_recipe_trains_and_resumes(tmp_path, tiny_model, reranked_index, catalog_file, pairs_file):
    config = tmp_path / "distil.toml"
    config.write_text(f"""max_steps = 2
batch_size = 4
save_steps = 1
eval_steps = 1
eval_queries = 10
eval_corpus = 50
[distil]
rated_rows = 20
ways = 4
[distil.labels]
index = "{reranked_index}"
train_queries = 8
pseudo_queries = 8
candidates = 8
chunk = 8
""")
    out = tmp_path / "student"
    args = ["train", str(pairs_file), "--catalog", str(catalog_file), "--recipe", "distil", "--base-model",
            str(tiny_model), "--out", str(out), "--config", str(config), "--device", "cpu"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    info = json.loads((out / "searchkit.json").read_text())
    assert info["recipe"]["name"] == "distil" and info["distil"]["labels"]["pseudo_queries"] == 8
    assert len(read_labels(out / "teacher-labels")) >= 16 * 8
    config.write_text(config.read_text().replace("max_steps = 2", "max_steps = 3"))
    result = CliRunner().invoke(main, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert (out / "checkpoints" / "checkpoint-3").is_dir()
