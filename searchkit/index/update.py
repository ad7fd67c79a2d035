"""Keep an index up with a changing catalog: upsert and delete products without a full rebuild (`searchkit update`).

Only products whose embedded text changed, and new ones, are embedded (with the graph the build embedded the catalog
with); every other product keeps its stored vector. An HNSW graph is edited in place (the changed and deleted
products' nodes dropped, new vectors inserted, efSearch calibrated again on the queries `searchkit calibrate`
kept, else on texts cut from titles: vector_index) until the edits since it was
built pass GRAPH_EDIT_SHARE of its rows, then rebuilt from the stored vectors, as other index types always are. BM25 is
rebuilt from every product's keyword text, so its statistics are those of a full rebuild. The
new version is written beside the old and swapped in like a build (searchkit.index.layout.finish); the replaced version is
kept for `searchkit update --rollback`. build_index reuses stored vectors the same way (index.reusable_vectors).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.catalog import PRODUCT_COLUMNS, ColumnMap, as_numbers, column_types, numbers_of, read_catalog, read_ids
from ..data.text import BrandMatcher, CachedStemmer, Normaliser
from ..errors import CatalogError, IndexMismatchError
from ..models.encoder import (
    Encoder,
    ModelInfo,
    OnnxEncoder,
    bulk_parallelism,
    load_encoder,
    model_fingerprint,
    progress_log,
)
from ..models.export import quantize_graph
from . import layout
from .ann import AnnConfig, calibrate, hnsw_edited, kept_queries, make_index, stored_vectors, tuned_facts
from .graphs import probes_on_runners
from .lexical import LexicalIndex
from .manifest import CatalogSection, Encoding, Manifest
from .shared import attach
from .texts import completions, keyword_texts, product_texts, query_like, text_record
from .vectors import embed_changed

log = logging.getLogger(__name__)

REBUILT = (layout.FAISS_FILE, layout.PRODUCTS_DIR, layout.PRODUCTS_PARQUET, layout.TEXT_FILE, layout.LEXICAL_DIR,
           layout.MANIFEST, layout.STAMP_FILE, layout.SUGGEST_FILE)


@dataclass(frozen=True)
class UpdateReport:
    added: int
    changed: int  # upserted products that were in the index (any field)
    reembedded: int  # products embedded: the added ones and those whose embedded text changed
    deleted: int
    unchanged: int  # products the update did not touch
    rows: int  # products in the index afterwards
    version: int  # the index's version: 1 when built, +1 per update
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _merged(old: pd.DataFrame, upsert: pd.DataFrame, deleted: set[str]) -> pd.DataFrame:
    """The catalog after the update: the old rows in their order less the deleted, upserted ids replaced whole in
    place, new ids appended in the upsert file's order."""
    columns = list(dict.fromkeys([*old.columns, *upsert.columns]))
    kept = old[~old["product_id"].isin(deleted)].set_index("product_id").reindex(columns=columns[1:])
    incoming = upsert.set_index("product_id").reindex(columns=columns[1:])
    existing = incoming.index.intersection(kept.index, sort=False)
    kept = kept.astype(object)
    kept.loc[existing] = incoming.loc[existing].astype(object).to_numpy()
    new = incoming.loc[incoming.index.difference(kept.index, sort=False)]
    merged = pd.concat([kept, new.astype(object)]).reset_index(names="product_id")
    for column in merged.columns:
        if column in PRODUCT_COLUMNS:
            merged[column] = merged[column].fillna("").astype(str)
        else:  # flags stay flags, numbers stay numbers (as a build reads them), anything else is text
            values = merged[column]
            present = values[values.notna()]
            if len(present) and present.map(lambda v: isinstance(v, (bool, np.bool_))).all():
                merged[column] = values.astype("boolean")
                continue
            if present.map(lambda v: isinstance(v, (list, tuple, dict, np.ndarray))).any():
                continue  # lists and records stay as they are (the products keep them as JSON)
            numeric = pd.to_numeric(values, errors="coerce")
            merged[column] = numeric if numeric.notna().eq(values.notna()).all() else as_numbers(
                values.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else
                           v.isoformat() if isinstance(v, date) else str(v)))
    return merged


def _check_numbers(old: pd.DataFrame, upsert: pd.DataFrame, upsert_path: Path | str | None, bad: str) -> pd.DataFrame:
    """An upsert's values for the index's numeric columns, as numbers: one that is not a number is refused with its
    row and column (or, with bad="missing", read as missing)."""
    upsert = upsert.copy()
    for column in upsert.columns:
        if column in PRODUCT_COLUMNS or column not in old.columns or not pd.api.types.is_numeric_dtype(old[column]) or (
                pd.api.types.is_bool_dtype(old[column])):
            continue
        upsert[column] = numbers_of(upsert[column], f"{upsert_path}: column {column!r}", "is numeric in the index",
                                    bad)
    return upsert


