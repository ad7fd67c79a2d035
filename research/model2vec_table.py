"""The query tower's token table, trained (the shipped one, `searchkit train-query-tower --layers 0`) or made
model2vec-style without training: each word piece's row is the model's mean-pooled embedding of that piece alone
(between [CLS] and [SEP], special pieces zero), raw or weighted by log(1 + rank) as model2vec's Zipf weighting.
Measured as the query encoder of the bundled index on the validation split (dense and hybrid NDCG@10), beside the
whole model's int8 graph.

    python research/model2vec_table.py --index indexes/homedepot [--split val]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def piece_table(graph: Path, tokenizer_file: Path, batch: int = 512) -> np.ndarray:
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    size = tokenizer.get_vocab_size()
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    special = {tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]")}
    rows = np.zeros((size, 384), dtype=np.float32)
    for first in range(0, size, batch):
        ids = np.arange(first, min(first + batch, size))
        feed = {"input_ids": np.stack([np.full(len(ids), cls), ids, np.full(len(ids), sep)], axis=1).astype(np.int64),
                "attention_mask": np.ones((len(ids), 3), dtype=np.int64),
                "token_type_ids": np.zeros((len(ids), 3), dtype=np.int64)}
        rows[ids] = session.run(None, feed)[0]
    rows[sorted(special)] = 0.0
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=ROOT / "indexes/homedepot")
    parser.add_argument("--pairs", type=Path, default=ROOT / "catalog/homedepot-pairs.parquet")
    parser.add_argument("--split", default="val")
    args = parser.parse_args()

    from searchkit import Searcher, set_search_threads
    from searchkit.data.catalog import read_pairs
    from searchkit.eval.measure import retrieval
    from searchkit.eval.selection import EvalConfig, select_pairs
    from searchkit.models.encoder import StaticEncoder
    from searchkit.search.results import Mode

    set_search_threads(1)
    pairs = select_pairs(read_pairs(args.pairs), EvalConfig(split=args.split))
    out = {"split": args.split, "queries": int(pairs["query"].nunique())}
    whole = Searcher.from_dir(args.index, backend="onnx-int8")
    out["whole model (int8 graph)"] = {m: retrieval(whole, pairs, m)["ndcg@10"] for m in (Mode.DENSE, Mode.HYBRID)}
    shipped = Searcher.from_dir(args.index)
    out["trained token table (shipped)"] = {m: retrieval(shipped, pairs, m)["ndcg@10"]
                                            for m in (Mode.DENSE, Mode.HYBRID)}
    raw = piece_table(args.index / "encoder.onnx", args.index / "model" / "tokenizer.json")
    zipf = raw * np.log1p(np.arange(len(raw), dtype=np.float32))[:, None]
    with tempfile.TemporaryDirectory() as tmp:
        for label, table in (("model2vec-style, raw", raw), ("model2vec-style, Zipf-weighted", zipf)):
            path = Path(tmp) / "table.npy"
            np.save(path, table.astype(np.float16))
            searcher = Searcher.from_dir(args.index)
            searcher.encoder = StaticEncoder(path, args.index / "model", searcher.encoder.info)
            searcher.cache_size = 0
            out[label] = {m: retrieval(searcher, pairs, m)["ndcg@10"] for m in (Mode.DENSE, Mode.HYBRID)}
    for label, row in out.items():
        if isinstance(row, dict):
            print(f"{label:<36} dense {row[Mode.DENSE]:.4f}  hybrid {row[Mode.HYBRID]:.4f}")
    print(json.dumps({k: ({str(m): round(v, 4) for m, v in r.items()} if isinstance(r, dict) else r)
                      for k, r in out.items()}))


if __name__ == "__main__":
    main()
