"""searchkit beside the engines a Python shop would install instead, on the same machine, catalog and test-split
queries: build time (catalog file to searchable index, whole process), index size on disk, resident memory while
searching, warm latency p50/p99 (one thread, distinct queries, k = 10), NDCG@10 (whole catalog and judged only) and
Recall@100, and each peer's figures as ratios to searchkit hybrid's.

    python benchmarks/bench_peers.py [--products N] [--queries 300] [--peers bm25s,txtai,lancedb,chroma]

Peers install with `make bench-peers`, never with the README's two commands; a peer that cannot be imported is named
with the reason. Each system runs in its own process (its memory is its own). `--products N` takes a slice of the
bundled catalog holding every product the chosen queries' rated pairs name. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command, folder_mb, machine, percentiles  # noqa: E402

PEERS = {"bm25s": "bm25s", "txtai": "txtai", "lancedb": "lancedb", "chroma": "chromadb"}

# Each runner: build an index of CATALOG into OUT (timed by the parent as a whole process), then search QUERIES,
# printing one JSON line {"rss_mb", "latency": {mode: [ms...]}, "ranked": {mode: [[ids]...]}}.
SEARCHKIT_SEARCH = """
import json, sys, time
from searchkit import Searcher, set_search_threads
from common import rss_mb
set_search_threads(1)
searcher = Searcher.from_dir(sys.argv[1])
queries = json.loads(open(sys.argv[2]).read())
out = {"latency": {}, "ranked": {}}
for mode in ("dense", "lexical", "hybrid", "rerank"):
    for q in queries[:10]:
        searcher.search(q, k=10, mode=mode)
    times, ranked = [], []
    for q in queries:
        t = time.perf_counter()
        searcher.search(q, k=10, mode=mode)
        times.append((time.perf_counter() - t) * 1000)
        ranked.append([h.product_id for h in searcher.search(q, k=100, mode=mode)])
    out["latency"][mode], out["ranked"][mode] = times, ranked
out["rss_mb"] = rss_mb()
print(json.dumps(out))
"""

BM25S_BUILD = """
import sys
import bm25s, pandas as pd
catalog = pd.read_parquet(sys.argv[1])
texts = (catalog["title"].fillna("") + " " + catalog["brand"].fillna("") + " " + catalog["color"].fillna("")).tolist()
model = bm25s.BM25()
model.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
model.save(sys.argv[2], corpus=catalog["product_id"].astype(str).tolist())
"""

BM25S_SEARCH = """
import json, sys, time
import bm25s
from common import rss_mb
model = bm25s.BM25.load(sys.argv[1], load_corpus=True)
queries = json.loads(open(sys.argv[2]).read())
times, ranked = [], []
for q in queries:
    t = time.perf_counter()
    docs, _ = model.retrieve(bm25s.tokenize([q], stopwords="en", show_progress=False), k=10, show_progress=False)
    times.append((time.perf_counter() - t) * 1000)
    docs, _ = model.retrieve(bm25s.tokenize([q], stopwords="en", show_progress=False), k=100, show_progress=False)
    ranked.append([d["text"] for d in docs[0]])
