"""How far each mode stands above BM25, the issue's baseline, with an interval: on held-out and on trained queries.

    python research/margin_over_bm25.py [--index indexes/homedepot] [--splits test,train] [--max-queries 1028]
                                          [--modes dense,hybrid,rerank] [--target 0.10] [--resamples 2000]

Per split and mode: NDCG@10 less BM25's NDCG@10 on the same queries, the 95% bootstrap interval of that difference
(queries drawn with replacement) and where the target margin lies against it. The training split holds queries the
embedder and the cross-encoder learnt from (a seeded sample of --max-queries of them, as `searchkit evaluate
--max-queries` draws it): what the models give on queries they have seen bounds what they give on new ones, so a
target out of reach there is not missing for want of generalisation. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from searchkit import Searcher
from searchkit.data.catalog import read_pairs
from searchkit.eval.measure import query_metrics
from searchkit.eval.metrics import paired_bootstrap
from searchkit.eval.selection import EvalConfig, select_pairs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # common.py
from common import command, machine  # noqa: E402


def verdict(interval: dict, target: float) -> str:
    if interval["low"] >= target:
        return "reached"
    if interval["high"] < target:
        return "out of reach (above the interval)"
    return "inside the interval"


def measure_split(searcher: Searcher, pairs, modes: list[str], target: float, resamples: int) -> dict:
    started = time.perf_counter()
    ndcg = {mode: query_metrics(searcher, pairs, mode)["ndcg@10"] for mode in ["lexical", *modes]}
    margins = {mode: paired_bootstrap(ndcg["lexical"], ndcg[mode], resamples=resamples) for mode in modes}
    for interval in margins.values():
        interval["target"] = verdict(interval, target)
    return {"queries": int(pairs["query"].nunique()), "pairs": len(pairs),
            "ndcg@10": {mode: round(float(values.mean()), 4) for mode, values in ndcg.items()},
            "margin": margins, "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("indexes/homedepot"))
    parser.add_argument("--pairs", type=Path, default=Path("catalog/homedepot-pairs.parquet"))
    parser.add_argument("--splits", default="test,train", help="comma-separated: test, val, train")
    parser.add_argument("--max-queries", type=int, default=1028, help="at most this many queries a split (seeded)")
    parser.add_argument("--modes", default="dense,hybrid,rerank")
    parser.add_argument("--target", type=float, default=0.10, help="the margin over BM25 the issue asks for")
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args()
    searcher = Searcher.from_dir(args.index)
    modes = [m for m in args.modes.split(",") if m]
    missing = [m for m in modes if m not in searcher.modes]
    if missing:
        parser.error(f"{args.index}: cannot run mode(s) {', '.join(missing)} (it has {', '.join(searcher.modes)})")
    rated = read_pairs(args.pairs)
    splits = {}
    for split in args.splits.split(","):
        pairs = select_pairs(rated, EvalConfig(split=split, max_queries=args.max_queries))
        splits[split] = measure_split(searcher, pairs, modes, args.target, args.resamples)
        print(f"{split}: measured in {splits[split]['seconds']} s", file=sys.stderr, flush=True)

    print(f"NDCG@10 less BM25's on the same queries, 95% interval; target +{args.target:.2f}")
    print(f"| split (queries) | BM25 | {' | '.join(modes)} |")
    print(f"| --- | --- | {' | '.join('---' for _ in modes)} |")
    for split, s in splits.items():
        cells = [f"{s['ndcg@10'][m]:.4f}: {s['margin'][m]['difference']:+.4f} "
                 f"[{s['margin'][m]['low']:+.4f}, {s['margin'][m]['high']:+.4f}]" for m in modes]
        print(f"| {split} ({s['queries']}) | {s['ndcg@10']['lexical']:.4f} | {' | '.join(cells)} |")
    print(json.dumps({"benchmark": "margin_over_bm25", "index": str(args.index), "target": args.target,
                      "max_queries": args.max_queries, "resamples": args.resamples, "splits": splits,
                      "machine": machine(), "command": command()}))


if __name__ == "__main__":
    sys.exit(main())
