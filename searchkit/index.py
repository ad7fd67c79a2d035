"""build_index(catalog, out_dir, ...): normalise every product, embed it, build a FAISS index, save it atomically."""

from __future__ import annotations

import logging
import platform
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from . import store
from .catalog import ColumnMap, read_catalog
from .checksums import file_sha256
from .encoder import Encoder, OnnxEncoder, export_onnx, load_encoder
from .errors import SearchkitError
from .lexical import LexicalIndex
from .text import BrandMatcher, CachedStemmer, Normaliser, words

log = logging.getLogger(__name__)

HNSW_ABOVE_ROWS = 200_000  # "auto": exact search up to this size (55K x 384 flat search is ~9 ms on 2 cores)


@dataclass(frozen=True)
class IndexConfig:
    batch_size: int = 64
    device: str | None = None  # None/"auto": CUDA when torch sees it
    index_type: str = "auto"  # auto | flat | hnsw
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 128
    progress: bool = False
    onnx: bool = True  # also save the model as ONNX, for the fast query path
    # how the catalog is embedded: "torch" (sentence-transformers, on the GPU when present), "onnx" (the exported
    # fp32 graph, length-sorted batches) or "onnx-int8" (that graph with per-channel dynamic int8 weights)
    bulk: str = "torch"

    def __post_init__(self) -> None:
        """Refuse bad settings when the config is made, before any product is encoded."""
        if self.index_type not in ("auto", "flat", "hnsw"):
            raise SearchkitError(f"unknown index type {self.index_type!r}: use auto, flat or hnsw")
        if self.bulk not in ("torch", "onnx", "onnx-int8"):
            raise SearchkitError(f"unknown bulk encoder {self.bulk!r}: use torch, onnx or onnx-int8")

    def resolved_type(self, rows: int) -> str:
        if self.index_type == "auto":
            return "hnsw" if rows > HNSW_ABOVE_ROWS else "flat"
        return self.index_type


def product_texts(products: pd.DataFrame, normaliser: Normaliser) -> list[str]:
    return [
        normaliser.product(t, b, c)
        for t, b, c in zip(products["title"], products["brand"], products["color"], strict=True)
    ]


def catalog_vocabulary(products: pd.DataFrame) -> dict[str, int]:
    """Each word of the catalog's titles, brands and colours with the number of products that use it."""
    counts: Counter[str] = Counter()
    for row in zip(products["title"], products["brand"], products["color"], strict=True):
        counts.update({w for field in row for w in words(field)})
    return dict(sorted(counts.items()))


def sampled_recall(index, vectors: np.ndarray, sample: int = 200, k: int = 10, seed: int = 0) -> float:
    """Recall@k of an approximate index against exact search, for `sample` stored vectors used as queries."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(vectors), size=min(sample, len(vectors)), replace=False)
    k = min(k, len(vectors))
    _, approx = index.search(vectors[rows], k)
    exact = np.argsort(-(vectors[rows] @ vectors.T), axis=1, kind="stable")[:, :k]
    return round(float(np.mean([len(set(a) & set(e)) / k for a, e in zip(approx, exact, strict=True)])), 4)


def make_faiss_index(vectors: np.ndarray, config: IndexConfig) -> tuple[object, dict, str]:
    """An inner-product index over unit vectors (scores are cosines); built on the GPU when faiss has one."""
    import faiss

    rows, dim = vectors.shape
    kind = config.resolved_type(rows)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = config.hnsw_ef_construction
        index.hnsw.efSearch = config.hnsw_ef_search
        params = {"m": config.hnsw_m, "ef_construction": config.hnsw_ef_construction,
                  "ef_search": config.hnsw_ef_search}
        index.add(vectors)
        meta = {"type": "hnsw", "faiss_class": "IndexHNSWFlat", "params": params,
                "recall@10_sample": sampled_recall(index, vectors)}
        return index, meta, "cpu"
    index = faiss.IndexFlatIP(dim)
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if gpus > 0:
        resources = faiss.StandardGpuResources()
        gpu_index = faiss.index_cpu_to_gpu(resources, 0, index)
        gpu_index.add(vectors)
        index, where = faiss.index_gpu_to_cpu(gpu_index), "cuda:0"
    else:
        index.add(vectors)
        where = "cpu"
    return index, {"type": "flat", "faiss_class": "IndexFlatIP", "params": {}}, where


def encode_catalog(texts: list[str], encoder: Encoder, staged: store.IndexFiles, config: IndexConfig,
                   exported: bool) -> tuple[np.ndarray, str]:
    """Embed the catalog's texts; returns the vectors and a word on how (for the manifest)."""
    device = str(getattr(encoder, "device", "cpu"))
    if config.bulk == "torch" or not exported or device.startswith("cuda"):
        return encoder.encode(texts, batch_size=config.batch_size, progress=config.progress), f"torch {device}"
    graph = staged.onnx
    if config.bulk == "onnx-int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        graph = staged.root / "bulk-int8.onnx"
        quantize_dynamic(str(staged.onnx), str(graph), per_channel=True, weight_type=QuantType.QInt8)
    try:
        bulk = OnnxEncoder(graph, staged.model, encoder.info)
        return bulk.encode(texts, batch_size=config.batch_size), f"onnxruntime cpu ({config.bulk})"
    finally:
        if graph != staged.onnx:
            graph.unlink(missing_ok=True)


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("faiss", "numpy", "pandas", "pyarrow", "torch", "sentence_transformers", "transformers", "nltk"):
        module = sys.modules.get(name)
        if module is None:
            try:
                module = __import__(name)
            except ImportError:
                continue
        versions[name] = str(getattr(module, "__version__", "unknown"))
    return versions


