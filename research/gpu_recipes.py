"""One prepared run on a lent GPU machine (CUDA + torch; faiss is not needed): the GPU encoding path side by side
with plain `SentenceTransformer.encode`, then a training sweep on the GPU whose candidates are measured on the
validation split (queries unseen in training; the test split is never looked at here), and the chosen model
packed to come back.

    python research/gpu_recipes.py --out DIR [--budget 470] [--device cuda] [--tests] [--quick] [--rerankers]

Writes DIR/gpu_recipes.json after every step (a run cut short still reports what it finished), prints a table, and
packs the chosen candidate as DIR/chosen-model.tar.NN (15 MB parts: `cat chosen-model.tar.* | tar x`).
--rerankers: train cross-encoder candidates instead of embedders (`searchkit train-reranker` on the GPU, hybrid
candidates from a flat index of the shipped model built on the machine first), each measured on all validation
queries against the shipped cross-encoder on the same candidates; the best packs as DIR/chosen-reranker.tar.NN.
--quick: a few steps and queries on the CPU, to rehearse the whole script before spending device time.
--distil: the distil recipe (`searchkit train --recipe distil`): a flat index of the shipped model with its
cross-encoder built on the machine, teacher labels for every training query plus 8,000 pseudo-queries over their
hybrid top 50 (the cross-encoder in torch on the GPU), then the DISTILS candidates, each measured like the others.
--only NAME ...: just those candidates, e.g. the whole chain from the base model on whole words and its control on
stems: `--skip encode --only words-mnrl-b256-e2 words-hardneg-b256-e4 stems-mnrl-b256-e2 stems-hardneg-b256-e4`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import sys
import tarfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from searchkit.data.catalog import read_catalog, read_pairs  # noqa: E402
from searchkit.data.splits import split_pairs  # noqa: E402
from searchkit.eval.evaluate import evaluate  # noqa: E402
from searchkit.eval.in_memory import in_memory_searcher  # noqa: E402
from searchkit.eval.selection import EvalConfig  # noqa: E402
from searchkit.index.texts import product_texts  # noqa: E402
from searchkit.training.embedder import RELEVANT, DistilSettings, TrainConfig, train  # noqa: E402
from searchkit.training.teacher import LabelSettings, read_labels, teacher_labels  # noqa: E402

SHIPPED = Path("models/searchkit-homedepot")  # relative: run from the repo root (as recorded in model cards)
CATALOG = Path("catalog/homedepot-products.parquet")
PAIRS = Path("catalog/homedepot-pairs.parquet")
PART_BYTES = 15 * 1024 * 1024


@dataclass(frozen=True)
class Candidate:
    recipe: str
    epochs: float
    batch: int
    lr: float
    start: str = "shipped"  # "shipped", "base" (all-MiniLM-L6-v2) or the name of a candidate trained before it
    stem: bool = True  # False: the model reads whole words (`searchkit train --no-stem`)
    distil: tuple = ()  # (setting, value) pairs of the distil recipe's DistilSettings


# run in this order while time lasts; a candidate whose start did not finish is skipped
CANDIDATES = {
    "hardneg-b128-e3": Candidate("hardneg", 3, 128, 3e-5),
    "hardneg-b256-e4": Candidate("hardneg", 4, 256, 3e-5),
    "multitask-b64-e2": Candidate("multitask", 2, 64, 2e-5),
    "multitask-b128-e3": Candidate("multitask", 3, 128, 3e-5),
    "multitask-b128-e2": Candidate("multitask", 2, 128, 3e-5),
    "cosent-b32-e1": Candidate("cosent", 1, 32, 2e-5),
    # the whole chain from the base model, on whole words and (its control) on stems: `mnrl`, then `hardneg` at
    # batch 256 as the shipped model's last step. On the CPU one `mnrl` epoch, then one `hardneg`
    # epoch, each at batch 32, compared the two text forms at a smaller scale
    "words-mnrl-b256-e2": Candidate("mnrl", 2, 256, 5e-5, start="base", stem=False),
    "words-hardneg-b256-e4": Candidate("hardneg", 4, 256, 3e-5, start="words-mnrl-b256-e2", stem=False),
    "stems-mnrl-b256-e2": Candidate("mnrl", 2, 256, 5e-5, start="base"),
    "stems-hardneg-b256-e4": Candidate("hardneg", 4, 256, 3e-5, start="stems-mnrl-b256-e2"),
}

# --distil: the distil recipe from the shipped model; labels for all training queries + 8,000 pseudo-queries
DISTILS = {
    "distil-kl-b128-e2": Candidate("distil", 2, 128, 3e-5, distil=(("ways", 8), ("rows_per_query", 2))),
    "distil-kl-b128-e1-t05": Candidate("distil", 1, 128, 3e-5, distil=(("teacher_temperature", 0.5),)),
    "distil-mmse-b128-e2": Candidate("distil", 2, 128, 3e-5, distil=(("loss", "margin_mse"), ("rows_per_query", 8))),
}
DISTIL_LABELS = {"train_queries": None, "pseudo_queries": 8000, "candidates": 50}

# name -> (start from, epochs, unrated negatives per query, drawn from the hybrid top, batch size, lr, layers kept
# (0: all)); the shipped cross-encoder: from the embedder, 1 epoch, 4 negatives from the top 50, batch 32, lr 3e-5 (49
# min on the CPU). More negatives hurt on the CPU (16 from the top 30, one more epoch: validation 0.4178 vs 0.4210,
# pair Spearman 0.39 vs 0.47; unrated is not irrelevant), so these try more epochs and fewer negatives. The 2-layer
# ones are for rerank within 25 ms on two cores: one epoch of them on the CPU kept none of the gain (docs/speed.md)
RERANKERS = {
    "ce-n4-d50-e3": ("embedder", 3, 4, 50, 64, 3e-5, 0),
    "ce-n2-d50-e3": ("embedder", 3, 2, 50, 64, 3e-5, 0),
    "ce-n4-d50-e2": ("embedder", 2, 4, 50, 64, 3e-5, 0),
    "ce-l2-n4-d50-e6": ("reranker", 6, 4, 50, 64, 1e-4, 2),
    "ce-l2-n4-d50-e12": ("embedder", 12, 4, 50, 64, 1e-4, 2),
}


def summary(report: dict) -> dict:
    r = report["retrieval"]
    return {"spearman": round(report["pairs"]["spearman"], 4), "queries": report["queries"],
            **{f"{mode}_ndcg@10": round(r[mode]["ndcg@10"], 4) for mode in r},
            **{f"{mode}_recall@100": round(r[mode]["recall@100"], 4) for mode in r}}


_FIRST: dict = {}  # the first in-memory searcher: its catalog texts, BM25 index and spell vocabulary are reused


def measure(model, catalog: Path, config: EvalConfig, device: str, pairs) -> tuple[dict, float]:
    """Val metrics of a model over the whole catalog (exact search), as build-index + Searcher would rank."""
    from searchkit.index.ann import ExactIndex
    from searchkit.models.encoder import load_encoder
    from searchkit.search.searcher import Searcher

    started = time.perf_counter()
    first = _FIRST.get("searcher")
    encoder = load_encoder(model, device=device)
    if first is None or encoder.info.text != first.normaliser.config:
        searcher = in_memory_searcher(catalog, model, device=device, encoder=encoder)
        _FIRST.setdefault("searcher", searcher)
        _FIRST.setdefault("texts", product_texts(searcher.products, searcher.normaliser))
    else:
        vectors = encoder.encode(_FIRST["texts"], batch_size=256)
        searcher = Searcher(ExactIndex(vectors), first.table, encoder, first.manifest, first.normaliser,
                            first.lexical, first.corrector)
    return summary(evaluate(searcher, pairs, config)), round(time.perf_counter() - started, 1)


def small_data(work: Path) -> tuple[Path, Path]:
    """--quick: the pairs of 300 queries and a catalog of their products plus 700 others."""
    pairs, products = read_pairs(PAIRS), read_catalog(CATALOG)
    pairs = pairs[pairs["query"].isin(sorted(set(pairs["query"]))[:300])]
    keep = set(pairs["product_id"]) | set(products["product_id"].head(700))
    pairs.to_parquet(work / "pairs.parquet", index=False)
    products[products["product_id"].isin(keep)].to_parquet(work / "products.parquet", index=False)
    return work / "products.parquet", work / "pairs.parquet"


def encode_bench(device: str, quick: bool) -> dict:
    """Plain SentenceTransformer.encode (fp32, its default batch 32) vs searchkit's encoder on the same texts."""
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from searchkit.data.text import BrandMatcher, CachedStemmer, Normaliser
    from searchkit.models.encoder import SentenceTransformerEncoder

    ours = SentenceTransformerEncoder(SHIPPED, device=device)
    products = read_catalog(CATALOG)
    norm = Normaliser(ours.info.text, BrandMatcher.from_names(products["brand"].unique()), CachedStemmer())
    texts = product_texts(products, norm)[: 300 if quick else None]
    plain = SentenceTransformer(str(SHIPPED), device=device, local_files_only=True, model_kwargs={"dtype": "float32"})
    plain.float()

    def timed(fn):
        fn(texts[:256])
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        out = fn(texts)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return out, len(texts) / (time.perf_counter() - started)

    ref, plain_rate = timed(lambda t: plain.encode(t, convert_to_numpy=True, normalize_embeddings=True))
    rows = {"plain_st_fp32_b32": round(plain_rate, 1)}
    for batch in (64, 256, 1024):
        vectors, rate = timed(lambda t, b=batch: ours.encode(t, batch_size=b))
        cos = (np.asarray(ref, dtype=np.float32) * vectors).sum(1)
        rows[f"searchkit_b{batch}"] = round(rate, 1)
        rows[f"searchkit_b{batch}_cosine_min"] = round(float(cos.min()), 4)
    rows["searchkit_dtype"] = str(next(ours.model.parameters()).dtype)
    rows["texts"] = len(texts)
    return rows


