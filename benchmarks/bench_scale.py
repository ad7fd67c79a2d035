"""Scale benchmark: synthetic catalogs of 100K and 1M products grown from the bundled one; for each index type the
build throughput, index size, peak memory, warm search p50/p99 and recall@10 against exact search; end to end
(`build_index`, warm `Searcher.search`, cold `searchkit query`) at the sizes asked for.

    python benchmarks/bench_scale.py --index indexes/homedepot --sizes 100000,1000000 \
        --types flat,hnsw,hnsw-sq8,ivf-sq8 --e2e-sizes 100000 [--e2e-encode real|synthetic] [--work runs/scale]

How the synthetic catalogs are made (deterministic, seed 0): the real products come first (their stored vectors);
each further product is a variant of a random real "parent": its title is the parent's plus a variant word
("2-pack", "pro series", ...), same brand and colour, and its vector is the parent's plus Gaussian noise shaped
like the real vectors' covariance (PCA), scaled so a variant's cosine to its parent equals the median cosine of a
real product to its nearest real neighbour, then re-normalised. So the density grows the way a bigger catalog of
similar goods would, rather than filling space uniformly (which no embedder does).
Queries are real: 300 validation-split queries calibrate each approximate index (its efSearch / nprobe), 300
test-split queries are measured; recall@10 is against exact search over the same vectors. Each measurement runs in
its own process, so peak memory is per index type. `--e2e-encode real` embeds every synthetic title with the model
(--bulk onnx-int8); `synthetic` reuses the synthetic vectors (then build throughput excludes encoding). After the
build, the end-to-end index is re-calibrated on the 300 validation queries (`searchkit calibrate`'s recalibrate())
and searched with that setting.

Prints a table and one JSON line (machine and command included).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command, folder_mb, machine, peak_rss_mb, percentiles, rss_mb, test_queries  # noqa: E402

VARIANTS = ["2-pack", "3-pack", "4-pack", "value bundle", "pro series", "contractor pack", "v2", "plus", "deluxe",
            "compact", "heavy duty", "eco", "classic", "select", "premium", "xl"]
QUERY_SAMPLE = 300


# -- synthetic data (parent process) --------------------------------------------------------------------------------

def real_parts(index: Path) -> tuple[np.ndarray, object]:
    import faiss

    from searchkit.index import layout

    stored = faiss.read_index(str(index / "index.faiss"))
    vectors = stored.reconstruct_n(0, stored.ntotal).astype(np.float32)
    return vectors, layout.read_products(layout.IndexFiles(index), stored.ntotal)


def noise_scale(vectors: np.ndarray, covariance_trace: float, seed: int = 0) -> tuple[float, float]:
    """Noise scale giving a variant the cosine to its parent that a real product has to its nearest neighbour."""
    from searchkit.index.ann import exact_top

    rng = np.random.default_rng(seed)
    sample = rng.choice(len(vectors), size=min(1000, len(vectors)), replace=False)
    nearest = exact_top(vectors, vectors[sample], 1, exclude=sample)[:, 0]
    cosine = float(np.median((vectors[sample] * vectors[nearest]).sum(1)))
    return float(np.sqrt(1.0 / cosine**2 - 1.0) / np.sqrt(covariance_trace)), cosine


def synthesize(vectors: np.ndarray, table, size: int, work: Path) -> dict:
    """Write work/vectors-N.npy and work/catalog-N.parquet (cached); return how they were made."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    vec_path, cat_path, info_path = (work / f"vectors-{size}.npy", work / f"catalog-{size}.parquet",
                                     work / f"synthetic-{size}.json")
    if vec_path.is_file() and cat_path.is_file() and info_path.is_file():
        return json.loads(info_path.read_text())
    rng = np.random.default_rng(0)
    real = len(vectors)
    centred = vectors - vectors.mean(0)
    eigvals, eigvecs = np.linalg.eigh(centred.T @ centred / real)
    shape = (np.sqrt(np.clip(eigvals, 0, None))[:, None] * eigvecs.T).astype(np.float32)  # z @ shape ~ N(0, C)
    scale, nn_cosine = noise_scale(vectors, float(eigvals.sum()))
    out = np.lib.format.open_memmap(vec_path, mode="w+", dtype=np.float32, shape=(size, vectors.shape[1]))
    out[:min(real, size)] = vectors[:size]
    parents = rng.integers(0, real, size=max(0, size - real))
    for start in range(0, len(parents), 100_000):
        chunk = parents[start:start + 100_000]
        noisy = vectors[chunk] + scale * (rng.standard_normal((len(chunk), vectors.shape[1]), np.float32) @ shape)
        out[real + start:real + start + len(chunk)] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    out.flush()
    columns = {name: table.values(name) for name in ("product_id", "title", "brand", "color")}
    rows = np.concatenate([np.arange(min(real, size)), parents])
    variant = rng.integers(0, len(VARIANTS), size=len(parents))
    titles = columns["title"][:min(real, size)] + [f"{columns['title'][p]} {VARIANTS[v]}"
                                                   for p, v in zip(parents, variant, strict=True)]
    ids = columns["product_id"][:min(real, size)] + [f"S{i:07d}" for i in range(len(parents))]
    pq.write_table(pa.table({"product_id": ids, "title": titles,
                             "brand": [columns["brand"][r] for r in rows],
                             "color": [columns["color"][r] for r in rows]}), cat_path)
    info = {"rows": size, "real_rows": min(real, size), "noise_scale": round(scale, 5),
            "median_nearest_neighbour_cosine": round(nn_cosine, 4)}
    info_path.write_text(json.dumps(info))
    return info


