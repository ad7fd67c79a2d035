"""Second stage: a cross-encoder reads the query and each of the top hybrid candidates together and reorders them.

Search mode "rerank" = hybrid, then the top `depth` candidates are re-scored: weight * sigmoid(cross-encoder logit)
+ (1 - weight) * the hybrid fused score min-max scaled over those candidates; the rest keep their hybrid order.
The cross-encoder is a BERT sequence classifier (searchkit.training.reranker trains one from the embedder's weights),
exported into the index as an int8 ONNX graph and run with onnxruntime + tokenizers (no torch at query time).

A reranker folder (a model's `reranker/` subfolder, or any folder given to `build-index --reranker`):
    config.json, model.safetensors, tokenizer.json   the Hugging Face sequence classifier (fp16 weights)
    reranker.json                                    RerankerSettings, the text pipeline it reads, how it was trained,
                                                     and the relevance estimate's fit (searchkit.search.relevance), if any
    grader/                                          optional: a sentence-transformers model whose cosine is one more
                                                     signal of the relevance estimate (it ranks nothing)
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..checksums import update_with_file
from ..data.text import Normaliser, TextConfig
from ..errors import ModelError
from . import graph_cache
from .encoder import ModelInfo, OnnxEncoder, model_fingerprint, onnx_session, read_model_info
from .export import export_onnx, export_reranker, quantize_graph
from .files import (
    CONFIG_FILE,
    GRADER_DIR,
    GRADER_GRAPH_NAME,
    RERANKER_DIR,
    RERANKER_GRAPH_NAME,
    RERANKER_INFO,
    SAFETENSORS_FILE,
    SBERT_CONFIG_FILE,
    SKELETON_DIR,
    SKELETON_GRAPH,
    SKELETON_MAP,
    TOKENIZER_FILE,
)

log = logging.getLogger(__name__)

GRADER_FILES = (TOKENIZER_FILE, SBERT_CONFIG_FILE)  # what the index keeps of it beside its int8 graph
# what the cross-encoder reads: whole words (its BERT pretraining saw whole words), brand and colour tokens on
# products, no brand token on queries (the query's own words carry the brand)
RERANKER_TEXT = TextConfig(stem=False, query_brand="none")
# (query, product text) logits remembered: a head query searched again in mode rerank, or a product it read shown
# again on another page, is not read a second time; each pair is scored alone, so a remembered logit is the one the
# graph would give again
PAIR_CACHE_SIZE = 16_384


@dataclass(frozen=True)
class RerankerSettings:
    # chosen on the validation split with the shipped reranker (docs/design-notes.md)
    depth: int = 30  # hybrid candidates read by the cross-encoder
    weight: float = 0.8  # share of the cross-encoder's probability in the final score (the rest: hybrid's fused)
    max_length: int = 64  # word pieces of query + product text, longest first truncated

    def __post_init__(self) -> None:
        if self.depth < 1 or not 0.0 <= self.weight <= 1.0 or self.max_length < 8:
            raise ModelError(f"bad reranker settings {self}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RerankerSettings:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def record_text(text: Normaliser, record: dict[str, Any]) -> str:
    """A product record (title, brand, color) as the cross-encoder reads it, in training and at query time alike."""
    return text.product(record.get("title") or "", record.get("brand"), record.get("color"))


def reranker_dir(model_dir: str | Path) -> Path | None:
    """The reranker a model folder carries, or None."""
    folder = Path(model_dir) / RERANKER_DIR
    return folder if (folder / RERANKER_INFO).is_file() else None


def grader_dir(folder: str | Path) -> Path | None:
    """The grader a reranker folder carries, or None."""
    grader = Path(folder) / GRADER_DIR
    return grader if grader.is_dir() else None


def read_info(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / RERANKER_INFO
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a searchkit reranker ({exc})") from exc
    if not isinstance(info, dict) or "settings" not in info or "text" not in info:
        raise ModelError(f"{path}: not a searchkit reranker (no settings or text)")
    return info


def write_info(folder: Path, settings: RerankerSettings, text: TextConfig, **extra: Any) -> None:
    (folder / RERANKER_INFO).write_text(json.dumps({"settings": asdict(settings), "text": text.to_dict(), **extra},
                                                   indent=2, sort_keys=True))


def write_relevance(folder: str | Path, relevance: dict[str, Any]) -> Path:
    """Store a relevance fit (searchkit.search.relevance) in a reranker folder's settings file, replacing any earlier one;
    the file is swapped in whole. The reranker's fingerprint does not cover it (the fit records that fingerprint)."""
    import os

    path = Path(folder) / RERANKER_INFO
    info = read_info(folder)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({**info, "relevance": relevance}, indent=2, sort_keys=True))
    os.replace(tmp, path)
    return path


WEIGHT_FILES = (SAFETENSORS_FILE, CONFIG_FILE, TOKENIZER_FILE)