def run_tests() -> dict:
    """The CUDA-marked tests (torch on the GPU) and the faiss-gpu ones (skipped where faiss has no GPU)."""
    import subprocess

    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_cuda.py",
                           "tests/test_gpu.py"], capture_output=True, text=True, cwd=ROOT)
    lines = done.stdout.strip().splitlines()
    return {"returncode": done.returncode, "summary": lines[-1] if lines else "", "tail": done.stdout[-2500:]}


def reranker_stage(args, report: dict, step, deadline: float, catalog: Path, pairs_path: Path) -> None:
    """Build a flat index of the shipped model (hybrid candidates), measure the shipped cross-encoder on it, then train
    RERANKERS while the budget lasts, each measured the same way (torch, all validation queries, depth 30, w 0.8)."""
    from searchkit.index.build import IndexConfig, build_index
    from searchkit.search.searcher import Searcher
    from searchkit.training.reranker import RerankTrainConfig, train_reranker, validation_report

    index = args.work / "index"
    step("rerank_index", lambda: {"rows": build_index(catalog, index, SHIPPED, IndexConfig(
        index_type="flat", onnx=False, query_tower=False, reranker=False, device=args.device)).rows})
    queries = 40 if args.quick else 10**6

    def shipped():
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        folder = SHIPPED / "reranker"
        model = AutoModelForSequenceClassification.from_pretrained(str(folder), dtype=torch.float32).to(args.device)
        val = split_pairs(read_pairs(pairs_path))["val"]
        searcher = Searcher.from_dir(index, backend="auto", device=args.device)
        return {"val": validation_report(model, AutoTokenizer.from_pretrained(str(folder)), searcher, val,
                                         RerankTrainConfig(index=index, eval_queries=queries))}

    step("rerank_shipped", shipped)
    step_seconds, chosen = 0.05, None  # seconds per step of 64 pairs: a guess until the first candidate measures it
    for name, (start, epochs, negatives, depth, batch, lr, layers) in RERANKERS.items():
        if args.only is not None and name not in args.only:
            continue
        examples = 45_037 + 8_378 * negatives  # the training split's rated pairs + negatives (fewer when scarce)
        steps = 2 if args.quick else int(epochs * examples / batch)
        need = steps * step_seconds * batch / 64 + 90
        left = deadline - time.perf_counter()
        if need > left:
            report["steps"][name] = {"ok": False, "skipped": f"needs ~{need:.0f} s, {left:.0f} s left"}
            continue
        config = RerankTrainConfig(index=index, pairs=pairs_path, out=args.work / name, epochs=epochs,
                                   base_model=SHIPPED / "reranker" if start == "reranker" else SHIPPED,
                                   batch_size=batch, lr=lr, negatives=negatives, mine_depth=depth, layers=layers,
                                   device=args.device,
                                   max_steps=steps if args.quick else -1, save_steps=10**6, eval_queries=queries)

        def run(config=config, start=start):
            t = time.perf_counter()
            train_reranker(config)
            info = json.loads((config.out / "reranker.json").read_text())
            return {"start": start, "layers": layers or "all", "epochs": config.epochs, "negatives": config.negatives,
                    "mine_depth": config.mine_depth, "batch": config.batch_size, "lr": config.lr,
                    "steps": info["data"]["steps"], "examples": info["data"]["examples"],
                    "seconds": round(time.perf_counter() - t, 1), "val": info["validation"]}

        result = step(name, run)
        if result["ok"]:
            step_seconds = result["seconds"] / max(result["steps"], 1) * 64 / batch
            best = report["steps"][chosen]["val"]["ndcg@10_reranked"] if chosen else -1
            if result["val"]["ndcg@10_reranked"] > best:
                chosen = name
    if chosen:
        report["chosen_reranker"] = {"name": chosen, "rule": "best val NDCG@10 reranked (depth 30, weight 0.8)",
                                     "val": report["steps"][chosen]["val"],
                                     "shipped_val": report["steps"].get("rerank_shipped", {}).get("val"),
                                     "parts": pack(args.work / chosen, args.out, "chosen-reranker")}


