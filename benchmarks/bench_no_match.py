"""No match when there is none: the share of out-of-catalog queries (benchmarks/sets/out-of-catalog.txt) a search
flags `no_match`, beside the share of real shopper queries it flags (a split of the bundled pairs, by query).
For a shop without rated pairs, --sells FILE takes the queries for what it sells instead, and --outside FILE
its own out-of-catalog queries.

    python benchmarks/bench_no_match.py --index indexes/homedepot [--split test] [--mode hybrid] [--show]
    python benchmarks/bench_no_match.py --index indexes/electronics --sells benchmarks/sets/electronics-sells.txt \
        --outside benchmarks/sets/electronics-outside.txt

Prints a table and one JSON line (machine and command included).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_spelling import read_lines  # noqa: E402
from common import command, machine  # noqa: E402

SETS = Path(__file__).resolve().parent / "sets"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("indexes/homedepot"))
    parser.add_argument("--pairs", type=Path, default=Path("catalog/homedepot-pairs.parquet"))
    parser.add_argument("--split", default="test", help="the real queries: a split of --pairs (val, test, all)")
    parser.add_argument("--mode", default="hybrid")
    parser.add_argument("--show", action="store_true", help="print the misses")
    parser.add_argument("--outside", type=Path, default=SETS / "out-of-catalog.txt",
                        help="out-of-catalog queries, one a line ('#' lines are comments)")
    parser.add_argument("--sells", type=Path, default=None,
                        help="queries for what the shop sells, one a line, instead of a split of --pairs")
    args = parser.parse_args()

    from searchkit import Searcher, set_search_threads
    from searchkit.data.catalog import read_pairs
    from searchkit.eval.selection import EvalConfig, select_pairs

    set_search_threads(1)  # as the CLI and the server run
    searcher = Searcher.from_dir(args.index)
    outside = read_lines(args.outside)
    if args.sells is not None:
        real, label = sorted(set(read_lines(args.sells))), f"queries for what it sells ({args.sells.name})"
    else:
        real = sorted(set(select_pairs(read_pairs(args.pairs), EvalConfig(split=args.split))["query"]))
        label = f"real shopper queries ({args.split} split)"
    flagged_out = [q for q in outside if searcher.search(q, k=10, mode=args.mode).no_match]
    flagged_real = [q for q in real if searcher.search(q, k=10, mode=args.mode).no_match]
    if args.show:
        print("out-of-catalog queries not flagged:", sorted(set(outside) - set(flagged_out)))
        print("real queries flagged:", flagged_real)
    result = {"machine": machine(), "command": command(), "index": str(args.index), "mode": args.mode,
              "outside": str(args.outside), "out_of_catalog": len(outside),
              "out_of_catalog_flagged": round(len(flagged_out) / len(outside), 4), "real": len(real),
              "real_split": str(args.sells) if args.sells is not None else args.split,
              "real_flagged": round(len(flagged_real) / len(real), 4)}
    print(f"{'queries':50} {'count':>6} {'no_match':>9}")
    print(f"{'out of catalog (' + args.outside.name + ')':50} {len(outside):6d} {result['out_of_catalog_flagged']:9.3f}")
    print(f"{label:50} {len(real):6d} {result['real_flagged']:9.3f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
