"""The graded relevance estimate: its features and fit on hand-made cases (no model code)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from searchkit.data.text import TextConfig
from searchkit.errors import ModelError
from searchkit.search.relevance import (
    FEATURES,
    GRADER,
    RelevanceModel,
    cross_validated,
    feature_names,
    features,
    fit,
    on_scale,
    text_key,
    word_features,
)

PARTS = ("a" * 64, (0.45, 0.5, 2), "b" * 64)


def test_word_features_by_hand():
    query = ["ceil", "fan", "52", "brand_hampton_bay"]
    product = {"hampton", "bay", "ceil", "fan", "48", "brand_hampton_bay", "color_white"}
    # 3 words (the brand token is not one), 2 of 3 found, the first found, the last ("52") not, not all found,
    # 7 product words, the brand token matched, the one number not found
    assert word_features(query, product) == pytest.approx([3, 2 / 3, 1, 0, 0, 7, 1, 0])
    assert word_features(["ceil", "fan"], {"fan", "ceil"}) == [2, 1, 1, 1, 1, 2, 0, -1]  # no number: -1
    assert word_features([], {"fan"}) == [0, 0, 0, 0, 0, 1, 0, -1]
    assert word_features(["brand_x", "2", "in"], {"brand_y", "2"}) == pytest.approx([2, 0.5, 1, 0, 0, 2, 0, 1])


def test_features_stack_the_signals_then_the_words():
    rows = features(np.array([0.5, 0.1]), np.array([2.0, -1.0]), np.array([np.e - 1, 0.0]), ["fan"],
                    [{"fan"}, {"lamp", "shade"}])
    assert rows.shape == (2, len(FEATURES))
    assert rows[0, :4].tolist() == pytest.approx([0.5, 2.0, 1.0, 1.0])  # BM25 as log(1 + score)
    assert rows[1].tolist() == pytest.approx([0.1, -1.0, 0.0, 1, 0, 0, 0, 0, 2, 0, -1])
    with pytest.raises(ValueError, match="2 cosines, 1 logits"):
        features(np.zeros(2), np.zeros(1), np.zeros(2), ["fan"], [{"fan"}, {"fan"}])


def _linear_pairs(n=400, seed=0):
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n, len(FEATURES))) * 0.1
    weights = rng.normal(size=len(FEATURES))
    label = np.clip(rows @ weights + 0.5, 0.0, 1.0)
    return rows, 1 + 2 * label, weights


def test_fit_recovers_known_weights_and_predicts_on_the_raters_scale():
    rows, relevance, weights = _linear_pairs()
    inside = (relevance > 1) & (relevance < 3)  # the clipped ones are not linear in the rows
    got, intercept = fit(rows[inside], relevance[inside])
    assert got == pytest.approx(weights.tolist(), abs=1e-6) and intercept == pytest.approx(0.5, abs=1e-6)
    model = RelevanceModel(got, intercept, *PARTS)
    assert model.predict(rows[inside]) == pytest.approx(relevance[inside], abs=1e-6)
    assert on_scale(np.array([-0.3, 0.0, 0.25, 1.0, 1.7])).tolist() == [1.0, 1.0, 1.5, 3.0, 3.0]
    with pytest.raises(ValueError, match="more than 11"):
        fit(rows[:5], relevance[:5])


def test_cross_validation_never_predicts_a_query_from_its_own_labels():
    rows, relevance, _ = _linear_pairs(n=300, seed=1)
    queries = np.array([f"q{i // 3}" for i in range(len(rows))], dtype=object)  # 100 queries of 3 pairs
    before = cross_validated(rows, relevance, queries)
    changed = relevance.copy()
    changed[queries == "q7"] = 3.0  # relabel one query: only the other folds' fits see it
    after = cross_validated(rows, changed, queries)
    assert after[queries == "q7"] == pytest.approx(before[queries == "q7"])
    assert not np.allclose(after[queries != "q7"], before[queries != "q7"])
    with pytest.raises(ValueError, match="at least 5 queries"):
        cross_validated(rows[:12], relevance[:12], queries[:12])


def test_a_fit_round_trips_and_names_what_it_does_not_fit():
    model = RelevanceModel(tuple(float(i) for i in range(len(FEATURES))), 0.25, *PARTS, fitted_on="val")
    data = model.to_dict()
    assert data["weights"]["cosine"] == 0.0 and data["weights"]["number_share"] == 10.0
    assert RelevanceModel.from_dict(data) == model
    assert RelevanceModel.from_dict(json.loads(json.dumps(data, sort_keys=True))) == model  # as reranker.json keeps it
    assert model.mismatch(*PARTS) is None
    assert "embedder" in model.mismatch("c" * 64, PARTS[1], PARTS[2])
    assert "BM25" in model.mismatch(PARTS[0], (1.2, 0.75, 2), PARTS[2])
    assert "keyword text version 2, the index has version 1" in model.mismatch(PARTS[0], (0.45, 0.5, 1), PARTS[2])
    old = RelevanceModel.from_dict({**data, "bm25": [0.45, 0.5]})  # a fit made before keyword text versions
    assert old.bm25 == (0.45, 0.5, 1) and "keyword text" in old.mismatch(*PARTS)
    assert "reranker" in model.mismatch(PARTS[0], PARTS[1], "c" * 64)
    stemmed, whole_words = text_key(TextConfig()), text_key(TextConfig(stem=False))
    assert model.mismatch(*PARTS, stemmed) is None  # a fit that predates the record was made on the defaults
    assert '"stem": false' in model.mismatch(*PARTS, whole_words)
    read_whole = RelevanceModel.from_dict({**data, "embedder_text": whole_words})
    assert read_whole.mismatch(*PARTS, whole_words) is None and "stem" in read_whole.mismatch(*PARTS, stemmed)
    graded = RelevanceModel(model.weights + (0.5,), 0.25, *PARTS, features=feature_names(True))
    assert RelevanceModel.from_dict(json.loads(json.dumps(graded.to_dict(), sort_keys=True))) == graded
    assert graded.features[-1] == GRADER and graded.predict(np.zeros((1, len(FEATURES) + 1))).tolist() == [1.5]
    with pytest.raises(ModelError, match="fitted on 12 features"):
        graded.predict(np.zeros((1, len(FEATURES))))  # rows without the grader's cosine
    with pytest.raises(ModelError, match="expected weights"):
        RelevanceModel.from_dict({**data, "weights": {"cosine": 1.0}})
    with pytest.raises(ModelError, match="unreadable"):
        RelevanceModel.from_dict({"weights": data["weights"]})
    with pytest.raises(ModelError, match="finite"):
        RelevanceModel((float("nan"),) * len(FEATURES), 0.0, *PARTS)
