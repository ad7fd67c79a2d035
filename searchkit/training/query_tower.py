"""A fast query encoder: the model's first N transformer layers, or none (a table of token vectors), retrained to
embed queries as the whole model does.

Products are still embedded by the whole model; only the query side gets shallower. `train_query_tower(config)` writes the
retrained layers into the model folder (`query_encoder/`, fp16, a few MB: the token embeddings stay the model's own);
`assemble(model_dir, out)` rebuilds a loadable sentence-transformers folder of the query encoder from the two.
With layers=0 the query encoder is static: one vector per word piece (the whole model's embedding of that piece alone,
then retrained), a query's embedding is the normalised sum of its pieces' vectors (no transformer at query time: tens
of microseconds instead of milliseconds). Its table (vocabulary x dimension, fp16) is saved as `token_vectors`.

Training texts are query-like: the training split's queries (never validation or test ones; none with pairs=None,
for a catalog without rated queries) and short word spans of catalog titles, some with the brand or colour, all
normalised exactly as queries are. The loss is 1 - cosine to the
whole model's embedding of the same text, plus (kl_weight > 0) a ranking term: the KL divergence between the whole
model's and the student's softmax over the catalog's product vectors (temperature 0.05), so that the student ranks
products as the whole model does, not only points the same way. The 3-layer encoder docs/speed.md measures was made in
two runs: `searchkit train-query-tower` with `kl_weight = 0` in its config file (3 epochs, lr 1e-4), then
`searchkit train-query-tower --resume` with `epochs = 1`, `lr = 5e-5`; the shipped token table in one:
`searchkit train-query-tower --layers 0` (2 epochs, lr 2e-3).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.catalog import ColumnMap, PairFormat, read_catalog, read_pairs
from ..data.splits import SplitConfig, split_pairs
from ..data.text import words
from ..errors import SearchkitError
from ..index.texts import normalise_catalog
from ..models.encoder import (
    load_encoder,
    model_fingerprint,
    pick_device,
)
from ..models.export import mean_pool
from ..models.files import QUERY_TOWER_CONFIG, QUERY_TOWER_DIR, QUERY_TOWER_WEIGHTS
from ..models.query_tower import load_tower, shallow_model, tower_info
from .pseudo_queries import title_spans

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueryTowerConfig:
    model: Path = Path("models/searchkit-homedepot")  # the whole model; query_encoder/ is written inside it
    pairs: Path | None = Path("catalog/homedepot-pairs.parquet")  # None: the catalog's title spans alone
    pair_format: PairFormat = field(default_factory=PairFormat)  # how the pairs file names its columns and grades
    catalog: Path = Path("catalog/homedepot-products.parquet")
    columns: ColumnMap = field(default_factory=ColumnMap)  # the catalog's column names, as for build-index
    layers: int = 3  # half the model's layers: a third of its query time (docs/design-notes.md); 0: a token table
    epochs: float | None = None  # None: 3 for layers, 2 for a token table (STATIC_DEFAULTS)
    batch_size: int = 128
    lr: float | None = None  # None: 1e-4 for layers, 2e-3 for a token table
    spans_per_product: int | None = None  # title word spans per catalog product; None: 4 for layers, 2 for a table
    holdout: int = 2000  # texts kept out of training to measure agreement (at most a tenth of them)
    kl_weight: float = 1.0  # weight of the catalog ranking term (0: cosine only)
    temperature: float = 0.05
    catalog_sample: int = 200_000  # products the ranking term scores against (all of a smaller catalog)
    resume: bool = False  # start from the model's current query encoder instead of its first layers
    max_steps: int | None = None
    seed: int = 42
    device: str | None = None

    def __post_init__(self) -> None:
        if (self.layers < 0 or (self.epochs is not None and self.epochs <= 0) or self.batch_size < 2
                or (self.lr is not None and self.lr <= 0) or (self.spans_per_product or 0) < 0
                or self.kl_weight < 0 or self.temperature <= 0 or self.catalog_sample < 1):
            raise SearchkitError(f"bad distillation settings: {self}")

    def resolved(self) -> QueryTowerConfig:
        """These settings with the defaults of their kind (layers or token table) filled in."""
        defaults = STATIC_DEFAULTS if self.layers == 0 else LAYER_DEFAULTS
        filled: dict[str, Any] = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        return replace(self, **filled)


LAYER_DEFAULTS = {"epochs": 3.0, "lr": 1e-4, "spans_per_product": 4}
# a token table learns from scratch per row (no shared layers): a larger step, fewer passes over fewer spans
# (docs/design-notes.md)
STATIC_DEFAULTS = {"epochs": 2.0, "lr": 2e-3, "spans_per_product": 2}


def tower_texts(pairs: pd.DataFrame | None, products: pd.DataFrame, normalise, config: QueryTowerConfig) -> list[str]:
    """Distinct normalised training texts: the train split's queries (none without pairs) and title spans (see
    title_spans)."""
    queries = []
    if pairs is not None:
        queries = sorted(set(split_pairs(pairs, SplitConfig(seed=config.seed))["train"]["query"]))
    raw = queries + title_spans(products, int(config.spans_per_product or 0), config.seed)
    texts = [normalise(" ".join(words(q))) for q in raw]
    return [t for t in dict.fromkeys(texts) if t]


def _embed(model, tokenizer, texts: list[str], device: str):
    batch = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt").to(device)
    return mean_pool(model(**batch).last_hidden_state, batch["attention_mask"])


def _agreement(model, tokenizer, texts: list[str], targets, device: str, catalog=None) -> dict[str, float]:
    """Cosine to the whole model's embeddings; with the catalog, also the share of the whole model's top 10
    products the student's embedding finds (first 500 texts)."""
    import torch

    model.eval()
    with torch.no_grad():
        vectors = torch.cat([_embed(model, tokenizer, texts[i:i + 256], device) for i in range(0, len(texts), 256)])
        cos = (vectors * targets).sum(1).cpu()
        out = {"cosine_mean": round(float(cos.mean()), 4), "cosine_min": round(float(cos.min()), 4)}
        if catalog is not None and len(texts):
            k = min(10, len(catalog))
            a = (targets[:500] @ catalog.T).topk(k).indices.tolist()
            b = (vectors[:500] @ catalog.T).topk(k).indices.tolist()
            out["top10_overlap"] = round(float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)])), 4)
    model.train()
    return out


