"""Bulk-encoding throughput, side by side in one run on the same catalog texts: plain
`SentenceTransformer.encode` vs the index's ONNX graph (fp32) vs that graph with per-channel int8 weights.

    python benchmarks/bench_encode.py --index indexes/homedepot [--n 2000] [--batch-size 64]

Also reports how close the int8 vectors are to the fp32 ones (cosine). Prints a table and one JSON line.
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
import pyarrow.parquet as pq

from searchkit import Searcher
from searchkit.encoder import OnnxEncoder, SentenceTransformerEncoder


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
    from onnxruntime.quantization import QuantType, quantize_dynamic

    searcher = Searcher.from_dir(args.index)
    table = pq.ParquetFile(args.index / "products.parquet").read()
    rng = np.random.default_rng(0)
    rows = rng.choice(table.num_rows, size=min(args.n, table.num_rows), replace=False)
    records = [table.slice(int(r), 1).to_pylist()[0] for r in rows]
    texts = [searcher.normaliser.product(r["title"], r.get("brand"), r.get("color")) for r in records]
    model_dir, graph = args.index / "model", args.index / "encoder.onnx"
    torch_enc = SentenceTransformerEncoder(model_dir, device="cpu")
    fp32 = OnnxEncoder(graph, model_dir, torch_enc.info)
    with tempfile.TemporaryDirectory() as tmp:
        quantize_dynamic(str(graph), f"{tmp}/int8.onnx", per_channel=True, weight_type=QuantType.QInt8)
        int8 = OnnxEncoder(f"{tmp}/int8.onnx", model_dir, torch_enc.info)
        ref, st_rate = timed(lambda t: torch_enc.encode(t, batch_size=args.batch_size), texts)
        a, fp32_rate = timed(lambda t: fp32.encode(t, batch_size=args.batch_size), texts)
        b, int8_rate = timed(lambda t: int8.encode(t, batch_size=args.batch_size), texts)
    cos_fp32, cos_int8 = (ref * a).sum(1), (ref * b).sum(1)
    report = {
        "benchmark": "encode", "index": str(args.index), "texts": len(texts), "batch_size": args.batch_size,
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cpus", "command": " ".join(sys.argv),
        "texts_per_s": {"sentence_transformers": round(st_rate, 1), "onnx_fp32": round(fp32_rate, 1),
                        "onnx_int8": round(int8_rate, 1)},
        "speedup": {"onnx_fp32": round(fp32_rate / st_rate, 2), "onnx_int8": round(int8_rate / st_rate, 2)},
        "cosine_to_torch": {"onnx_fp32_min": round(float(cos_fp32.min()), 5),
                            "onnx_int8_mean": round(float(cos_int8.mean()), 4),
                            "onnx_int8_min": round(float(cos_int8.min()), 4)},
    }
    print(f"{'encoder':<22} {'texts/s':>8} {'speed-up':>9}")
    print(f"{'SentenceTransformer':<22} {st_rate:8.1f} {1.0:9.2f}")
    print(f"{'ONNX fp32':<22} {fp32_rate:8.1f} {fp32_rate / st_rate:9.2f}")
    print(f"{'ONNX int8 per-channel':<22} {int8_rate:8.1f} {int8_rate / st_rate:9.2f}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
