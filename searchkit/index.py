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

from . import graph_cache, store
from .ann import AnnConfig, make_index
from .catalog import ColumnMap, catalog_sha256, column_types, read_catalog
from .encoder import (
    Encoder,
    OnnxEncoder,
    StaticEncoder,
    bulk_parallelism,
    default_model_dir,
    describe_model,
    load_encoder,
    model_dimension,
    model_fingerprint,
    model_text,
    pick_device,
    progress_log,
    read_model_info,
)
from .errors import IndexFormatError, SearchkitError
from .intent import catalog_types
from .lexical import BM25_B, BM25_K1, LexicalIndex
from .onnx_graphs import export_onnx, quantize_graph
from .query_encoder import assemble, token_table, tower_info
from .ray_encode import RayEncoder
from .rerank import RERANKER_DIR, fingerprint, install, read_info, reranker_dir
from .retrieval import flat_vectors
from .suggest import for_catalog
from .text import KEYWORD_TEXT, KEYWORD_TEXTS, BrandMatcher, CachedStemmer, Normaliser, TextConfig, words
from .version import __version__

log = logging.getLogger(__name__)

QUERY_INT8_MIN_COSINE = 0.98  # the int8 query graph is used only when its embeddings stay this close to fp32
QUERY_TOWER_MIN_OVERLAP = 0.6  # the distilled query graph: mean share of the whole model's top 10 it must find
# a token table must find more: a catalog whose words it never learned leaves rows at their start, and with a quarter
# of its rows reset the shipped table's overlap fell from 0.69 to 0.63 (validation dense NDCG@10 -0.009): at 0.65 such
# a catalog gets the whole model instead (the bundled catalog: 0.683)
QUERY_TABLE_MIN_OVERLAP = 0.65
# catalog texts per batch on a CUDA device (fp16): an H200 embedded the bundled catalog at 4,967 texts/s with 1,024,
# 4,206 with 256 and 3,630 with 64; plain fp32 SentenceTransformer.encode did 3,529 (research/results/)
GPU_BATCH = 1024
# the graph cache's names (searchkit.graph_cache) for an embedder's graphs, keyed by the model's fingerprint
ENCODER_GRAPH_NAME = "encoder.onnx"
ENCODER_INT8_GRAPH_NAME = "encoder.int8-rows.onnx"  # per-row activation scales (onnx_graphs.per_row_activations)
QUERY_GRAPH_NAME = "query.int8-rows.onnx"


@dataclass(frozen=True)
class IndexConfig:
    batch_size: int = 64
    device: str | None = None  # None/"auto": CUDA when torch sees it
    index_type: str = "auto"  # auto | flat | hnsw | hnsw-sq8 | ivf-sq8 (searchkit.ann)
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    ivf_lists: int | None = None
    target_recall: float = 0.98  # ANN search knob: the cheapest reaching this recall@10 against exact search
    bm25_k1: float = BM25_K1  # keyword index (BM25) term saturation
    bm25_b: float = BM25_B  # and length normalisation
    keyword_text: int = KEYWORD_TEXT  # the version of BM25's text (searchkit.text.KEYWORD_TEXTS)
    progress: bool = False
    onnx: bool = True  # also save the model as ONNX, for the fast query path
    # how the catalog is embedded on a CPU: "onnx-int8" (the exported graph with per-channel int8 weights and per-row
    # activation scales, so a product embeds the same in any batch,
    # length-sorted batches: 2.2x faster than torch here, validation NDCG@10 within 0.003 of fp32, docs/speed.md),
    # "onnx" (that graph in fp32) or "torch" (sentence-transformers); on a CUDA device always torch
    bulk: str = "onnx-int8"
    query_tower: bool = True  # embed queries with the model's distilled query encoder when it has one (and it holds)
    reranker: bool = True  # keep a cross-encoder for mode "rerank": the one given, else the model's reranker/ if any
    cache_dir: Path | None = None  # the graph cache (searchkit.graph_cache); None: ~/.cache/searchkit/graphs
    reuse: bool = True  # keep the stored vector of every product whose embedded text the index at out_dir has
    ray: str | None = None  # encode on a Ray cluster: "local" starts one, else its address (searchkit.ray_encode)
    workers: int = 2  # Ray actors embedding at once

    def __post_init__(self) -> None:
        """Refuse bad settings when the config is made, before any product is encoded."""
        self.ann()
        if self.bulk not in ("torch", "onnx", "onnx-int8"):
            raise SearchkitError(f"unknown bulk encoder {self.bulk!r}: use torch, onnx or onnx-int8")
        if self.bm25_k1 < 0 or not 0.0 <= self.bm25_b <= 1.0:
            raise SearchkitError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, not k1={self.bm25_k1}, b={self.bm25_b}")
        if self.keyword_text not in KEYWORD_TEXTS:
            raise SearchkitError(f"keyword text version must be one of {KEYWORD_TEXTS}, not {self.keyword_text!r}")

    def ann(self) -> AnnConfig:
        return AnnConfig(index_type=self.index_type, hnsw_m=self.hnsw_m, hnsw_ef_construction=self.hnsw_ef_construction,
                         ivf_lists=self.ivf_lists, target_recall=self.target_recall)


