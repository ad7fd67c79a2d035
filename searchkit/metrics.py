"""Ranking and correlation metrics, pure numpy: no model code. Checked against hand-computed cases in tests."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


def dcg(gains: Sequence[float]) -> float:
    return float(sum(g / math.log2(i + 2) for i, g in enumerate(gains)))


def ndcg_at_k(ranked: Sequence[str], gains: Mapping[str, float], k: int = 10) -> float:
    """NDCG@k with graded gains (missing ids gain 0); the ideal ranking is over every judged product."""
    ideal = dcg(sorted((g for g in gains.values() if g > 0), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return dcg([gains.get(pid, 0.0) for pid in ranked[:k]]) / ideal


def judged_ndcg_at_k(ranked: Sequence[str], gains: Mapping[str, float], k: int = 10) -> float:
    """Condensed-list NDCG@k (Sakai 2007): NDCG@k of the ranking with every unjudged id removed first. It asks how
    well the judged products are ordered among themselves, whatever unjudged products sit between them: with a few
    rated products per query, an unjudged product is unknown, not irrelevant (ndcg_at_k counts it as gain 0)."""
    return ndcg_at_k([pid for pid in ranked if pid in gains], gains, k)


def judged_at_k(ranked: Sequence[str], gains: Mapping[str, float], k: int = 10) -> float:
    """Share of the top k (of the ranking's first k, when shorter) that carry a judgment."""
    head = ranked[:k]
    return sum(pid in gains for pid in head) / len(head) if len(head) else 0.0


def mrr_at_k(ranked: Sequence[str], relevant: set[str], k: int = 10) -> float:
    for i, pid in enumerate(ranked[:k]):
        if pid in relevant:
            return 1.0 / (i + 1)
    return 0.0


def recall_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean rank), as Spearman needs."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=float)
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    return ranks


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("pearson needs two sequences of equal length >= 2")
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom else 0.0


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    return pearson(_ranks(np.asarray(x, dtype=float)), _ranks(np.asarray(y, dtype=float)))
