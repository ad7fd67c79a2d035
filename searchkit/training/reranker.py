"""Train the cross-encoder of mode "rerank": RerankTrainConfig + train_reranker(config) -> reranker folder.

Data: the training split's queries (split by query, seeded, as for the embedder). Each rated pair is an example with
label (relevance-1)/2; each query also gets `negatives` products its hybrid search (on `index`) ranks in the top
`mine_depth` that raters did not judge, labelled 0: the reranker learns to reorder what the first stage returns.
Loss "bce": binary cross-entropy on each pair's logit (soft labels). Loss "listwise": the examples come as groups of
`group_size` products of one query (its rated products, best first, then mined unrated ones), and the loss is
ListNet over each group (queries with no product rated above 1 give no group). Training is sentence-transformers'
CrossEncoderTrainer: AdamW, linear warm-up then decay, seeded order; its checkpoints let --resume continue an
interrupted run. The classifier starts from a BERT folder (default: the index's embedder, whose words already fit
the catalog) with a new one-logit head.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.catalog import PairFormat, read_pairs
from ..data.splits import SplitConfig, split_pairs
from ..data.text import Normaliser
from ..errors import CatalogError, SearchkitError
from ..eval.measure import query_gains
from ..eval.metrics import ndcg_at_k, spearman
from ..models.cross_encoder import RERANKER_TEXT, RerankerSettings, blend, record_text, write_info
from ..models.encoder import pick_device
from ..search.results import Mode
from ..search.searcher import Searcher
from .cards import write_card

log = logging.getLogger(__name__)

LOSSES = ("bce", "listwise")
PLAN_FILE = "plan.json"  # beside the checkpoints: the run they belong to


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
    layers: int = 0  # keep the base model's first this many transformer layers (0: all): a shallower cross-encoder
    # reranks faster (docs/speed.md)
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
        if (self.epochs <= 0 or self.batch_size < 1 or self.lr <= 0 or self.negatives < 0 or self.mine_depth < 1
                or self.layers < 0):
            raise SearchkitError(f"bad reranker training settings: epochs {self.epochs}, batch {self.batch_size}, "
                                 f"lr {self.lr}, negatives {self.negatives}, mine depth {self.mine_depth}, "
                                 f"layers {self.layers}")
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
        for query, hits in zip(chunk, searcher.search_batch(chunk, k=depth, mode=Mode.HYBRID, explain=fused),
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


def rerank_ndcgs(scored: dict, gains: dict[str, dict[str, float]], depth: int, weight: float) -> list[float]:
    """Per scored query (in `scored` order), NDCG@10 when its top `depth` candidates are reordered by blend(weight)."""
    values = []
    for query, (ids, fused, logits, _) in scored.items():
        d = min(depth, len(ids))
        order = np.lexsort((np.arange(d), -blend(logits[:d], fused[:d], weight)))
        values.append(ndcg_at_k([ids[i] for i in order] + ids[d:], gains[query], 10))
    return values


def rerank_ndcg(scored: dict, gains: dict[str, dict[str, float]], depth: int, weight: float) -> float:
    """Mean NDCG@10 when the top `depth` of each query's scored candidates are reordered by blend(weight)."""
    return float(np.mean(rerank_ndcgs(scored, gains, depth, weight)))


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
    summary = ["The cross-encoder of searchkit's mode `rerank`: a BERT sequence classifier (one logit)",
               (f"started from `{base}`, trained on Home Depot query-product pairs (Kaggle 2016) by `searchkit "
                "train-reranker`.")]
    training = [
        (f"- examples: every rated pair of the training split, label (relevance-1)/2, plus {config.negatives} unrated "
         f"products per query from its hybrid top {config.mine_depth} (index `{config.index}`), label 0: {counts}"
         if config.loss == "bce" else
         f"- examples: groups of {config.group_size} products per training query, up to {config.group_size // 2} "
         f"rated (label (relevance-1)/2, best first) then unrated products from its hybrid top {config.mine_depth} "
         f"(index `{config.index}`), label 0: {counts}"),
        (f"- {'binary cross-entropy on the logit' if config.loss == 'bce' else 'listwise softmax cross-entropy'}, "
         f"AdamW lr {config.lr}, batch {config.batch_size}, {config.epochs} epoch(s), seed {config.seed}, "
         f"{seconds / 60:.1f} min"),
        f"- text: {json.dumps(RERANKER_TEXT.to_dict())}; settings: {json.dumps(asdict(config.settings))}"]
    write_card(out, summary, training,
               "split `val`, queries unseen in training; torch fp32, hybrid candidates of the index", report,
               ["Held-out (`test`) figures come from `searchkit evaluate` on an index built with this reranker."])


def keep_layers(model: Any, layers: int, base: Path) -> None:
    """Cut a BERT classifier to its first `layers` transformer layers (it keeps its embeddings and head)."""
    stack = model.base_model.encoder.layer
    if layers > len(stack):
        raise SearchkitError(f"{base} has {len(stack)} transformer layers; cannot keep {layers}")
    model.base_model.encoder.layer = stack[:layers]
    model.config.num_hidden_layers = layers