print(json.dumps({"latency": {"bm25": times}, "ranked": {"bm25": ranked}, "rss_mb": rss_mb()}))
"""


def python(script: str, *args: str) -> tuple[str, float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=3600,
                          cwd=Path(__file__).resolve().parent,
                          env={"PYTHONPATH": f"{ROOT}:{Path(__file__).resolve().parent}", "HF_HUB_OFFLINE": "1",
                               "HF_HUB_DISABLE_PROGRESS_BARS": "1", "PATH": "/usr/bin:/bin"})
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return done.stdout, time.perf_counter() - started


def quality(ranked: list[list[str]], queries: list[str], pairs) -> dict[str, float]:
    from searchkit.eval.measure import ranked_metrics

    frame = ranked_metrics(dict(zip(queries, ranked, strict=True)), pairs)
    return {name: round(float(frame[name].mean()), 4) for name in ("ndcg@10", "ndcg@10_judged", "recall@100")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=ROOT / "catalog/homedepot-products.parquet")
    parser.add_argument("--pairs", type=Path, default=ROOT / "catalog/homedepot-pairs.parquet")
    parser.add_argument("--products", type=int, default=0, help="a slice of the catalog (0: all of it)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--peers", default="bm25s,txtai,lancedb,chroma")
    args = parser.parse_args()

    import importlib.util

    import pandas as pd

    from searchkit.data.catalog import read_pairs
    from searchkit.data.splits import SplitConfig, split_pairs

    test = split_pairs(read_pairs(args.pairs), SplitConfig(seed=42))["test"]
    queries = sorted(np.random.default_rng(0).choice(sorted(set(test["query"])), size=args.queries,
                                                     replace=False).tolist())
    pairs = test[test["query"].isin(queries)]
    catalog = pd.read_parquet(args.catalog)
    if args.products:
        ids = catalog["product_id"].astype(str)
        rated = ids.isin(set(pairs["product_id"].astype(str)))
        rest = catalog[~rated].sample(n=max(0, args.products - int(rated.sum())), random_state=0)
        catalog = pd.concat([catalog[rated], rest]).reset_index(drop=True)
    rows, skipped = {}, {}
    with tempfile.TemporaryDirectory(prefix="searchkit-peers-") as tmp:
        work = Path(tmp)
        catalog.to_parquet(work / "catalog.parquet", index=False)
        (work / "queries.json").write_text(json.dumps(queries))
        started = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "searchkit"), "build-index", str(work / "catalog.parquet"),
                        "--out", str(work / "searchkit")], check=True, capture_output=True)
        build = time.perf_counter() - started
        found, _ = python(SEARCHKIT_SEARCH, str(work / "searchkit"), str(work / "queries.json"))
        result = json.loads(found)
        for mode in ("hybrid", "dense", "lexical", "rerank"):
            rows[f"searchkit {mode}"] = {"build_s": round(build, 1), "size_mb": folder_mb(work / "searchkit"),
                                         "rss_mb": result["rss_mb"], **percentiles(result["latency"][mode]),
                                         **quality(result["ranked"][mode], queries, pairs)}
        for peer in [p for p in args.peers.split(",") if p]:
            if importlib.util.find_spec(PEERS[peer]) is None:
                skipped[peer] = (f"{PEERS[peer]} is not installed, and this machine's package index has no wheel of "
                                 "it (`make bench-peers` installs it where one does)")
                continue
            if peer != "bm25s":
                skipped[peer] = "installed, but no runner for it yet"
                continue
            _, build = python(BM25S_BUILD, str(work / "catalog.parquet"), str(work / "bm25s"))
            found, _ = python(BM25S_SEARCH, str(work / "bm25s"), str(work / "queries.json"))
            result = json.loads(found)
            rows["bm25s (lexical)"] = {"build_s": round(build, 1), "size_mb": folder_mb(work / "bm25s"),
                                       "rss_mb": result["rss_mb"], **percentiles(result["latency"]["bm25"]),
                                       **quality(result["ranked"]["bm25"], queries, pairs)}
    base = rows["searchkit hybrid"]
    for name, row in rows.items():
        if not name.startswith("searchkit"):
            row["ratio_to_searchkit_hybrid"] = {k: round(row[k] / base[k], 3) for k in
                                                ("build_s", "size_mb", "rss_mb", "p50_ms", "ndcg@10") if base[k]}
    print(f"{'system':<22}{'build s':>9}{'size MB':>9}{'RSS MB':>8}{'p50 ms':>8}{'p99 ms':>8}{'NDCG@10':>9}"
          f"{'judged':>8}{'R@100':>7}")
    for name, row in rows.items():
        print(f"{name:<22}{row['build_s']:>9.1f}{row['size_mb']:>9.1f}{row['rss_mb']:>8.0f}{row['p50_ms']:>8.2f}"
              f"{row['p99_ms']:>8.2f}{row['ndcg@10']:>9.4f}{row['ndcg@10_judged']:>8.4f}{row['recall@100']:>7.4f}")
    for peer, why in skipped.items():
        print(f"{peer}: not run: {why}")
    print(json.dumps({"bench": "peers", "products": len(catalog), "queries": len(queries), "systems": rows,
                      "not_run": skipped, "machine": machine(), "command": command()}))


if __name__ == "__main__":
    main()
