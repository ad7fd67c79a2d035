"""Raw text: quality when a caller skips searchkit's text pipeline and feeds a model folder, through plain
sentence-transformers, the catalog's titles and the shoppers' queries exactly as written (no lower-casing, no stems,
no brand_/color_ tokens) — as someone measuring the model on another shop's data might — beside the model's own
text pipeline and that pipeline with whole words.

    python research/eval_raw_text.py --model MODEL_DIR [MODEL_DIR ...] [--split test] [--text raw,normalised]

For each model and text form: pair Spearman (cosine vs rating) and dense retrieval over the whole catalog (exact
search: NDCG@10, MRR@10, Recall@10/100), on the held-out split. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from searchkit.data.catalog import read_catalog, read_pairs
from searchkit.data.splits import split_pairs
from searchkit.eval.measure import query_gains, query_relevant
from searchkit.eval.metrics import mrr_at_k, ndcg_at_k, recall_at_k, spearman
from searchkit.index.texts import product_texts
from searchkit.models.encoder import load_encoder
from searchkit.training.embedder import catalog_normaliser

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # common.py
from common import command, machine  # noqa: E402

FORMS = ("raw", "normalised", "words")


def texts(products, queries: list[str], form: str, encoder) -> tuple[list[str], list[str]]:
    """raw: titles and queries as written; normalised: the model's own text pipeline; words: that pipeline with
    whole words (stem off)."""
    if form == "raw":
        return products["title"].fillna("").astype(str).tolist(), queries
    config = encoder.info.text if form == "normalised" else replace(encoder.info.text, stem=False)
    norm = catalog_normaliser(products, config)
    return product_texts(products, norm), [norm.query(q) for q in queries]


def measure(model_dir: Path, form: str, products, pairs, batch: int) -> dict:
    queries = sorted(set(pairs["query"]))
    encoder = load_encoder(model_dir, device="cpu")
    catalog_texts, query_texts = texts(products, queries, form, encoder)
    start = time.perf_counter()
    catalog = np.asarray(encoder.encode(catalog_texts, batch_size=batch), dtype=np.float32)
    asked = np.asarray(encoder.encode(query_texts, batch_size=batch), dtype=np.float32)
    seconds = time.perf_counter() - start
    ids = products["product_id"].astype(str).to_numpy()
    row_of = {pid: i for i, pid in enumerate(ids)}
    q_row = {q: i for i, q in enumerate(queries)}
    cos = np.einsum("ij,ij->i", asked[[q_row[q] for q in pairs["query"]]],
                    catalog[[row_of[str(p)] for p in pairs["product_id"]]])
    gains = query_gains(pairs)
    relevant = query_relevant(pairs)
    scores = asked @ catalog.T
    depth = min(100, scores.shape[1] - 1)
    top = np.argpartition(-scores, depth, axis=1)[:, :depth + 1]
    rows = []
    for i, query in enumerate(queries):
        order = top[i][np.argsort(-scores[i, top[i]], kind="stable")]
        ranked = ids[order].tolist()
        rows.append((ndcg_at_k(ranked, gains[query], 10), mrr_at_k(ranked, relevant[query], 10),
                     recall_at_k(ranked, relevant[query], 10) if relevant[query] else np.nan,
                     recall_at_k(ranked, relevant[query], 100) if relevant[query] else np.nan))
    means = np.nanmean(np.array(rows, dtype=float), axis=0)
    return {"model": str(model_dir), "text": form, "spearman": round(spearman(cos, pairs["relevance"]), 4),
            **{name: round(float(v), 4) for name, v in zip(("ndcg@10", "mrr@10", "recall@10", "recall@100"), means)},
            "encode_s": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, nargs="+", required=True)
    parser.add_argument("--catalog", type=Path, default=Path("catalog/homedepot-products.parquet"))
    parser.add_argument("--pairs", type=Path, default=Path("catalog/homedepot-pairs.parquet"))
    parser.add_argument("--split", default="test", choices=("val", "test"))
    parser.add_argument("--text", default="raw,normalised", help="Text forms to compare: raw, normalised, words.")
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    forms = args.text.split(",")
    if set(forms) - set(FORMS):
        parser.error(f"--text: choose from {', '.join(FORMS)}")

    products = read_catalog(args.catalog)
    pairs = split_pairs(read_pairs(args.pairs))[args.split]
    rows = []
    for model in args.model:
        for form in forms:
            rows.append(measure(model, form, products, pairs, args.batch))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(f"{args.split}: {pairs['query'].nunique()} queries, {len(pairs)} rated pairs, {len(products)} products, "
          "dense retrieval, exact search")
    print(f"{'model':<40} {'text':<10} {'spearman':>8} {'ndcg@10':>8} {'mrr@10':>7} {'r@10':>7} {'r@100':>7}")
    for r in rows:
        print(f"{r['model']:<40} {r['text']:<10} {r['spearman']:8.4f} {r['ndcg@10']:8.4f} {r['mrr@10']:7.4f} "
              f"{r['recall@10']:7.4f} {r['recall@100']:7.4f}")
    print(json.dumps({"benchmark": "raw_text", "split": args.split, "rows": rows, "machine": machine(),
                      "command": command()}))


if __name__ == "__main__":
    sys.exit(main())
