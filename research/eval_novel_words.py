"""Wording never seen in training: quality on the held-out queries that use a word no training query uses, for
several indexes side by side — a proxy for how a model copes with another shop's vocabulary.

    python research/eval_novel_words.py --index indexes/homedepot-base indexes/homedepot [--split test]
        [--backends distilled,onnx-int8]

Prints a table and one JSON line (machine and command included).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from searchkit import Searcher
from searchkit.data.catalog import read_pairs
from searchkit.data.splits import split_pairs
from searchkit.data.text import words
from searchkit.eval.evaluate import evaluate
from searchkit.eval.selection import EvalConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # common.py
from common import command, machine  # noqa: E402


def novel_queries(parts: dict, split: str) -> set[str]:
    seen = {w for q in set(parts["train"]["query"]) for w in words(q)}
    return {q for q in set(parts[split]["query"]) if set(words(q)) - seen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, nargs="+", default=[Path("indexes/homedepot")])
    parser.add_argument("--pairs", type=Path, default=Path("catalog/homedepot-pairs.parquet"))
    parser.add_argument("--split", default="test", choices=("val", "test"))
    parser.add_argument("--backends", default="auto", help="Query encoders to compare per index, e.g. "
                        "distilled,onnx-int8 (searchkit.search.loading.BACKENDS).")
    args = parser.parse_args()

    parts = split_pairs(read_pairs(args.pairs))
    novel = novel_queries(parts, args.split)
    chosen = parts[args.split][parts[args.split]["query"].isin(novel)]
    rows = []
    for index, backend in ((i, b) for i in args.index for b in args.backends.split(",")):
        searcher = Searcher.from_dir(index, backend=backend, encode_threads=None)
        report = evaluate(searcher, chosen, EvalConfig(split="all"))
        rows.append({"index": str(index), "model": report["index"]["model"], "backend": backend,
                     "query_encoder": getattr(getattr(searcher.encoder, "path", None), "name", "torch"),
                     "spearman": round(report["pairs"]["spearman"], 4),
                     **{f"{m}_ndcg@10": round(r["ndcg@10"], 4) for m, r in report["retrieval"].items()}})
    print(f"{args.split} queries with a word no training query has: {len(novel)} of "
          f"{parts[args.split]['query'].nunique()}")
    print(f"{'index':<28} {'query encoder':<18} {'spearman':>8} {'dense':>7} {'lexical':>7} {'hybrid':>7} "
          f"{'rerank':>7}")
    for r in rows:
        rerank = f"{r['rerank_ndcg@10']:7.4f}" if "rerank_ndcg@10" in r else f"{'-':>7}"  # only with a reranker
        print(f"{r['index']:<28} {r['query_encoder']:<18} {r['spearman']:8.4f} {r['dense_ndcg@10']:7.4f} {r['lexical_ndcg@10']:7.4f} "
              f"{r['hybrid_ndcg@10']:7.4f} {rerank}")
    print(json.dumps({"benchmark": "novel_words", "split": args.split, "queries": len(novel), "rows": rows,
                      "machine": machine(), "command": command()}))


if __name__ == "__main__":
    sys.exit(main())