def _fit(config: RerankTrainConfig, base: Path, queries: list[str], products: list[str],
         labels: list[float]) -> tuple[Any, int]:
    """The classifier trained by sentence-transformers' CrossEncoderTrainer: binary cross-entropy on the logit
    (bce), or ListNet over each query's group (listwise); AdamW with a linear warm-up over a tenth of the steps and
    linear decay, gradients clipped at 1, checkpoints in OUT/checkpoints (--resume continues from the newest)."""
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss, ListNetLoss
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    encoder = CrossEncoder(str(base), num_labels=1, max_length=config.settings.max_length, device=device,
                           local_files_only=True, model_kwargs={"dtype": torch.float32})
    if config.layers:
        keep_layers(encoder.model, config.layers, base)
    if config.loss == "listwise":  # rows come in whole groups of group_size, one query each
        size = config.group_size
        data = Dataset.from_dict({"query": queries[::size],
                                  "docs": [products[i:i + size] for i in range(0, len(products), size)],
                                  "labels": [labels[i:i + size] for i in range(0, len(labels), size)]})
        loss: Any = ListNetLoss(encoder)
        batch = config.batch_size // size
    else:
        data = Dataset.from_dict({"query": queries, "product": products, "label": labels})
        loss = BinaryCrossEntropyLoss(encoder)
        batch = config.batch_size
    checkpoints = config.out / "checkpoints"
    steps = math.ceil(len(data) / batch * config.epochs)
    steps = min(steps, config.max_steps) if config.max_steps > 0 else steps
    plan = {"total_steps": steps, "examples": len(labels), "batch_size": config.batch_size, "lr": config.lr,
            "loss": config.loss}
    resume = _resume_from(checkpoints, plan) if config.resume else None
    checkpoints.mkdir(parents=True, exist_ok=True)
    (checkpoints / PLAN_FILE).write_text(json.dumps(plan))
    args = CrossEncoderTrainingArguments(
        output_dir=str(checkpoints), num_train_epochs=config.epochs, max_steps=config.max_steps,
        per_device_train_batch_size=batch, learning_rate=config.lr, weight_decay=0.01,
        warmup_steps=max(1, int(0.1 * steps)),
        lr_scheduler_type="linear", max_grad_norm=1.0, seed=config.seed, data_seed=config.seed,
        save_strategy="steps", save_steps=config.save_steps, save_total_limit=2, logging_steps=50,
        report_to="none", disable_tqdm=True, use_cpu=device == "cpu", dataloader_num_workers=0)
    trainer = CrossEncoderTrainer(model=encoder, args=args, train_dataset=data, loss=loss)
    for printer in (PrinterCallback, ProgressCallback):  # they print the trainer's logs on stdout
        trainer.remove_callback(printer)
    trainer.add_callback(_progress(config.progress))
    trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    ran = int(trainer.state.global_step)
    shutil.rmtree(checkpoints / f"checkpoint-{ran}", ignore_errors=True)  # a finished run resumes nothing
    return encoder, ran


def _progress(show: bool) -> Any:
    """The trainer's progress as the rest of searchkit shows it: a bar on stderr when asked, losses to the log."""
    from tqdm.auto import tqdm
    from transformers.trainer_callback import TrainerCallback

    class Progress(TrainerCallback):
        bar: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train-reranker", unit="step",
                            disable=not show)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            if logs and "loss" in logs:
                log.info("step %d/%d loss %.4f", state.global_step, state.max_steps, float(logs["loss"]))

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar is not None:
                self.bar.close()

    return Progress()


def _resume_from(checkpoints: Path, plan: dict[str, Any]) -> Path | None:
    """The newest checkpoint of an interrupted run with this plan; a run of another plan is refused."""
    found = sorted(checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.rpartition("-")[2]))
    if not found:
        return None
    try:
        earlier = json.loads((checkpoints / PLAN_FILE).read_text())
    except (OSError, ValueError):
        earlier = None
    if earlier != plan:
        raise SearchkitError(f"{checkpoints}: a run of {earlier}, this one is {plan}; start afresh without --resume")
    log.info("resuming at step %s of %d", found[-1].name.rpartition("-")[2], plan["total_steps"])
    return found[-1]


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

    started = time.perf_counter()
    base = Path(config.base_model or Path(config.index) / "model")
    encoder, steps = _fit(config, base, queries, products, labels)
    seconds = time.perf_counter() - started
    model, tokenizer = encoder.model, encoder.tokenizer
    report = validation_report(model, tokenizer, searcher, parts["val"], config)
    config.out.mkdir(parents=True, exist_ok=True)
    if config.fp16_weights:
        model.half()
    model.save_pretrained(str(config.out))  # the Hugging Face classifier alone: what the index exports
    tokenizer.save_pretrained(str(config.out))
    counts = {"train_queries": int(train_pairs["query"].nunique()), "examples": len(rows),
              "steps": steps, "loss": config.loss, "layers": int(model.config.num_hidden_layers)}
    write_info(config.out, config.settings, RERANKER_TEXT, name=config.out.name, base_model=str(base),
               index=str(config.index), data=counts, validation=report, train_seconds=round(seconds, 1))
    _write_card(config.out, config, base, counts, report, seconds)
    return config.out