def product_texts(products: pd.DataFrame, normaliser: Normaliser) -> list[str]:
    return [
        normaliser.product(t, b, c)
        for t, b, c in zip(products["title"], products["brand"], products["color"], strict=True)
    ]


def keyword_texts(products: pd.DataFrame, normaliser: Normaliser, texts: list[str]) -> list[str]:
    """Every product's BM25 text: `texts` (the model's) when the model reads stemmed text, else stemmed anew."""
    return texts if normaliser.lexical is normaliser else product_texts(products, normaliser.lexical)


def catalog_vocabulary(products: pd.DataFrame) -> dict[str, int]:
    """Each word of the catalog's titles, brands and colours with the number of products that use it."""
    counts: Counter[str] = Counter()
    for row in zip(products["title"], products["brand"], products["color"], strict=True):
        counts.update({w for field in row for w in words(field)})
    return dict(sorted(counts.items()))


def text_record(products: pd.DataFrame, normaliser: Normaliser, stemmer: CachedStemmer) -> dict:
    """What text.json holds, for a build and an update alike: the text settings, the catalog's brands, the stems of
    its words, its vocabulary (spelling) and every product's type (searchkit.intent)."""
    categories = products["category"] if "category" in products.columns else None
    types = catalog_types(products["title"], products["brand"], stemmer, categories)
    return {"config": normaliser.config.to_dict(), "brands": normaliser.brands.names(), "stems": stemmer.table(),
            "vocab": catalog_vocabulary(products), "types": types}


def completions(products: pd.DataFrame) -> dict:
    """What suggest.json holds: the catalog's completions (searchkit.suggest)."""
    categories = products["category"] if "category" in products.columns else None
    return for_catalog(products["title"], products["brand"], categories).to_dict()


