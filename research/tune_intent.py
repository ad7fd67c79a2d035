"""Choose hybrid's type and coverage weights (searchkit.search.retrieval.Fusion) on the validation split, beside the share of
the product asked for on the product-type set (benchmarks/sets/product-types.toml). Never the test split.

    python research/tune_intent.py --index indexes/homedepot [--split val] [--types 0,0.1,0.2] [--covers 0,0.1]

Prints NDCG@10 (whole catalog and judged only) and product@10 per setting, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_intent import load_queries, product_at_10  # noqa: E402

from searchkit import Searcher  # noqa: E402
from searchkit.data.catalog import read_pairs  # noqa: E402
from searchkit.eval.measure import retrieval  # noqa: E402
from searchkit.eval.selection import EvalConfig, select_pairs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("indexes/homedepot"))
    parser.add_argument("--pairs", type=Path, default=Path("catalog/homedepot-pairs.parquet"))
    parser.add_argument("--split", default="val")
    parser.add_argument("--types", default="0,0.05,0.1,0.15,0.2,0.3")
    parser.add_argument("--covers", default="0,0.05,0.1,0.2")
    parser.add_argument("--mode", default="hybrid")
    args = parser.parse_args()
    searcher = Searcher.from_dir(args.index)
    pairs = select_pairs(read_pairs(args.pairs), EvalConfig(split=args.split))
    entries = load_queries("homedepot")
    base = searcher.fusion
    rows = []
    for t in map(float, args.types.split(",")):
        for c in map(float, args.covers.split(",")):
            searcher.fusion = replace(base, type_weight=t, cover_weight=c)
            scores = product_at_10(searcher, entries, args.mode)
            metrics = retrieval(searcher, pairs, args.mode)
            rows.append({"type_weight": t, "cover_weight": c, "ndcg@10": metrics["ndcg@10"],
                         "judged_ndcg@10": metrics.get("ndcg@10_judged"),
                         "product@10": sum(scores.values()) / len(scores)})
            r = rows[-1]
            print(f"type {t:5.2f} cover {c:5.2f}  ndcg@10 {r['ndcg@10']:.4f}  judged {r['judged_ndcg@10'] or 0:.4f}  "
                  f"product@10 {r['product@10']:.3f}", flush=True)
    print(json.dumps({"benchmark": "intent-weights", "index": str(args.index), "split": args.split,
                      "mode": args.mode, "command": " ".join(sys.argv), "rows": rows}))


if __name__ == "__main__":
    main()
