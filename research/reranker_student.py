"""A two-layer cross-encoder taught by the shipped one, listwise: can mode rerank answer within 25 ms and keep its gain?

The shipped cross-encoder (6 layers) scores every training-split query's hybrid top 30 as mode rerank reads them (its
int8 graph, the query as understood); a student made of some of its layers (`--keep 0,1`) learns to order each query's
candidates as it does: KL between the two softmaxes over `--ways` candidates drawn from the 30 each step, plus a small
MSE term that keeps the logits on the teacher's scale (the blend reads sigmoid(logit)). Then, on the validation split,
NDCG@10 of hybrid, the teacher and the student for each blend weight (the rerank order is computed exactly as
`searchkit.search.explain.reranked` does, from one hybrid top 30 per query), the weight chosen on validation applied to
the test split, and the p50 of scoring 30 candidates with each int8 graph as mode rerank runs them (pairs side by side).
Needs the [train] extra (torch, transformers).

    python research/reranker_student.py --index indexes/homedepot --keep 0,1 --epochs 3 --out /tmp/student
    python research/reranker_student.py --pilot 4 --keep 0,1 --out /tmp/student   # minutes per --keep choice
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from common import command, machine  # noqa: E402
from shallow_reranker import SHIPPED, cut, load  # noqa: E402

from searchkit import Searcher, set_search_threads  # noqa: E402
from searchkit.data.catalog import read_pairs  # noqa: E402
from searchkit.eval.measure import query_gains  # noqa: E402
from searchkit.eval.metrics import ndcg_at_k, spearman  # noqa: E402
from searchkit.eval.selection import EvalConfig, select_pairs  # noqa: E402
from searchkit.models.cross_encoder import Reranker, blend, record_text  # noqa: E402

DEPTH = 30


def heads(searcher: Searcher, queries: list[str]) -> dict[str, tuple[str, list[str], np.ndarray, list[str]]]:
    """Per query: the query as mode rerank passes it, its hybrid top DEPTH ids, their fused scores, their texts."""
    teacher = searcher.reranker
    out = {}
    for start in range(0, len(queries), 256):
        chunk = queries[start:start + 256]
        for query, hits in zip(chunk, searcher.search_batch(chunk, k=DEPTH, mode="hybrid", explain=True), strict=True):
            records = searcher.catalog.records([searcher._row_of[h.product_id] for h in hits])
            out[query] = (searcher._parse(query).understood, [h.product_id for h in hits],
                          np.array([h.explain["fusion"] for h in hits]),
                          [record_text(teacher.text, r) for r in records])
    return out


def labelled(searcher: Searcher, queries: list[str], cache: Path) -> dict[str, tuple]:
    """heads() plus the teacher's int8 logits for them, cached in `cache` (a few minutes to make)."""
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    teacher = searcher.reranker
    out = {}
    for query, (understood, ids, fused, texts) in heads(searcher, queries).items():
        records = searcher.catalog.records([searcher._row_of[i] for i in ids])
        out[query] = (understood, ids, fused, texts, teacher.scores(understood, records))
    cache.write_bytes(pickle.dumps(out))
    return out