def query_like(texts: list[str], sample: int, seed: int = 0) -> list[str]:
    """Short query-like texts: the first 2-5 words of a seeded sample of normalised product texts."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(texts), size=min(sample, len(texts)), replace=False) if texts else []
    return [" ".join(texts[i].split()[: int(rng.integers(2, 6))]) or "x" for i in picks]


def check_int8(staged: store.IndexFiles, info, texts: list[str], sample: int = 256, fp32_encoder: Encoder | None = None,
               int8_encoder: Encoder | None = None) -> dict:
    """How close int8 query embeddings are to fp32 ones on query-like texts; the int8 graph is kept for queries
    only when the worst cosine is >= QUERY_INT8_MIN_COSINE. The encoders of the two graphs may be passed in (the
    build's own sessions); the int8 graph's per-row scales make batched vectors equal those embedded alone."""
    queries = query_like(texts, sample)
    fp32 = (fp32_encoder or OnnxEncoder(staged.onnx, staged.model, info)).encode(queries)
    int8 = (int8_encoder or OnnxEncoder(staged.onnx_int8, staged.model, info)).encode(queries)
    cosines = (fp32 * int8).sum(axis=1) if len(queries) else np.ones(1)
    used = bool(cosines.min() >= QUERY_INT8_MIN_COSINE)
    return {"file": store.ONNX_INT8_FILE, "used_for_queries": used, "texts": len(queries),
            "cosine_to_fp32_mean": round(float(cosines.mean()), 4), "cosine_to_fp32_min": round(float(cosines.min()), 4),
            "min_cosine_required": QUERY_INT8_MIN_COSINE}


def build_query_graph(staged: store.IndexFiles, info, texts: list[str], index, tower: dict,
                      sample: int = 256, cache: Path | None = None, fp32_encoder: Encoder | None = None) -> dict:
    """Write the model's distilled query encoder into the index — query-int8.onnx (transformer layers) or
    query-tokens.npy (a token table, layers=0) — and measure it against the whole model (fp32) on query-like texts:
    cosine, and how many of the index's top 10 for the whole model's embedding it also finds. It is kept for queries
    only when that overlap averages >= QUERY_TOWER_MIN_OVERLAP (QUERY_TABLE_MIN_OVERLAP for a table). tower:
    tower_info()."""
    import tempfile

    if int(tower["layers"]) == 0:
        path = staged.query_tokens
        np.save(path, token_table(staged.model, tower), allow_pickle=False)
        fast_encoder: Encoder = StaticEncoder(path, staged.model, info)
    else:
        path = staged.query_onnx

        def export(target: Path) -> None:
            with tempfile.TemporaryDirectory(prefix="searchkit-query-") as tmp:
                folder = assemble(staged.model, Path(tmp) / "model", tower)
                export_onnx(folder, Path(tmp) / "query.onnx")
                quantize_graph(Path(tmp) / "query.onnx", target, per_row=True)

        graph_cache.graph(cache, info.fingerprint, QUERY_GRAPH_NAME, export, path)
        fast_encoder = OnnxEncoder(path, staged.model, info, one_at_a_time=True)  # as at query time
    queries = query_like(texts, sample, seed=2)
    full = (fp32_encoder or OnnxEncoder(staged.onnx, staged.model, info)).encode(queries)
    fast = fast_encoder.encode(queries)
    cosines = (full * fast).sum(axis=1) if len(queries) else np.ones(1)
    k = min(10, int(index.ntotal))
    overlap = np.mean([len(set(a) & set(b)) / k for a, b in zip(index.search(full, k)[1], index.search(fast, k)[1],
                                                                   strict=True)]) if len(queries) else 1.0
    bar = QUERY_TABLE_MIN_OVERLAP if int(tower["layers"]) == 0 else QUERY_TOWER_MIN_OVERLAP
    used = bool(overlap >= bar)
    if not used:
        path.unlink()
    return {"file": path.name, "used_for_queries": used, "layers": tower.get("layers"),
            "texts": len(queries), "cosine_to_full_mean": round(float(cosines.mean()), 4),
            "cosine_to_full_min": round(float(cosines.min()), 4), "top10_overlap_mean": round(float(overlap), 4),
            "min_overlap_required": bar}


def export_graphs(model_dir: Path, fingerprint: str, staged: store.IndexFiles, cache: Path | None) -> bool:
    """The model's fp32 ONNX graph and its int8 copy into the index being built, from the graph cache (exported and
    cached on the first build of these weights); False when the model cannot be exported (not mean-pooled)."""
    if not graph_cache.graph(cache, fingerprint, ENCODER_GRAPH_NAME, lambda path: export_onnx(model_dir, path),
                             staged.onnx):
        return False
    graph_cache.graph(cache, fingerprint, ENCODER_INT8_GRAPH_NAME,
                      lambda path: quantize_graph(staged.onnx, path, per_row=True), staged.onnx_int8)
    return True


def catalog_batch(encoder: Encoder, batch_size: int) -> int:
    """Texts per batch when embedding a catalog with torch: at least GPU_BATCH on a CUDA device."""
    return max(batch_size, GPU_BATCH) if str(getattr(encoder, "device", "cpu")).startswith("cuda") else batch_size


def normalise_catalog(products: pd.DataFrame, text: TextConfig, keyword_text: int = KEYWORD_TEXT,
                      ) -> tuple[Normaliser, CachedStemmer, list[str]]:
    """The normaliser for the model's text settings, the catalog's brands and a keyword text version, its stemmer,
    and every product's text."""
    stemmer = CachedStemmer()
    normaliser = Normaliser(text, BrandMatcher.from_names(products["brand"].unique()), stemmer,
                            keyword_text=keyword_text)
    return normaliser, stemmer, product_texts(products, normaliser)


