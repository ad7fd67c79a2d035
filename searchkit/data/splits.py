"""Seeded split of rated pairs by query: no query is in two parts, so held-out queries are truly unseen.

A split by pair (`by="pair"`) also exists, only to reproduce figures measured that way (the reference model card's
Spearman was on a random pair split): the same query then lands in several parts, so its held-out pairs flatter a
model that trained on that query's other pairs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd

from ..errors import SearchkitError

SPLITS = ("train", "val", "test")
SPLIT_BY = ("query", "pair")


@dataclass(frozen=True)
class SplitConfig:
    seed: int = 42
    val_fraction: float = 0.1
    test_fraction: float = 0.1  # "test" is the held-out slice: never trained or tuned on
    by: str = "query"  # "pair": a random pair split, for reproducing figures measured that way (queries leak)

    def __post_init__(self) -> None:
        if self.by not in SPLIT_BY:
            raise SearchkitError(f"split by {self.by!r}: choose from {SPLIT_BY}")


def query_key(query: str) -> str:
    """What makes two queries the same query for splitting: " Swag Light Kit " is "swag light kit"."""
    return query.strip().lower()


def _part(key: str, config: SplitConfig) -> str:
    digest = hashlib.sha256(f"{config.seed}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < config.test_fraction:
        return "test"
    if u < config.test_fraction + config.val_fraction:
        return "val"
    return "train"


def query_split(query: str, config: SplitConfig = SplitConfig()) -> str:
    """The part a query belongs to, from a seeded hash of its text (stable across runs, files and machines)."""
    return _part(query_key(query), config)


def pair_split(query: str, product_id: str, config: SplitConfig) -> str:
    """The part one rated pair belongs to under a split by pair (a seeded hash of the query and the product)."""
    return _part(f"{query_key(query)}\t{product_id}", config)


def split_pairs(pairs: pd.DataFrame, config: SplitConfig = SplitConfig()) -> dict[str, pd.DataFrame]:
    if config.by == "pair":
        parts = pd.Series([pair_split(q, str(p), config) for q, p in zip(pairs["query"], pairs["product_id"],
                                                                          strict=True)], index=pairs.index)
    else:
        parts = pairs["query"].map(lambda q: query_split(q, config))
    return {name: pairs[parts == name].reset_index(drop=True) for name in SPLITS}