def distil_labels(args, step, catalog: Path, train_part) -> tuple[LabelSettings, int] | None:
    """A flat index of the shipped model with its cross-encoder (GPU encoding), then the teacher's labels (torch on
    the GPU) into WORK/labels; returns the label settings and how many queries were labelled."""
    from searchkit.index.build import IndexConfig, build_index

    index = args.work / "distil-index"
    built = step("distil_index", lambda: {"rows": build_index(catalog, index, SHIPPED, IndexConfig(
        index_type="flat", query_tower=False, device=args.device)).rows})
    if not built["ok"]:
        return None
    quick = {"train_queries": 40, "pseudo_queries": 40, "candidates": 20} if args.quick else DISTIL_LABELS
    settings = LabelSettings(index=index, teacher_device=args.device, **quick)
    done = step("distil_labels", lambda: {"pairs": len(teacher_labels(
        train_part, read_catalog(catalog), settings, args.work / "labels")), "settings": str(settings)})
    if not done["ok"]:
        return None
    return settings, int(read_labels(args.work / "labels")["query"].nunique())


def pack(model_dir: Path, out: Path, prefix: str = "chosen-model") -> list[str]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(model_dir, arcname=model_dir.name, filter=lambda t: None if "/checkpoints" in t.name else t)
    data = buffer.getvalue()
    names = []
    for i in range(0, len(data), PART_BYTES):
        name = f"{prefix}.tar.{i // PART_BYTES:02d}"
        (out / name).write_bytes(data[i:i + PART_BYTES])
        names.append(name)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/searchkit-gpu"))
    parser.add_argument("--budget", type=float, default=470.0, help="seconds of work before packing up")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", default=None, help="candidate names to run (default: all)")
    parser.add_argument("--skip", nargs="*", default=(), choices=("encode", "shipped"), help="steps to leave out")
    parser.add_argument("--tests", action="store_true", help="first run tests/test_cuda.py and tests/test_gpu.py")
    parser.add_argument("--rerankers", action="store_true", help="train cross-encoders (RERANKERS), not embedders")
    parser.add_argument("--distil", action="store_true", help="the distil recipe's candidates (DISTILS)")
    parser.add_argument("--step-seconds", type=float, default=0.11,  # H200, 2026-11-27: 0.08-0.11 by recipe
                        help="first guess of seconds per training step, scaled to batch 64 (sqrt of the batch)")
    args = parser.parse_args()
    args.out, args.work = args.out.resolve(), args.work.resolve()
    os.chdir(ROOT)
    started = time.perf_counter()
    deadline = started + args.budget
    if args.quick:
        args.device = "cpu"
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    report: dict = {"benchmark": "gpu_recipes", "command": " ".join(sys.argv), "started": time.strftime("%F %T"),
                    "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cpus", "steps": {}}

    def save() -> None:
        report["elapsed_s"] = round(time.perf_counter() - started, 1)
        (args.out / "gpu_recipes.json").write_text(json.dumps(report, indent=1, sort_keys=True))

    def step(name, fn):
        t = time.perf_counter()
        try:
            result = fn()
            report["steps"][name] = {"ok": True, "seconds": round(time.perf_counter() - t, 1), **result}
        except Exception as exc:  # one failed step must not cost the others their device time
            report["steps"][name] = {"ok": False, "seconds": round(time.perf_counter() - t, 1),
                                     "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-3000:]}
        print(f"[{time.perf_counter() - started:6.1f}s] {name}: {json.dumps(report['steps'][name])[:600]}", flush=True)
        save()
        return report["steps"][name]

    def environment():
        import sentence_transformers
        import torch
        import transformers

        return {"torch": torch.__version__, "cuda": torch.version.cuda, "sentence_transformers":
                sentence_transformers.__version__, "transformers": transformers.__version__,
                "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}

    step("environment", environment)
    if args.tests:
        step("tests", run_tests)
    if "encode" not in args.skip:
        step("encode", lambda: encode_bench(args.device, args.quick))

    catalog, pairs_path = small_data(args.work) if args.quick else (CATALOG, PAIRS)
    if args.rerankers:
        reranker_stage(args, report, step, deadline, catalog, pairs_path)
        save()
        print(f"\n{'reranker':<24} {'hybrid':>7} {'reranked':>8} {'spearman':>8} {'seconds':>8}")
        for name, s in report["steps"].items():
            if "val" in s and "ndcg@10_reranked" in s["val"]:
                v = s["val"]
                print(f"{name:<24} {v['ndcg@10_hybrid']:7.4f} {v['ndcg@10_reranked']:8.4f} {v['spearman_pairs']:8.4f} "
                      f"{s.get('seconds', 0):8.1f}")
        if not args.quick:
            shutil.rmtree(args.work, ignore_errors=True)
        return
    pairs = read_pairs(pairs_path)
    config = EvalConfig(split="val")
    baseline = {} if "shipped" in args.skip else step("shipped", lambda: dict(zip(
        ("val", "eval_seconds"), measure(SHIPPED, catalog, config, args.device, pairs), strict=True)))
    train_part = split_pairs(pairs)["train"]
    sizes = {"main_mnrl": int((train_part["relevance"] >= RELEVANT).sum()), "graded": len(train_part)}
    candidates = CANDIDATES
    labels = None
    if args.distil:
        candidates, labels = DISTILS, distil_labels(args, step, catalog, train_part)
        sizes["distil_queries"] = labels[1] if labels else 0
    eval_seconds = baseline.get("eval_seconds", 60.0)
    step_seconds = args.step_seconds  # a guess until the first candidate measures it
    chosen = None
    for name, c in candidates.items():
        if args.only is not None and name not in args.only:
            continue
        if c.start not in ("shipped", "base") and not report["steps"].get(c.start, {}).get("ok"):
            report["steps"][name] = {"ok": False, "skipped": f"starts from {c.start}, which did not finish"}
            save()
            continue
        if c.recipe == "distil" and labels is None:
            report["steps"][name] = {"ok": False, "skipped": "no teacher labels"}
            continue
        rows = sizes["graded"] if c.recipe in ("cosent", "seed") else sizes["main_mnrl"] + (
            sizes["graded"] if c.recipe == "multitask" else 0) + (
            sizes.get("distil_queries", 0) * dict(c.distil).get("rows_per_query", 2) * 3 if c.recipe == "distil" else 0)
        steps = 2 if args.quick else int(c.epochs * rows / c.batch)
        need = steps * step_seconds * (c.batch / 64) ** 0.5 + eval_seconds + 30
        if time.perf_counter() + need > deadline:
            left = deadline - time.perf_counter()
            report["steps"][name] = {"ok": False, "skipped": f"needs ~{need:.0f} s, {left:.0f} s left"}
            save()
            continue
        out = args.work / name
        base = {"shipped": SHIPPED, "base": None}.get(c.start, args.work / c.start)

        def run(out=out, c=c, base=base, steps=steps):
            t = time.perf_counter()
            train(TrainConfig(pairs=pairs_path, catalog=catalog, out=out, recipe=c.recipe, base_model=base,
                              epochs=c.epochs, batch_size=min(c.batch, 32) if args.quick else c.batch, lr=c.lr,
                              device=args.device, stem=c.stem,
                              distil=DistilSettings(labels=labels[0], label_dir=args.work / "labels",
                                                    **dict(c.distil)) if c.recipe == "distil" else DistilSettings(),
                              max_steps=steps if args.quick else -1, eval_steps=10**6, save_steps=10**6,
                              eval_queries=20 if args.quick else 300, eval_corpus=50 if args.quick else 3000))
            train_s = time.perf_counter() - t
            val, seconds = measure(out, catalog, config, args.device, pairs)
            info = json.loads((out / "searchkit.json").read_text())
            return {"recipe": c.recipe, "epochs": c.epochs, "batch": c.batch, "lr": c.lr, "start": c.start,
                    "stem": c.stem, "steps": steps, "train_seconds": round(train_s, 1), "eval_seconds": seconds,
                    "val": val, "card_validation": info.get("validation", {})}

        result = step(name, run)
        if result["ok"]:
            step_seconds = result["train_seconds"] / max(steps, 1) / (c.batch / 64) ** 0.5
            best = report["steps"].get(chosen, {}).get("val", {}).get("hybrid_ndcg@10", -1) if chosen else -1
            if result["val"]["hybrid_ndcg@10"] > best:
                chosen = name
    shipped = baseline.get("val", {})
    if chosen:
        val = report["steps"][chosen]["val"]
        report["chosen"] = {"name": chosen, "rule": "best val hybrid NDCG@10", "val": val,
                            "beats_shipped_on_all_three": all(  # None: the shipped model was not measured
                                val[m] >= shipped[m] for m in ("hybrid_ndcg@10", "dense_ndcg@10", "spearman"))
                            if shipped else None,
                            "parts": pack(args.work / chosen, args.out)}
    save()
    print(f"\n{'candidate':<22} {'spearman':>8} {'dense':>7} {'hybrid':>7} {'train s':>8}")
    for name, s in report["steps"].items():
        if "val" in s:
            print(f"{name:<22} {s['val']['spearman']:8.4f} {s['val']['dense_ndcg@10']:7.4f} "
                  f"{s['val']['hybrid_ndcg@10']:7.4f} {s.get('train_seconds', 0):8.1f}")
    print(json.dumps({k: v for k, v in report.items() if k != "steps"}))
    if not args.quick:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
