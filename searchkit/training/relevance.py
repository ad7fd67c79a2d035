"""Fit the relevance estimate (searchkit.search.relevance) of an index on rated pairs and keep it with its reranker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.catalog import PairFormat, read_pairs
from ..errors import IndexMismatchError, ModelError
from ..eval.measure import agreement, correlation, pair_rows
from ..eval.selection import EvalConfig, select_pairs
from ..models.cross_encoder import fingerprint, write_relevance
from ..search.relevance import FEATURES, GRADER, RelevanceModel, cross_validated, feature_names, fit
from ..search.searcher import Searcher


@dataclass(frozen=True)
class RelevanceFitConfig:
    index: Path  # an index with BM25 and a reranker
    pairs: Path  # rated pairs (query, product_id, relevance)
    split: str = "val"  # which query split of them to fit on (val: queries neither model was trained on)
    seed: int = 42  # split seed, as in training
    reranker: Path | None = None  # the reranker folder to keep the fit in (None: the one the index was built from)
    pair_format: PairFormat | None = None  # how the pairs file names its columns and grades (None: canonical)


def fit_relevance(config: RelevanceFitConfig) -> tuple[Path, dict[str, Any]]:
    """Fit the relevance estimate of an index on rated pairs and store it with the reranker the index was built
    from (its reranker.json); returns that file and a report (Spearman/Pearson/RMSE in sample and 5-fold
    cross-validated by query, and the cosine's and cross-encoder's own). Rebuild the index to use the fit."""
    searcher = Searcher.from_dir(config.index, encode_threads=None)
    parts = searcher.relevance_parts()
    if not parts[2]:
        raise ModelError(f"{config.index}: the index has no reranker; relevance is fitted on its cross-encoder")
    folder = Path(config.reranker or (searcher.manifest.model.reranker or {}).get("source", ""))
    if not folder.is_dir():
        raise ModelError(f"{folder}: the reranker {config.index} was built from is not here; give its folder")
    if fingerprint(folder) != parts[2]:
        raise IndexMismatchError(f"{folder}: not the reranker {config.index} holds; rebuild the index from it first")
    pairs = select_pairs(read_pairs(config.pairs, config.pair_format or PairFormat()),
                         EvalConfig(split=config.split, seed=config.seed))
    rows, relevance, queries = pair_rows(searcher, pairs)
    weights, intercept = fit(rows, relevance)
    model = RelevanceModel(weights, intercept, *parts[:3], embedder_text=parts[3],
                           fitted_on=f"{config.split} split (seed {config.seed}) of {config.pairs}: "
                                     f"{len(rows)} pairs, {len(set(queries))} queries",
                           features=feature_names(rows.shape[1] > len(FEATURES)))
    report = {"pairs": len(rows), "queries": len(set(queries)), "in_sample": agreement(model.predict(rows), relevance),
              "cross_validated": agreement(cross_validated(rows, relevance, queries), relevance),
              **{name: correlation(rows[:, model.features.index(name)], relevance)
                 for name in ("cosine", "cross_encoder", GRADER) if name in model.features}}
    return write_relevance(folder, {**model.to_dict(), "report": report}), report
