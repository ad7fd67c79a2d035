"""Seeded split of rated pairs by query: no query is in two parts, so held-out queries are truly unseen."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitConfig:
    seed: int = 42
    val_fraction: float = 0.1
    test_fraction: float = 0.1  # "test" is the held-out slice: never trained or tuned on


def query_key(query: str) -> str:
    """What makes two queries the same query for splitting: " Swag Light Kit " is "swag light kit"."""
    return query.strip().lower()


def query_split(query: str, config: SplitConfig = SplitConfig()) -> str:
    """The part a query belongs to, from a seeded hash of its text (stable across runs, files and machines)."""
    digest = hashlib.sha256(f"{config.seed}:{query_key(query)}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < config.test_fraction:
        return "test"
    if u < config.test_fraction + config.val_fraction:
        return "val"
    return "train"


def split_pairs(pairs: pd.DataFrame, config: SplitConfig = SplitConfig()) -> dict[str, pd.DataFrame]:
    parts = pairs["query"].map(lambda q: query_split(q, config))
    return {name: pairs[parts == name].reset_index(drop=True) for name in SPLITS}
