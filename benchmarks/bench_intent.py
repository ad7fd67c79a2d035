"""What a shopper means: the share of the top 10 that is the product asked for, on product-type and attribute
queries written from the catalogs (benchmarks/sets/product-types.toml), per mode.

    python benchmarks/bench_intent.py --index indexes/homedepot [--shop homedepot] [--modes hybrid,rerank]
        [--show QUERY]

product@10 of a query: the share of its top 10 whose title (with its colour) matches the query's `wanted` pattern
and not its `unwanted` one. Prints a table per kind of query and one JSON line (machine and command included).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command, machine  # noqa: E402

SETS = Path(__file__).resolve().parent / "sets"


def load_queries(shop: str, path: Path = SETS / "product-types.toml") -> list[dict]:
    return tomllib.loads(path.read_text())[shop]


def is_asked_for(entry: dict, fields: dict) -> bool:
    text = f"{fields.get('title') or ''} {fields.get('color') or ''}".lower().strip()
    return re.search(entry["wanted"], text) is not None and re.search(entry["unwanted"], text) is None


def product_at_10(searcher, entries: list[dict], mode: str, k: int = 10) -> dict[str, float]:
    out = {}
    for entry in entries:
        hits = searcher.search(entry["query"], k=k, mode=mode)
        out[entry["query"]] = sum(is_asked_for(entry, h.fields) for h in hits) / k
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("indexes/homedepot"))
    parser.add_argument("--shop", default="homedepot", help="which set of product-types.toml")
    parser.add_argument("--modes", default="hybrid,dense,lexical,rerank")
    parser.add_argument("--show", help="print this query's top 10 in each mode, marked")
    args = parser.parse_args()

    from searchkit import Searcher, set_search_threads

    set_search_threads(1)  # as the CLI and the server run
    searcher = Searcher.from_dir(args.index)
    entries = load_queries(args.shop)
    modes = [m for m in args.modes.split(",") if m in searcher.modes]
    if args.show:
        entry = next(e for e in entries if e["query"] == args.show)
        for mode in modes:
            print(f"-- {mode}")
            for h in searcher.search(entry["query"], k=10, mode=mode):
                print(f"  {'+' if is_asked_for(entry, h.fields) else '-'} {h.fields['title'][:100]}")
        return
    result = {"machine": machine(), "command": command(), "index": str(args.index), "shop": args.shop,
              "queries": len(entries), "modes": {}}
    per_query = {}
    for mode in modes:
        scores = product_at_10(searcher, entries, mode)
        per_query[mode] = scores
        kinds = {kind: [scores[e["query"]] for e in entries if e["kind"] == kind] for kind in ("type", "attribute")}
        result["modes"][mode] = {"all": round(sum(scores.values()) / len(scores), 4),
                                 **{kind: round(sum(v) / len(v), 4) for kind, v in kinds.items() if v}}
    print(f"{'query':32} " + " ".join(f"{m:>8}" for m in modes))
    for entry in entries:
        print(f"{entry['query'][:32]:32} " + " ".join(f"{per_query[m][entry['query']]:8.2f}" for m in modes))
    print(f"{'product@10, all':32} " + " ".join(f"{result['modes'][m]['all']:8.3f}" for m in modes))
    for kind in ("type", "attribute"):
        if all(kind in result["modes"][m] for m in modes):
            print(f"{'product@10, ' + kind:32} " + " ".join(f"{result['modes'][m][kind]:8.3f}" for m in modes))
    result["per_query"] = per_query
    print(json.dumps(result))


if __name__ == "__main__":
    main()
