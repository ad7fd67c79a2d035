"""Bulk-encoding throughput, side by side in one run on the same catalog texts: plain
`SentenceTransformer.encode` vs the index's ONNX graph (fp32) vs that graph with per-channel int8 weights, with one
activation scale per run (onnxruntime's dynamic quantisation) and with per-row scales, alone and as build-index runs it (one one-thread graph runner per core, at most 8, on alternate
batches).

    python benchmarks/bench_encode.py --index indexes/homedepot [--n 2000] [--batch-size 64]

Also reports how close the int8 vectors are to the torch ones (cosine), and whether a text embeds the same in another
batch (the texts reversed, batch size 48). Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from searchkit import Searcher, set_search_threads
from searchkit.models.encoder import OnnxEncoder, SentenceTransformerEncoder, bulk_parallelism


def timed(encode, texts: list[str]) -> tuple[np.ndarray, float]:
    encode(texts[:64])  # warm up
    started = time.perf_counter()
    vectors = encode(texts)
    return vectors, len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("indexes/homedepot"))
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    from searchkit.models.export import quantize_graph

    set_search_threads(1)  # as the CLI and the server run
    searcher = Searcher.from_dir(args.index)
    table = searcher.catalog
    rng = np.random.default_rng(0)
    rows = rng.choice(table.num_rows, size=min(args.n, table.num_rows), replace=False)
    records = table.records([int(r) for r in rows])
    texts = [searcher.normaliser.product(r["title"], r.get("brand"), r.get("color")) for r in records]
    model_dir, graph = args.index / "model", args.index / "encoder.onnx"
    torch_enc = SentenceTransformerEncoder(model_dir, device="cpu")
    ref, st_rate = timed(lambda t: torch_enc.encode(t, batch_size=args.batch_size), texts)
    rates, cosines, moved = {"sentence_transformers": st_rate}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = (("onnx_fp32", None, 1), ("onnx_int8_per_run", False, 1), ("onnx_int8_per_row", True, 1),
                ("onnx_int8_per_row_parallel", True, bulk_parallelism()))  # the last: as build-index embeds
        for name, per_row, runners in runs:
            path = graph if per_row is None else Path(tmp) / f"{name}.onnx"
            if per_row is not None:
                quantize_graph(graph, path, per_row=per_row)
            encoder = OnnxEncoder(path, model_dir, torch_enc.info, parallel=runners)
            vectors, rates[name] = timed(lambda t, e=encoder: e.encode(t, batch_size=args.batch_size), texts)
            cosines[name] = (ref * vectors).sum(1)
            other = encoder.encode(texts[::-1], batch_size=48)[::-1]
            moved[name] = float((vectors * other).sum(1).min())
    report = {
        "benchmark": "encode", "index": str(args.index), "texts": len(texts), "batch_size": args.batch_size,
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cpus", "command": " ".join(sys.argv),
        "texts_per_s": {k: round(v, 1) for k, v in rates.items()},
        "speedup": {k: round(v / st_rate, 2) for k, v in rates.items()},
        "cosine_to_torch": {k: {"mean": round(float(c.mean()), 4), "min": round(float(c.min()), 4)}
                            for k, c in cosines.items()},
        "min_cosine_in_another_batch": {k: round(v, 6) for k, v in moved.items()},
    }
    print(f"{'encoder':<26} {'texts/s':>8} {'speed-up':>9} {'cos mean':>9} {'cos min':>8} {'other batch':>12}")
    print(f"{'SentenceTransformer':<26} {st_rate:8.1f} {1.0:9.2f}")
    for name in cosines:
        print(f"{name:<26} {rates[name]:8.1f} {rates[name] / st_rate:9.2f} {cosines[name].mean():9.4f} "
              f"{cosines[name].min():8.4f} {moved[name]:12.6f}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
