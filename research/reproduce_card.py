"""The reference model card's own measurement: Spearman (and Pearson) of a model's cosine against the label
(relevance - 1) / 2 over rated pairs held out by a random *pair* split, beside the same figure on this project's split
by query (where no held-out query was trained on).

    python research/reproduce_card.py --model MODEL_DIR [MODEL_DIR ...] [--split test] [--by pair,query]

A model trained by `searchkit train` is measured only on the held-out part of the split it was trained with (its
searchkit.json `split`), so it never sees pairs it learnt from; a model with no such record (the base model) is
measured on every split asked for. Texts go through the model's own text pipeline, as in training (queries are not
spell-corrected). Also printed: how many held-out pairs have a query that the split's training part also holds, and a
95% interval for each Spearman from 1,000 bootstrap draws of whole queries. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from searchkit.data.catalog import read_catalog, read_pairs
from searchkit.data.splits import SPLIT_BY, SplitConfig, query_key, split_pairs
from searchkit.eval.metrics import bootstrap_spearman, pearson
from searchkit.models.encoder import load_encoder, read_model_info
from searchkit.training.embedder import catalog_normaliser

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # common.py
from common import command, machine  # noqa: E402

REFERENCE = 0.5197  # the card's Spearman, cosine vs label, on its random pair split


def measure(model_dir: Path, products, parts: dict, by: str, split: str, batch: int) -> dict:
    held = parts[split]
    trained = {query_key(q) for q in parts["train"]["query"]}
    encoder = load_encoder(model_dir, device="cpu")
    norm = catalog_normaliser(products, encoder.info.text)
    by_id = products.set_index("product_id").loc[sorted(set(held["product_id"]))]
    product_text = {pid: norm.product(r.title, r.brand, r.color) for pid, r in by_id.iterrows()}
    queries = sorted(set(held["query"]))
    started = time.perf_counter()
    asked = np.asarray(encoder.encode([norm.query(q) for q in queries], batch_size=batch), dtype=np.float32)
    ids = list(product_text)
    shown = np.asarray(encoder.encode([product_text[p] for p in ids], batch_size=batch), dtype=np.float32)
    seconds = time.perf_counter() - started
    q_row = {q: i for i, q in enumerate(queries)}
    p_row = {p: i for i, p in enumerate(ids)}
    cos = np.einsum("ij,ij->i", asked[[q_row[q] for q in held["query"]]],
                    shown[[p_row[p] for p in held["product_id"]]])
    labels = (held["relevance"].to_numpy(float) - 1) / 2
    rho = bootstrap_spearman(cos, labels, held["query"].to_numpy(object))
    return {"model": str(model_dir), "split_by": by, "split": split, "pairs": len(held), "queries": len(queries),
            "query_trained_on": round(float(held["query"].map(query_key).isin(trained).mean()), 4),
            "spearman": round(rho["value"], 4), "spearman_95": [round(rho["low"], 4), round(rho["high"], 4)],
            "pearson": round(pearson(cos, labels), 4), "encode_s": round(seconds, 1)}


def trained_split(model_dir: Path) -> SplitConfig | None:
    """The split a searchkit-trained model learnt from (None for a model searchkit did not train)."""
    split = read_model_info(model_dir).get("split")
    return SplitConfig(**split) if split else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, nargs="+", required=True)
    parser.add_argument("--catalog", type=Path, default=Path("catalog/homedepot-products.parquet"))
    parser.add_argument("--pairs", type=Path, default=Path("catalog/homedepot-pairs.parquet"))
    parser.add_argument("--split", default="test", choices=("val", "test"))
    parser.add_argument("--by", default="pair,query", help="Splits to measure models with no split record on.")
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    asked_by = args.by.split(",")
    if set(asked_by) - set(SPLIT_BY):
        parser.error(f"--by: choose from {', '.join(SPLIT_BY)}")

    products = read_catalog(args.catalog)
    pairs = read_pairs(args.pairs)
    rows = []
    for model in args.model:
        own = trained_split(model)
        for split in [own] if own else [SplitConfig(by=by) for by in asked_by]:
            rows.append(measure(model, products, split_pairs(pairs, split), split.by, args.split, args.batch))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(f"{args.split} part of each split; Spearman and Pearson of cosine vs (relevance - 1) / 2 "
          f"(the reference card: {REFERENCE} on a random pair split)")
    print(f"{'model':<44} {'split by':<8} {'pairs':>6} {'trained q':>9} {'spearman':>8} {'95% interval':>15} "
          f"{'pearson':>8}")
    for r in rows:
        low, high = r["spearman_95"]
        print(f"{r['model']:<44} {r['split_by']:<8} {r['pairs']:6d} {r['query_trained_on']:9.3f} "
              f"{r['spearman']:8.4f} {f'{low:.4f}-{high:.4f}':>15} {r['pearson']:8.4f}")
    print(json.dumps({"benchmark": "reproduce_card", "split": args.split, "reference": REFERENCE, "rows": rows,
                      "machine": machine(), "command": command()}))


if __name__ == "__main__":
    sys.exit(main())
