"""Is one model (or index) better than another, or within the noise? Paired over the same held-out queries.

    python research/compare_models.py --system A B [C ...] [--split val] [--modes dense,hybrid] [--resamples 2000]
                                        [--novel-words]

Each system is a model folder (its catalog embedded in memory, exact search, as `searchkit evaluate --model` does) or
an index folder (searched as built, as `searchkit evaluate --index` does). Every system after the first is compared
with the first: for pair Spearman (cosine vs rating) and, per mode, NDCG@10 and MRR@10, the difference, its 95%
bootstrap interval (queries drawn with replacement; for Spearman, whole queries with all their rated pairs) and how
many queries got better or worse. `--novel-words` repeats the comparison, from the same measurement, on the queries
with a word no training query uses (a proxy for another shop's wording, picked as `eval_novel_words.py` does).
Prints tables and one JSON line. Choose on the validation split; measure the test split once.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from searchkit import Searcher
from searchkit.data.catalog import read_pairs
from searchkit.data.splits import split_pairs
from searchkit.eval.in_memory import in_memory_searcher
from searchkit.eval.measure import pair_cosines, query_metrics
from searchkit.eval.metrics import paired_bootstrap, paired_bootstrap_spearman, spearman
from searchkit.eval.selection import EvalConfig, select_pairs
from searchkit.index.layout import IndexFiles

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # common.py
from common import command, machine  # noqa: E402
from eval_novel_words import novel_queries  # noqa: E402

METRICS = ("ndcg@10", "mrr@10")


def open_system(path: Path, catalog: Path, device: str | None) -> tuple[Searcher, str]:
    if IndexFiles(path).manifest.is_file():
        return Searcher.from_dir(path), "index"
    return in_memory_searcher(catalog, path, device=device), "model, in memory, exact search"


def measure(path: Path, catalog: Path, pairs, modes: list[str], device: str | None) -> dict:
    started = time.perf_counter()
    searcher, kind = open_system(path, catalog, device)
    missing = [m for m in modes if m not in searcher.modes]
    if missing:
        raise SystemExit(f"{path}: cannot run mode(s) {', '.join(missing)} (it has {', '.join(searcher.modes)})")
    cosines, relevance, queries = pair_cosines(searcher, pairs)
    per_query = {mode: query_metrics(searcher, pairs, mode) for mode in modes}
    return {"system": str(path), "kind": kind, "cosines": cosines, "relevance": relevance, "queries": queries,
            "per_query": per_query, "seconds": round(time.perf_counter() - started, 1)}


def compare(base: dict, other: dict, modes: list[str], resamples: int) -> dict:
    out = {"spearman": paired_bootstrap_spearman(base["cosines"], other["cosines"], other["relevance"],
                                                 other["queries"], resamples=min(resamples, 1000))}
    for mode in modes:
        a, b = base["per_query"][mode], other["per_query"][mode]
        if not a.index.equals(b.index):
            raise SystemExit("the systems were measured on different queries")
        for metric in METRICS:
            out[f"{mode} {metric}"] = paired_bootstrap(a[metric].to_numpy(), b[metric].to_numpy(),
                                                       resamples=resamples)
    return out


def restrict(m: dict, keep: set[str]) -> dict:
    """The same measurement over only the queries in `keep` (their pairs and per-query rows)."""
    chosen = [q in keep for q in m["queries"]]
    return {**m, "cosines": m["cosines"][chosen], "relevance": m["relevance"][chosen],
            "queries": m["queries"][chosen],
            "per_query": {mode: frame[frame.index.isin(keep)] for mode, frame in m["per_query"].items()}}


def summarise(measured: list[dict], modes: list[str], resamples: int) -> tuple[list[dict], list[dict]]:
    rows = [{"system": m["system"], "kind": m["kind"], "spearman": round(spearman(m["cosines"], m["relevance"]), 4),
             **{f"{mode} {metric}": round(float(m["per_query"][mode][metric].mean()), 4)
                for mode in modes for metric in METRICS}} for m in measured]
    diffs = []
    for m in measured[1:]:
        found = compare(measured[0], m, modes, resamples)
        diffs.append({"system": m["system"], "vs": measured[0]["system"],
                      **{k: {n: round(v, 4) if isinstance(v, float) else v for n, v in d.items()}
                         for k, d in found.items()}})
    return rows, diffs


def show(title: str, rows: list[dict], diffs: list[dict], columns: list[str]) -> None:
    print(title)
    print(f"{'system':<44}" + "".join(f"{c:>16}" for c in columns))
    for r in rows:
        print(f"{r['system'][-44:]:<44}" + "".join(f"{r[c]:16.4f}" for c in columns))
    print(f"\ndifference from {rows[0]['system']} [95% bootstrap interval] (queries better / worse)")
    for d in diffs:
        print(d["system"])
        for c in columns:
            x = d[c]
            counts = f" ({x['better']} / {x['worse']})" if "better" in x else ""
            print(f"  {c:<16} {x['difference']:+.4f} [{x['low']:+.4f}, {x['high']:+.4f}]{counts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", type=Path, nargs="+", required=True, help="model or index folders; first = base")
    parser.add_argument("--catalog", type=Path, default=Path("catalog/homedepot-products.parquet"))
    parser.add_argument("--pairs", type=Path, default=Path("catalog/homedepot-pairs.parquet"))
    parser.add_argument("--split", default="val", choices=("val", "test"))
    parser.add_argument("--modes", default="dense,hybrid")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--max-queries", type=int, default=None)
    parser.add_argument("--device", default=None, help="for model folders: cpu, cuda (default: cuda when present)")
    parser.add_argument("--novel-words", action="store_true",
                        help="also compare on the queries with a word no training query uses")
    args = parser.parse_args()
    if len(args.system) < 2:
        parser.error("--system needs at least two folders: a base and one to compare with it")
    if args.split == "test":
        print("note: measuring the held-out test split; compare candidates on val", file=sys.stderr)
    modes = args.modes.split(",")
    rated = read_pairs(args.pairs)
    pairs = select_pairs(rated, EvalConfig(split=args.split, max_queries=args.max_queries))

    measured = []
    for path in args.system:
        measured.append(measure(path, args.catalog, pairs, modes, args.device))
        print(f"{path}: measured in {measured[-1]['seconds']} s", file=sys.stderr, flush=True)
    columns = ["spearman", *(f"{mode} {metric}" for mode in modes for metric in METRICS)]
    rows, diffs = summarise(measured, modes, args.resamples)
    show(f"{args.split}: {pairs['query'].nunique()} queries, {len(pairs)} rated pairs", rows, diffs, columns)
    novel = {}
    if args.novel_words:
        keep = novel_queries(split_pairs(rated), args.split) & set(pairs["query"])
        novel_rows, novel_diffs = summarise([restrict(m, keep) for m in measured], modes, args.resamples)
        show(f"\n{args.split}, {len(keep)} queries with a word no training query uses", novel_rows, novel_diffs,
             columns)
        novel = {"novel_words": {"queries": len(keep), "rows": novel_rows, "differences": novel_diffs}}
    print(json.dumps({"benchmark": "compare_models", "split": args.split, "queries": int(pairs["query"].nunique()),
                      "rows": rows, "differences": diffs, **novel, "resamples": args.resamples, "machine": machine(),
                      "command": command()}))


if __name__ == "__main__":
    sys.exit(main())
