"""What a cheaper step saves a warm search, measured paired: each test-split query is searched with each variant in
turn, in one process, so the machine's drift falls on all alike, in an order rotated per query (common.turns).
Variants: HNSW efSearch values (--ef 128,64), or --cosines: the candidates' cosines gathered into a copy (numpy)
against read in place (Retriever.cosines).

    python research/paired_effort.py --index indexes/homedepot --ef 128,64 [--mode hybrid] [--queries 300]
    python research/paired_effort.py --index indexes/homedepot --cosines

Prints each variant's p50 and the median of the per-query differences to the first, whether every query's top 10
was the same, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from common import command, machine, test_queries, turns  # noqa: E402

from searchkit import Searcher, set_search_threads  # noqa: E402
from searchkit.search.retrieval import Retriever  # noqa: E402

IN_PLACE = Retriever.cosines


def gathered(self: Retriever, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The previous release's cosines: the rows' vectors copied out, then multiplied."""
    if len(rows) == 0 or self.vectors is None:
        return IN_PLACE(self, vector, rows)
    return self.vectors[np.asarray(rows, dtype=np.int64)] @ vector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("indexes/homedepot"))
    parser.add_argument("--ef", default="128,64")
    parser.add_argument("--cosines", action="store_true", help="compare the two cosine paths instead of efSearch")
    parser.add_argument("--mode", default="hybrid")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    set_search_threads(1)
    searcher = Searcher.from_dir(args.index)
    searcher.cache_size = 0  # every search embeds its query
    hnsw = searcher.retriever.index.hnsw
    variants: dict[str, Callable[[], None]] = {}
    if args.cosines:
        variants["cosines gathered"] = lambda: setattr(Retriever, "cosines", gathered)
        variants["cosines in place"] = lambda: setattr(Retriever, "cosines", IN_PLACE)
    else:
        for value in (int(v) for v in args.ef.split(",")):
            variants[f"efSearch {value}"] = lambda value=value: setattr(hnsw, "efSearch", value)
    queries = test_queries(n=args.queries)
    for q in queries[:30]:
        searcher.search(q, k=10, mode=args.mode)
    times: dict[str, list[float]] = {name: [] for name in variants}
    tops: dict[str, list[list[str]]] = {name: [] for name in variants}
    for round_ in range(args.rounds):
        for i, q in enumerate(queries):
            for name in turns(list(variants), i, round_):
                variants[name]()
                started = time.perf_counter()
                hits = searcher.search(q, k=10, mode=args.mode)
                times[name].append((time.perf_counter() - started) * 1000)
                tops[name].append([h.product_id for h in hits])
    Retriever.cosines = IN_PLACE  # type: ignore[method-assign]
    names = list(variants)
    first = np.array(times[names[0]])
    result = {"machine": machine(), "command": command(), "mode": args.mode, "queries": len(queries),
              "rounds": args.rounds, "p50_ms": {n: round(float(np.median(times[n])), 3) for n in names},
              "median_difference_ms": {n: round(float(np.median(np.array(times[n]) - first)), 3) for n in names[1:]},
              "same_top10": {n: float(np.mean([a == b for a, b in zip(tops[n], tops[names[0]], strict=True)]))
                             for n in names[1:]}}
    for n in names:
        extra = (f"  (paired median difference {result['median_difference_ms'][n]:+.3f} ms, same top 10 for "
                 f"{result['same_top10'][n]:.1%} of searches)") if n != names[0] else ""
        print(f"{n:18}: p50 {result['p50_ms'][n]:.3f} ms{extra}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
