"""Choose the "no match" rule's thresholds (searchkit.search.match.MatchRule) on the validation split's real queries beside
half of the written out-of-catalog queries; the other half reports. Never the test split.

    python research/tune_no_match.py --index indexes/homedepot [--max-real 0.01]

Prints the best rules (out-of-catalog share flagged at most --max-real of real queries flagged) and one JSON line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_spelling import SETS, read_lines  # noqa: E402

from searchkit import MatchRule, Searcher  # noqa: E402
from searchkit.data.catalog import read_pairs  # noqa: E402
from searchkit.eval.selection import EvalConfig, select_pairs  # noqa: E402


def signals(searcher: Searcher, query: str) -> tuple[float, float, float, int]:
    """What MatchRule.no_match reads, for one query (as Searcher._no_match computes it)."""
    parsed = searcher._parse(query)
    words = parsed.understood.split()
    if not words:
        return 0.0, 0.0, 0.0, 0
    hits = searcher.search(query, k=10)
    rows = np.array([searcher._row_of[h.product_id] for h in hits], dtype=np.int64)
    content = [w for w in words if w.isalpha() and len(w) >= 3]
    unknown = sum(not searcher.corrector.known(w) for w in content) / len(content) if content else 0.0
    coverage = float(searcher.lexical.coverage(parsed.keywords, rows).max()) if len(rows) else 0.0
    return max((h.cosine for h in hits), default=0.0), coverage, unknown, len(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("indexes/homedepot"))
    parser.add_argument("--pairs", type=Path, default=Path("catalog/homedepot-pairs.parquet"))
    parser.add_argument("--max-real", type=float, default=0.01)
    args = parser.parse_args()
    searcher = Searcher.from_dir(args.index)
    outside = read_lines(SETS / "out-of-catalog.txt")
    tune, report = outside[0::2], outside[1::2]
    real = sorted(set(select_pairs(read_pairs(args.pairs), EvalConfig(split="val"))["query"]))
    cache = {q: signals(searcher, q) for q in [*outside, *real]}
    rows = []
    for low, share, unknown_cos, cover, cover_cos in itertools.product(
            (0.2, 0.25, 0.3), (0.5, 0.51, 0.67), (0.45, 0.5, 0.55, 0.6), (0.25, 0.34, 0.5), (0.3, 0.35, 0.4, 0.45)):
        rule = MatchRule(low, share, unknown_cos, cover, cover_cos)

        def flagged(queries, rule=rule):
            return float(np.mean([rule.no_match(*cache[q]) for q in queries]))

        rows.append({"rule": rule.__dict__, "real": flagged(real), "tune": flagged(tune), "report": flagged(report)})
    ok = sorted((r for r in rows if r["real"] <= args.max_real), key=lambda r: (-r["tune"], r["real"]))
    for r in ok[:8]:
        print(f"{r['rule']}  real {r['real']:.4f}  out-of-catalog tune {r['tune']:.3f} report {r['report']:.3f}")
    print(json.dumps({"benchmark": "no-match-rule", "index": str(args.index), "command": " ".join(sys.argv),
                      "best": ok[:8]}))


if __name__ == "__main__":
    main()