def _loss(student, teacher, catalog, config: QueryTowerConfig):
    """1 - cosine to the whole model's embedding, plus kl_weight x KL(whole model || student) of the softmax over
    the catalog's products at `temperature`."""
    import torch

    loss = (1 - (student * teacher).sum(1)).mean()
    if catalog is None:
        return loss
    with torch.no_grad():
        target = torch.log_softmax(teacher @ catalog.T / config.temperature, dim=1)
    guess = torch.log_softmax(student @ catalog.T / config.temperature, dim=1)
    kl = (target.exp() * (target - guess)).sum(1).mean()
    return loss + config.kl_weight * kl


def _teacher_data(config: QueryTowerConfig, model_dir: Path):
    """The training texts, the whole model's embeddings of them and (kl_weight > 0) of a sample of the catalog."""
    import torch


    products = read_catalog(config.catalog, config.columns)
    pairs = read_pairs(config.pairs, config.pair_format) if config.pairs is not None else None
    teacher = load_encoder(model_dir, device=config.device)
    normaliser, _, catalog_texts = normalise_catalog(products, teacher.info.text)
    texts = tower_texts(pairs, products, normaliser.query, config)
    log.info("distilling %d layers on %d query-like texts", config.layers, len(texts))
    targets = torch.from_numpy(teacher.encode(texts, batch_size=256))
    catalog = None
    if config.kl_weight > 0:
        picks = np.random.default_rng(config.seed).permutation(len(catalog_texts))[: config.catalog_sample]
        catalog = torch.from_numpy(teacher.encode([catalog_texts[i] for i in sorted(picks)], batch_size=256))
    return texts, targets, catalog


