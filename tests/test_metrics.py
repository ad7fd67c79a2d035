import math

import numpy as np
import pytest

from searchkit.eval.metrics import (
    _ranks,
    bootstrap_spearman,
    dcg,
    judged_at_k,
    judged_ndcg_at_k,
    mrr_at_k,
    ndcg_at_k,
    paired_bootstrap,
    paired_bootstrap_spearman,
    pearson,
    recall_at_k,
    spearman,
)


def test_ndcg_hand_computed():
    gains = {"a": 2.0, "b": 1.0, "c": 0.0}
    assert ndcg_at_k(["a", "b", "c"], gains, 10) == pytest.approx(1.0)
    # b first, then a: (1 + 2/log2(3)) / (2 + 1/log2(3))
    expected = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert ndcg_at_k(["b", "a"], gains, 10) == pytest.approx(expected)
    assert ndcg_at_k(["x", "y"], gains, 10) == 0.0
    assert ndcg_at_k(["a"], {"a": 0.0}, 10) == 0.0
    assert dcg([3, 2]) == pytest.approx(3 + 2 / math.log2(3))


def test_ndcg_cuts_at_k():
    gains = {"a": 1.0, "b": 1.0}
    assert ndcg_at_k(["x", "a", "b"], gains, 1) == 0.0


def test_judged_ndcg_removes_unjudged_products_first():
    gains = {"a": 2.0, "b": 1.0, "c": 0.0}
    # x and y are unjudged: plain NDCG counts them as gain 0, the condensed list drops them
    assert ndcg_at_k(["x", "a", "y", "b"], gains, 10) == pytest.approx(
        (2 / math.log2(3) + 1 / math.log2(5)) / (2 + 1 / math.log2(3)))
    assert judged_ndcg_at_k(["x", "a", "y", "b"], gains, 10) == pytest.approx(1.0)
    # judged c (gain 0) still counts against the ranking: c, b, a
    assert judged_ndcg_at_k(["c", "x", "b", "a"], gains, 10) == pytest.approx(
        (1 / math.log2(3) + 2 / math.log2(4)) / (2 + 1 / math.log2(3)))
    # cut at k judged products, wherever they sit in the ranking
    assert judged_ndcg_at_k(["x", "y", "b", "a"], gains, 1) == pytest.approx(1 / 2)
    assert judged_ndcg_at_k(["x", "y"], gains, 10) == 0.0


def test_judged_at_k():
    gains = {"a": 2.0, "c": 0.0}
    assert judged_at_k(["a", "x", "c", "y"], gains, 10) == pytest.approx(0.5)
    assert judged_at_k(["a", "x", "c", "y"], gains, 2) == pytest.approx(0.5)
    assert judged_at_k(["x", "a"], gains, 1) == 0.0
    assert judged_at_k([], gains, 10) == 0.0


def test_mrr_and_recall():
    assert mrr_at_k(["x", "a", "b"], {"a", "b"}, 10) == pytest.approx(0.5)
    assert mrr_at_k(["x"], {"a"}, 10) == 0.0
    assert mrr_at_k(["x", "a"], {"a"}, 1) == 0.0
    assert recall_at_k(["a", "x", "b"], {"a", "b", "c", "d"}, 2) == pytest.approx(0.25)
    assert recall_at_k(["a"], set(), 10) == 0.0


def test_spearman_with_ties_matches_hand_ranks():
    # ranks of x: 1, 2.5, 2.5, 4; y is monotone -> pearson of ranks
    x, y = [1, 2, 2, 3], [10, 20, 30, 40]
    rx, ry = [1, 2.5, 2.5, 4], [1, 2, 3, 4]
    assert spearman(x, y) == pytest.approx(pearson(rx, ry))
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_ranks_average_every_run_of_ties():
    assert _ranks(np.array([3.0, 1.0, 3.0, 2.0, 3.0])).tolist() == [4.0, 1.0, 4.0, 2.0, 4.0]
    assert _ranks(np.array([5.0, 5.0])).tolist() == [1.5, 1.5]
    assert _ranks(np.array([])).tolist() == []


def test_paired_bootstrap_hand_cases():
    # b beats a by exactly 0.1 on every item: every resample's mean difference is 0.1
    same_gain = paired_bootstrap([0.2, 0.5, 0.0], [0.3, 0.6, 0.1], resamples=200)
    assert same_gain["difference"] == pytest.approx(0.1)
    assert same_gain["low"] == pytest.approx(0.1) and same_gain["high"] == pytest.approx(0.1)
    assert (same_gain["better"], same_gain["worse"], same_gain["items"]) == (3, 0, 3)
    # one item better by 1, one worse by 1, two ties: mean 0, resampled means lie in [-1, 1] around it
    mixed = paired_bootstrap([0, 1, 0, 0], [1, 0, 0, 0], resamples=500, seed=3)
    assert mixed["difference"] == 0.0 and (mixed["better"], mixed["worse"]) == (1, 1)
    assert -1.0 <= mixed["low"] < 0.0 < mixed["high"] <= 1.0
    assert paired_bootstrap([0, 1, 0, 0], [1, 0, 0, 0], resamples=500, seed=3) == mixed  # seeded
    # an item missing either value (a query with no relevant product has no recall) is left out
    assert paired_bootstrap([float("nan"), 1.0], [0.0, 3.0])["items"] == 1
    with pytest.raises(ValueError):
        paired_bootstrap([1.0, 2.0], [1.0])


def test_paired_bootstrap_spearman_draws_whole_queries():
    labels = [1, 2, 3, 1, 2, 3]
    queries = ["q1"] * 3 + ["q2"] * 3
    # b orders every query's pairs as the labels do, a the reverse: +1 - (-1) on any draw of whole queries
    flipped = paired_bootstrap_spearman([-x for x in labels], labels, labels, queries, resamples=100)
    assert flipped["difference"] == pytest.approx(2.0)
    assert flipped["low"] == pytest.approx(2.0) and flipped["high"] == pytest.approx(2.0)
    same = paired_bootstrap_spearman([0.3, 0.1, 0.2, 0.5, 0.4, 0.6], [0.3, 0.1, 0.2, 0.5, 0.4, 0.6], labels, queries,
                                     resamples=50)
    assert same["difference"] == 0.0 and same["low"] == 0.0 and same["high"] == 0.0
    with pytest.raises(ValueError):
        paired_bootstrap_spearman([1, 2], [1, 2], [1, 2], ["q1"])


def test_bootstrap_spearman_draws_whole_queries():
    labels = [1, 2, 3, 1, 2, 3]
    queries = ["q1"] * 3 + ["q2"] * 3
    perfect = bootstrap_spearman([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], labels, queries, resamples=100)
    # ranks 1..6 against the labels' ranks 1.5, 3.5, 5.5, 1.5, 3.5, 5.5: (hand) 8 / sqrt(17.5 * 16) = 0.478
    assert perfect["value"] == pytest.approx(8 / (17.5 * 16) ** 0.5)
    assert perfect["low"] <= perfect["value"] <= perfect["high"]
    within = bootstrap_spearman([0.1, 0.2, 0.3, 0.1, 0.2, 0.3], labels, queries, resamples=100)
    assert within["value"] == pytest.approx(1.0) and within["low"] == pytest.approx(1.0)  # any draw: still exact
    assert bootstrap_spearman([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], labels, queries, resamples=100, seed=5) == (
        bootstrap_spearman([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], labels, queries, resamples=100, seed=5))
    with pytest.raises(ValueError):
        bootstrap_spearman([1, 2], [1, 2], ["q1"])


def test_pearson_hand_computed():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        pearson([1], [1])
