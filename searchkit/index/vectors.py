"""Stored vectors a build or update may keep: an unchanged product keeps the vector its embedded text had."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..data.text import Normaliser, TextConfig
from ..errors import IndexFormatError
from ..models.encoder import (
    Encoder,
)
from . import layout
from .ann import flat_vectors
from .manifest import Encoding
from .texts import product_texts


def reusable_vectors(target: Path, fingerprint: str, text: TextConfig, how: Encoding
                     ) -> tuple[pd.DataFrame, np.ndarray] | None:
    """The products and stored vectors of the index at `target` when it was embedded by this model reading text this
    way with the same kind of graph (`how`: the new build's Encoding), so an unchanged product's vector can be
    kept; else None."""
    try:
        manifest = layout.read_manifest(target)
        files = layout.IndexFiles(layout.live_dir(target))
        layout.verify_files(files, manifest, checksums=True)
    except (IndexFormatError, OSError):
        return None
    if manifest.model.fingerprint != fingerprint or manifest.text != text or manifest.encoding != how:
        return None
    index = layout.read_faiss(files)
    vectors = flat_vectors(index)  # a view of the index's memory: copied while the index is alive
    if vectors is None:  # 8-bit codes: decoded vectors are not the embeddings; embed afresh
        return None
    return layout.read_products(files, manifest.rows).to_pandas(), np.array(vectors, dtype=np.float32, copy=True)


def embed_changed(products: pd.DataFrame, texts: list[str], old: pd.DataFrame | None, old_vectors: np.ndarray | None,
                  normaliser: Normaliser, encoder: Encoder, batch_size: int, progress: bool = False,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Every product's vector: the stored one where the product was indexed with the same embedded text, else
    embedded now. Returns the vectors and, per product, the stored row its vector came from (-1: embedded now)."""
    vectors = np.zeros((len(products), encoder.info.dimension), dtype=np.float32)
    sources = np.full(len(products), -1, dtype=np.int64)
    fresh = list(range(len(products)))
    if old is not None and old_vectors is not None and len(old):
        stored = dict(zip(old["product_id"].astype(str), zip(product_texts(old, normaliser), range(len(old)),
                                                            strict=True), strict=True))
        fresh = []
        for i, (product_id, text) in enumerate(zip(products["product_id"].astype(str), texts, strict=True)):
            hit = stored.get(product_id)
            if hit is not None and hit[0] == text:
                vectors[i], sources[i] = old_vectors[hit[1]], hit[1]
            else:
                fresh.append(i)
    if fresh:
        vectors[fresh] = encoder.encode([texts[i] for i in fresh], batch_size=batch_size, progress=progress)
    return vectors, sources
