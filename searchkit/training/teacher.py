"""Teacher labels for distilling a cross-encoder into the embedder (`searchkit train --recipe distil`).

Queries are the training split's (never validation or test ones) plus pseudo-queries made from catalog titles
(searchkit.training.pseudo_queries). Each query's candidates are an index's hybrid top `candidates` plus its rated products;
the index's cross-encoder scores every (query, candidate) pair. Labels are written in chunks of `chunk` queries to
`folder/labels-NNNNN.parquet` beside `folder/plan.json` (the queries, settings and fingerprints they were made with),
each chunk atomically, so a run stopped at any point continues where it stopped and never relabels a finished chunk;
a folder made for other queries, settings, index or teacher is refused instead of mixed."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import SearchkitError
from ..search.results import Mode
from ..search.searcher import Searcher
from .pseudo_queries import pseudo_queries

log = logging.getLogger(__name__)
progress = logging.getLogger("searchkit.progress")

PLAN_FILE = "plan.json"


@dataclass(frozen=True)
class LabelSettings:
    index: Path = Path("indexes/homedepot")  # mines candidates (hybrid); its cross-encoder is the teacher (another
    # teacher: build an index with `searchkit build-index --reranker DIR`)
    train_queries: int | None = None  # at most this many of the training split's queries (None: all)
    pseudo_queries: int = 4000  # query-like texts made from catalog titles
    candidates: int = 50  # the index's hybrid top N per query (plus the query's rated products)
    chunk: int = 250  # queries per cached label file
    seed: int = 42
    teacher_device: str | None = None  # None: the index's int8 ONNX cross-encoder, one pair at a time on the CPU;
    # "cuda" or "cpu": the same cross-encoder's weights (its source folder, checked by fingerprint) in torch, batched

    def __post_init__(self) -> None:
        if self.candidates < 2 or self.chunk < 1 or self.pseudo_queries < 0 or (self.train_queries or 0) < 0:
            raise SearchkitError(f"label settings out of range: {self}")


def label_queries(rated: pd.DataFrame, products: pd.DataFrame, settings: LabelSettings) -> list[str]:
    """The queries to label: the rated ones (a seeded sample when train_queries caps them), then pseudo-queries
    that are not already among them."""
    queries = sorted(set(rated["query"]))
    if settings.train_queries is not None and settings.train_queries < len(queries):
        queries = sorted(pd.Series(queries).sample(settings.train_queries, random_state=settings.seed))
    seen = set(queries)
    extra = [q for q in pseudo_queries(products, settings.pseudo_queries, settings.seed) if q not in seen]
    return queries + extra


def _plan(queries: list[str], settings: LabelSettings, searcher: Searcher) -> dict:
    return {"settings": {k: v for k, v in asdict(settings).items() if k not in ("chunk", "index")},
            "catalog_sha256": searcher.manifest.catalog.sha256,
            "model": searcher.manifest.model.fingerprint,
            "teacher": searcher.manifest.model.reranker_fingerprint,
            "chunk": settings.chunk, "queries": queries}


def teacher_labels(rated: pd.DataFrame, products: pd.DataFrame, settings: LabelSettings, folder: Path
                   ) -> pd.DataFrame:
    """Columns query, product_id, teacher (the cross-encoder's logit), rated (the pair has a human grade), for every
    labelled query's candidates; labels only what `folder` lacks."""
    searcher = Searcher.from_dir(settings.index)
    if Mode.RERANK not in searcher.modes:
        raise SearchkitError(f"{settings.index}: the index has no cross-encoder to label with; build it with "
                             "`searchkit build-index --reranker DIR`")
    teacher = searcher.reranker if settings.teacher_device is None else TorchTeacher(
        searcher, settings.teacher_device)
    queries = label_queries(rated, products, settings)
    plan = _plan(queries, settings, searcher)
    folder.mkdir(parents=True, exist_ok=True)
    plan_file = folder / PLAN_FILE
    if plan_file.is_file():
        old = json.loads(plan_file.read_text())
        defaults = asdict(LabelSettings())  # a setting added since the folder was made counts at its default
        old["settings"] = {**{k: v for k, v in defaults.items() if k in plan["settings"]}, **old.get("settings", {})}
        if old != plan:
            differ = sorted(k for k in plan if old.get(k) != plan[k])
            raise SearchkitError(f"{folder}: teacher labels made with other {', '.join(differ)}; delete the folder "
                                 "or label into another one")
    else:
        _write_atomic(plan_file, lambda tmp: tmp.write_text(json.dumps(plan, indent=1)))
    known = set(products["product_id"])
    by_query = rated.groupby("query")["product_id"].apply(list).to_dict()
    chunks = [queries[i:i + settings.chunk] for i in range(0, len(queries), settings.chunk)]
    started, pairs = time.perf_counter(), 0
    for number, chunk in enumerate(chunks):
        path = folder / f"labels-{number:05d}.parquet"
        if path.is_file():
            continue
        hits = searcher.search_batch(chunk, k=settings.candidates, mode=Mode.HYBRID)
        rows: list[tuple[str, str, float, bool]] = []
        for query, found in zip(chunk, hits, strict=True):
            ids = list(dict.fromkeys([h.product_id for h in found] + by_query.get(query, [])))
            ids = [p for p in ids if p in known]
            scores = teacher.scores(query, [searcher.product(p) for p in ids])
            rated_ids = set(by_query.get(query, []))
            rows.extend((query, p, float(s), p in rated_ids) for p, s in zip(ids, scores, strict=True))
        frame = pd.DataFrame(rows, columns=["query", "product_id", "teacher", "rated"])
        _write_atomic(path, partial(_to_parquet, frame))
        pairs += len(rows)
        progress.info("teacher labels: chunk %d/%d, %.0f pairs/s", number + 1, len(chunks),
                      pairs / (time.perf_counter() - started))
    return read_labels(folder)


class TorchTeacher:
    """The index's cross-encoder run in torch from the folder it was installed from (fp32, batches of 256): the fast
    way to label on a GPU. Refused when that folder's weights are not the index's cross-encoder."""

    def __init__(self, searcher: Searcher, device: str):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from ..models.cross_encoder import fingerprint

        meta = searcher.manifest.model.reranker or {}
        folder = Path(meta.get("source") or "")
        if not folder.is_dir() or fingerprint(folder) != meta.get("fingerprint"):
            raise SearchkitError(f"{folder}: not the index's cross-encoder (it is gone or has other weights); label "
                                 "with teacher_device unset (the index's own graph)")
        self.inner = searcher.reranker
        self.torch, self.device = torch, device
        self.model = AutoModelForSequenceClassification.from_pretrained(str(folder), dtype=torch.float32).to(device)
        self.model.eval()
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))

    def scores(self, query: str, products: list[dict]) -> np.ndarray:
        from ..models.cross_encoder import record_text

        q = self.inner.text.query(query)
        out = []
        for first in range(0, len(products), 256):
            batch = self.tokenizer([q] * len(products[first:first + 256]),
                                   [record_text(self.inner.text, p) for p in products[first:first + 256]],
                                   truncation="longest_first", max_length=self.inner.settings.max_length,
                                   padding=True, return_tensors="pt").to(self.device)
            with self.torch.no_grad():
                out.append(self.model(**batch).logits[:, 0].float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, np.float32)


def read_labels(folder: Path) -> pd.DataFrame:
    files = sorted(folder.glob("labels-*.parquet"))
    if not files:
        raise SearchkitError(f"{folder}: no teacher labels")
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def _to_parquet(frame: pd.DataFrame, path: Path) -> None:
    frame.to_parquet(path, index=False)


def _write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """`write(tmp)` beside `path`, then renamed into place: a reader sees the old file or the whole new one."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)