def _check(index_ids: set[str], upsert: pd.DataFrame, deleted: list[str], upsert_path: Path | str | None,
           delete_path: Path | str | None) -> None:
    both = sorted(set(upsert["product_id"]) & set(deleted))
    if both:
        raise CatalogError(f"{upsert_path} and {delete_path}: product id(s) {both[:5]} both upserted and deleted")
    unknown = [d for d in deleted if d not in index_ids]
    if unknown:
        raise CatalogError(f"{delete_path}: product id(s) {unknown[:5]} are not in the index")


def bulk_encoder(files: layout.IndexFiles, manifest: Manifest, info: ModelInfo, work: Path) -> Encoder:
    """The encoder the build embedded the catalog with (its manifest's encoding), so updated products embed as
    their neighbours did; an int8 graph the build dropped from the index is quantised again from its fp32 graph."""
    how = manifest.encoding
    if how in (Encoding.ONNX_INT8, Encoding.ONNX_INT8_ROWS, Encoding.ONNX_INT8_ROWS_SPLIT) and manifest.holds(
            layout.ONNX_FILE):
        graph = files.onnx_int8
        if not graph.is_file():
            graph = work / "bulk-int8.onnx"
            quantize_graph(files.onnx, graph, per_row=how != Encoding.ONNX_INT8)
        return OnnxEncoder(graph, files.model, info, parallel=bulk_parallelism(), fused_norms=how.fused_norms)
    if how == Encoding.ONNX and manifest.holds(layout.ONNX_FILE):
        return OnnxEncoder(files.onnx, files.model, info, parallel=bulk_parallelism())
    return load_encoder(files.model)


def _price_as_built(columns: ColumnMap, catalog: CatalogSection) -> ColumnMap:
    """The upsert's price read as the build read the catalog's: from the file column the build read as "price", or,
    for an index that kept a price alias under its own name (built before aliases were read as the price), from
    none; a price column named on the command line wins."""
    if columns.price != "price":
        return columns
    if (source := catalog.sources.get("price")) is not None:
        return replace(columns, price=source)
    return columns if "price" in catalog.columns else replace(columns, price=None)


def update_index(index_dir: str | Path, upsert: str | Path | None = None, delete: str | Path | None = None,
                 columns: ColumnMap = ColumnMap(), model: str | Path | None = None) -> UpdateReport:
    """Upsert the products of `upsert` (a catalog file read as build-index reads one) and delete the ids of `delete`
    (a text file of one id per line, or a parquet/CSV file with the id column) in the index at `index_dir`. Bad input
    is refused before anything is written; the index stays as it was until the new version is complete."""
    started = time.perf_counter()
    target = Path(index_dir)
    manifest = layout.read_manifest(target)
    files = attach(layout.IndexFiles(layout.live_dir(target)), manifest, model)
    layout.verify_files(files, manifest)
    if model is not None and not manifest.model.by_reference and model_fingerprint(model) != manifest.model.fingerprint:
        raise IndexMismatchError(f"{target} was built with model {manifest.model.name!r}, not {model}: an "
                                 "update embeds with the index's own model; rebuild to change models")
    if upsert is None and delete is None:
        raise CatalogError("nothing to update: give an upsert file, a delete file or both")
    incoming = read_catalog(upsert, _price_as_built(columns, manifest.catalog)) if upsert is not None else (
        pd.DataFrame(columns=["product_id"]))
    deleted = read_ids(delete, columns) if delete is not None else []
    old = layout.read_products(files, manifest.rows).to_pandas()
    index_ids = set(old["product_id"].astype(str))
    _check(index_ids, incoming, deleted, upsert, delete)
    incoming = _check_numbers(old, incoming, upsert, columns.bad_numbers)
    products = _merged(old, incoming, set(deleted))
    if products.empty:
        raise CatalogError(f"{target}: the update would leave the index without products")

    text = manifest.text
    bm25 = manifest.index.bm25
    stemmer = CachedStemmer(layout.read_text(files).get("stems", {}))
    normaliser = Normaliser(text, BrandMatcher.from_names(products["brand"].unique()), stemmer,
                            keyword_text=bm25.text)
    texts = product_texts(products, normaliser)
    info = ModelInfo(name=manifest.model.name, path=str(files.model), fingerprint=manifest.model.fingerprint,
                     dimension=manifest.dimension, text=text)
    kept = kept_queries(files, manifest.dimension)  # refused before any work when unreadable
    staged = layout.staging_dir(target)
    try:
        encoder = bulk_encoder(files, manifest, info, staged.root)
        old_index = layout.read_faiss(files)
        old_vectors = np.array(stored_vectors(old_index), dtype=np.float32, copy=True)  # copied while it is alive
        progress_log.info("updating %s: %d upserted, %d deleted", target, len(incoming), len(deleted))
        vectors, sources = embed_changed(products, texts, old, old_vectors, normaliser, encoder, 64)
        embedded = int((sources < 0).sum())
        del old_vectors
        (staged.root / "bulk-int8.onnx").unlink(missing_ok=True)
        meta = manifest.index.ann_facts()
        ann = AnnConfig(index_type=meta.get("type", "flat"),
                        hnsw_m=int(meta.get("params", {}).get("m", 32)),
                        hnsw_ef_construction=int(meta.get("params", {}).get("ef_construction", 200)),
                        target_recall=float(meta.get("target_recall", 0.98)))
        approximate = ann.resolved_type(len(texts)) != "flat"
        probes = kept if approximate else None
        if approximate and kept is None:
            prober = encoder if probes_on_runners(encoder, manifest.model.int8_queries) else (
                OnnxEncoder(files.onnx, files.model, info) if files.onnx.is_file() else encoder)
            probes = prober.encode(query_like(texts, ann.calibration_queries, seed=1))
        index, index_meta = vector_index(old_index, sources, vectors, meta, ann, probes)
        if approximate and kept is not None:
            index_meta = on_kept_queries(index_meta, meta)
        del old_index
        _carry_over(files, staged)
        layout.write_parts(staged, index, products,
                           LexicalIndex.build(keyword_texts(products, normaliser, texts), k1=bm25.k1, b=bm25.b),
                           text_record(products, normaliser, stemmer), completions(products))
        version = manifest.catalog.version + 1
        changed = len(set(incoming["product_id"]) & index_ids)
        report = UpdateReport(added=len(incoming) - changed, changed=changed, reembedded=embedded,
                              deleted=len(deleted), unchanged=len(products) - len(incoming), rows=len(products),
                              version=version, seconds=round(time.perf_counter() - started, 2))
        catalog = replace(manifest.catalog, version=version, columns=list(products.columns),
                          types=column_types(products),
                          updated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                          last_update={"upsert": str(upsert) if upsert else None,
                                       "delete": str(delete) if delete else None, **report.to_dict()})
        fresh = replace(manifest, rows=len(products), catalog=catalog,
                        index=manifest.index.with_facts({**index_meta, "ntotal": int(index.ntotal)}),
                        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        build_seconds=report.seconds, files={})
        layout.finish(staged, fresh, target, keep_previous=True)
        return replace(report, seconds=round(time.perf_counter() - started, 2))
    except BaseException:
        layout.discard(staged)
        raise


