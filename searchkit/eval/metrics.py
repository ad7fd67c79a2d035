"""Ranking and correlation metrics, pure numpy: no model code. Checked against hand-computed cases in tests."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

RELEVANT = 2.33  # relevance at or above this counts as "relevant" (two of three raters said relevant)


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
    sorted_x = x[order]
    starts = np.r_[True, sorted_x[1:] != sorted_x[:-1]] if len(x) else np.zeros(0, dtype=bool)
    first = np.flatnonzero(starts)
    last = np.r_[first[1:], len(x)] - 1
    ranks = np.empty(len(x), dtype=float)
    ranks[order] = ((first + last) / 2.0 + 1)[np.cumsum(starts) - 1]
    return ranks


def pearson(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("pearson needs two sequences of equal length >= 2")
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom else 0.0


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    return pearson(_ranks(np.asarray(x, dtype=float)), _ranks(np.asarray(y, dtype=float)))


def _summary(observed: float, resampled: np.ndarray, level: float, diff: np.ndarray | None = None) -> dict[str, float]:
    low, high = np.quantile(resampled, [(1 - level) / 2, (1 + level) / 2])
    out = {"difference": float(observed), "low": float(low), "high": float(high), "level": level}
    if diff is not None:
        out.update(better=int((diff > 0).sum()), worse=int((diff < 0).sum()), items=len(diff))
    return out


def paired_bootstrap(a: Sequence[float], b: Sequence[float], resamples: int = 2000, seed: int = 0,
                     level: float = 0.95) -> dict[str, float]:
    """How much b beats a on the same items (e.g. one metric per query for two systems): the mean of b - a, a
    percentile bootstrap interval for it (items drawn with replacement, `resamples` times, seeded), and how many items
    b does better or worse on. Items where either value is NaN are left out."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("paired_bootstrap needs two sequences of equal length")
    diff = (y - x)[~(np.isnan(x) | np.isnan(y))]
    if len(diff) == 0:
        raise ValueError("paired_bootstrap needs at least one item with both values")
    draws = np.random.default_rng(seed).integers(0, len(diff), size=(resamples, len(diff)))
    return _summary(diff.mean(), diff[draws].mean(axis=1), level, diff)


def _group_draws(groups: Sequence[object], resamples: int, seed: int):
    """Row indices of `resamples` bootstrap draws of whole groups (with replacement), one array per draw."""
    keys = np.asarray(groups, dtype=object)
    _, inverse = np.unique(keys.astype(str), return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)]
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        yield np.concatenate([members[g] for g in rng.integers(0, len(members), size=len(members))])


def bootstrap_spearman(scores: Sequence[float], labels: Sequence[float], groups: Sequence[object],
                       resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """Spearman(scores, labels) over pairs with a percentile bootstrap interval that draws whole groups (e.g. every
    rated pair of a query), since pairs of one query are not independent."""
    x, z = np.asarray(scores, dtype=float), np.asarray(labels, dtype=float)
    if not len(x) == len(z) == len(groups):
        raise ValueError("bootstrap_spearman needs scores, labels and groups of equal length")
    resampled = np.array([spearman(x[rows], z[rows]) for rows in _group_draws(groups, resamples, seed)])
    low, high = np.quantile(resampled, [(1 - level) / 2, (1 + level) / 2])
    return {"value": spearman(x, z), "low": float(low), "high": float(high), "level": level}


def paired_bootstrap_spearman(a: Sequence[float], b: Sequence[float], labels: Sequence[float],
                              groups: Sequence[object], resamples: int = 1000, seed: int = 0,
                              level: float = 0.95) -> dict[str, float]:
    """Spearman(b, labels) - Spearman(a, labels) over pairs, with a bootstrap interval that draws whole groups (e.g.
    every rated pair of a query) with replacement, since pairs of one query are not independent."""
    x, y, z = (np.asarray(v, dtype=float) for v in (a, b, labels))
    if not len(x) == len(y) == len(z) == len(groups):
        raise ValueError("paired_bootstrap_spearman needs a, b, labels and groups of equal length")
    resampled = np.array([spearman(y[rows], z[rows]) - spearman(x[rows], z[rows])
                          for rows in _group_draws(groups, resamples, seed)])
    return _summary(spearman(y, z) - spearman(x, z), resampled, level)
