"""Spelling that does no harm: typo queries fixed, and correctly spelt queries left alone, by an index's corrector.

    python benchmarks/bench_spelling.py --index indexes/homedepot [--index indexes/petshop ...] [--show]

Sets (benchmarks/sets/): typos.csv (a typo query and the query meant) and real-words.txt (queries spelt right). A
typo is fixed when the query as searched (Searcher.understand) is the query meant, stem for stem (the keyword index's
stems: "window blind" searches as "window blinds" does); a real query is kept when it is searched as typed. "did you mean" suggestions are counted apart: they change nothing searched.
Prints a table per index and one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command, machine  # noqa: E402

SETS = Path(__file__).resolve().parent / "sets"


def read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def measure(searcher, typos: list[tuple[str, str]], real: list[str], show: bool = False) -> dict:
    from searchkit.data.text import words

    def stems(text: str) -> list[str]:
        return searcher.normaliser.lexical.lexical_terms(text)

    fixed, kept, suggested = 0, 0, 0
    for typo, meant in typos:
        searched, _ = searcher.understand(typo)
        ok = stems(searched) == stems(meant)  # "window blind" searches as "window blinds" does
        fixed += ok
        if show and not ok:
            print(f"  typo not fixed: {typo!r} -> {searched!r} (meant {meant!r})")
    for query in real:
        searched, _ = searcher.understand(query)
        ok = searched.split() == words(query)
        kept += ok
        suggested += getattr(searcher, "did_you_mean", lambda q: None)(query) is not None
        if show and not ok:
            print(f"  real query changed: {query!r} -> {searched!r}")
    return {"typos": len(typos), "typos_fixed": round(fixed / len(typos), 4), "real": len(real),
            "real_kept": round(kept / len(real), 4), "real_with_suggestion": round(suggested / len(real), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, action="append")
    parser.add_argument("--show", action="store_true", help="print each miss")
    args = parser.parse_args()

    from searchkit import Searcher

    with (SETS / "typos.csv").open() as f:
        typos = [(row["query"], row["intended"]) for row in csv.DictReader(f)]
    real = read_lines(SETS / "real-words.txt")
    out = {"machine": machine(), "command": command(), "indexes": {}}
    for index in args.index or [Path("indexes/homedepot")]:
        if args.show:
            print(index)
        out["indexes"][str(index)] = measure(Searcher.from_dir(index), typos, real, args.show)
    print(f"{'index':40} {'typos fixed':>12} {'real kept':>10} {'suggested':>10}")
    for index, r in out["indexes"].items():
        print(f"{index:40} {r['typos_fixed']:12.3f} {r['real_kept']:10.3f} {r['real_with_suggestion']:10.3f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