def query_vectors(index: Path, work: Path) -> None:
    """Real query embeddings (the index's query encoder): val queries calibrate, test queries are measured."""
    if (work / "queries-test.npy").is_file():
        return
    import pandas as pd

    from searchkit import Searcher
    from searchkit.data.splits import SplitConfig, split_pairs

    searcher = Searcher.from_dir(index)
    parts = split_pairs(pd.read_parquet("catalog/homedepot-pairs.parquet"), SplitConfig())
    for name in ("val", "test"):
        queries = sorted(set(parts[name]["query"]))
        picks = np.random.default_rng(1).choice(len(queries), size=min(QUERY_SAMPLE, len(queries)), replace=False)
        chosen = [queries[i] for i in sorted(picks)]
        (work / f"queries-{name}.json").write_text(json.dumps(chosen))
        np.save(work / f"queries-{name}.npy", searcher.embed_queries(chosen))


def truth(work: Path, size: int) -> None:
    from searchkit.index.ann import exact_top

    path = work / f"truth-{size}.npy"
    if not path.is_file():
        vectors = np.load(work / f"vectors-{size}.npy", mmap_mode="r")
        np.save(path, exact_top(np.ascontiguousarray(vectors), np.load(work / "queries-test.npy"), 10))


# -- measurements (child processes) ---------------------------------------------------------------------------------

def child_vectors(work: Path, size: int, kind: str, target: float, ef_construction: int) -> dict:
    import faiss

    from searchkit.index.ann import AnnConfig, make_index, recall_at_k

    vectors = np.load(work / f"vectors-{size}.npy")
    loaded_mb = rss_mb()
    started = time.perf_counter()
    index, meta, where = make_index(vectors, AnnConfig(index_type=kind, target_recall=target,
                                                       hnsw_ef_construction=ef_construction),
                                    np.load(work / "queries-val.npy"))
    build_s = time.perf_counter() - started
    faiss.omp_set_num_threads(1)  # as the CLI and server set it: one thread per query
    queries = np.load(work / "queries-test.npy")
    index.search(queries[:5], 10)
    times, found = [], []
    for q in queries:
        t = time.perf_counter()
        _, ids = index.search(q[None, :], 10)
        times.append((time.perf_counter() - t) * 1000)
        found.append(ids[0])
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        faiss.write_index(index, f"{tmp}/index.faiss")
        size_mb = round(Path(f"{tmp}/index.faiss").stat().st_size / 2**20, 1)
    return {"part": "vectors", "size": size, "type": kind, "built_on": where,
            "build_seconds": round(build_s, 2), "vectors_per_s": round(size / build_s),
            "params": meta["params"], "recall@10_calibration": meta["recall@10_sample"],
            "recall@10_test_queries": round(recall_at_k(np.array(found), np.load(work / f"truth-{size}.npy")), 4),
            "search": percentiles(times), "index_mb": size_mb,
            "peak_rss_mb": peak_rss_mb(), "rss_after_loading_vectors_mb": loaded_mb}


