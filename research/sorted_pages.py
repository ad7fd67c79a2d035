"""What a sorted first page holds: for every query of a split of the bundled pairs, the first page of a search sorted
by a column (`sort=price`), and of its products those the raters graded for that query — how many, their mean grade,
and how many graded 2.5 or more. Raters graded what a search once showed for the query, so a sorted page holding
more graded products holds more of what the query is about.

    python research/sorted_pages.py --index DIR [--sort price] [--split val]

The index needs the column (the bundled catalog has no price: docs/intent.md seeds one). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from common import command, machine  # noqa: E402

from searchkit import Searcher, set_search_threads  # noqa: E402
from searchkit.data.catalog import read_pairs  # noqa: E402
from searchkit.eval.selection import EvalConfig, select_pairs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--pairs", type=Path, default=Path("catalog/homedepot-pairs.parquet"))
    parser.add_argument("--sort", default="price")
    parser.add_argument("--split", default="val")
    args = parser.parse_args()
    set_search_threads(1)
    searcher = Searcher.from_dir(args.index)
    pairs = select_pairs(read_pairs(args.pairs), EvalConfig(split=args.split))
    grades = {(q, p): float(r) for q, p, r in zip(pairs["query"], pairs["product_id"].astype(str), pairs["relevance"],
                                                   strict=True)}
    queries = sorted(set(pairs["query"]))
    graded = [g for q in queries for h in searcher.search(q, k=10, sort=args.sort)
              if (g := grades.get((q, h.product_id))) is not None]
    typed = sum(searcher._parse(q).intent.typed for q in queries)
    report = {"script": "sorted_pages", "index": str(args.index), "sort": args.sort, "split": args.split,
              "queries": len(queries), "asking_for_a_type": typed, "graded_on_first_pages": len(graded),
              "mean_grade": round(float(np.mean(graded)), 3) if graded else None,
              "graded_2_5_or_more": int(np.sum(np.array(graded) >= 2.5)), "machine": machine(), "command": command()}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