def staleness(out_dir: str | Path, catalog_path: str | Path, model: str | Path | None = None) -> str | None:
    """Why the index at out_dir needs a rebuild for this catalog and model, or None when it is current."""
    from .encoder import default_model_dir, model_fingerprint
    from .errors import IndexFormatError

    try:
        manifest = store.read_manifest(out_dir)
        store.verify_files(store.IndexFiles(Path(out_dir)), manifest, checksums=False)
    except IndexFormatError as exc:
        return str(exc)
    if manifest.catalog.get("sha256") != file_sha256(catalog_path):
        return f"{catalog_path} changed since the index was built"
    if manifest.model.get("fingerprint") != model_fingerprint(model or default_model_dir()):
        return "the model differs from the one the index was built with"
    return None


def build_index(
    catalog_path: str | Path,
    out_dir: str | Path,
    model: str | Path | None = None,
    config: IndexConfig = IndexConfig(),
    columns: ColumnMap = ColumnMap(),
    encoder: Encoder | None = None,
) -> store.Manifest:
    """Index every product of `catalog_path` into `out_dir`. Bad input raises before anything is written; the
    previous index at `out_dir` stays in place until the new one is complete."""
    from . import __version__

    started = time.perf_counter()
    catalog_path, target = Path(catalog_path), Path(out_dir)
    products = read_catalog(catalog_path, columns)
    encoder = encoder or load_encoder(model, device=config.device)
    brands = BrandMatcher.from_names(products["brand"].unique())
    stemmer = CachedStemmer()
    normaliser = Normaliser(encoder.info.text, brands, stemmer)
    texts = product_texts(products, normaliser)

    staged = store.staging_dir(target)
    try:
        store.copy_model(Path(encoder.info.path), staged)
        exported = config.onnx and export_onnx(staged.model, staged.onnx)
        log.info("encoding %d products with %s (%s)", len(texts), encoder.info.name, config.bulk)
        vectors, bulk = encode_catalog(texts, encoder, staged, config, exported)
        if vectors.shape != (len(products), encoder.info.dimension):
            raise SearchkitError(f"encoder returned shape {vectors.shape} for {len(products)} products")
        index, index_meta, index_device = make_faiss_index(vectors, config)
        store.write_faiss(staged, index)
        store.write_products(staged, products)
        store.write_lexical(staged, LexicalIndex.build(texts))
        store.write_text(staged, {"config": encoder.info.text.to_dict(), "brands": brands.names(),
                                  "stems": stemmer.table(), "vocab": catalog_vocabulary(products)})
        manifest = store.Manifest(
            format_version=store.FORMAT_VERSION,
            searchkit_version=__version__,
            built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            rows=len(products),
            dimension=encoder.info.dimension,
            metric="cosine (inner product of unit vectors)",
            model={"name": encoder.info.name, "fingerprint": encoder.info.fingerprint,
                   "source": encoder.info.path},
            index={**index_meta, "ntotal": int(index.ntotal)},
            catalog={"path": str(catalog_path), "sha256": file_sha256(catalog_path), "columns": list(products.columns)},
            text=encoder.info.text.to_dict(),
            libraries=library_versions(),
            device=f"encode: {bulk}, faiss: {index_device}",
            build_seconds=round(time.perf_counter() - started, 2),
        )
        return store.finish(staged, manifest, target)
    except BaseException:
        store.discard(staged)
        raise
