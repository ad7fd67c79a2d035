"""Query latency of an index: warm `Searcher.search` p50/p99 per mode, and the cold `searchkit query` process.

    python benchmarks/bench_query.py --index indexes/homedepot [--queries 200] [--cold-runs 3]

Prints a table and one JSON line (with the machine and the command that produced it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import QUERIES  # noqa: E402


def warm(index: Path, queries: int, modes: list[str]) -> dict:
    from searchkit import Searcher

    started = time.perf_counter()
    searcher = Searcher.from_dir(index)
    load_s = time.perf_counter() - started
    rng = random.Random(0)
    sample = [rng.choice(QUERIES) for _ in range(queries)]
    out = {"load_seconds": round(load_s, 2), "rows": len(searcher)}
    for mode in modes:
        searcher.search("warm up", k=10, mode=mode)
        times = []
        for q in sample:
            t = time.perf_counter()
            searcher.search(q, k=10, mode=mode)
            times.append((time.perf_counter() - t) * 1000)
        out[mode] = {"p50_ms": round(float(np.percentile(times, 50)), 2),
                     "p99_ms": round(float(np.percentile(times, 99)), 2)}
    return out


def cold(index: Path, runs: int) -> dict:
    walls = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "searchkit", "query", "swag light kit", "--index", str(index)],
                       check=True, capture_output=True)
        walls.append(time.perf_counter() - t)
    return {"runs": runs, "median_s": round(float(np.median(walls)), 2), "min_s": round(min(walls), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("indexes/homedepot"))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--modes", default="dense,lexical,hybrid")
    args = parser.parse_args()
    report = {
        "benchmark": "query", "index": str(args.index),
        "machine": f"{platform.node()} {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cpus",
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "warm": warm(args.index, args.queries, args.modes.split(",")),
        "cold_cli": cold(args.index, args.cold_runs),
    }
    print(f"index {args.index}: {report['warm']['rows']} products, load {report['warm']['load_seconds']} s")
    print(f"{'mode':<8} {'p50 ms':>8} {'p99 ms':>8}")
    for mode in args.modes.split(","):
        print(f"{mode:<8} {report['warm'][mode]['p50_ms']:>8} {report['warm'][mode]['p99_ms']:>8}")
    print(f"cold `searchkit query`: median {report['cold_cli']['median_s']} s over {args.cold_runs} runs")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
