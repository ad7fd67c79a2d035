"""A new user's first build, whole process against plain sentence-transformers on the same titles, in one run:

    python benchmarks/bench_build.py [--products 3000] [--batch-sizes 16,32,64,128] [--model models/searchkit-homedepot]

Each figure is the wall time of a fresh process: `SentenceTransformer(model).encode(titles)` at each batch size (import,
load, encode), then `searchkit build-index` with default options twice, with an empty graph cache (the first build of
a model exports its ONNX graphs) and with the cache that build filled (every later build). Prints a table and one
JSON line; the issue's bar is a default build at least 2x faster than the best encode.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command, machine  # noqa: E402

ENCODE = """
import sys, pandas as pd
from sentence_transformers import SentenceTransformer
titles = pd.read_csv(sys.argv[1], dtype=str, keep_default_na=False)["name"].tolist()
model = SentenceTransformer(sys.argv[2], device="cpu", model_kwargs={"dtype": "float32"})
model.encode(titles, batch_size=int(sys.argv[3]), normalize_embeddings=True)
"""


def timed(args: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return round(time.perf_counter() - started, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=3000)
    parser.add_argument("--batch-sizes", default="16,32,64,128")
    parser.add_argument("--model", type=Path, default=Path("models/searchkit-homedepot"))
    parser.add_argument("--catalog", type=Path, default=Path("catalog/homedepot-products.parquet"))
    args = parser.parse_args()
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        work = Path(tmp)
        shop = pd.read_parquet(args.catalog).sample(n=args.products, random_state=0)
        # as a shop keeps it: sku, name, brand, colour, price
        shop = shop.rename(columns={"product_id": "sku", "title": "name", "color": "colour"})[
            ["sku", "name", "brand", "colour"]].assign(price=[f"{9.99 + i % 50:.2f}" for i in range(len(shop))])
        csv = work / "shop.csv"
        shop.to_csv(csv, index=False)
        encode = {int(b): timed([sys.executable, "-c", ENCODE, str(csv), str(args.model), b])
                  for b in args.batch_sizes.split(",")}
        env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}
        cli = [sys.executable, "-m", "searchkit", "build-index", str(csv), "--model", str(args.model)]
        cold = timed([*cli, "--out", str(work / "cold")], env)
        warm = timed([*cli, "--out", str(work / "warm")], env)
        manifest = json.loads((work / "warm" / "manifest.json").read_text())
    best = min(encode, key=encode.get)
    report = {"benchmark": "build", "machine": machine(), "command": command(), "products": args.products,
              "model": str(args.model), "encode_seconds_by_batch": encode, "encode_best_batch": best,
              "encode_best_seconds": encode[best], "build_first_seconds": cold, "build_cached_seconds": warm,
              "speedup_first": round(encode[best] / cold, 2), "speedup_cached": round(encode[best] / warm, 2),
              "build_device": manifest["device"]}
    print(f"{'what':<58} {'seconds':>8}")
    for batch, seconds in encode.items():
        print(f"{f'SentenceTransformer.encode, batch {batch} (whole process)':<58} {seconds:>8}")
    print(f"{'searchkit build-index, first build of the model':<58} {cold:>8}  ({report['speedup_first']}x)")
    print(f"{'searchkit build-index, later builds (graph cache)':<58} {warm:>8}  ({report['speedup_cached']}x)")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
