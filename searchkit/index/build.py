"""build_index(catalog, out_dir, ...): normalise every product, embed it, build a FAISS index, save it atomically."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..data.catalog import ColumnMap, catalog_sha256, column_types, file_stem, read_catalog
from ..data.text import KEYWORD_TEXT
from ..errors import IndexFormatError, SearchkitError
from ..models.cross_encoder import fingerprint, read_info, reranker_dir
from ..models.encoder import (
    Encoder,
    OnnxEncoder,
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
from ..models.files import RERANKER_DIR
from ..models.query_tower import tower_info
from ..models.ray import RayEncoder
from ..version import __version__
from . import layout
from .ann import make_index
from .config import IndexConfig
from .graphs import build_query_graph, catalog_encoder, check_int8, export_graphs, graph_label, probes_on_runners
from .lexical import LexicalIndex
from .manifest import (
    FORMAT_VERSION,
    CatalogSection,
    Encoding,
    IndexSection,
    Manifest,
    ModelSection,
    library_versions,
)
from .reranker import install
from .shared import move_out, parts_folder
from .texts import completions, keyword_texts, normalise_catalog, query_like, text_record
from .vectors import embed_changed, reusable_vectors

log = logging.getLogger(__name__)



def default_out(catalog_path: str | Path) -> Path:
    """Where `build-index CATALOG` writes without --out: indexes/<the catalog's name>, less a -products suffix
    (catalog/homedepot-products.parquet -> indexes/homedepot)."""
    stem = file_stem(catalog_path)
    for suffix in ("-products", "_products", ".products", "-catalog", "_catalog"):
        if stem.lower().endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
    return Path("indexes") / stem


def indexed_catalog(out_dir: str | Path) -> str | None:
    """The catalog file the index at out_dir was built from, as its build named it (None: no readable index)."""
    try:
        return layout.read_manifest(out_dir).catalog.path or None
    except IndexFormatError:
        return None


def staleness(out_dir: str | Path, catalog_path: str | Path, model: str | Path | None = None,
              shared: bool | None = None) -> str | None:
    """Why the index at out_dir needs a rebuild for this catalog and model, or None when it is current. shared:
    whether the build would refer to the model (--shared-model); None: either way."""
    try:
        manifest = layout.read_manifest(out_dir)
        layout.verify_files(layout.IndexFiles(Path(out_dir)), manifest, checksums=False)
    except IndexFormatError as exc:
        return str(exc)
    if manifest.catalog.sha256 != catalog_sha256(catalog_path):
        return f"{catalog_path} changed since the index was built"
    if manifest.catalog.version > 1:
        return (f"the index was updated (version {manifest.catalog.version}) since it was built from "
                f"{catalog_path}, so it no longer matches the file")
    if shared is not None and shared != manifest.model.by_reference:
        return ("the index holds a copy of its model, and the build refers to the installed one" if shared else
                "the index refers to the installed model, and the build copies the model into it")
    model = model or default_model_dir()
    if manifest.model.fingerprint != model_fingerprint(model):
        return "the model differs from the one the index was built with"
    if model_text(read_model_info(model)) != manifest.text:
        return "the model's text settings (searchkit.json) differ from the index's"
    if (version := manifest.index.bm25.text) != KEYWORD_TEXT:
        return f"its keyword text is version {version}, this searchkit writes version {KEYWORD_TEXT}"
    own = reranker_dir(model)
    if own is None:
        return None
    if manifest.model.reranker_fingerprint != fingerprint(own):
        return "the model's reranker differs from the index's"
    held = layout.IndexFiles(Path(out_dir), parts=parts_folder(manifest) if manifest.model.by_reference else None)
    if not held.reranker_info.is_file():  # a by-reference index whose parts are made again on load
        return None
    if read_info(own).get("relevance") != read_info(held.reranker).get("relevance"):
        return "the model's relevance fit (searchkit fit-relevance) differs from the index's"
    return None


def build_index(
    catalog_path: str | Path,
    out_dir: str | Path,
    model: str | Path | None = None,
    config: IndexConfig = IndexConfig(),
    columns: ColumnMap = ColumnMap(),
    encoder: Encoder | None = None,
    reranker: str | Path | None = None,
) -> Manifest:
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
    if config.shared_model and reranker is not None and Path(reranker).resolve() != (
            (reranker_dir(model_dir) or Path(reranker).parent).resolve()):
        raise SearchkitError("an index built with --shared-model refers to its model's own reranker; drop --reranker "
                             "or copy the model into the index (build without --shared-model)")
    device = str(getattr(encoder, "device", "cpu")) if encoder is not None else pick_device(config.device)
    onnx_bulk = config.onnx and config.bulk != "torch" and not device.startswith("cuda")
    if encoder is None and not onnx_bulk:
        encoder = load_encoder(model_dir, device=device)
    info = encoder.info if encoder is not None else describe_model(model_dir, model_dimension(model_dir))
    rerank_source = Path(reranker) if reranker is not None else (
        reranker_dir(model_dir) if config.reranker else None)
    tower = None  # the model's query tower; one distilled from other weights is refused before encoding
    if config.query_tower:
        tower = tower_info(model_dir)
    normaliser, stemmer, texts = normalise_catalog(products, info.text, config.keyword_text)

    staged = layout.staging_dir(target)
    try:
        layout.copy_model(model_dir, staged, leave_out=(RERANKER_DIR,))
        exported = config.onnx and export_graphs(model_dir, info.fingerprint, staged, config.cache_dir)
        if encoder is None:  # the ONNX path: no torch, unless the model could not be exported
            encoder = OnnxEncoder(staged.onnx, staged.model, info) if exported else load_encoder(model_dir, device)
        progress_log.info("encoding %s products with %s", f"{len(texts):,}", encoder.info.name)
        bulk_encoder, batch, encoding, bulk = catalog_encoder(encoder, staged, config.bulk, config.batch_size, exported)
        if config.ray is not None:
            if not exported:
                raise SearchkitError("--ray embeds with the model's ONNX graph, and this model has none")
            graph = staged.onnx_int8 if config.bulk == "onnx-int8" else staged.onnx
            bulk_encoder = RayEncoder(config.ray, config.workers, graph, staged.model, encoder.info)
            encoding = Encoding.of_bulk(config.bulk)
            bulk = f"ray, {config.workers} workers ({graph_label(config.bulk)})"
        old, old_vectors = (reusable_vectors(target, info.fingerprint, info.text, encoding)
                            if config.reuse else None) or (None, None)
        vectors, sources = embed_changed(products, texts, old, old_vectors, normaliser, bulk_encoder, batch,
                                         config.progress)
        embedded = int((sources < 0).sum())
        if vectors.shape != (len(products), encoder.info.dimension):
            raise SearchkitError(f"encoder returned shape {vectors.shape} for {len(products)} products")
        model_meta: dict[str, Any] = {"name": encoder.info.name, "fingerprint": encoder.info.fingerprint,
                            "source": encoder.info.path}
        if isinstance(bulk_encoder, RayEncoder):
            model_meta["ray"] = bulk_encoder.report
        if exported:
            model_meta["query_int8"] = check_int8(
                staged, encoder.info, texts, fp32_encoder=encoder if isinstance(encoder, OnnxEncoder) else None,
                int8_encoder=bulk_encoder if getattr(bulk_encoder, "path", None) == staged.onnx_int8 else None)
            if not model_meta["query_int8"]["used_for_queries"]:
                staged.onnx_int8.unlink()
        ann = config.ann()
        probes = None
        if ann.resolved_type(len(texts)) != "flat":  # calibrate ANN effort on query-like vectors, not products
            int8_queries = exported and model_meta["query_int8"]["used_for_queries"]
            prober = bulk_encoder if probes_on_runners(bulk_encoder, int8_queries) else encoder
            probes = prober.encode(query_like(texts, ann.calibration_queries, seed=1))
        progress_log.info("building the %s index", ann.resolved_type(len(texts)))
        index, index_meta, index_device = make_index(vectors, ann, probes)
        if exported and tower:
            model_meta["query_tower"] = build_query_graph(
                staged, encoder.info, texts, index, tower, cache=config.cache_dir,
                fp32_encoder=encoder if isinstance(encoder, OnnxEncoder) else None, vectors=vectors)
        if rerank_source is not None:
            progress_log.info("adding the cross-encoder %s", rerank_source)
            model_meta["reranker"] = install(rerank_source, staged, config.cache_dir)
        layout.write_parts(staged, index, products,
                           LexicalIndex.build(keyword_texts(products, normaliser, texts), k1=config.bm25_k1,
                                              b=config.bm25_b),
                           text_record(products, normaliser, stemmer), completions(products))
        layout.carry_rules(layout.live_dir(target), staged)
        if config.shared_model:
            model_meta["shared"] = move_out(staged, encoder.info.fingerprint, encoder.info.name, config.cache_dir)
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            searchkit_version=__version__,
            built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            rows=len(products),
            dimension=encoder.info.dimension,
            metric="cosine (inner product of unit vectors)",
            model=ModelSection(**model_meta),
            index=IndexSection.from_dict({**index_meta, "ntotal": int(index.ntotal), "bm25": {
                "k1": config.bm25_k1, "b": config.bm25_b, "text": config.keyword_text}}),
            catalog=CatalogSection(path=str(catalog_path), sha256=catalog_sha256(catalog_path),
                                   columns=list(products.columns), types=column_types(products),
                                   sources=products.attrs.get("sources", {}), embedded=embedded,
                                   reused_embeddings=len(products) - embedded),
            text=encoder.info.text,
            encoding=encoding,
            libraries=library_versions(),
            device=f"encode: {bulk}, faiss: {index_device}",
            build_seconds=round(time.perf_counter() - started, 2),
        )
        return layout.finish(staged, manifest, target)
    except BaseException:
        layout.discard(staged)
        raise