GRAPH_EDIT_SHARE = 0.2  # an HNSW graph is edited in place while the nodes dropped and inserted since it was built
# stay at or below this share of its rows (each update calibrates efSearch again); past it the graph is rebuilt


def vector_index(old_index: Any, sources: np.ndarray, vectors: np.ndarray, meta: dict[str, Any], ann: AnnConfig,
                 probes: np.ndarray | None) -> tuple[Any, dict[str, Any]]:
    """The updated catalog's vector index and its manifest facts. An HNSW graph (flat storage) is edited: nodes of
    deleted and re-embedded products dropped, new vectors inserted (ann.hnsw_edited; seconds where a rebuild of 1M
    takes minutes), efSearch calibrated again to the target recall; every other index, or a graph edited past
    GRAPH_EDIT_SHARE, is built afresh from the vectors."""
    kept = int((sources >= 0).sum())
    share = float(meta.get("edited_share", 0.0)) + ((len(sources) - kept) + (int(old_index.ntotal) - kept)) / max(
        1, len(sources))
    if meta.get("type") == "hnsw" and ann.resolved_type(len(sources)) == "hnsw" and share <= GRAPH_EDIT_SHARE:
        index = hnsw_edited(old_index, sources, vectors)
        facts = tuned_facts({k: v for k, v in meta.items() if k not in ("ntotal", "bm25")},
                            calibrate(index, "hnsw", vectors, ann, probes))
        return index, {**facts, "edited_share": round(share, 6)}
    index, facts, _ = make_index(vectors, ann, probes)
    return index, facts


def on_kept_queries(fresh: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """The facts of a graph calibrated again on the queries `searchkit calibrate` kept: their source named as it
    named it, and hybrid's dense leg keeping the knob measured on them (the same queries over a graph edited or
    rebuilt with the same settings; a search never takes it above the dense knob just measured)."""
    calibration = dict(fresh.get("calibration") or {})
    earlier = before.get("calibration") or {}
    calibration["source"] = f"{earlier.get('source', 'queries')}, kept by searchkit calibrate"
    if "hybrid_curve" in earlier:
        calibration["hybrid_curve"] = earlier["hybrid_curve"]
    params = {**fresh.get("params", {}), **{k: v for k, v in before.get("params", {}).items()
                                           if k.startswith("hybrid_")}}
    return {**fresh, "params": params, "calibration": calibration}


def _carry_over(files: layout.IndexFiles, staged: layout.IndexFiles) -> None:
    """Everything of the old version an update does not rebuild (the model, its graphs, the reranker): hard links
    where the file system allows (a version's files are never written in place), else copies."""
    for source in files.root.rglob("*"):
        relative = source.relative_to(files.root)
        if relative.parts[0] in REBUILT or not source.is_file():
            continue
        destination = staged.root / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, destination)
        except OSError:
            shutil.copy2(source, destination)


def rollback(index_dir: str | Path) -> Manifest:
    """Put back the version the last update replaced (searchkit update --rollback)."""
    return layout.roll_back(Path(index_dir))
