"""Query latency of an index: warm `Searcher.search` p50/p99 per mode, and the cold `searchkit query` process.

    python benchmarks/bench_query.py --index indexes/homedepot [--queries 300] [--cold-runs 3] [--backend auto]
        [--modes dense,lexical,hybrid[,rerank]] [--filters "brand=kohler;color=white;price=10..50"] [--sort price]
        [--token-table MODEL] [--mmap] [--warm-up 1000]

Warm queries are distinct real shopper queries (a seeded sample of the test split of the bundled pairs), each
searched once, so nothing is served from a cache. Before them the searcher answers --warm-up other queries (the
training split's), as a running server has: a freshly mapped index's pages are first read by the searches that reach
them, which a first pass after loading would time (0: time from the load on). Prints a table and one JSON line
(machine and command included).
--token-table MODEL embeds queries with MODEL's static query encoder (`searchkit train-query-tower --layers 0`) instead of
the index's own, for an index built before the model had one (MODEL must hold the weights the index was built with;
warm figures only). --mmap loads the index as `searchkit query` and the server's workers do, its arrays mapped
rather than read in. With mode rerank in --modes, "rerank+explain" times the same searches with explain=True, which
adds the relevance estimate of each result when the index has a fit (its grader encodes the query and each of the
10 products: the cost of judging results).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command, earlier_queries, machine, percentiles, test_queries, turns  # noqa: E402


def warm(index: Path, queries: list[str], modes: list[str], backend: str, target_recall: float | None,
         token_table: Path | None = None, filters: tuple[str, ...] = (), sort: str | None = None,
         mmap: bool = False, rerank_depth: int | None = None, warm_up: list[str] | None = None) -> dict:
    from searchkit import Searcher, set_search_threads

    started = time.perf_counter()
    set_search_threads(1)  # as the CLI and the server run
    searcher = Searcher.from_dir(index, backend=backend, target_recall=target_recall, mmap=mmap,
                                 rerank_depth=rerank_depth)
    load_s = time.perf_counter() - started
    if token_table:
        searcher.encoder = swapped_encoder(searcher, token_table)
    out = {"load_seconds": round(load_s, 2), "rows": len(searcher), "queries": len(queries),
           "query_encoder": searcher.encoder.path.name if hasattr(searcher.encoder, "path") else "torch",
           "index": searcher.manifest.index.type, "params": searcher.manifest.index.params,
           "searched_with": searcher.search_params, "target_recall": target_recall, "mapped": mmap,
           "rerank_depth": searcher.reranker.settings.depth if "rerank" in modes else None,
           "warm_up_queries": len(warm_up or [])}
    def timed(call, items) -> dict:
        times = []
        for item in items:
            t = time.perf_counter()
            call(item)
            times.append((time.perf_counter() - t) * 1000)
        return percentiles(times)

    searcher.cache_size = 0  # every query below is embedded afresh
    for q in warm_up or []:
        searcher.search(q, k=10)
    out["embed_only"] = timed(lambda q: searcher.embed_queries([q]), queries)
    def forget() -> None:  # every (query, product) pair below is read by the cross-encoder afresh
        if "rerank" in modes:
            searcher.reranker.forget()

    for mode in modes:
        for q in queries[:10]:
            searcher.search(q, k=10, mode=mode)
        forget()
        out[mode] = timed(lambda q, m=mode: searcher.search(q, k=10, mode=m), queries)
    if "rerank" in modes:
        forget()
        out["rerank+explain"] = timed(lambda q: searcher.search(q, k=10, mode="rerank", explain=True), queries)
    if searcher.manifest.index.type != "flat":  # the ANN's recall@10 on these (held-out) queries
        from searchkit.index.ann import exact_top, recall_at_k, stored_vectors

        vectors = searcher.embed_queries(queries)
        out["recall@10_vs_exact"] = round(recall_at_k(searcher.index.search(vectors, 10)[1],
                                                      exact_top(stored_vectors(searcher.index), vectors, 10)), 4)
        if searcher.lexical is not None:  # hybrid's top 10 against the same search with an exact dense leg
            from searchkit.eval.calibrate import hybrid_recall

            out["hybrid_recall@10_vs_exact_leg"] = hybrid_recall(searcher, queries)
    for expression in filters:  # hybrid with one filter, paired query by query with the unfiltered search
        from searchkit.search.filters import merge_filters

        wanted = merge_filters([expression])
        if not set(wanted) <= set(searcher.table.column_names):  # a catalog without that column: nothing to time
            out[f"hybrid {expression}"] = {"skipped": f"the index has no column {sorted(set(wanted))}"}
            continue
        for q in queries[:10]:
            searcher.search_with_facets(q, k=10, filters=wanted)
        out[f"hybrid {expression}"] = paired(lambda q: searcher.search(q, k=10),
                                             lambda q, f=wanted: searcher.search(q, k=10, filters=f), queries)
        out[f"hybrid+facets {expression}"] = paired(
            lambda q: searcher.search(q, k=10), lambda q, f=wanted: searcher.search_with_facets(q, k=10, filters=f),
            queries)
    if filters:
        out["hybrid+facets"] = paired(lambda q: searcher.search(q, k=10),
                                      lambda q: searcher.search_with_facets(q, k=10), queries)
    prefixes = [q[:n] for q in queries[:100] for n in range(1, len(q) + 1)]  # what a shopper types, letter by letter
    searcher.suggest("a")  # completions are read on first use
    out["suggest (every prefix)"] = timed(lambda p: searcher.suggest(p, 8), prefixes)
    if sort:
        for q in queries[:10]:
            searcher.search(q, k=10, sort=sort)
        out[f"hybrid sort={sort}"] = paired(lambda q: searcher.search(q, k=10),
                                            lambda q: searcher.search(q, k=10, sort=sort), queries)
        inside = [set(h.product_id for h in searcher.search(q, k=10, sort=sort)) <= set(
            h.product_id for h in searcher.search(q, k=100)) for q in queries]
        out["sorted first page within the unsorted top 100"] = round(float(np.mean(inside)), 4)
    out["page 2 (offset 10)"] = paired(lambda q: searcher.search(q, k=10),
                                       lambda q: searcher.search(q, k=10, offset=10), queries)
    searcher.cache_size = 4096  # a repeated query: its embedding comes from the cache
    searcher.search(queries[0], k=10)
    out["hybrid_repeated_query"] = timed(lambda q: searcher.search(q, k=10), [queries[0]] * len(queries))
    if "rerank" in modes:  # its pairs come from the cross-encoder's memory
        out["rerank_repeated_query"] = timed(lambda q: searcher.search(q, k=10, mode="rerank"),
                                             [queries[0]] * len(queries))
    return out


def paired(plain, variant, queries: list[str]) -> dict:
    """The variant's latency and what it adds to the plain search, timed query by query in turn (on a shared
    machine the two drift together, so the median of the per-query differences is steadier than two medians), the
    two taking turns at going first (common.turns)."""
    plain_ms: list[float] = []
    variant_ms: list[float] = []
    for i, q in enumerate(queries):
        for call, times in turns([(plain, plain_ms), (variant, variant_ms)], i):
            t = time.perf_counter()
            call(q)
            times.append((time.perf_counter() - t) * 1000)
    extra = np.array(variant_ms) - np.array(plain_ms)
    return {**percentiles(variant_ms), "added_p50_ms": round(float(np.median(extra)), 3)}


def swapped_encoder(searcher, model: Path):
    """MODEL's token table as the searcher's query encoder (refused unless MODEL's weights embedded the index)."""
    import tempfile

    from searchkit.models.encoder import StaticEncoder, model_fingerprint
    from searchkit.models.query_tower import token_table

    if model_fingerprint(model, query_tower=False) != searcher.manifest.model.fingerprint:
        # an index built from a model that already had a table carries it (use --backend query-tower instead)
        raise SystemExit(f"{model}: not the weights {searcher.manifest.model.name} embedded this index with")
    with tempfile.TemporaryDirectory(prefix="bench-table-") as tmp:  # the encoder reads the whole table in
        path = Path(tmp) / "query-tokens.npy"
        np.save(path, token_table(model))
        return StaticEncoder(path, model, searcher.encoder.info)


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
    parser.add_argument("--pairs", type=Path, default=Path("catalog/homedepot-pairs.parquet"))
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--cold-runs", type=int, default=3, help="0: warm figures only.")
    parser.add_argument("--modes", default="dense,lexical,hybrid")
    parser.add_argument("--backend", default="auto", help="Query encoder: auto, distilled, onnx-int8, onnx, torch.")
    parser.add_argument("--target-recall", type=float, default=None,
                        help="Search with the cheapest efSearch/nprobe the build measured reaching this recall@10.")
    parser.add_argument("--filters", default="brand=kohler;color=white;price=10..50",
                        help="Hybrid searches with each of these filters (';' between them; '' for none).")
    parser.add_argument("--sort", default=None, help="Also time sorted searches by this column (e.g. price).")
    parser.add_argument("--token-table", type=Path, default=None,
                        help="Embed queries with this model folder's static query encoder (see the docstring).")
    parser.add_argument("--mmap", action="store_true",
                        help="Map the index's arrays, as `searchkit query` and the server's workers load it.")
    parser.add_argument("--rerank-depth", type=int, default=None,
                        help="Mode rerank reads this many hybrid candidates (default: the cross-encoder's own).")
    parser.add_argument("--warm-up", type=int, default=1000,
                        help="Other queries (the training split's) searched before the timed ones (0: none).")
    args = parser.parse_args()
    if args.token_table and args.cold_runs:
        parser.error("--token-table measures warm searches only: add --cold-runs 0")
    report = {
        "benchmark": "query", "index": str(args.index), "machine": machine(), "command": command(),
        "warm": warm(args.index, test_queries(args.pairs, args.queries), args.modes.split(","), args.backend,
                     args.target_recall, args.token_table, tuple(f for f in args.filters.split(";") if f),
                     args.sort, args.mmap, args.rerank_depth,
                     earlier_queries(args.pairs, args.warm_up) if args.warm_up else []),
        "cold_cli": cold(args.index, args.cold_runs) if args.cold_runs > 0 else None,
    }
    w = report["warm"]
    print(f"index {args.index}: {w['rows']} products ({w['index']} {w['params']}), query encoder {w['query_encoder']},"
          f" load {w['load_seconds']} s, {w['queries']} distinct queries after {w['warm_up_queries']} others,"
          f" searched with {w['searched_with'] or 'exact'}")
    if "sorted first page within the unsorted top 100" in w:
        print(f"sorted first pages within the unsorted top 100: {w['sorted first page within the unsorted top 100']}")
    if "recall@10_vs_exact" in w:
        print(f"recall@10 of the approximate index against exact search, on these queries: {w['recall@10_vs_exact']}")
    if "hybrid_recall@10_vs_exact_leg" in w:
        print(f"hybrid's top 10 against hybrid with an exact dense leg, on these queries: "
              f"{w['hybrid_recall@10_vs_exact_leg']}")
    print(f"{'mode':<32} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10}")
    for mode in [m for m in w if isinstance(w[m], dict) and "p50_ms" in w[m]]:
        added = w[mode].get("added_p50_ms", "")
        print(f"{mode:<32} {w[mode]['p50_ms']:>8} {w[mode]['p99_ms']:>8} {added:>10}")
    for mode in [m for m in w if isinstance(w[m], dict) and "skipped" in w[m]]:
        print(f"{mode:<32} not timed: {w[mode]['skipped']}")
    if report["cold_cli"]:
        print(f"cold `searchkit query`: median {report['cold_cli']['median_s']} s over {args.cold_runs} runs")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
