"""BM25 settings, chosen on the validation split: lexical and hybrid NDCG@10 for a grid of k1 x b, the keyword index
rebuilt in memory over the index's own normalised texts (the dense side and the fusion stay as they are).

    python research/tune_bm25.py --index indexes/homedepot [--split val] [--k1 0.3,0.45,0.6,0.9,1.2] [--b 0.3,0.5,0.75]

Prints a table and one JSON line (machine and command included).
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
from searchkit.index.lexical import LexicalIndex
from searchkit.index.texts import product_texts

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # common.py
from common import command, machine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("indexes/homedepot"))
    parser.add_argument("--pairs", type=Path, default=Path("catalog/homedepot-pairs.parquet"))
    parser.add_argument("--split", default="val", choices=("val", "train"))
    parser.add_argument("--k1", default="0.3,0.45,0.6,0.9,1.2,1.6")
    parser.add_argument("--b", default="0.2,0.3,0.5,0.75,0.9")
    args = parser.parse_args()

    searcher = Searcher.from_dir(args.index, encode_threads=None)
    pairs = select_pairs(read_pairs(args.pairs), EvalConfig(split=args.split))
    texts = product_texts(searcher.products, searcher.normaliser.lexical)  # BM25's text: stemmed
    searcher.embed_queries(sorted(set(pairs["query"])))  # embedded once, from the cache afterwards
    rows = []
    print(f"{'k1':>5} {'b':>5} {'lexical':>8} {'hybrid':>8}")
    for k1 in (float(x) for x in args.k1.split(",")):
        for b in (float(x) for x in args.b.split(",")):
            searcher.lexical = LexicalIndex.build(texts, k1=k1, b=b)
            row = {"k1": k1, "b": b, "lexical_ndcg@10": round(retrieval(searcher, pairs, "lexical")["ndcg@10"], 4),
                   "hybrid_ndcg@10": round(retrieval(searcher, pairs, "hybrid")["ndcg@10"], 4)}
            rows.append(row)
            print(f"{k1:5.2f} {b:5.2f} {row['lexical_ndcg@10']:8.4f} {row['hybrid_ndcg@10']:8.4f}", flush=True)
    print(json.dumps({"benchmark": "bm25", "index": str(args.index), "split": args.split, "rows": rows,
                      "machine": machine(), "command": command()}))


if __name__ == "__main__":
    main()