def fingerprint(folder: str | Path) -> str:
    """sha256 over the weights, config, tokenizer and settings (and the grader's fingerprint, when it has one): two
    reranker folders agree iff they score alike."""
    import hashlib

    folder = Path(folder)
    shipped = graph_cache.shipped_fingerprint(folder)  # a distribution's folder shipping its graph, not its weights
    if shipped is not None:
        return shipped
    digest = hashlib.sha256()
    for name in WEIGHT_FILES:
        if not (folder / name).is_file():
            raise ModelError(f"{folder}: the reranker lacks {name}")
        digest.update(name.encode())
        update_with_file(digest, folder / name)
    digest.update(json.dumps(read_info(folder)["settings"], sort_keys=True).encode())
    grader = grader_dir(folder)
    if grader is not None:
        digest.update(f"{GRADER_DIR}:{grader_fingerprint(grader)}".encode())
    return digest.hexdigest()


def grader_fingerprint(folder: Path) -> str:
    """The grader's weights' fingerprint, or the one its distribution ships for them (graph_cache.ship)."""
    return graph_cache.shipped_fingerprint(folder) or model_fingerprint(folder, query_tower=False)


def check_grader(source: Path) -> None:
    missing = [name for name in GRADER_FILES + (CONFIG_FILE,) if not (source / name).is_file()]
    if missing:
        raise ModelError(f"{source}: the grader lacks {', '.join(missing)}")