def train(keep: list[int], data: dict[str, tuple], args: argparse.Namespace, minutes: float | None,
          query_text: Callable[[str], str]) -> tuple:
    """The student (and its tokenizer): the shipped cross-encoder's layers `keep`, trained on `data`'s teacher
    logits; query_text: a query as understood -> as the cross-encoder reads it."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(args.seed)
    model = AutoModelForSequenceClassification.from_pretrained(SHIPPED, dtype=torch.float32)
    model.bert.encoder.layer = torch.nn.ModuleList([model.bert.encoder.layer[i] for i in keep])
    model.config.num_hidden_layers = len(keep)
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)  # shared vocabulary, not retaught
    tokenizer = AutoTokenizer.from_pretrained(SHIPPED)
    queries = [q for q in sorted(data) if len(data[q][1]) >= args.ways]
    per_step = args.queries_per_step
    steps = args.epochs * (len(queries) // per_step)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda i: min(1.0, (i + 1) / (0.05 * steps)) * max(0.0, (steps - i) / steps))
    rng = np.random.default_rng(args.seed)
    model.train()
    started, step, losses = time.perf_counter(), 0, []
    while step < steps:
        order = rng.permutation(len(queries))
        for b in range(len(queries) // per_step):
            if step >= steps or (minutes is not None and time.perf_counter() - started > 60 * minutes):
                steps = step
                break
            left, right, target = [], [], []
            for i in order[b * per_step:(b + 1) * per_step]:
                understood, _, _, texts, logits = data[queries[i]]
                chosen = rng.choice(len(texts), size=args.ways, replace=False)
                q = query_text(understood)
                left += [q] * args.ways
                right += [texts[j] for j in chosen]
                target.append(logits[chosen])
            encoded = tokenizer(left, right, truncation="longest_first", max_length=64, padding=True,
                                return_tensors="pt")
            student = model(**encoded).logits.view(per_step, args.ways)
            teacher = torch.tensor(np.stack(target), dtype=torch.float32)
            t = args.temperature
            kl = torch.nn.functional.kl_div(torch.log_softmax(student / t, -1), torch.log_softmax(teacher / t, -1),
                                            log_target=True, reduction="batchmean")
            centred = torch.nn.functional.mse_loss(student - student.mean(-1, keepdim=True),
                                                   teacher - teacher.mean(-1, keepdim=True))
            loss = kl + centred + args.mse * torch.nn.functional.mse_loss(student, teacher)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            optimiser.zero_grad()
            losses.append(float(kl.detach()))
            step += 1
            if step % 50 == 0:
                print(f"step {step}/{steps} kl {np.mean(losses[-50:]):.4f} "
                      f"{time.perf_counter() - started:.0f} s", flush=True)
    model.eval()
    return model, tokenizer, {"steps": step, "seconds": round(time.perf_counter() - started, 1),
                   "kl_last_50": round(float(np.mean(losses[-50:])), 4) if losses else None}


def scored(reranker: Reranker, searcher: Searcher, data: dict[str, tuple]) -> tuple[dict[str, np.ndarray], list]:
    """Each query's int8 logits for its candidates by `reranker`, and the ms each query's 30 took."""
    out, took = {}, []
    for query, (understood, ids, _, _, _) in data.items():
        records = searcher.catalog.records([searcher._row_of[i] for i in ids])
        started = time.perf_counter()
        out[query] = reranker.scores(understood, records)
        took.append((time.perf_counter() - started) * 1000)
    return out, took


def ndcg(data: dict[str, tuple], logits: dict[str, np.ndarray] | None, gains: dict, weight: float) -> float:
    values = []
    for query, (_, ids, fused, _, _) in data.items():
        if logits is None or weight == 0.0:
            order = np.arange(len(ids))
        else:
            order = np.lexsort((np.arange(len(ids)), -blend(logits[query], fused, weight)))
        values.append(ndcg_at_k([ids[i] for i in order], gains[query], 10))
    return float(np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("indexes/homedepot"))
    parser.add_argument("--pairs", type=Path, default=Path("catalog/homedepot-pairs.parquet"))
    parser.add_argument("--keep", default="0,1", help="the shipped layers the student starts from; ';' between choices")
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--ways", type=int, default=8)
    parser.add_argument("--queries-per-step", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--mse", type=float, default=0.1)
    parser.add_argument("--temperature", type=float, default=0.3, help="both softmaxes' (the teacher's logits "
                        "spread little within a query: sd 0.47)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pilot", type=float, default=None, help="minutes of training per --keep choice, then "
                        "the KL on 500 held-back training queries only")
    parser.add_argument("--weights", default="0.5,0.6,0.7,0.8,0.9,1.0")
    parser.add_argument("--out", type=Path, default=Path("/tmp/student"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    set_search_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    searcher = Searcher.from_dir(args.index, mmap=True)
    query_text = searcher.reranker.text.query
    pairs = read_pairs(args.pairs)
    train_queries = sorted(set(select_pairs(pairs, EvalConfig(split="train"))["query"]))
    data = labelled(searcher, train_queries, args.out / "train-labels.pkl")
    print(f"{len(data)} training queries labelled", flush=True)
    choices = [[int(x) for x in c.split(",")] for c in args.keep.split(";")]
    if args.pilot is not None:
        held = dict(sorted(data.items())[-500:])
        rest = dict(sorted(data.items())[:-500])
        for keep in choices:
            model, tokenizer, report = train(keep, rest, args, args.pilot, query_text)
            kls, rhos = [], []
            with torch.inference_mode():
                for understood, _, _, texts, logits in held.values():
                    enc = tokenizer(
                        [query_text(understood)] * len(texts), texts, truncation="longest_first", max_length=64,
                        padding=True, return_tensors="pt")
                    raw = model(**enc).logits.view(-1)
                    s = torch.log_softmax(raw / args.temperature, -1)
                    t = torch.log_softmax(torch.tensor(logits) / args.temperature, -1)
                    kls.append(float((t.exp() * (t - s)).sum()))
                    rhos.append(spearman(raw.numpy(), logits))
            print(json.dumps({"keep": keep, **report, "held_kl": round(float(np.mean(kls)), 4),
                              "held_spearman": round(float(np.mean(rhos)), 4)}), flush=True)
        return
    keep = choices[0]
    model, _, report = train(keep, data, args, None, query_text)
    folder = cut(len(keep), args.out / f"student-{'-'.join(map(str, keep))}", model)
    student = load(folder)
    teacher = searcher.reranker
    weights = [float(w) for w in args.weights.split(",")]
    rows = {}
    for split in ("val", "test"):
        gains = query_gains(select_pairs(pairs, EvalConfig(split=split)))
        split_data = labelled(searcher, sorted(gains), args.out / f"{split}-labels.pkl")
        teacher_logits = {q: v[4] for q, v in split_data.items()}
        student_logits, student_ms = scored(student, searcher, split_data)
        _, teacher_ms = scored(teacher, searcher, dict(list(split_data.items())[:200]))
        rows[split] = {"queries": len(split_data), "hybrid": round(ndcg(split_data, None, gains, 0.0), 4),
                       "teacher": {w: round(ndcg(split_data, teacher_logits, gains, w), 4) for w in weights},
                       "student": {w: round(ndcg(split_data, student_logits, gains, w), 4) for w in weights},
                       "teacher_score_30_p50_ms": round(float(np.median(teacher_ms)), 1),
                       "student_score_30_p50_ms": round(float(np.median(student_ms)), 1)}
        print(json.dumps({split: rows[split]}), flush=True)
    best = max(weights, key=lambda w: rows["val"]["student"][w])
    print(json.dumps({"machine": machine(), "command": command(), "keep": keep, "training": report,
                      "student_weight_chosen_on_val": best,
                      "test_at_that_weight": rows["test"]["student"][best], "rows": rows}))


if __name__ == "__main__":
    main()
