"""Measure an index against rated pairs: the reference metric (Spearman/Pearson of cosine vs label over pairs) and
retrieval over the whole catalog (NDCG@10 with gains relevance-1, MRR@10, Recall@10/100 of relevant products) for
the dense, lexical (BM25) and hybrid modes, on the same queries; with a reranker, mode "rerank" and the same pair
metrics for the cross-encoder and the relevance estimate (searchkit.relevance)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from . import store
from .ann import ExactIndex
from .catalog import ColumnMap, PairFormat, read_catalog, read_pairs
from .encoder import Encoder, load_encoder, repo_root
from .errors import CatalogError, SearchkitError
from .index import catalog_batch, keyword_texts, library_versions, normalise_catalog, text_record
from .intent import ProductTypes
from .lexical import BM25_B, BM25_K1, LexicalIndex
from .loading import model_words
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
from .relevance import FEATURES
from .search import Searcher
from .spell import SpellCorrector
from .splits import SplitConfig, query_key, query_split, split_pairs
from .text import KEYWORD_TEXT


@dataclass(frozen=True)
class EvalConfig:
    split: str = "test"  # train | val | test | all
    modes: tuple[str, ...] | None = None  # None: every mode the searcher can run (rerank only with a reranker)
    seed: int = 42
    max_queries: int | None = None
    batch: int = 256


def training_files(card: dict, bundled: Iterable[Path]) -> list[tuple[Path, PairFormat]]:
    """The pairs files a model learnt from and was tuned on, as far as this machine has them: the one its card
    (searchkit.json) names, and the bundled pairs (the shipped reranker and relevance fit learnt from those)."""
    data = card.get("data") or {}
    named = [(Path(data["pairs"]), PairFormat.from_dict(data.get("pair_format") or {}))] if "pairs" in data else []
    found: list[tuple[Path, PairFormat]] = []
    for path, form in [*named, *((Path(b), PairFormat()) for b in bundled)]:
        # a card's relative path was relative to where training ran: here, or the checkout the package sits in
        for where in (path,) if path.is_absolute() else (path, repo_root() / path):
            if where.is_file() and all(where.resolve() != p.resolve() for p, _ in found):
                found.append((where, form))
                break
    return found


def check_query_split(card: dict, model: str) -> None:
    """Refuse a model trained on a random pair split (`[split] by = "pair"` in `searchkit train`'s config): every
    split by query of its pairs holds pairs it learnt from, so measuring it here would flatter it."""
    if (card.get("split") or {}).get("by", "query") != "query":
        raise SearchkitError(f"model {model} was trained on a random pair split (its searchkit.json: split by "
                             f"{card['split']['by']}), so every query split of its pairs holds pairs it learnt from; "
                             "measure it with research/reproduce_card.py")


def choose_split(pairs: pd.DataFrame, learnt_from: list[tuple[Path, PairFormat]], seed: int) -> tuple[str, str]:
    """`--split auto`: "test" when PAIRS shares a query with the training or validation split of a file the models
    learnt from or were tuned on (measuring those queries would flatter them), else "all" of PAIRS. Returns the split
    and the reason, in words."""
    asked = {query_key(q) for q in pairs["query"]}
    split = SplitConfig(seed=seed)
    for path, form in learnt_from:
        seen = {query_key(q) for q in set(read_pairs(path, form)["query"]) if query_split(q, split) != "test"}
        shared = len(asked & seen)
        if shared:
            return "test", (f"{shared} of its {len(asked)} queries are in the training or validation split (seed "
                            f"{seed}) of {path}, which the models learnt from: measuring its test split")
    checked = ", ".join(str(p) for p, _ in learnt_from) or "no training pairs file found on this machine"
    return "all", f"none of its {len(asked)} queries were trained or tuned on ({checked}): measuring all of them"


def sample(items: list[str], size: int, seed: int) -> list[str]:
    """A seeded random sample of `size` items, in their order (all of them when there are no more)."""
    if len(items) <= size:
        return list(items)
    return [items[i] for i in np.sort(np.random.default_rng(seed).choice(len(items), size, replace=False))]


def select_pairs(pairs: pd.DataFrame, config: EvalConfig) -> pd.DataFrame:
    if config.split == "all":
        chosen = pairs
    else:
        chosen = split_pairs(pairs, SplitConfig(seed=config.seed))[config.split]
    if config.max_queries:
        # a seeded random sample: the alphabetical first N would be mostly queries that start with a digit
        chosen = chosen[chosen["query"].isin(sample(sorted(set(chosen["query"])), config.max_queries, config.seed))]
    if chosen.empty:
        raise CatalogError(f"no rated pairs in split {config.split!r}")
    return chosen.reset_index(drop=True)


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


def correlation(scores: np.ndarray, relevance: np.ndarray) -> dict[str, float]:
    labels = (np.asarray(relevance, dtype=float) - 1) / 2
    return {"spearman": spearman(scores, labels), "pearson": pearson(scores, labels), "pairs": len(labels)}


def agreement(estimate: np.ndarray, relevance: np.ndarray) -> dict[str, float]:
    """How estimates on the raters' 1-3 scale agree with their averages: the correlations and the RMSE."""
    return {**correlation(estimate, relevance), "rmse": float(np.sqrt(np.mean((estimate - relevance) ** 2)))}


def second_stage_pairs(searcher: Searcher, pairs: pd.DataFrame) -> dict[str, dict[str, float]]:
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


def query_metrics(searcher: Searcher, pairs: pd.DataFrame, mode: str, batch: int = 256) -> pd.DataFrame:
    """One row per query (sorted; the index is the query) of the retrieval metrics over the whole catalog."""
    gains = query_gains(pairs)
    relevant = query_relevant(pairs)
    queries = sorted(gains)
    rows = []
    for start in range(0, len(queries), batch):
        chunk = queries[start:start + batch]
        for query, hits in zip(chunk, searcher.search_batch(chunk, k=100, mode=mode), strict=True):
            ranked = [h.product_id for h in hits]
            rows.append({
                "ndcg@10": ndcg_at_k(ranked, gains[query], 10),
                "mrr@10": mrr_at_k(ranked, relevant[query], 10),
                "recall@10": recall_at_k(ranked, relevant[query], 10) if relevant[query] else np.nan,
                "recall@100": recall_at_k(ranked, relevant[query], 100) if relevant[query] else np.nan,
                "ndcg@10_judged": judged_ndcg_at_k(ranked, gains[query], 10),
                "judged@10": judged_at_k(ranked, gains[query], 10),
            })
    return pd.DataFrame(rows, index=pd.Index(queries, name="query"))


def retrieval(searcher: Searcher, pairs: pd.DataFrame, mode: str, batch: int = 256) -> dict[str, float]:
    frame = query_metrics(searcher, pairs, mode, batch)
    return {**{m: float(frame[m].mean()) for m in frame.columns}, "queries": len(frame)}


def evaluate(searcher: Searcher, pairs: pd.DataFrame, config: EvalConfig = EvalConfig()) -> dict:
    chosen = select_pairs(pairs, config)
    unknown = sorted(set(chosen["product_id"]) - set(searcher.products["product_id"].astype(str)))
    if unknown:
        raise CatalogError(f"{len(unknown)} rated products are not in the index, e.g. {unknown[:3]}")
    modes = config.modes or searcher.modes
    report = {
        "index": {"model": searcher.manifest.model.get("name"), "rows": searcher.manifest.rows,
                  "built_at": searcher.manifest.built_at},
        "split": config.split,
        "queries": int(chosen["query"].nunique()),
        "pairs": pair_correlation(searcher, chosen),
        "retrieval": {mode: retrieval(searcher, chosen, mode, config.batch) for mode in modes},
    }
    if "rerank" in modes:
        report.update(second_stage_pairs(searcher, chosen))
    return report


def in_memory_searcher(catalog_path: str | Path, model: str | Path | None = None, device: str | None = None,
                       batch_size: int = 256, columns: ColumnMap = ColumnMap(), encoder: Encoder | None = None,
                       keyword_text: int = KEYWORD_TEXT):
    """A Searcher over `catalog_path` held in memory, with exact dense search and no files written: for measuring
    a model (e.g. during training sweeps, or on a machine without faiss) exactly as build_index + Searcher would
    normalise, embed and rank, minus the ANN approximation and the ONNX graphs (the catalog is embedded by torch in
    fp32, as `bulk = "torch"` builds it)."""
    started = time.perf_counter()
    products = read_catalog(catalog_path, columns)
    encoder = encoder or load_encoder(model, device=device)
    normaliser, stemmer, texts = normalise_catalog(products, encoder.info.text, keyword_text)
    vectors = encoder.encode(texts, batch_size=catalog_batch(encoder, batch_size))
    manifest = store.Manifest(
        format_version=store.FORMAT_VERSION, searchkit_version="in-memory",
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), rows=len(products),
        dimension=encoder.info.dimension, metric="cosine (inner product of unit vectors)",
        model={"name": encoder.info.name, "fingerprint": encoder.info.fingerprint, "source": encoder.info.path},
        index={"type": "exact (in memory)", "bm25": {"k1": BM25_K1, "b": BM25_B, "text": keyword_text}},
        catalog={"path": str(catalog_path)},
        text=encoder.info.text.to_dict(), libraries=library_versions(),
        device=f"encode: torch {getattr(encoder, 'device', 'cpu')}",
        build_seconds=round(time.perf_counter() - started, 2))
    record = text_record(products, normaliser, stemmer)
    return Searcher(ExactIndex(vectors), products, encoder, manifest, normaliser,
                    LexicalIndex.build(keyword_texts(products, normaliser, texts)),
                    SpellCorrector(record["vocab"], dictionary=lambda: model_words(Path(encoder.info.path)),
                                   stem=normaliser.stemmer), types=ProductTypes(record["types"]))
