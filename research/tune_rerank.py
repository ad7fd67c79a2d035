"""Choose mode rerank's depth and weight by measurement on the validation split (never the held-out test split).

    python research/tune_rerank.py --reranker models/searchkit-homedepot/reranker [--index indexes/homedepot]
                                     [--split val] [--depths 20,30] [--weights 0.5,0.6,0.7,0.8,0.9,1.0]

The cross-encoder folder runs in torch fp32 (the index holds an int8 graph; `searchkit evaluate` measures that one)
over each query's hybrid candidates from the index; prints NDCG@10 for every depth x weight (weight 1.0: the
cross-encoder alone, 0.0: hybrid), the reranker's Spearman over the rated pairs, a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from searchkit import Searcher
from searchkit.data.catalog import read_pairs
from searchkit.eval.measure import query_gains
from searchkit.eval.selection import EvalConfig, select_pairs
from searchkit.training.reranker import pair_spearman, rerank_ndcg, score_candidates

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # common.py
from common import command, machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reranker", type=Path, required=True, help="a reranker folder (searchkit train-reranker)")
    parser.add_argument("--index", type=Path, default=Path("indexes/homedepot"))
    parser.add_argument("--pairs", type=Path, default=Path("catalog/homedepot-pairs.parquet"))
    parser.add_argument("--split", default="val")
    parser.add_argument("--depths", default="20,30")
    parser.add_argument("--weights", default="0.5,0.6,0.7,0.8,0.9,1.0")
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args()
    if args.split == "test":
        print("note: tuning on the held-out test split; choose settings on val", file=sys.stderr)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    depths = [int(d) for d in args.depths.split(",")]
    weights = [float(w) for w in args.weights.split(",")]
    searcher = Searcher.from_dir(args.index)
    pairs = select_pairs(read_pairs(args.pairs), EvalConfig(split=args.split))
    gains = query_gains(pairs)
    tokenizer = AutoTokenizer.from_pretrained(str(args.reranker))
    model = AutoModelForSequenceClassification.from_pretrained(str(args.reranker), num_labels=1, dtype=torch.float32)
    started = time.perf_counter()
    scored = score_candidates(model, tokenizer, searcher, gains, max(depths), args.max_length)
    seconds = time.perf_counter() - started
    grid = {f"depth {d}": {f"{w}": rerank_ndcg(scored, gains, d, w) for w in weights} for d in depths}
    hybrid = rerank_ndcg(scored, gains, max(depths), 0.0)
    rho = pair_spearman(scored, gains)

    print(f"{len(gains)} {args.split} queries, reranker {args.reranker} (torch fp32, {seconds:.0f} s to score); "
          f"NDCG@10 hybrid {hybrid:.4f}; reranker pair Spearman {rho:.4f}")
    print(f"{'weight ->':<10}" + "".join(f"{w:>8}" for w in weights))
    for label, row in grid.items():
        print(f"{label:<10}" + "".join(f"{v:8.4f}" for v in row.values()))
    print(json.dumps({"benchmark": "rerank_settings", "index": str(args.index), "reranker": str(args.reranker),
                      "split": args.split, "queries": len(gains), "ndcg@10_hybrid": round(hybrid, 4),
                      "spearman_pairs": round(rho, 4),
                      "ndcg@10": {k: {w: round(v, 4) for w, v in row.items()} for k, row in grid.items()},
                      "machine": machine(), "command": command()}))


if __name__ == "__main__":
    main()
