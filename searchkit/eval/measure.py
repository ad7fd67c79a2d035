"""How a searcher does on rated pairs: correlations over pairs, per-query NDCG, recall and MRR, by mode."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import SearchkitError
from ..search.relevance import FEATURES
from ..search.results import Mode
from ..search.searcher import Searcher
from .metrics import (
    RELEVANT,
    judged_at_k,
    judged_ndcg_at_k,
    mrr_at_k,
    ndcg_at_k,
    pearson,
    recall_at_k,
    spearman,
)


def pair_cosines(searcher: Searcher, pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cosine of each rated (query, product) pair as the index scores it, its relevance and its query, queries in
    sorted order."""
    cosines: list[float] = []
    for query, group in pairs.groupby("query", sort=True):
        cosines.extend(searcher.similarity(query, group["product_id"].tolist()))
    ordered = pairs.sort_values("query", kind="stable")
    return np.array(cosines), ordered["relevance"].to_numpy(float), ordered["query"].to_numpy(object)


def pair_correlation(searcher: Searcher, pairs: pd.DataFrame) -> dict[str, float]:
    """Cosine of each (query, product) pair as the index scores it, against the label (relevance-1)/2."""
    cosines, relevance, _ = pair_cosines(searcher, pairs)
    return correlation(cosines, relevance)


def pair_rows(searcher: Searcher, pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """relevance.FEATURES of every rated pair (the cross-encoder's logit among them), its relevance and its query,
    queries in sorted order."""
    blocks, relevance, queries = [], [], []
    for query, group in pairs.groupby("query", sort=True):
        blocks.append(searcher.pair_signals(query, group["product_id"].tolist()))
        relevance.extend(group["relevance"].astype(float).tolist())
        queries.extend([query] * len(group))
    return np.vstack(blocks), np.array(relevance), np.array(queries, dtype=object)


def correlation(scores: np.ndarray, relevance: np.ndarray) -> dict[str, Any]:
    labels = (np.asarray(relevance, dtype=float) - 1) / 2
    return {"spearman": spearman(scores, labels), "pearson": pearson(scores, labels), "pairs": len(labels)}


def agreement(estimate: np.ndarray, relevance: np.ndarray) -> dict[str, Any]:
    """How estimates on the raters' 1-3 scale agree with their averages: the correlations and the RMSE."""
    return {**correlation(estimate, relevance), "rmse": float(np.sqrt(np.mean((estimate - relevance) ** 2)))}


def second_stage_pairs(searcher: Searcher, pairs: pd.DataFrame) -> dict[str, Any]:
    """The reference metric for the cross-encoder's logit ("reranker_pairs") and, when the index has a fitted one,
    for the relevance estimate on the 1-3 scale ("relevance_pairs", with its RMSE against the raters' average;
    otherwise "relevance_unavailable" says why)."""
    rows, relevance, _ = pair_rows(searcher, pairs)
    out = {"reranker_pairs": correlation(rows[:, FEATURES.index("cross_encoder")], relevance)}
    try:
        model = searcher.relevance_model
    except SearchkitError as exc:
        return {**out, "relevance_unavailable": str(exc)}
    out["relevance_pairs"] = agreement(model.predict(rows), relevance)
    return out


def query_gains(pairs: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Each query's NDCG gains over its rated products: {product id: relevance - 1}."""
    return {q: dict(zip(map(str, g["product_id"]), g["relevance"] - 1.0, strict=True))
            for q, g in pairs.groupby("query")}


def query_relevant(pairs: pd.DataFrame) -> dict[str, set[str]]:
    """Each query's relevant products (rated >= RELEVANT), for MRR and recall."""
    return {q: set(g.loc[g["relevance"] >= RELEVANT, "product_id"]) for q, g in pairs.groupby("query")}


def query_metrics(searcher: Searcher, pairs: pd.DataFrame, mode: Mode, batch: int = 256) -> pd.DataFrame:
    """One row per query (sorted; the index is the query) of the retrieval metrics over the whole catalog."""
    queries = sorted(query_gains(pairs))
    rankings = {}
    for start in range(0, len(queries), batch):
        chunk = queries[start:start + batch]
        for query, hits in zip(chunk, searcher.search_batch(chunk, k=100, mode=mode), strict=True):
            rankings[query] = [h.product_id for h in hits]
    return ranked_metrics(rankings, pairs)


def ranked_metrics(rankings: dict[str, list[str]], pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per query of `pairs` (sorted; the index is the query) of the retrieval metrics of its ranked product
    ids (any engine's: `rankings` maps each query to its top 100, best first)."""
    gains = query_gains(pairs)
    relevant = query_relevant(pairs)
    queries = sorted(gains)
    rows = []
    for query in queries:
        ranked = rankings[query]
        rows.append({
            "ndcg@10": ndcg_at_k(ranked, gains[query], 10),
            "mrr@10": mrr_at_k(ranked, relevant[query], 10),
            "recall@10": recall_at_k(ranked, relevant[query], 10) if relevant[query] else np.nan,
            "recall@100": recall_at_k(ranked, relevant[query], 100) if relevant[query] else np.nan,
            "ndcg@10_judged": judged_ndcg_at_k(ranked, gains[query], 10),
            "judged@10": judged_at_k(ranked, gains[query], 10),
        })
    return pd.DataFrame(rows, index=pd.Index(queries, name="query"))


def retrieval(searcher: Searcher, pairs: pd.DataFrame, mode: Mode, batch: int = 256) -> dict[str, float]:
    frame = query_metrics(searcher, pairs, mode, batch)
    return {**{m: float(frame[m].mean()) for m in frame.columns}, "queries": len(frame)}
