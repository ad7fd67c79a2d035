"""Which rated pairs an evaluation reads: the split no model learnt from, sampled queries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.catalog import PairFormat, read_pairs
from ..data.splits import SplitConfig, query_key, query_split, split_pairs
from ..errors import CatalogError, SearchkitError
from ..models.encoder import repo_root


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