def catalog_encoder(encoder: Encoder, staged: store.IndexFiles, config: IndexConfig,
                    exported: bool) -> tuple[Encoder, int, str]:
    """What embeds the catalog (the torch encoder, or the index's ONNX graph for config.bulk), its batch size and a
    word on how (for the manifest)."""
    device = str(getattr(encoder, "device", "cpu"))
    if config.bulk == "torch" or not exported or device.startswith("cuda"):
        return encoder, catalog_batch(encoder, config.batch_size), f"torch {device}"
    graph = staged.onnx_int8 if config.bulk == "onnx-int8" else staged.onnx
    return (OnnxEncoder(graph, staged.model, encoder.info, parallel=bulk_parallelism()), config.batch_size,
            f"onnxruntime cpu ({graph_label(config.bulk)})")


PER_ROW = "per-row scales"  # in the manifest's device line: the int8 graph scales each token's activations alone


def graph_label(bulk: str) -> str:
    """How the manifest's device line names the ONNX graph a catalog was embedded with (read by embedded_with)."""
    return f"onnx-int8, {PER_ROW}" if bulk == "onnx-int8" else "onnx"


def embedded_with(device_line: str) -> str:
    """Which graph embedded an index's catalog, from its manifest's device line: torch, onnx, onnx-int8 (one
    activation scale per batch: vectors depend on batch-mates) or onnx-int8-rows (per-row scales). Stored vectors
    are reused only by a build that embeds the same way."""
    if "int8" in device_line:
        return "onnx-int8-rows" if PER_ROW in device_line else "onnx-int8"
    return "onnx" if "onnxruntime" in device_line or "(onnx)" in device_line else "torch"


LIBRARIES = {"faiss": "faiss-cpu", "numpy": "numpy", "pandas": "pandas", "pyarrow": "pyarrow", "torch": "torch",
             "sentence_transformers": "sentence-transformers", "transformers": "transformers", "nltk": "nltk",
             "onnxruntime": "onnxruntime"}


