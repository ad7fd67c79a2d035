"""A searcher built in memory from a catalog file and a model, as `build-index` would build it with torch:
for evaluating a model before indexing with it."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

from ..data.catalog import ColumnMap, read_catalog
from ..data.intent import ProductTypes
from ..data.spell import SpellCorrector
from ..data.text import KEYWORD_TEXT
from ..index.ann import ExactIndex
from ..index.graphs import catalog_batch
from ..index.lexical import LexicalIndex
from ..index.manifest import (
    FORMAT_VERSION,
    Bm25,
    CatalogSection,
    Encoding,
    IndexSection,
    Manifest,
    ModelSection,
    library_versions,
)
from ..index.texts import keyword_texts, normalise_catalog, text_record
from ..models.encoder import Encoder, load_encoder
from ..search.loading import model_words
from ..search.searcher import Searcher


def in_memory_searcher(catalog_path: str | Path, model: str | Path | None = None, device: str | None = None,
                       batch_size: int = 256, columns: ColumnMap = ColumnMap(), encoder: Encoder | None = None,
                       keyword_text: int = KEYWORD_TEXT):
    """A Searcher over `catalog_path` held in memory, with exact dense search and no files written: for measuring
    a model (e.g. during training sweeps, or on a machine without faiss) exactly as build_index + Searcher would
    normalise, embed and rank, minus the ANN approximation and the ONNX graphs (the catalog is embedded by torch in
    fp32, as `bulk = "torch"` builds it)."""
    started = time.perf_counter()
    products = read_catalog(catalog_path, columns)
    encoder = encoder or load_encoder(model, device=device)
    normaliser, stemmer, texts = normalise_catalog(products, encoder.info.text, keyword_text)
    vectors = encoder.encode(texts, batch_size=catalog_batch(encoder, batch_size))
    manifest = Manifest(
        format_version=FORMAT_VERSION, searchkit_version="in-memory",
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), rows=len(products),
        dimension=encoder.info.dimension, metric="cosine (inner product of unit vectors)",
        model=ModelSection(name=encoder.info.name, fingerprint=encoder.info.fingerprint, source=encoder.info.path),
        index=IndexSection(type="exact (in memory)", ntotal=len(products), bm25=Bm25(text=keyword_text)),
        catalog=CatalogSection(path=str(catalog_path), sha256=""),
        text=encoder.info.text, encoding=Encoding.TORCH, libraries=library_versions(),
        device=f"encode: torch {getattr(encoder, 'device', 'cpu')}",
        build_seconds=round(time.perf_counter() - started, 2))
    record = text_record(products, normaliser, stemmer)
    return Searcher(ExactIndex(vectors), products, encoder, manifest, normaliser,
                    LexicalIndex.build(keyword_texts(products, normaliser, texts)),
                    SpellCorrector(record["vocab"], dictionary=lambda: model_words(Path(encoder.info.path)),
                                   stem=normaliser.stemmer), types=ProductTypes(record["types"]))