class PrecomputedEncoder:
    """The model's encoder, except that the catalog itself gets the synthetic vectors (benchmark only)."""

    def __init__(self, real, vectors: np.ndarray):
        self.real, self.vectors, self.info, self.device = real, vectors, real.info, "cpu (precomputed)"

    def encode(self, texts, batch_size=64, progress=False):
        return self.vectors if len(texts) == len(self.vectors) else self.real.encode(texts, batch_size=batch_size)


def child_e2e(work: Path, size: int, index: Path, encode: str, index_type: str, target: float) -> dict:
    from searchkit import IndexConfig, Searcher, build_index
    from searchkit.models.encoder import load_encoder

    out = work / f"index-{size}"
    config = IndexConfig(index_type=index_type, target_recall=target,
                         bulk="onnx-int8" if encode == "real" else "torch")
    encoder = load_encoder(index / "model", device="cpu")
    if encode == "synthetic":
        encoder = PrecomputedEncoder(encoder, np.load(work / f"vectors-{size}.npy"))
    started = time.perf_counter()
    manifest = build_index(work / f"catalog-{size}.parquet", out, model=index / "model", config=config,
                           encoder=encoder)
    build_s = time.perf_counter() - started
    build_peak = peak_rss_mb()
    report = {"part": "e2e", "size": size, "encode": encode, "bulk": config.bulk, "index": manifest.index.type,
              "params": manifest.index.params, "recall@10_calibration": manifest.index.recall_sample,
              "build_seconds": round(build_s, 1), "products_per_s": round(size / build_s),
              "build_peak_rss_mb": build_peak, "index_folder_mb": folder_mb(out)}
    if manifest.index.type != "flat":  # as `searchkit calibrate` would: the val queries that calibrate the rows above
        from searchkit.eval.calibrate import recalibrate

        meta = recalibrate(out, json.loads((work / "queries-val.json").read_text()), target,
                           source="bench_scale val queries").index
        report["calibrated_on_val_queries"] = {"params": meta.params, "recall@10": meta.recall_sample}
    searcher = Searcher.from_dir(out)
    report["searcher_rss_mb"] = rss_mb()  # this process, after the build's memory was released (as far as it is)
    searcher.cache_size = 0  # every query embedded afresh
    report["warm"] = {}
    for mode in ("dense", "lexical", "hybrid"):
        searcher.search("warm up", k=10, mode=mode)
        times = []
        for q in test_queries(n=200):
            t = time.perf_counter()
            searcher.search(q, k=10, mode=mode)
            times.append((time.perf_counter() - t) * 1000)
        report["warm"][mode] = percentiles(times)
    walls = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "searchkit", "query", "swag light kit", "--index", str(out)],
                       check=True, capture_output=True)
        walls.append(time.perf_counter() - t)
    report["cold_query_s"] = {"median": round(float(np.median(walls)), 2), "min": round(min(walls), 2)}
    return report


