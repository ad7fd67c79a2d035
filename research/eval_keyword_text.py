"""Keyword text versions, measured: NDCG@10 of an index as it is (its keyword text version) and with the other
version's BM25 rebuilt in memory over the same products, on all held-out queries and on those whose keyword text the
versions write differently (measures such as "18v", "2x4", "24in"; glued or split compound words).

    python research/eval_keyword_text.py --index indexes/homedepot [--split test] [--modes dense,lexical,hybrid]

The dense side is the index's own in both (version 2 also splits glued words in the query the model reads). Prints
a table and one JSON line (machine and command included).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from searchkit import Searcher
from searchkit.data.catalog import read_pairs
from searchkit.data.text import KEYWORD_TEXTS, Normaliser
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
    parser.add_argument("--split", default="test")
    parser.add_argument("--modes", default="dense,lexical,hybrid")
    args = parser.parse_args()

    searcher = Searcher.from_dir(args.index, encode_threads=None)
    pairs = select_pairs(read_pairs(args.pairs), EvalConfig(split=args.split))
    own = searcher.normaliser
    versions = {own.keyword_text: (own, searcher.lexical)}
    for version in KEYWORD_TEXTS:
        if version not in versions:
            other = Normaliser(own.config, own.brands, own.stemmer, keyword_text=version)
            versions[version] = (other, LexicalIndex.build(product_texts(searcher.products, other.lexical)))

    def parsed(version: int, query: str) -> tuple[str, str]:
        searcher.normaliser = versions[version][0]
        p = searcher._parse(query)
        return p.normalised, p.keywords

    queries = sorted(set(pairs["query"]))
    changed = [q for q in queries if len({parsed(v, q) for v in versions}) > 1]
    slices = {"all": pairs, "changed": pairs[pairs["query"].isin(changed)]}
    rows = []
    for version, (normaliser, lexical) in sorted(versions.items()):
        searcher.normaliser, searcher.lexical = normaliser, lexical
        for mode in args.modes.split(","):
            rows.append({"keyword_text": version, "mode": mode,
                         **{f"ndcg@10_{name}": round(retrieval(searcher, part, mode)["ndcg@10"], 4)
                            for name, part in slices.items()}})
    print(f"{args.split}: {len(queries)} queries; the keyword text versions differ on {len(changed)}")
    print(f"{'version':>7} {'mode':>8} {'all':>7} {'changed':>8}")
    for row in rows:
        print(f"{row['keyword_text']:>7} {row['mode']:>8} {row['ndcg@10_all']:7.4f} {row['ndcg@10_changed']:8.4f}")
    examples = changed[:: max(1, len(changed) // 8)][:8]
    print(json.dumps({"benchmark": "keyword_text", "index": str(args.index), "split": args.split,
                      "queries": len(queries), "changed": len(changed), "examples": examples, "rows": rows,
                      "machine": machine(), "command": command()}))


if __name__ == "__main__":
    main()
