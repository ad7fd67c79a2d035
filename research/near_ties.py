"""How far near-copies in a catalog ("... 2-pack", "... 3-pack") move the measures that pick an index's query encoder
and search effort, on an index as built:

- the token table's build check (searchkit.index.graphs.build_query_graph), replayed on the build's 256 title
  snippets: top-10 overlap with the whole model by ids, and with near-ties counted (graphs.near_overlap); with
  --reset 0.25,0.5 also for the shipped table with that share of its rows put back to their start (needs torch);
- the HNSW recall@10 curve on the calibration queries (`searchkit calibrate`'s 1,000 validation queries, embedded as
  searches embed them), by ids and by ann-benchmarks' k-NN recall (a result within NEAR_TIE of the exact 10th
  counts);
- with --hybrid: how much of the hybrid top 10 at each efSearch is that of the same search with an exact dense leg
  (300 validation queries).

    python research/near_ties.py --index indexes/homedepot [--reset 0.25,0.5] [--hybrid 64,128,256]
    python research/near_ties.py --index /tmp/scale/rebuilt --hybrid 64,128,192,256,384

Prints each figure and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from common import command, machine  # noqa: E402

from searchkit import Searcher, set_search_threads  # noqa: E402
from searchkit.data.catalog import read_pairs  # noqa: E402
from searchkit.eval.selection import EvalConfig, sample, select_pairs  # noqa: E402
from searchkit.index.ann import EF_CHOICES, exact_top, set_knob  # noqa: E402
from searchkit.index.graphs import NEAR_TIE, near_overlap  # noqa: E402
from searchkit.index.texts import product_texts  # noqa: E402
from searchkit.models.encoder import OnnxEncoder, StaticEncoder  # noqa: E402
from searchkit.models.query_tower import token_table  # noqa: E402


def snippets(searcher: Searcher, count: int = 256, seed: int = 2) -> list[str]:
    """The build check's query-like texts (searchkit.index.texts.query_like with its seed), from the stored products."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    picks = rng.choice(len(searcher), size=min(count, len(searcher)), replace=False).tolist()
    lengths = [int(rng.integers(2, 6)) for _ in picks]
    frame = pd.DataFrame(searcher.catalog.records(picks))
    for column in ("brand", "color"):
        if column not in frame:
            frame[column] = ""
    return [" ".join(t.split()[:n]) or "x" for t, n in zip(product_texts(frame, searcher.normaliser), lengths,
                                                              strict=True)]


def table_check(searcher: Searcher, index: Path, resets: list[float]) -> dict:
    queries = snippets(searcher)
    model = index / "model"
    full = OnnxEncoder(index / "encoder.onnx", model, searcher.encoder.info).encode(queries)
    truth = searcher.index.search(full, 10)[1]
    trained = token_table(model).astype(np.float32)
    start = None
    if resets:
        import torch
        from transformers import AutoModel, AutoTokenizer

        from searchkit.models.query_tower import piece_embeddings

        weights = AutoModel.from_pretrained(str(model), dtype=torch.float32)
        start = piece_embeddings(weights, AutoTokenizer.from_pretrained(str(model))).numpy()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for share in [0.0, *resets]:
            table = trained.copy()
            if share and start is not None:
                reset = np.random.default_rng(0).random(len(table)) < share
                table[reset] = start[reset]
            np.save(Path(tmp) / "table.npy", table.astype(np.float16))
            fast = StaticEncoder(Path(tmp) / "table.npy", model, searcher.encoder.info).encode(queries)
            found = searcher.index.search(fast, 10)[1]
            ids = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, found, strict=True)]))
            near = near_overlap(searcher.retriever.vectors, full, truth, found)
            out[f"reset {share}"] = {"top10_overlap": round(ids, 4), "top10_near_overlap": round(near, 4)}
            print(f"token table, {share:.0%} of rows reset: top-10 overlap {ids:.4f} by ids, {near:.4f} with near-ties")
    return out


def recall_curve(searcher: Searcher, queries: list[str]) -> dict:
    vectors = searcher.retriever.vectors
    embedded = searcher.embed_queries(queries)
    truth = exact_top(vectors, embedded, 10)
    tenth = np.array([(vectors[t] @ q).min() for t, q in zip(truth, embedded, strict=True)])
    out = {}
    for ef in EF_CHOICES:
        set_knob(searcher.index, "hnsw", ef)
        found = searcher.index.search(embedded, 11)[1][:, :10]  # as calibrate asks
        ids = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))
        near = float(np.mean([np.sum(vectors[f[f >= 0]] @ q >= t - NEAR_TIE) / 10
                              for f, q, t in zip(found, embedded, tenth, strict=True)]))
        out[ef] = {"ids": round(ids, 4), "near_ties": round(near, 4)}
        print(f"efSearch {ef}: recall@10 {ids:.4f} by ids, {near:.4f} with near-ties")
    return out


def hybrid_agreement(searcher: Searcher, queries: list[str], efforts: list[int]) -> dict:
    retriever = searcher.retriever
    vectors, approximate = retriever.vectors, retriever.dense

    def exact(embedded, depth, mask):  # every product scored: the dense leg as an exact index would give it
        out = []
        for v in embedded:
            scores = vectors @ v
            top = np.argpartition(-scores, depth)[:depth]
            top = top[np.lexsort((top, -scores[top]))]
            out.append((top, scores[top]))
        return out

    retriever.dense = exact
    searcher.cache_size = 0
    reference = {q: [h.product_id for h in searcher.search(q, k=10)] for q in queries}
    retriever.dense = approximate
    out = {}
    for ef in efforts:
        set_knob(searcher.index, "hnsw", ef)
        shared = np.mean([len(set(reference[q]) & {h.product_id for h in searcher.search(q, k=10)}) / len(reference[q])
                          for q in queries if reference[q]])
        out[ef] = round(float(shared), 4)
        print(f"efSearch {ef}: {shared:.4f} of the hybrid top 10 as with an exact dense leg")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, default=Path("indexes/homedepot"))
    parser.add_argument("--pairs", type=Path, default=Path("catalog/homedepot-pairs.parquet"))
    parser.add_argument("--reset", default="", help="Shares of the table's rows to reset, e.g. 0.25,0.5.")
    parser.add_argument("--hybrid", default="", help="efSearch values to compare hybrid results at, e.g. 64,128.")
    args = parser.parse_args()
    set_search_threads(2)
    searcher = Searcher.from_dir(args.index, mmap=True)
    val = list(dict.fromkeys(select_pairs(read_pairs(args.pairs), EvalConfig(split="val"))["query"]))
    report = {"script": "near_ties", "index": str(args.index), "rows": len(searcher), "machine": machine(),
              "command": command(),
              "table_check": table_check(searcher, args.index, [float(s) for s in args.reset.split(",") if s]),
              "recall_curve": recall_curve(searcher, sample(val, 1000, seed=0))}
    if args.hybrid:
        report["hybrid_top10_as_exact"] = hybrid_agreement(searcher, sample(val, 300, seed=1),
                                                           [int(e) for e in args.hybrid.split(",")])
    print(json.dumps(report))


if __name__ == "__main__":
    main()
