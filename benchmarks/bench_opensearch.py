"""OpenSearch beside the local engine: how many of the local hybrid top 10 a cluster's hybrid query returns, on
test-split queries over a slice of the bundled catalog, with the cluster modelled by tests/fake_opensearch.py
(Lucene's legacy BM25, faiss HNSW at the calibrated efSearch, neural-search's per-clause min-max fusion).

    python benchmarks/bench_opensearch.py [--products 5000] [--queries 300]

"depth 100" is what searchkit sends (each clause's top 100 fused, as the local engine fuses its two top-100 lists);
"depth 10" is what it sent before (size = k: each clause contributes its top 10). Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command, machine  # noqa: E402


def overlap(a: list[str], b: list[str]) -> float:
    return len(set(a) & set(b)) / max(len(a), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=ROOT / "catalog/homedepot-products.parquet")
    parser.add_argument("--pairs", type=Path, default=ROOT / "catalog/homedepot-pairs.parquet")
    parser.add_argument("--products", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import pandas as pd

    from searchkit import IndexConfig, OpenSearchSearcher, Searcher, build_index, set_search_threads
    from searchkit.backends.opensearch.cluster import push_opensearch
    from searchkit.data.catalog import read_pairs
    from searchkit.data.splits import SplitConfig, split_pairs
    from tests.fake_opensearch import FakeOpenSearch

    set_search_threads(1)
    catalog = pd.read_parquet(args.catalog)
    test = split_pairs(read_pairs(args.pairs), SplitConfig(seed=42))["test"]
    rng = np.random.default_rng(args.seed)
    queries = sorted(rng.choice(sorted(set(test["query"])), size=args.queries, replace=False).tolist())
    rated = set(test[test["query"].isin(queries)]["product_id"].astype(str))
    ids = catalog["product_id"].astype(str)
    rest = catalog[~ids.isin(rated)].sample(n=max(0, args.products - len(rated)), random_state=args.seed)
    sliced = pd.concat([catalog[ids.isin(rated)], rest]).reset_index(drop=True)
    out = {"products": len(sliced), "queries": len(queries), "rated_products": len(rated)}
    with tempfile.TemporaryDirectory(prefix="searchkit-os-") as tmp:
        sliced.to_parquet(Path(tmp) / "slice.parquet", index=False)
        build_index(Path(tmp) / "slice.parquet", Path(tmp) / "idx", config=IndexConfig(index_type="hnsw"))
        local = Searcher.from_dir(Path(tmp) / "idx")
        with FakeOpenSearch() as cluster:
            push_opensearch(cluster.url, index_dir=Path(tmp) / "idx", name="slice")
            remote = OpenSearchSearcher.connect(cluster.url, "slice", Path(tmp) / "idx")
            rows = {}
            for label, depth, mode in (("hybrid, depth 100", 100, "hybrid"), ("hybrid, depth 10", 10, "hybrid"),
                                       ("dense", 100, "dense"), ("lexical", 100, "lexical")):
                remote.depth = depth
                started = time.perf_counter()
                shares = [overlap([h.product_id for h in local.search(q, k=10, mode=mode)],
                                  [h.product_id for h in remote.search(q, k=10, mode=mode)]) for q in queries]
                rows[label] = {"top10_overlap_mean": round(float(np.mean(shares)), 4),
                               "queries_with_8_or_more": round(float(np.mean([s >= 0.8 for s in shares])), 4),
                               "queries_with_all_10": round(float(np.mean([s == 1.0 for s in shares])), 4),
                               "seconds": round(time.perf_counter() - started, 1)}
    out["modes"] = rows
    print(f"{'OpenSearch (fake cluster) vs local, top 10':<44}{'mean overlap':>14}{'>= 8 of 10':>12}{'all 10':>9}")
    for label, row in rows.items():
        print(f"{label:<44}{row['top10_overlap_mean']:>14.3f}{row['queries_with_8_or_more']:>12.3f}"
              f"{row['queries_with_all_10']:>9.3f}")
    print(json.dumps({"bench": "opensearch", **out, "machine": machine(), "command": command()}))


if __name__ == "__main__":
    main()
