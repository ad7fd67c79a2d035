"""What every benchmark reports alongside its figures: the machine, the command, latency percentiles, peak memory."""

from __future__ import annotations

import os
import platform
import resource
import sys
from pathlib import Path

import numpy as np


def machine() -> str:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    return f"{platform.node()} {platform.machine()} {cpu}, {os.cpu_count()} cpus, {platform.python_version()}"


def command() -> str:
    return " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])


def percentiles(times_ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(float(np.percentile(times_ms, 50)), 3),
            "p99_ms": round(float(np.percentile(times_ms, 99)), 3)}


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory of this process (VmHWM: its own, unlike ru_maxrss, which a child started by fork and
    exec inherits from its parent) or of its finished children, in MiB."""
    if children:
        return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    return _status_mb("VmHWM")


def rss_mb() -> float:
    """Resident memory of this process now, in MiB."""
    return _status_mb("VmRSS")


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def folder_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 2**20, 1)


def _split_queries(pairs: Path) -> dict[str, set[str]]:
    """Each split's distinct queries (split by query, seed 42)."""
    import pyarrow.parquet as pq

    from searchkit.data.splits import SplitConfig, split_pairs

    return {name: set(part["query"]) for name, part in split_pairs(pq.read_table(pairs).to_pandas(),
                                                                   SplitConfig()).items()}


def test_queries(pairs: Path = Path("catalog/homedepot-pairs.parquet"), n: int = 300, seed: int = 0) -> list[str]:
    """Distinct real shopper queries: a seeded sample of the held-out test split (split by query, seed 42)."""
    return _split_sample(pairs, "test", n, seed)


def earlier_queries(pairs: Path = Path("catalog/homedepot-pairs.parquet"), n: int = 1000, seed: int = 0) -> list[str]:
    """Distinct real shopper queries of the training split (none of test_queries'): what a running server answered
    before the queries a benchmark times."""
    return _split_sample(pairs, "train", n, seed)


def _split_sample(pairs: Path, split: str, n: int, seed: int) -> list[str]:
    """A seeded sample of n of one split's distinct queries (all of them when it has fewer)."""
    import random

    queries = sorted(_split_queries(pairs)[split])
    return random.Random(seed).sample(queries, min(n, len(queries)))


def shopper_queries(n: int, pairs: Path = Path("catalog/homedepot-pairs.parquet"), seed: int = 0) -> list[str]:
    """n distinct real shopper queries for a load test: the test split's first (sampled as test_queries does), then
    the validation and training splits' (timing tunes nothing); refused when the file has fewer than n."""
    import random

    splits = _split_queries(pairs)
    out: list[str] = []
    for split in ("test", "val", "train"):
        rest = sorted(splits[split] - set(out))
        out += random.Random(seed).sample(rest, min(n - len(out), len(rest)))
    if len(out) < n:
        raise SystemExit(f"{pairs}: {len(out)} distinct queries, fewer than the {n} asked for")
    return out


POPULARITY_EXPONENT = 0.8  # a shop's query popularity: the query of rank r is searched in proportion to 1 / r ** 0.8


def popular_draws(items: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """`size` ranks in 0..items-1, each drawn with a Zipf popularity (weight 1 / (rank + 1) ** POPULARITY_EXPONENT):
    what shoppers search, head queries again and again."""
    popularity = 1.0 / np.arange(1, items + 1) ** POPULARITY_EXPONENT
    return rng.choice(items, size=size, p=popularity / popularity.sum())


def turns(variants: list, query: int, round_: int = 0) -> list:
    """The order to run `variants` in for one query: rotated by query and round, so that no variant is always the
    first to search a query (the first search of a query reads its postings and rows into the CPU's caches, and ran
    measurably slower than the variants after it)."""
    shift = (query + round_) % len(variants) if variants else 0
    return variants[shift:] + variants[:shift]
