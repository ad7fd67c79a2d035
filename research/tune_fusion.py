"""Choose hybrid fusion by measurement on the validation split (never the held-out test split).

    python research/tune_fusion.py --index indexes/homedepot [--split val]

Prints NDCG@10 / MRR@10 for dense, lexical, RRF and weighted fusion at several alphas, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from searchkit import Searcher
from searchkit.data.catalog import read_pairs
from searchkit.eval.measure import retrieval
from searchkit.eval.selection import EvalConfig, select_pairs
from searchkit.search.retrieval import Fusion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("indexes/homedepot"))
    parser.add_argument("--pairs", type=Path, default=Path("catalog/homedepot-pairs.parquet"))
    parser.add_argument("--split", default="val")
    parser.add_argument("--alphas", default="0.3,0.4,0.5,0.6,0.7,0.8")
    args = parser.parse_args()
    searcher = Searcher.from_dir(args.index)
    pairs = select_pairs(read_pairs(args.pairs), EvalConfig(split=args.split))
    rows = []
    for mode in ("dense", "lexical"):
        rows.append({"setting": mode, **retrieval(searcher, pairs, mode)})
    for fusion in [Fusion("rrf")] + [Fusion("weighted", alpha=float(a)) for a in args.alphas.split(",")]:
        searcher.fusion = fusion
        label = "rrf" if fusion.method == "rrf" else f"weighted a={fusion.alpha}"
        rows.append({"setting": label, **retrieval(searcher, pairs, "hybrid")})
    print(f"{'setting':<18} {'ndcg@10':>8} {'mrr@10':>8} {'r@10':>8} {'r@100':>8}")
    for r in rows:
        print(f"{r['setting']:<18} {r['ndcg@10']:8.4f} {r['mrr@10']:8.4f} {r['recall@10']:8.4f} {r['recall@100']:8.4f}")
    print(json.dumps({"benchmark": "fusion", "index": str(args.index), "split": args.split,
                      "command": " ".join(sys.argv), "rows": rows}))


if __name__ == "__main__":
    main()
