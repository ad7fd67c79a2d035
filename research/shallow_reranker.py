"""Could a shallower cross-encoder rerank within 25 ms? Cuts the shipped cross-encoder to its first L layers, times
its int8 graph over 30 candidates, and trains a student of L layers on the shipped one's logits (MSE) for training-split
queries' hybrid top 30; reports validation NDCG@10 of mode rerank with each, beside hybrid, and the p50 of scoring
30 candidates. Needs the [train] extra (torch, transformers).

    python research/shallow_reranker.py --index indexes/homedepot --layers 1,2,3 --student 2 \
        [--train-queries 900] [--epochs 2] [--val-queries 400] [--out /tmp/shallow]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from common import command, machine  # noqa: E402

from searchkit import Searcher, set_search_threads  # noqa: E402
from searchkit.data.catalog import read_pairs  # noqa: E402
from searchkit.eval.metrics import ndcg_at_k  # noqa: E402
from searchkit.eval.selection import EvalConfig, select_pairs  # noqa: E402
from searchkit.models.cross_encoder import Reranker, record_text  # noqa: E402
from searchkit.models.export import export_reranker  # noqa: E402

SHIPPED = Path("models/searchkit-homedepot/reranker")


def cut(layers: int, out: Path, model=None) -> Path:
    """The shipped cross-encoder's first `layers` layers (or `model`, trained) as a reranker folder with its graph."""
    import torch
    from transformers import AutoModelForSequenceClassification

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(SHIPPED, out, ignore=shutil.ignore_patterns("grader", "onnx", "model.safetensors", "config.json"))
    if model is None:
        model = AutoModelForSequenceClassification.from_pretrained(SHIPPED, dtype=torch.float32)
        model.bert.encoder.layer = model.bert.encoder.layer[:layers]
        model.config.num_hidden_layers = layers
    model.eval()
    model.half().save_pretrained(out)
    export_reranker(out, out / "graph.onnx")
    return out


def load(folder: Path) -> Reranker:
    return Reranker(folder / "graph.onnx", folder / "tokenizer.json", json.loads((folder / "reranker.json").read_text()),
                    threads=1)


def teacher_pairs(searcher: Searcher, queries: list[str]) -> tuple[list[tuple[str, str]], np.ndarray]:
    teacher = searcher.reranker
    texts: list[tuple[str, str]] = []
    logits: list[float] = []
    for q in queries:
        records = searcher.catalog.records([searcher._row_of[h.product_id] for h in searcher.search(q, k=30)])
        logits += list(teacher.scores(q, records))
        texts += [(teacher.text.query(q), record_text(teacher.text, p)) for p in records]
    return texts, np.array(logits, dtype=np.float32)


def student(layers: int, texts: list[tuple[str, str]], labels: np.ndarray, epochs: int, out: Path) -> Path:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(SHIPPED, dtype=torch.float32)
    model.bert.encoder.layer = model.bert.encoder.layer[:layers]
    model.config.num_hidden_layers = layers
    tokenizer = AutoTokenizer.from_pretrained(SHIPPED)
    target = torch.tensor(labels)
    batch, steps = 32, epochs * (len(texts) // 32)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda i: min(1.0, (i + 1) / (0.1 * steps)) * max(0.0, (steps - i) / steps))
    model.train()
    for epoch in range(epochs):
        order = np.random.default_rng(epoch).permutation(len(texts))
        for b in range(len(texts) // batch):
            rows = order[b * batch:(b + 1) * batch]
            encoded = tokenizer([texts[i][0] for i in rows], [texts[i][1] for i in rows], truncation="longest_first",
                                max_length=64, padding=True, return_tensors="pt")
            loss = torch.nn.functional.mse_loss(model(**encoded).logits.squeeze(-1), target[rows])
            loss.backward()
            optimiser.step()
            schedule.step()
            optimiser.zero_grad()
    return cut(layers, out, model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("indexes/homedepot"))
    parser.add_argument("--pairs", type=Path, default=Path("catalog/homedepot-pairs.parquet"))
    parser.add_argument("--layers", default="1,2,3")
    parser.add_argument("--student", type=int, default=2)
    parser.add_argument("--train-queries", type=int, default=900)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--val-queries", type=int, default=400)
    parser.add_argument("--out", type=Path, default=Path("/tmp/shallow"))
    args = parser.parse_args()
    set_search_threads(1)
    searcher = Searcher.from_dir(args.index)
    pairs = read_pairs(args.pairs)
    val = select_pairs(pairs, EvalConfig(split="val"))
    gains = {q: dict(zip(g["product_id"].astype(str), g["relevance"], strict=True)) for q, g in val.groupby("query")}
    queries = sorted(gains)[:args.val_queries]
    heads = [(q, searcher.catalog.records([searcher._row_of[h.product_id] for h in searcher.search(q, k=30)]))
             for q in queries[:60]]

    def measured(name: str, reranker: Reranker | None) -> dict:
        shipped = searcher._reranker
        if reranker is not None:
            searcher._reranker = reranker
        mode = "hybrid" if reranker is None and name == "hybrid" else "rerank"
        ndcg = float(np.mean([ndcg_at_k([h.product_id for h in searcher.search(q, k=10, mode=mode)], gains[q])
                              for q in queries]))
        took = []
        if mode == "rerank":
            for q, records in heads:
                started = time.perf_counter()
                searcher.reranker.scores(q, records)
                took.append((time.perf_counter() - started) * 1000)
        searcher._reranker = shipped
        row = {"reranker": name, "ndcg@10": round(ndcg, 4), "score_30_p50_ms": round(float(np.median(took)), 1)
               if took else None}
        print(row, flush=True)
        return row

    rows = [measured("hybrid", None), measured("shipped (6 layers)", None)]
    for layers in [int(x) for x in args.layers.split(",") if x]:
        rows.append(measured(f"first {layers} layers, untrained", load(cut(layers, args.out / f"cut{layers}"))))
    if args.student:
        train = sorted(set(select_pairs(pairs, EvalConfig(split="train"))["query"]))
        chosen = list(np.random.default_rng(0).choice(train, size=min(args.train_queries, len(train)), replace=False))
        texts, labels = teacher_pairs(searcher, chosen)
        folder = student(args.student, texts, labels, args.epochs, args.out / f"student{args.student}")
        rows.append(measured(f"{args.student}-layer student ({len(texts)} pairs, {args.epochs} epochs)", load(folder)))
    print(json.dumps({"machine": machine(), "command": command(), "val_queries": len(queries), "rows": rows}))


if __name__ == "__main__":
    main()
