"""An hour of catalog changes applied with `searchkit update`, next to a full rebuild of the same catalog:

    python benchmarks/bench_update.py [--index indexes/homedepot] [--retitle 0.008] [--add 0.001] [--delete 0.001]
        [--no-rebuild]

Copies the index (hard links), changes a seeded sample of its products (retitled: the title's words reversed and a
word added; added: new ids with new titles; deleted), times `searchkit update` as a new process, then builds the
updated catalog from scratch (no reuse, the index's own bulk encoder) and compares the two on 300 real test-split queries: lexical results equal
(ids and BM25 scores), dense and hybrid top-10 overlap, recall@10 of the updated index against exact search, deleted
products never returned, new and retitled ones found by their titles. --no-rebuild skips the rebuild and the checks
that need it (for the 1M synthetic index, whose rebuild takes most of an hour here). Prints a table and one JSON
line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command, machine, test_queries  # noqa: E402

from searchkit import IndexConfig, Searcher, build_index  # noqa: E402
from searchkit.index import layout  # noqa: E402


def timed(args: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return round(time.perf_counter() - started, 2), out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("indexes/homedepot"))
    parser.add_argument("--retitle", type=float, default=0.008)
    parser.add_argument("--add", type=float, default=0.001)
    parser.add_argument("--delete", type=float, default=0.001)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--no-rebuild", action="store_true", help="skip the from-scratch rebuild and its comparisons")
    args = parser.parse_args()

    manifest = layout.read_manifest(args.index)
    products = layout.read_products(layout.IndexFiles(args.index), manifest.rows).to_pandas()
    rng = np.random.default_rng(0)
    n = len(products)
    picks = rng.permutation(n)
    n_retitle, n_add, n_delete = (max(1, round(n * f)) for f in (args.retitle, args.add, args.delete))
    retitled = products.iloc[picks[:n_retitle]].copy()
    retitled["title"] = [" ".join(reversed(t.split())) + " edition" for t in retitled["title"]]
    new = products.iloc[picks[n_retitle:n_retitle + n_add]].copy()
    new["product_id"] = [f"new-{i}" for i in range(n_add)]
    new["title"] = [f"Zephyr {t}" for t in new["title"]]
    gone = products["product_id"].iloc[picks[n_retitle + n_add:n_retitle + n_add + n_delete]].tolist()
    queries = test_queries(n=args.queries)

    with tempfile.TemporaryDirectory(prefix="bench-update-", dir=args.index.parent) as tmp:
        work = Path(tmp)
        updated = work / "updated"
        shutil.copytree(args.index, updated, copy_function=os.link, ignore=shutil.ignore_patterns(".verified.json"))
        import pandas as pd

        upsert = pd.concat([retitled, new])
        upsert.to_parquet(work / "upsert.parquet", index=False)
        (work / "delete.txt").write_text("\n".join(gone) + "\n")
        seconds, out = timed([sys.executable, "-m", "searchkit", "update", "--index", str(updated), "--upsert",
                              str(work / "upsert.parquet"), "--delete", str(work / "delete.txt"), "--json"])
        report = json.loads(out)

        after = layout.read_products(layout.IndexFiles(updated), report["rows"]).to_pandas()
        after.to_parquet(work / "after.parquet", index=False)
        a = Searcher.from_dir(updated)
        edited = layout.read_manifest(updated).index.edited_share
        graph = f"graph edited ({edited:.2%} of rows)" if edited is not None else "built afresh"
        rebuild_seconds, lexical_equal, overlap = None, None, {"dense": None, "hybrid": None}
        if not args.no_rebuild:
            started = time.perf_counter()  # embedded afresh, the way the index was (its manifest's device line)
            bulk = "torch" if "torch" in manifest.device else "onnx-int8" if "int8" in manifest.device else "onnx"
            build_index(work / "after.parquet", work / "rebuilt", model=manifest.model.source,
                        config=IndexConfig(reuse=False, bulk=bulk))
            rebuild_seconds = round(time.perf_counter() - started, 2)
            b = Searcher.from_dir(work / "rebuilt")
            lexical_equal = all(
                [(h.product_id, round(h.score, 4)) for h in a.search(q, k=10, mode="lexical")]
                == [(h.product_id, round(h.score, 4)) for h in b.search(q, k=10, mode="lexical")] for q in queries)
            overlap = {mode: float(np.mean([len({h.product_id for h in a.search(q, k=10, mode=mode)}
                                                & {h.product_id for h in b.search(q, k=10, mode=mode)}) / 10
                                            for q in queries])) for mode in ("dense", "hybrid")}
        vectors = a.embed(queries)
        exact = (np.asarray(a.retriever.vectors) @ vectors.T).T.argsort(axis=1)[:, ::-1][:, :10]
        found = a.index.search(vectors, 10)[1]
        recall = float(np.mean([len(set(e) & set(f)) / 10 for e, f in zip(exact, found, strict=True)]))
        gone_set = set(gone)
        deleted_returned = sum(h.product_id in gone_set for q in queries[:100] for h in a.search(q, k=100))
        new_found = float(np.mean([r["product_id"] in [h.product_id for h in a.search(r["title"], k=10)]
                                   for _, r in new.iterrows()]))
        retitled_found = float(np.mean([r["product_id"] in [h.product_id for h in a.search(r["title"], k=10)]
                                        for _, r in retitled.head(200).iterrows()]))
    result = {"benchmark": "update", "machine": machine(), "command": command(), "index": str(args.index),
              "rows_before": n, "retitled": n_retitle, "added": n_add, "deleted": n_delete,
              "update_seconds": seconds, "update_report": report, "vector_index": graph, "full_rebuild_seconds": rebuild_seconds,
              "lexical_equal_to_rebuild": lexical_equal, "top10_overlap_with_rebuild": overlap,
              "recall@10_vs_exact_after_update": round(recall, 4),
              "recall@10_calibrated_target": manifest.index.target_recall,
              "deleted_returned_in_top100": deleted_returned, "new_found_by_title_top10": new_found,
              "retitled_found_by_new_title_top10": retitled_found}
    print(f"{'what':<52} {'figure':>12}")
    rows = [("searchkit update (whole process)", f"{seconds} s"),
            ("full rebuild of the updated catalog", f"{rebuild_seconds} s" if rebuild_seconds else "-"),
            ("vector index after the update", graph),
            ("products embedded by the update", report["reembedded"]),
            ("lexical top 10 equal to the rebuild's", "-" if lexical_equal is None else lexical_equal),
            ("dense top-10 overlap with the rebuild", "-" if overlap["dense"] is None else f"{overlap['dense']:.3f}"),
            ("hybrid top-10 overlap with the rebuild", "-" if overlap["hybrid"] is None else f"{overlap['hybrid']:.3f}"),
            ("recall@10 against exact search after the update", f"{recall:.4f}"),
            ("deleted products in any top 100", deleted_returned),
            ("new products found by their title (top 10)", f"{new_found:.3f}"),
            ("retitled products found by their new title (top 10)", f"{retitled_found:.3f}")]
    for what, figure in rows:
        print(f"{what:<52} {figure!s:>12}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
