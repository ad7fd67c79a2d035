"""Train the cross-encoder of mode "rerank": RerankTrainConfig + train_reranker(config) -> reranker folder.

Data: the training split's queries (split by query, seeded, as for the embedder). Each rated pair is an example with
label (relevance-1)/2; each query also gets `negatives` products its hybrid search (on `index`) ranks in the top
`mine_depth` that raters did not judge, labelled 0: the reranker learns to reorder what the first stage returns.
Loss "bce": binary cross-entropy on each pair's logit (soft labels). Loss "listwise": the examples come as groups of
`group_size` products of one query (its rated products, best first, then mined unrated ones), and the loss is the
cross-entropy between the softmax of the group's logits and its labels scaled to sum to 1 (queries with no product
rated above 1 give no group). AdamW, linear warm-up then decay, a seeded fixed order.
The classifier starts from a BERT folder (default: the index's embedder, whose words already fit the catalog) with
a new one-logit head. Checkpoints (weights, optimiser, step) let --resume continue an interrupted run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .catalog import PairFormat, read_pairs
from .encoder import pick_device
from .errors import CatalogError, SearchkitError
from .evaluate import query_gains
from .metrics import ndcg_at_k, spearman
from .rerank import RERANKER_TEXT, RerankerSettings, blend, record_text, write_info
from .search import Searcher
from .splits import SplitConfig, split_pairs
from .text import Normaliser

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
LOSSES = ("bce", "listwise")


@dataclass(frozen=True)
class RerankTrainConfig:
    index: Path = Path("indexes/homedepot")  # candidates (and the catalog) come from this index's hybrid search
    pairs: Path = Path("catalog/homedepot-pairs.parquet")
    pair_format: PairFormat = PairFormat()  # how the pairs file names its columns and grades
    out: Path = Path("models/searchkit-homedepot-reranker")
    base_model: Path | None = None  # a BERT folder; default: the index's embedder (its model/ copy)
    epochs: float = 1.0
    batch_size: int = 32
    lr: float = 3e-5
    negatives: int = 4  # unrated hybrid candidates per query, labelled 0 (loss bce)
    loss: str = "bce"  # "bce" (pointwise) or "listwise" (softmax over each query's group)
    group_size: int = 8  # products per query group (loss listwise; batch_size must be a multiple)
    mine_depth: int = 50  # drawn from the query's hybrid top this many
    settings: RerankerSettings = field(default_factory=RerankerSettings)
    max_steps: int = -1
    save_steps: int = 500
    eval_queries: int = 300  # validation queries re-ranked at the end (the card's figures)
    seed: int = 42
    split: SplitConfig = field(default_factory=SplitConfig)
    resume: bool = False
    device: str | None = None
    fp16_weights: bool = True
    progress: bool = False  # a progress bar on stderr (the CLI sets it when stderr is a terminal)

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size < 1 or self.lr <= 0 or self.negatives < 0 or self.mine_depth < 1:
            raise SearchkitError(f"bad reranker training settings: epochs {self.epochs}, batch {self.batch_size}, "
                                 f"lr {self.lr}, negatives {self.negatives}, mine depth {self.mine_depth}")
        if self.loss not in LOSSES:
            raise SearchkitError(f"unknown reranker loss {self.loss!r}: one of {', '.join(LOSSES)}")
        if self.loss == "listwise" and (self.group_size < 2 or self.batch_size % self.group_size):
            raise SearchkitError(f"loss listwise needs a group size of at least 2 that divides the batch size "
                                 f"(group {self.group_size}, batch {self.batch_size})")


def candidates(searcher, queries: list[str], depth: int, fused: bool = False) -> dict[str, list]:
    """Each query's hybrid top `depth` product ids as the index ranks them (fused: (id, fused score) pairs)."""
    out: dict[str, list] = {}
    for start in range(0, len(queries), 256):
        chunk = queries[start:start + 256]
        for query, hits in zip(chunk, searcher.search_batch(chunk, k=depth, mode="hybrid", explain=fused),
                               strict=True):
            out[query] = [(h.product_id, h.explain["fusion"]) if fused else h.product_id for h in hits]
    return out


