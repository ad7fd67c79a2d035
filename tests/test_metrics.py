import math

import pytest

from searchkit.metrics import dcg, mrr_at_k, ndcg_at_k, pearson, recall_at_k, spearman


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


def test_pearson_hand_computed():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        pearson([1], [1])
