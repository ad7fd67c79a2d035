"""Where exact search stops paying: one thread's exhaustive scan of N products' vectors against an HNSW walk over the
same N, for the top 100 a hybrid search asks of its dense leg (what `index_type = "auto"` weighs, FLAT_UP_TO).

    python benchmarks/bench_flat.py [--index indexes/homedepot] [--sizes 2000,4000,8000,20000] [--queries 300]

Each size is a seeded sample of the index's stored vectors; the queries are distinct test-split queries embedded by
the index's query encoder. The walk is built as `searchkit build-index` builds one (HNSW, M 32, efConstruction 200)
and searched at efSearch 16 and 64 (the calibrated efforts of hybrid's leg and of dense search on the bundled
index); recall@10 is against the scan. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command, machine, percentiles, test_queries  # noqa: E402

EFFORTS = (16, 64)
DEPTH = 100  # the dense leg's candidates in a hybrid search (Fusion.depth)


def median_ms(search, queries: np.ndarray) -> float:
    times = []
    for q in queries:
        started = time.perf_counter()
        search(q[None])
        times.append((time.perf_counter() - started) * 1000)
    return percentiles(times)["p50_ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("indexes/homedepot"))
    parser.add_argument("--sizes", default="2000,4000,8000,20000")
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()

    import faiss

    from searchkit import Searcher, set_search_threads
    from searchkit.index.ann import stored_vectors

    set_search_threads(1)  # as the CLI and the server search
    searcher = Searcher.from_dir(args.index)
    vectors = stored_vectors(searcher.index)
    queries = np.ascontiguousarray(searcher.embed_queries(test_queries(n=args.queries)), dtype=np.float32)
    rng = np.random.default_rng(0)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        sample = np.ascontiguousarray(vectors[rng.choice(len(vectors), min(size, len(vectors)), replace=False)])
        flat = faiss.IndexFlatIP(sample.shape[1])
        flat.add(sample)
        graph = faiss.IndexHNSWFlat(sample.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = 200
        graph.add(sample)
        exact = flat.search(queries, 10)[1]
        row = {"products": len(sample), "scan_ms": median_ms(lambda q: flat.search(q, DEPTH), queries)}
        for effort in EFFORTS:
            params = faiss.SearchParametersHNSW(efSearch=effort)
            found = graph.search(queries, 10, params=params)[1]
            row[f"walk_ef{effort}_ms"] = median_ms(lambda q, p=params: graph.search(q, DEPTH, params=p), queries)
            row[f"walk_ef{effort}_recall@10"] = round(float(np.mean(
                [len(set(a) & set(b)) / 10 for a, b in zip(found, exact, strict=True)])), 4)
        rows.append(row)
    print(f"{'products':>9} {'scan ms':>8} " + " ".join(f"{'ef' + str(e) + ' ms':>8} {'recall':>7}" for e in EFFORTS))
    for row in rows:
        print(f"{row['products']:>9} {row['scan_ms']:>8} " + " ".join(
            f"{row[f'walk_ef{e}_ms']:>8} {row[f'walk_ef{e}_recall@10']:>7}" for e in EFFORTS))
    print(json.dumps({"benchmark": "flat", "index": str(args.index), "queries": len(queries), "top": DEPTH,
                      "sizes": rows, "machine": machine(), "command": command()}))


if __name__ == "__main__":
    main()