def run_child(args: list[str]) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("indexes/homedepot"))
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--types", default="flat,hnsw,hnsw-sq8,ivf-sq8")
    parser.add_argument("--e2e-sizes", default="100000")
    parser.add_argument("--e2e-encode", choices=["real", "synthetic"], default="real")
    parser.add_argument("--e2e-index-type", default="auto")
    parser.add_argument("--target-recall", type=float, default=0.98)
    parser.add_argument("--hnsw-ef-construction", type=int, default=200)
    parser.add_argument("--work", type=Path, default=Path("runs/scale"))
    parser.add_argument("--keep", action="store_true", help="Keep the end-to-end index folders.")
    parser.add_argument("--child", choices=["vectors", "e2e"], help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--type", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "vectors":
        print(json.dumps(child_vectors(args.work, args.size, args.type, args.target_recall, args.hnsw_ef_construction)))
        return
    if args.child == "e2e":
        print(json.dumps(child_e2e(args.work, args.size, args.index, args.e2e_encode, args.e2e_index_type,
                                   args.target_recall)))
        return

    args.work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    e2e_sizes = [int(s) for s in args.e2e_sizes.split(",") if s]
    vectors, table = real_parts(args.index)
    query_vectors(args.index, args.work)
    report = {"benchmark": "scale", "machine": machine(), "command": command(), "index": str(args.index),
              "synthetic": {}, "results": []}
    common = ["--work", str(args.work), "--target-recall", str(args.target_recall), "--index", str(args.index)]
    for size in sorted(set(sizes) | set(e2e_sizes)):
        report["synthetic"][size] = synthesize(vectors, table, size, args.work)
        if size in sizes:
            truth(args.work, size)
            for kind in args.types.split(","):
                result = run_child(["--child", "vectors", "--size", str(size), "--type", kind, *common,
                                    "--hnsw-ef-construction", str(args.hnsw_ef_construction)])
                report["results"].append(result)
                print(f"{size:>8} {kind:<9} build {result['build_seconds']:>7.1f} s  p50 {result['search']['p50_ms']:>7.3f}"
                      f" ms  p99 {result['search']['p99_ms']:>7.3f} ms  recall@10 {result['recall@10_test_queries']:.4f}"
                      f"  {result['params']}  index {result['index_mb']} MB  peak {result['peak_rss_mb']} MB",
                      file=sys.stderr, flush=True)
        if size in e2e_sizes:
            result = run_child(["--child", "e2e", "--size", str(size), "--e2e-encode", args.e2e_encode,
                                "--e2e-index-type", args.e2e_index_type, *common])
            report["results"].append(result)
            print(f"{size:>8} e2e: {json.dumps(result)}", file=sys.stderr, flush=True)
            if not args.keep:
                shutil.rmtree(args.work / f"index-{size}", ignore_errors=True)
    print(f"{'products':>9} {'index':<9} {'build/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'recall@10':>9} {'MB':>7} "
          f"{'peak MB':>8}  knob")
    for r in report["results"]:
        if r["part"] == "vectors":
            print(f"{r['size']:>9} {r['type']:<9} {r['vectors_per_s']:>9} {r['search']['p50_ms']:>8} "
                  f"{r['search']['p99_ms']:>8} {r['recall@10_test_queries']:>9} {r['index_mb']:>7} "
                  f"{r['peak_rss_mb']:>8}  {r['params']}")
        else:
            print(f"{r['size']:>9} end-to-end ({r['encode']} encode, {r['index']}): {r['products_per_s']} products/s, "
                  f"warm p50 dense/lexical/hybrid {r['warm']['dense']['p50_ms']}/{r['warm']['lexical']['p50_ms']}/"
                  f"{r['warm']['hybrid']['p50_ms']} ms, cold query {r['cold_query_s']['median']} s, "
                  f"folder {r['index_folder_mb']} MB, build peak {r['build_peak_rss_mb']} MB; search setting "
                  f"{r['params']} from the build, {r.get('calibrated_on_val_queries', {}).get('params', '-')} "
                  f"after calibrating on val queries (used above)")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