def training_examples(pairs: pd.DataFrame, mined: dict[str, list[str]], negatives: int,
                      seed: int) -> list[tuple[str, str, float]]:
    """(query, product id, label) rows in a seeded order: every rated pair, plus unrated mined candidates at 0."""
    rng = random.Random(seed)
    rows = [(q, str(p), float((r - 1.0) / 2.0)) for q, p, r in zip(pairs["query"], pairs["product_id"],
                                                                    pairs["relevance"], strict=True)]
    rated = pairs.groupby("query")["product_id"].apply(lambda s: set(map(str, s))).to_dict()
    for query in sorted(mined):
        unrated = [p for p in mined[query] if p not in rated.get(query, set())]
        rows.extend((query, p, 0.0) for p in rng.sample(unrated, min(negatives, len(unrated))))
    rng.shuffle(rows)
    return rows


def training_groups(pairs: pd.DataFrame, mined: dict[str, list[str]], catalog_ids: list[str], size: int,
                    seed: int) -> list[tuple[str, str, float]]:
    """(query, product id, label) rows, `size` consecutive rows per query (groups in a seeded order): up to
    size // 2 rated products, best label first, then unrated mined candidates at 0 (random catalog products when
    the query has too few). Queries whose rated products all have label 0 give no group."""
    rng = random.Random(seed)
    groups = []
    for query, gains in sorted(query_gains(pairs).items()):
        labels = {product: gain / 2.0 for product, gain in gains.items()}  # (relevance-1)/2
        if max(labels.values()) <= 0:
            continue
        rated = sorted(labels.items(), key=lambda item: (-item[1], rng.random()))[:size // 2]
        unrated = [p for p in mined.get(query, []) if p not in labels]
        chosen = [(p, float(y)) for p, y in rated]
        chosen += [(p, 0.0) for p in rng.sample(unrated, min(size - len(chosen), len(unrated)))]
        taken = {p for p, _ in chosen}
        while len(chosen) < size:
            product = catalog_ids[rng.randrange(len(catalog_ids))]
            if product not in labels and product not in taken:
                chosen.append((product, 0.0))
                taken.add(product)
        groups.append([(query, p, y) for p, y in chosen])
    rng.shuffle(groups)
    return [row for group in groups for row in group]


def _texts(searcher, norm: Normaliser, rows: list[tuple[str, str, float]]) -> tuple[list[str], list[str]]:
    return [norm.query(q) for q, _, _ in rows], [record_text(norm, searcher.product(p)) for _, p, _ in rows]


def score_candidates(model, tokenizer, searcher, gains: dict[str, dict[str, float]], depth: int,
                     max_length: int) -> dict[str, tuple[list[str], np.ndarray, np.ndarray, np.ndarray]]:
    """Per query of `gains` (query -> {rated product id: gain}): its hybrid top `depth` ids, their fused scores, the
    torch cross-encoder's logits for them, and its logits for the query's rated products (in `gains` order)."""
    import torch

    norm = Normaliser(RERANKER_TEXT)
    queries = sorted(gains)
    mined = candidates(searcher, queries, depth, fused=True)
    out = {}
    model.eval()
    with torch.inference_mode():
        for query in queries:
            ids = [pid for pid, _ in mined[query]]
            q, p = _texts(searcher, norm, [(query, pid, 0.0) for pid in ids + list(gains[query])])
            enc = tokenizer(q, p, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            logits = model(**enc.to(model.device)).logits[:, 0].float().cpu().numpy()
            out[query] = (ids, np.array([f for _, f in mined[query]]), logits[:len(ids)], logits[len(ids):])
    return out


def rerank_ndcg(scored: dict, gains: dict[str, dict[str, float]], depth: int, weight: float) -> float:
    """Mean NDCG@10 when the top `depth` of each query's scored candidates are reordered by blend(weight)."""

    values = []
    for query, (ids, fused, logits, _) in scored.items():
        d = min(depth, len(ids))
        order = np.lexsort((np.arange(d), -blend(logits[:d], fused[:d], weight)))
        values.append(ndcg_at_k([ids[i] for i in order] + ids[d:], gains[query], 10))
    return float(np.mean(values))


def pair_spearman(scored: dict, gains: dict[str, dict[str, float]]) -> float:
    """Spearman of the cross-encoder's logits vs the label (relevance-1)/2 over the scored queries' rated pairs."""
    scores = [x for query in scored for x in scored[query][3]]
    labels = [gains[query][pid] / 2.0 for query in scored for pid in gains[query]]
    return spearman(scores, labels)


def validation_report(model, tokenizer, searcher, pairs: pd.DataFrame, config: RerankTrainConfig) -> dict:
    """Rerank the hybrid top `settings.depth` of up to `eval_queries` validation queries with the torch model:
    NDCG@10 before and after, and the Spearman of its logits over those queries' rated pairs."""
    rng = random.Random(config.seed)
    queries = sorted(set(pairs["query"]))
    queries = sorted(rng.sample(queries, min(config.eval_queries, len(queries))))
    pairs = pairs[pairs["query"].isin(queries)]
    gains = query_gains(pairs)
    settings = config.settings
    scored = score_candidates(model, tokenizer, searcher, gains, settings.depth, settings.max_length)
    return {"val_queries": len(queries), "ndcg@10_hybrid": rerank_ndcg(scored, gains, settings.depth, 0.0),
            "ndcg@10_reranked": rerank_ndcg(scored, gains, settings.depth, settings.weight),
            "spearman_pairs": pair_spearman(scored, gains)}


def _write_card(out: Path, config: RerankTrainConfig, base: Path, counts: dict, report: dict, seconds: float) -> None:
    lines = [
        f"# {out.name}", "",
        "The cross-encoder of searchkit's mode `rerank`: a BERT sequence classifier (one logit)",
        (f"started from `{base}`, trained on Home Depot query-product pairs (Kaggle 2016) by `searchkit "
         "train-reranker`."),
        "", "## Training", "",
        (f"- examples: every rated pair of the training split, label (relevance-1)/2, plus {config.negatives} unrated "
         f"products per query from its hybrid top {config.mine_depth} (index `{config.index}`), label 0: {counts}"
         if config.loss == "bce" else
         f"- examples: groups of {config.group_size} products per training query, up to {config.group_size // 2} "
         f"rated (label (relevance-1)/2, best first) then unrated products from its hybrid top {config.mine_depth} "
         f"(index `{config.index}`), label 0: {counts}"),
        (f"- {'binary cross-entropy on the logit' if config.loss == 'bce' else 'listwise softmax cross-entropy'}, "
         f"AdamW lr {config.lr}, batch {config.batch_size}, {config.epochs} epoch(s), seed {config.seed}, "
         f"{seconds / 60:.1f} min"),
        f"- text: {json.dumps(RERANKER_TEXT.to_dict())}; settings: {json.dumps(asdict(config.settings))}", "",
        "## Validation (split `val`, queries unseen in training; torch fp32, hybrid candidates of the index)", "",
        "| metric | value |", "| --- | --- |",
        *[f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in report.items()], "",
        "Held-out (`test`) figures come from `searchkit evaluate` on an index built with this reranker.",
    ]
    (out / "README.md").write_text("\n".join(lines) + "\n")


def train_reranker(config: RerankTrainConfig) -> Path:
    """Train and save a reranker folder at config.out (a checkpoint under out/checkpoints while it runs)."""

    searcher = Searcher.from_dir(config.index, backend="auto")
    parts = split_pairs(read_pairs(config.pairs, config.pair_format), config.split)
    train_pairs = parts["train"]
    unknown = sorted(set(map(str, train_pairs["product_id"])) - set(searcher.products["product_id"].astype(str)))
    if unknown:
        raise CatalogError(f"{config.pairs}: {len(unknown)} rated products are not in {config.index}, "
                           f"e.g. {unknown[:3]}")
    mined = candidates(searcher, sorted(set(train_pairs["query"])), config.mine_depth)
    if config.loss == "listwise":
        rows = training_groups(train_pairs, mined, searcher.products["product_id"].astype(str).tolist(),
                               config.group_size, config.seed)
    else:
        rows = training_examples(train_pairs, mined, config.negatives, config.seed)
    if not rows:
        raise CatalogError(f"{config.pairs}: no training examples (no training query has a product rated above 1)")
    norm = Normaliser(RERANKER_TEXT)
    queries, products = _texts(searcher, norm, rows)
    labels = [y for _, _, y in rows]

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    base = Path(config.base_model or Path(config.index) / "model")
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=1, dtype=torch.float32).to(device)
    steps = math.ceil(len(rows) / config.batch_size * config.epochs)
    steps = min(steps, config.max_steps) if config.max_steps > 0 else steps
    warm = max(1, int(0.1 * steps))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warm if s < warm else max(0.0, (steps - s) / max(1, steps - warm)))
    checkpoint = config.out / "checkpoints" / CHECKPOINT
    plan = {"total_steps": steps, "examples": len(rows), "batch_size": config.batch_size, "lr": config.lr,
            "loss": config.loss}
    first = 0
    if config.resume and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        if {"loss": "bce", **state["plan"]} != plan:  # checkpoints from before the loss option were bce runs
            raise SearchkitError(f"{checkpoint}: a run of {state['plan']}, this one is {plan}; "
                                 "start afresh without --resume")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        first = int(state["step"])
        log.info("resuming at step %d of %d", first, steps)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    started = time.perf_counter()
    model.train()
    bar = tqdm(total=steps, initial=first, desc="train-reranker", unit="step", disable=not config.progress)
    for step in range(first, steps):
        at = (step * config.batch_size) % len(rows)
        batch = slice(at, at + config.batch_size)
        enc = tokenizer(queries[batch], products[batch], truncation=True, max_length=config.settings.max_length,
                        padding=True, return_tensors="pt").to(device)
        logits = model(**enc).logits[:, 0]
        target = torch.tensor(labels[batch], device=device)
        if config.loss == "listwise":
            logits, target = logits.view(-1, config.group_size), target.view(-1, config.group_size)
            target = target / target.sum(dim=1, keepdim=True)
            loss = -(target * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
        else:
            loss = loss_fn(logits, target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
            log.info("step %d/%d loss %.4f (%.0f s)", step, steps, loss.item(), time.perf_counter() - started)
        if (step + 1) % config.save_steps == 0 and step + 1 < steps:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            tmp = checkpoint.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict(), "step": step + 1, "plan": plan}, tmp)
            os.replace(tmp, checkpoint)
    bar.close()
    seconds = time.perf_counter() - started
    report = validation_report(model, tokenizer, searcher, parts["val"], config)
    config.out.mkdir(parents=True, exist_ok=True)
    if config.fp16_weights:
        model.half()
    model.save_pretrained(str(config.out))
    tokenizer.save_pretrained(str(config.out))
    counts = {"train_queries": int(train_pairs["query"].nunique()), "examples": len(rows), "steps": steps,
              "loss": config.loss}
    write_info(config.out, config.settings, RERANKER_TEXT, name=config.out.name, base_model=str(base),
               index=str(config.index), data=counts, validation=report, train_seconds=round(seconds, 1))
    _write_card(config.out, config, base, counts, report, seconds)
    return config.out
