"""How large a product type may be and still get hybrid's third candidate list (searchkit.data.intent.TYPE_LEG_LIMIT):
validation NDCG@10 of k = 10 searches, product@10 on both shops' type sets, and the warm search time against the
first limit, paired query by query in one process.

    python research/type_list_limit.py --limits 600,400,300,200,100,0 [--rounds 3]

Prints a table and one JSON line. A limit of 0 gives no list at all.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_intent import load_queries, product_at_10  # noqa: E402
from common import command, machine, test_queries, turns  # noqa: E402

from searchkit import Searcher, set_search_threads  # noqa: E402
from searchkit.data import intent  # noqa: E402
from searchkit.data.catalog import read_pairs  # noqa: E402
from searchkit.eval.metrics import ndcg_at_k  # noqa: E402
from searchkit.eval.selection import EvalConfig, select_pairs  # noqa: E402

ROWS_OF = intent.ProductTypes.rows_of


def use_limit(limit: int) -> None:
    intent.ProductTypes.rows_of = lambda self, query, _=None: ROWS_OF(self, query, limit)  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("indexes/homedepot"))
    parser.add_argument("--petshop", type=Path, default=Path("indexes/petshop"))
    parser.add_argument("--pairs", type=Path, default=Path("catalog/homedepot-pairs.parquet"))
    parser.add_argument("--limits", default="600,400,300,200,100,0")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    set_search_threads(1)
    limits = [int(x) for x in args.limits.split(",")]
    searcher, pets = Searcher.from_dir(args.index), Searcher.from_dir(args.petshop)
    searcher.cache_size = 0
    val = select_pairs(read_pairs(args.pairs), EvalConfig(split="val"))
    gains = {q: dict(zip(g["product_id"].astype(str), g["relevance"], strict=True)) for q, g in val.groupby("query")}
    rows = []
    for limit in limits:
        use_limit(limit)
        ndcg = np.mean([ndcg_at_k([h.product_id for h in searcher.search(q, k=10)], gains[q]) for q in sorted(gains)])
        home = np.mean(list(product_at_10(searcher, load_queries("homedepot"), "hybrid").values()))
        pet = np.mean(list(product_at_10(pets, load_queries("petshop"), "hybrid").values()))
        rows.append({"limit": limit, "val_ndcg@10": round(float(ndcg), 4), "product@10_homedepot": round(float(home), 4),
                     "product@10_petshop": round(float(pet), 4)})
    queries = test_queries(n=300)
    times: dict[int, list[float]] = {limit: [] for limit in limits}
    for round_ in range(args.rounds):
        for i, q in enumerate(queries):
            for limit in turns(list(limits), i, round_):
                use_limit(limit)
                started = time.perf_counter()
                searcher.search(q, k=10)
                times[limit].append((time.perf_counter() - started) * 1000)
    use_limit(intent.TYPE_LEG_LIMIT)
    first = np.array(times[limits[0]])
    print(f"{'limit':>6} {'val NDCG@10':>12} {'product@10 HD':>14} {'product@10 pets':>16} {'p50 ms':>7} {'paired diff':>12}")
    for row in rows:
        t = np.array(times[row["limit"]])
        row.update(p50_ms=round(float(np.median(t)), 3), paired_difference_ms=round(float(np.median(t - first)), 3))
        print(f"{row['limit']:>6} {row['val_ndcg@10']:>12.4f} {row['product@10_homedepot']:>14.4f} "
              f"{row['product@10_petshop']:>16.4f} {row['p50_ms']:>7.3f} {row['paired_difference_ms']:>+12.3f}")
    print(json.dumps({"machine": machine(), "command": command(), "rounds": args.rounds, "rows": rows}))


if __name__ == "__main__":
    main()
