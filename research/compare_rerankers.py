"""Two cross-encoders on the same validation queries: per-query NDCG@10 after re-ranking the index's hybrid top 30
(weight 0.8, as shipped), and a paired bootstrap of the difference (b - a).

    python research/compare_rerankers.py A_DIR B_DIR [--index indexes/homedepot] [--queries 300]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--index", type=Path, default=ROOT / "indexes/homedepot")
    parser.add_argument("--pairs", type=Path, default=ROOT / "catalog/homedepot-pairs.parquet")
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from searchkit import Searcher
    from searchkit.data.catalog import read_pairs
    from searchkit.data.splits import SplitConfig, split_pairs
    from searchkit.eval.measure import query_gains
    from searchkit.eval.metrics import paired_bootstrap
    from searchkit.training.reranker import rerank_ndcgs, score_candidates

    searcher = Searcher.from_dir(args.index)
    val = split_pairs(read_pairs(args.pairs), SplitConfig(seed=42))["val"]
    queries = sorted(random.Random(42).sample(sorted(set(val["query"])), args.queries))  # as validation_report
    gains = query_gains(val[val["query"].isin(queries)])
    per = {}
    for name, folder in (("a", args.a), ("b", args.b)):
        model = AutoModelForSequenceClassification.from_pretrained(str(folder), dtype=torch.float32)
        scored = score_candidates(model, AutoTokenizer.from_pretrained(str(folder)), searcher, gains, 30, 64)
        per[name] = rerank_ndcgs(scored, gains, 30, 0.8)
    print(json.dumps({"queries": len(per["a"]), "a": round(float(np.mean(per["a"])), 4),
                      "b": round(float(np.mean(per["b"])), 4),
                      "b_minus_a": {k: round(v, 4) for k, v in paired_bootstrap(per["a"], per["b"], 5000).items()}}))


if __name__ == "__main__":
    main()
