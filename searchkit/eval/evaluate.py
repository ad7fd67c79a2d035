"""Measure an index against rated pairs: the reference metric (Spearman/Pearson of cosine vs label over pairs) and
retrieval over the whole catalog (NDCG@10 with gains relevance-1, MRR@10, Recall@10/100 of relevant products) for
the dense, lexical (BM25) and hybrid modes, on the same queries; with a reranker, mode "rerank" and the same pair
metrics for the cross-encoder and the relevance estimate (searchkit.search.relevance)."""

from __future__ import annotations

import pandas as pd

from ..errors import CatalogError
from ..search.results import Mode
from ..search.searcher import Searcher
from .measure import pair_correlation, retrieval, second_stage_pairs
from .selection import EvalConfig, select_pairs


def evaluate(searcher: Searcher, pairs: pd.DataFrame, config: EvalConfig = EvalConfig()) -> dict:
    chosen = select_pairs(pairs, config)
    unknown = sorted(set(chosen["product_id"]) - set(searcher.products["product_id"].astype(str)))
    if unknown:
        raise CatalogError(f"{len(unknown)} rated products are not in the index, e.g. {unknown[:3]}")
    modes = config.modes or searcher.modes
    report = {
        "index": {"model": searcher.manifest.model.name, "rows": searcher.manifest.rows,
                  "built_at": searcher.manifest.built_at},
        "split": config.split,
        "queries": int(chosen["query"].nunique()),
        "pairs": pair_correlation(searcher, chosen),
        "retrieval": {mode: retrieval(searcher, chosen, Mode(mode), config.batch) for mode in modes},
    }
    if Mode.RERANK in modes:
        report.update(second_stage_pairs(searcher, chosen))
    return report