def library_versions() -> dict[str, str]:
    """The versions of the libraries a build used: from the imported module, else the installed distribution's
    metadata (importing torch only to read its version would cost a cached build two seconds)."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name, distribution in LIBRARIES.items():
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = str(getattr(module, "__version__", "unknown"))
            continue
        for candidate in (distribution, "faiss-gpu") if name == "faiss" else (distribution,):
            try:
                versions[name] = metadata.version(candidate)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def default_out(catalog_path: str | Path) -> Path:
    """Where `build-index CATALOG` writes without --out: indexes/<the catalog's name>, less a -products suffix
    (catalog/homedepot-products.parquet -> indexes/homedepot)."""
    stem = Path(catalog_path).stem
    for suffix in ("-products", "_products", ".products", "-catalog", "_catalog"):
        if stem.lower().endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
    return Path("indexes") / stem


def indexed_catalog(out_dir: str | Path) -> str | None:
    """The catalog file the index at out_dir was built from, as its build named it (None: no readable index)."""
    try:
        return str(store.read_manifest(out_dir).catalog.get("path") or "") or None
    except IndexFormatError:
        return None


def staleness(out_dir: str | Path, catalog_path: str | Path, model: str | Path | None = None) -> str | None:
    """Why the index at out_dir needs a rebuild for this catalog and model, or None when it is current."""
    try:
        manifest = store.read_manifest(out_dir)
        store.verify_files(store.IndexFiles(Path(out_dir)), manifest, checksums=False)
    except IndexFormatError as exc:
        return str(exc)
    if manifest.catalog.get("sha256") != catalog_sha256(catalog_path):
        return f"{catalog_path} changed since the index was built"
    if int(manifest.catalog.get("version", 1)) > 1:
        return (f"the index was updated (version {manifest.catalog['version']}) since it was built from "
                f"{catalog_path}, so it no longer matches the file")
    model = model or default_model_dir()
    if manifest.model.get("fingerprint") != model_fingerprint(model):
        return "the model differs from the one the index was built with"
    if model_text(read_model_info(model)) != TextConfig.from_dict(manifest.text or {}):
        return "the model's text settings (searchkit.json) differ from the index's"
    if (version := (manifest.index.get("bm25") or {}).get("text", 1)) != KEYWORD_TEXT:
        return f"its keyword text is version {version}, this searchkit writes version {KEYWORD_TEXT}"
    own = reranker_dir(model)
    if own is None:
        return None
    if (manifest.model.get("reranker") or {}).get("fingerprint") != fingerprint(own):
        return "the model's reranker differs from the index's"
    if read_info(own).get("relevance") != read_info(store.IndexFiles(Path(out_dir)).reranker).get("relevance"):
        return "the model's relevance fit (searchkit fit-relevance) differs from the index's"
    return None


def reusable_vectors(target: Path, fingerprint: str, text: TextConfig, how: str
                     ) -> tuple[pd.DataFrame, np.ndarray] | None:
    """The products and stored vectors of the index at `target` when it was embedded by this model reading text this
    way with the same kind of graph (`how`: embedded_with of the new build), so an unchanged product's vector can be
    kept; else None."""
    try:
        manifest = store.read_manifest(target)
        files = store.IndexFiles(store.live_dir(target))
        store.verify_files(files, manifest, checksums=True)
    except (IndexFormatError, OSError):
        return None
    if manifest.model.get("fingerprint") != fingerprint or TextConfig.from_dict(manifest.text) != text \
            or embedded_with(manifest.device) != how:
        return None
    index = store.read_faiss(files)
    vectors = flat_vectors(index)  # a view of the index's memory: copied while the index is alive
    if vectors is None:  # 8-bit codes: decoded vectors are not the embeddings; embed afresh
        return None
    return store.read_products(files, manifest.rows).to_pandas(), np.array(vectors, dtype=np.float32, copy=True)


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


def build_index(
    catalog_path: str | Path,
    out_dir: str | Path,
    model: str | Path | None = None,
    config: IndexConfig = IndexConfig(),
    columns: ColumnMap = ColumnMap(),
    encoder: Encoder | None = None,
    reranker: str | Path | None = None,
) -> store.Manifest:
    """Index every product of `catalog_path` into `out_dir`. Bad input raises before anything is written; the
    previous index at `out_dir` stays in place until the new one is complete. `reranker`: a cross-encoder folder
    for mode "rerank" (default: the model's own reranker/, when it has one and config.reranker)."""
    started = time.perf_counter()
    catalog_path, target = Path(catalog_path), Path(out_dir)
    products = read_catalog(catalog_path, columns)  # bad input is refused before a model is loaded
    if reranker is not None and not config.reranker:
        raise SearchkitError("a reranker was given, and the config says to build without one")
    if reranker is not None:
        read_info(reranker)  # a folder that is not a reranker is refused before encoding
    model_dir = Path(encoder.info.path) if encoder is not None else Path(model or default_model_dir())
    device = str(getattr(encoder, "device", "cpu")) if encoder is not None else pick_device(config.device)
    onnx_bulk = config.onnx and config.bulk != "torch" and not device.startswith("cuda")
    if encoder is None and not onnx_bulk:
        encoder = load_encoder(model_dir, device=device)
    info = encoder.info if encoder is not None else describe_model(model_dir, model_dimension(model_dir))
    rerank_source = Path(reranker) if reranker is not None else (
        reranker_dir(model_dir) if config.reranker else None)
    tower = None  # the model's distilled query encoder; one distilled from other weights is refused before encoding
    if config.query_tower:
        tower = tower_info(model_dir)
    normaliser, stemmer, texts = normalise_catalog(products, info.text, config.keyword_text)

    staged = store.staging_dir(target)
    try:
        store.copy_model(model_dir, staged, leave_out=(RERANKER_DIR,))
        exported = config.onnx and export_graphs(model_dir, info.fingerprint, staged, config.cache_dir)
        if encoder is None:  # the ONNX path: no torch, unless the model could not be exported
            encoder = OnnxEncoder(staged.onnx, staged.model, info) if exported else load_encoder(model_dir, device)
        progress_log.info("encoding %s products with %s", f"{len(texts):,}", encoder.info.name)
        bulk_encoder, batch, bulk = catalog_encoder(encoder, staged, config, exported)
        if config.ray is not None:
            if not exported:
                raise SearchkitError("--ray embeds with the model's ONNX graph, and this model has none")
            graph = staged.onnx_int8 if config.bulk == "onnx-int8" else staged.onnx
            bulk_encoder = RayEncoder(config.ray, config.workers, graph, staged.model, encoder.info)
            bulk = f"ray, {config.workers} workers ({graph_label(config.bulk)})"
        old, old_vectors = (reusable_vectors(target, info.fingerprint, info.text, embedded_with(bulk))
                            if config.reuse else None) or (None, None)
        vectors, sources = embed_changed(products, texts, old, old_vectors, normaliser, bulk_encoder, batch,
                                         config.progress)
        embedded = int((sources < 0).sum())
        if vectors.shape != (len(products), encoder.info.dimension):
            raise SearchkitError(f"encoder returned shape {vectors.shape} for {len(products)} products")
        model_meta = {"name": encoder.info.name, "fingerprint": encoder.info.fingerprint, "source": encoder.info.path}
        if isinstance(bulk_encoder, RayEncoder):
            model_meta["encoding"] = bulk_encoder.report
        if exported:
            model_meta["query_int8"] = check_int8(
                staged, encoder.info, texts, fp32_encoder=encoder if isinstance(encoder, OnnxEncoder) else None,
                int8_encoder=bulk_encoder if getattr(bulk_encoder, "path", None) == staged.onnx_int8 else None)
            if not model_meta["query_int8"]["used_for_queries"]:
                staged.onnx_int8.unlink()
        ann = config.ann()
        probes = None
        if ann.resolved_type(len(texts)) != "flat":  # calibrate ANN effort on query-like vectors, not products
            probes = encoder.encode(query_like(texts, ann.calibration_queries, seed=1), batch_size=config.batch_size)
        progress_log.info("building the %s index", ann.resolved_type(len(texts)))
        index, index_meta, index_device = make_index(vectors, ann, probes)
        if exported and tower:
            model_meta["query_tower"] = build_query_graph(
                staged, encoder.info, texts, index, tower, cache=config.cache_dir,
                fp32_encoder=encoder if isinstance(encoder, OnnxEncoder) else None)
        if rerank_source is not None:
            progress_log.info("adding the cross-encoder %s", rerank_source)
            model_meta["reranker"] = install(rerank_source, staged, config.cache_dir)
        store.write_faiss(staged, index)
        store.write_products(staged, products)
        store.write_lexical(staged, LexicalIndex.build(keyword_texts(products, normaliser, texts),
                                                       k1=config.bm25_k1, b=config.bm25_b))
        store.write_text(staged, text_record(products, normaliser, stemmer))
        store.write_suggest(staged, completions(products))
        store.carry_rules(store.live_dir(target), staged)
        manifest = store.Manifest(
            format_version=store.FORMAT_VERSION,
            searchkit_version=__version__,
            built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            rows=len(products),
            dimension=encoder.info.dimension,
            metric="cosine (inner product of unit vectors)",
            model=model_meta,
            index={**index_meta, "ntotal": int(index.ntotal), "bm25": {"k1": config.bm25_k1, "b": config.bm25_b,
                                                                        "text": config.keyword_text}},
            catalog={"path": str(catalog_path), "sha256": catalog_sha256(catalog_path), "columns": list(products.columns),
                     "types": column_types(products),
                     "sources": products.attrs.get("sources", {}), "embedded": embedded,
                     "reused_embeddings": len(products) - embedded},
            text=encoder.info.text.to_dict(),
            libraries=library_versions(),
            device=f"encode: {bulk}, faiss: {index_device}",
            build_seconds=round(time.perf_counter() - started, 2),
        )
        return store.finish(staged, manifest, target)
    except BaseException:
        store.discard(staged)
        raise
