"""Searcher: normalise a query exactly as the catalog was, embed it, search the index, return ranked products."""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import store
from .encoder import Encoder, load_encoder, model_fingerprint
from .errors import IndexFormatError, IndexMismatchError, QueryError
from .text import BrandMatcher, CachedStemmer, Normaliser, TextConfig

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 1000


@dataclass(frozen=True)
class SearchResult:
    product_id: str
    score: float  # cosine similarity in [-1, 1]
    rank: int  # 1 = best
    fields: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "product_id": self.product_id, "score": round(self.score, 6), **self.fields}


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def check_query(query: str) -> str:
    if not isinstance(query, str) or not query.strip():
        raise QueryError("the query is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError(f"the query is {len(query)} characters long; at most {MAX_QUERY_CHARS} are accepted")
    return query.strip()


class Searcher:
    """Thread-safe search over one index. Build with `Searcher.from_dir(path)`; the constructor takes parts."""

    def __init__(self, index: Any, products: pd.DataFrame, encoder: Encoder, manifest: store.Manifest,
                 normaliser: Normaliser):
        if index.ntotal != len(products):
            raise IndexFormatError(f"the faiss index holds {index.ntotal} vectors for {len(products)} products")
        if index.d != encoder.info.dimension:
            raise IndexMismatchError(
                f"the index has dimension {index.d}, the model {encoder.info.name} embeds in {encoder.info.dimension}"
            )
        self.index = index
        self.products = products.reset_index(drop=True)
        self.encoder = encoder
        self.manifest = manifest
        self.normaliser = normaliser
        self._row_of = {pid: i for i, pid in enumerate(self.products["product_id"])}
        self._records = self.products.to_dict("records")
        self._encode_lock = threading.Lock()

    @classmethod
    def from_dir(cls, path: str | Path, model: str | Path | None = None, device: str | None = None,
                 verify: bool = True) -> Searcher:
        """Load and validate an index folder. `model`, when given, must be the model the index was built with."""
        files = store.IndexFiles(Path(path))
        manifest = store.read_manifest(files.root)
        store.verify_files(files, manifest, checksums=verify)
        expected = manifest.model.get("fingerprint")
        if model is not None and model_fingerprint(model) != expected:
            raise IndexMismatchError(
                f"{files.root} was built with model {manifest.model.get('name')!r} (fingerprint {expected[:12]}), "
                f"not with {model}; rebuild the index with that model or drop --model"
            )
        if verify and model_fingerprint(files.model) != expected:
            raise IndexFormatError(f"{files.model}: the model copy differs from the one the index was built with")
        text = store.read_text(files)
        config = TextConfig.from_dict(text.get("config", {}))
        if config.to_dict() != manifest.text:
            raise IndexFormatError(f"{files.text}: text settings differ from the manifest's")
        index = store.read_faiss(files)
        if index.ntotal != manifest.rows or index.d != manifest.dimension:
            raise IndexFormatError(
                f"{files.faiss}: {index.ntotal} vectors of dimension {index.d}, the manifest says "
                f"{manifest.rows} x {manifest.dimension}"
            )
        products = store.read_products(files, manifest.rows)
        encoder = load_encoder(files.model, device=device)
        normaliser = Normaliser(config, BrandMatcher.from_names(text.get("brands", [])),
                                CachedStemmer(text.get("stems", {})))
        return cls(index, products, encoder, manifest, normaliser)

    def __len__(self) -> int:
        return len(self.products)

    def embed_queries(self, queries: list[str]) -> np.ndarray:
        texts = [self.normaliser.query(check_query(q)) for q in queries]
        with self._encode_lock:
            return self.encoder.encode(texts, batch_size=64)

    def _result(self, row: int, score: float, rank: int) -> SearchResult:
        record = self._records[row]
        fields = {k: _plain(v) for k, v in record.items() if k != "product_id"}
        return SearchResult(product_id=str(record["product_id"]), score=float(score), rank=rank, fields=fields)

    def search_batch(self, queries: list[str], k: int = 10) -> list[list[SearchResult]]:
        if not isinstance(k, int) or k < 1:
            raise QueryError(f"k must be a positive integer, not {k!r}")
        if not queries:
            return []
        k = min(k, len(self))
        vectors = self.embed_queries(list(queries))
        scores, ids = self.index.search(vectors, k)
        out = []
        for row_scores, row_ids in zip(scores, ids, strict=True):
            hits = [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
            out.append([self._result(i, s, rank) for rank, (i, s) in enumerate(hits, start=1)])
        return out

    def search(self, query: str, k: int = 10) -> list[SearchResult]:
        return self.search_batch([query], k)[0]

    def similarity(self, query: str, product_ids: list[str]) -> list[float]:
        """Cosine of the query with each given product, as the index scores them."""
        missing = [p for p in product_ids if str(p) not in self._row_of]
        if missing:
            raise QueryError(f"unknown product id(s): {missing[:5]}")
        rows = [self._row_of[str(p)] for p in product_ids]
        query_vector = self.embed_queries([query])[0]
        vectors = np.vstack([self.index.reconstruct(r) for r in rows]) if rows else np.zeros((0, len(query_vector)))
        return [float(x) for x in vectors @ query_vector]