def _fit(student, tokenizer, texts: list[str], targets, train_rows: np.ndarray, catalog, held: tuple, steps: int,
         config: QueryTowerConfig, device: str, rng) -> list[dict]:
    """AdamW with linear warm-up (5%) and decay; the held-out agreement every 500 steps."""
    import torch

    warmup = max(1, steps // 20)
    optimiser = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=float(config.lr or 0),
                                  weight_decay=0.01 if config.layers else 0.0)  # a table's unseen rows stay put
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda i: (i + 1) / warmup if i < warmup else max(0.0, (steps - i) / max(1, steps - warmup)))
    feed = np.concatenate([rng.permutation(train_rows)
                           for _ in range(math.ceil(steps * config.batch_size / len(train_rows)))])
    history = []
    for step in range(steps):
        rows = feed[step * config.batch_size:(step + 1) * config.batch_size]
        loss = _loss(_embed(student, tokenizer, [texts[i] for i in rows], device), targets[rows].to(device),
                     catalog, config)
        loss.backward()
        optimiser.step()
        schedule.step()
        optimiser.zero_grad()
        if (step + 1) % 500 == 0 or step + 1 == steps:
            history.append({"step": step + 1, "loss": round(loss.item(), 4),
                            **_agreement(student, tokenizer, held[0], held[1], device, catalog)})
            log.info("step %d/%d %s", step + 1, steps, history[-1])
    return history


def train_query_tower(config: QueryTowerConfig) -> dict:
    """Train the query encoder and save it into `config.model`/query_encoder (replacing one already there)."""
    import torch
    from transformers import AutoTokenizer

    started = time.perf_counter()
    config = config.resolved()
    model_dir = Path(config.model)
    parent = model_fingerprint(model_dir, query_tower=False)
    previous = tower_info(model_dir) if config.resume else None  # refused now, not after the teacher's encoding
    if config.resume and previous is None:
        raise SearchkitError(f"{model_dir} has no query encoder to resume from")
    if previous and int(previous["layers"]) != config.layers:
        raise SearchkitError(f"{model_dir}'s query encoder has {previous['layers']} layers, not {config.layers}")
    texts, targets, catalog = _teacher_data(config, model_dir)
    device = pick_device(config.device)
    catalog = catalog.to(device) if catalog is not None else None

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(texts))
    holdout = min(config.holdout, len(texts) // 10)  # at most a tenth of the texts
    held, train_rows = order[:holdout], order[holdout:]
    if len(train_rows) < config.batch_size:
        raise SearchkitError(f"only {len(train_rows)} training texts for batch size {config.batch_size}")
    held_data = ([texts[i] for i in held], targets[held].to(device))
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    student = shallow_model(model_dir, config.layers)
    if previous:
        load_tower(student, model_dir, config.layers)
    student = student.to(device).train()
    before = _agreement(student, tokenizer, *held_data, device, catalog)
    steps = math.ceil(float(config.epochs or 0) * len(train_rows) / config.batch_size)
    steps = min(steps, config.max_steps) if config.max_steps else steps
    history = _fit(student, tokenizer, texts, targets, train_rows, catalog, held_data, steps, config, device, rng)
    report = {"layers": config.layers, "parent_fingerprint": parent, "texts": len(texts),
              "train_texts": len(train_rows), "heldout_texts": len(held), "steps": steps, "device": device,
              "seconds": round(time.perf_counter() - started, 1), "agreement_before": before,
              "agreement_after": _agreement(student, tokenizer, *held_data, device, catalog), "history": history,
              "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
              **({"resumed_from": previous} if previous else {})}
    save_tower(student, model_dir, report)
    return report


def save_tower(student, model_dir: Path, report: dict) -> Path:
    """Write the student's transformer layers or token table (fp16) and their report to model_dir/query_encoder
    atomically."""
    from safetensors.torch import save_file

    layers = {k: v.detach().to("cpu").half().contiguous() for k, v in student.state_dict().items()
              if k.startswith("encoder.layer.") or k == "token_vectors"}
    target = model_dir / QUERY_TOWER_DIR
    staged = Path(tempfile.mkdtemp(prefix=".query_encoder-", dir=model_dir))
    try:
        staged.chmod(0o755)  # mkdtemp's 0700 would hide the folder from other users of the model
        save_file(layers, str(staged / QUERY_TOWER_WEIGHTS))
        (staged / QUERY_TOWER_CONFIG).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        old = model_dir / (QUERY_TOWER_DIR + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        staged.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return target