def export_grader(source: Path, path: Path) -> bool:
    """The grader's int8 graph made from its weights; False when it is not a mean-pooled encoder."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        if not export_onnx(source, Path(tmp) / "grader.onnx"):
            return False
        quantize_graph(Path(tmp) / "grader.onnx", path)
    return True


def install_grader(source: Path, graph: Path, folder: Path, cache: Path | None = None) -> dict[str, Any]:
    """The grader as an int8 ONNX graph plus what encoding with it needs; returns its name, fingerprint, dimension
    and text pipeline (the index's reranker.json keeps them)."""
    import shutil

    check_grader(source)
    if not graph_cache.graph(cache, grader_fingerprint(source), GRADER_GRAPH_NAME,
                             graph_cache.ready_or(source, GRADER_GRAPH_NAME, lambda path: export_grader(source, path)),
                             graph):
        raise ModelError(f"{source}: the grader is not a mean-pooled sentence-transformers model")
    folder.mkdir()
    for name in GRADER_FILES:
        shutil.copyfile(source / name, folder / name)
    meta = read_model_info(source)
    return {"name": meta.get("name") or source.name, "fingerprint": grader_fingerprint(source),
            "dimension": int(json.loads((source / CONFIG_FILE).read_text())["hidden_size"]),
            "text": meta.get("text") or TextConfig().to_dict()}


def ship_graphs(model_dir: Path, out: Path) -> list[Path]:
    """For a model distribution being built (`out`: its copy of the model folder `model_dir`): the int8 graphs of
    the cross-encoder and its grader, made here and written into `out` with their records (graph_cache.ship), so
    that the distribution can leave their weights out. Returns the files it may leave out (the weights and the
    skeletons made for them), relative to `model_dir`."""
    reranker = reranker_dir(model_dir)
    if reranker is None:
        return []
    shipped = [reranker]
    graph_cache.ship(reranker, out / RERANKER_DIR, RERANKER_GRAPH_NAME, fingerprint(reranker),
                     lambda path: export_reranker(reranker, path))
    grader = grader_dir(reranker)
    if grader is not None:
        check_grader(grader)
        graph_cache.ship(grader, out / RERANKER_DIR / GRADER_DIR, GRADER_GRAPH_NAME, grader_fingerprint(grader),
                         lambda path: export_grader(grader, path))
        shipped.append(grader)
    return [(folder / name).relative_to(model_dir) for folder in shipped
            for name in (SAFETENSORS_FILE, f"{SKELETON_DIR}/{SKELETON_GRAPH}", f"{SKELETON_DIR}/{SKELETON_MAP}")]


class Grader:
    """A second embedder's cosine of query and product, as the relevance estimate reads it: its int8 graph, one text
    at a time (so a product's cosine does not depend on what else is asked about), with its own text pipeline."""

    def __init__(self, graph: Path, folder: Path, meta: dict[str, Any], normaliser: Normaliser,
                 threads: int | None = None):
        text = TextConfig.from_dict(meta["text"])
        info = ModelInfo(name=meta["name"], path=str(folder), fingerprint=meta["fingerprint"],
                         dimension=int(meta["dimension"]), text=text)
        self.encoder = OnnxEncoder(graph, folder, info, threads=threads, one_at_a_time=True)
        self.text = Normaliser(text, normaliser.brands, normaliser.stemmer)  # the index's brands and stems

    def cosines(self, query: str, products: list[dict[str, Any]]) -> np.ndarray:
        vectors = self.encoder.encode([self.text.query(query)] + [record_text(self.text, p) for p in products])
        return vectors[1:] @ vectors[0]


PAIRS_AT_ONCE = 4  # the most query-product pairs a rerank scores side by side (docs/speed.md)


class Reranker:
    """Scores (query, product) pairs with the index's cross-encoder graph: onnxruntime + tokenizers only."""

    def __init__(self, graph: str | Path, tokenizer: str | Path, info: dict[str, Any], threads: int | None = None,
                 grader: Grader | None = None, pairs_at_once: int | None = None):
        """threads: onnxruntime's threads per pair (None: all cores); pairs_at_once: pairs run side by side, each on
        one thread (default: one per core, at most PAIRS_AT_ONCE; 1 when a pair already takes every core)."""
        self.settings = RerankerSettings.from_dict(info["settings"])
        self.text = Normaliser(TextConfig.from_dict(info["text"]))
        self.name = info.get("name", Path(graph).parent.name)
        self.info = info
        self.grader = grader  # the relevance estimate's second embedder, when the index has one
        self.session, self.tokenizer = onnx_session(graph, tokenizer, threads)
        self.tokenizer.enable_truncation(self.settings.max_length)
        self.tokenizer.no_padding()
        self.inputs = {i.name for i in self.session.get_inputs()}
        if pairs_at_once is None:
            pairs_at_once = 1 if threads is None else max(1, min(os.cpu_count() or 1, PAIRS_AT_ONCE))
        self.pairs_at_once = pairs_at_once
        self.cache_size = PAIR_CACHE_SIZE  # remembered pairs (0: none)
        self.on_pairs: Callable[[int, int], None] | None = None  # told (pairs read, pairs remembered) per call
        self._cache: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._cache_lock = threading.Lock()

    def scores(self, query: str, products: list[dict[str, Any]]) -> np.ndarray:
        """One logit per product record (title, brand, color) for this query, as typed or understood. Each pair runs
        alone: the int8 graph scales activations over its whole input, so in a batch a pair's logit would depend on
        its batch-mates, and alone costs no more (docs/design-notes.md). Pairs run side by side on pairs_at_once
        threads (onnxruntime releases the GIL while it runs), each as it would alone: the same logits, whether
        read now or remembered from an earlier search (the last `cache_size` pairs)."""
        q = self.text.query(query)
        pairs = [(q, record_text(self.text, p)) for p in products]
        with self._cache_lock:
            known = [self._cache.get(pair) for pair in pairs]
        unread = [i for i, logit in enumerate(known) if logit is None]
        encoded = self.tokenizer.encode_batch([pairs[i] for i in unread]) if unread else []
        if self.pairs_at_once > 1 and len(encoded) > 1:
            fresh = list(self._pool.map(self._logit, encoded))
        else:
            fresh = [self._logit(e) for e in encoded]
        out = np.array([0.0 if logit is None else logit for logit in known], dtype=np.float32)
        out[unread] = fresh
        if self.cache_size > 0:
            with self._cache_lock:
                for pair, logit in zip(pairs, out.tolist(), strict=True):
                    self._cache[pair] = logit
                    self._cache.move_to_end(pair)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        if self.on_pairs is not None:
            self.on_pairs(len(unread), len(pairs) - len(unread))
        return out

    def forget(self) -> None:
        """Drop the remembered logits (a benchmark timing what reading the pairs costs)."""
        with self._cache_lock:
            self._cache.clear()

    def _logit(self, e: Any) -> float:
        feed = {"input_ids": [e.ids], "attention_mask": [e.attention_mask], "token_type_ids": [e.type_ids]}
        return float(self.session.run(["logit"], {k: np.array(v, dtype=np.int64) for k, v in feed.items()
                                                  if k in self.inputs})[0][0])

    @cached_property
    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self.pairs_at_once, thread_name_prefix="searchkit-rerank")

    def combine(self, logits: np.ndarray, fused: np.ndarray) -> np.ndarray:
        return blend(logits, fused, self.settings.weight)


def blend(logits: np.ndarray, fused: np.ndarray, weight: float) -> np.ndarray:
    """Final scores of reranked candidates: weight * the cross-encoder's probability + (1 - weight) * the hybrid
    fused score min-max scaled over the candidates."""
    fused = np.asarray(fused, dtype=np.float64)
    spread = fused.max() - fused.min() if len(fused) else 0.0
    scaled = (fused - fused.min()) / spread if spread > 0 else np.ones_like(fused)
    return weight / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64))) + (1 - weight) * scaled


def unread_scores(fused_head: np.ndarray, fused_tail: np.ndarray, weight: float) -> np.ndarray:
    """Final scores of the candidates past the cross-encoder's depth, which it did not read: the blend with its
    probability taken as 0 and the fused score scaled as the head's was. The tail's fused scores are at most the
    head's lowest, so these are at most 0, below every reranked score (> 0): scores fall with rank in mode rerank."""
    fused_head = np.asarray(fused_head, dtype=np.float64)
    low = fused_head.min() if len(fused_head) else 0.0
    spread = fused_head.max() - low if len(fused_head) else 0.0
    return (1 - weight) * (np.asarray(fused_tail, dtype=np.float64) - low) / (spread if spread > 0 else 1.0)
