"""The model's graphs in an index being built: export (through the graph cache), the int8 and query-tower checks,
and what embeds the catalog."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..models import graph_cache
from ..models.encoder import (
    Encoder,
    OnnxEncoder,
    StaticEncoder,
    bulk_parallelism,
)
from ..models.export import export_onnx, quantize_graph
from ..models.files import ENCODER_GRAPH_NAME, ENCODER_INT8_GRAPH_NAME, QUERY_GRAPH_NAME
from ..models.query_tower import assemble, token_table
from . import layout
from .ann import stored_vectors
from .manifest import Encoding
from .texts import query_like

QUERY_INT8_MIN_COSINE = 0.98  # the int8 query graph is used only when its embeddings stay this close to fp32


QUERY_TOWER_MIN_OVERLAP = 0.6  # the query tower's graph: mean share of the whole model's top 10 it must find


# a token table must find more: a catalog whose words it never learned leaves rows at their start, and such a catalog
# gets the whole model instead. The bar sits between a table that knows the catalog's words and one a quarter
# untrained, its overlap counting near-ties as found (docs/design-notes.md)
QUERY_TABLE_MIN_OVERLAP = 0.67
# a product the fast encoder finds counts as one of the whole model's top 10 when the whole model scores it within this
# of its own 10th (the tolerance of ann-benchmarks' k-NN recall): which of a catalog's near-copies ("... 2-pack",
# "... 3-pack") make a top 10 is close to a coin toss between two encoders, and says nothing of the table's words
NEAR_TIE = 1e-3


# catalog texts per batch on a CUDA device (fp16): the fastest of those tried (docs/design-notes.md)
GPU_BATCH = 1024


def check_int8(staged: layout.IndexFiles, info, texts: list[str], sample: int = 256,
               fp32_encoder: Encoder | None = None, int8_encoder: Encoder | None = None) -> dict:
    """How close int8 query embeddings are to fp32 ones on query-like texts; the int8 graph is kept for queries
    only when the worst cosine is >= QUERY_INT8_MIN_COSINE. The encoders of the two graphs may be passed in (the
    build's own sessions); the int8 graph's per-row scales make batched vectors equal those embedded alone."""
    queries = query_like(texts, sample)
    fp32 = (fp32_encoder or OnnxEncoder(staged.onnx, staged.model, info)).encode(queries)
    int8 = (int8_encoder or OnnxEncoder(staged.onnx_int8, staged.model, info)).encode(queries)
    cosines = (fp32 * int8).sum(axis=1) if len(queries) else np.ones(1)
    used = bool(cosines.min() >= QUERY_INT8_MIN_COSINE)
    return {"file": layout.ONNX_INT8_FILE, "used_for_queries": used, "texts": len(queries),
            "cosine_to_fp32_mean": round(float(cosines.mean()), 4), "cosine_to_fp32_min": round(float(cosines.min()), 4),
            "min_cosine_required": QUERY_INT8_MIN_COSINE}


def build_query_graph(staged: layout.IndexFiles, info, texts: list[str], index, tower: dict,
                      sample: int = 256, cache: Path | None = None, fp32_encoder: Encoder | None = None,
                      vectors: np.ndarray | None = None) -> dict:
    """Write the model's query tower into the index — query-int8.onnx (transformer layers) or
    query-tokens.npy (a token table, layers=0) — and measure it against the whole model (fp32) on query-like texts:
    cosine, and how many of the index's top 10 for the whole model's embedding it also finds. It is kept for queries
    only when that overlap averages >= QUERY_TOWER_MIN_OVERLAP; a table, when its overlap with near-ties counted
    (near_overlap; vectors: the catalog's, as indexed) averages >= QUERY_TABLE_MIN_OVERLAP. tower: tower_info()."""
    path = write_query_tower(staged, info.fingerprint, tower, cache)
    fast_encoder: Encoder = (StaticEncoder(path, staged.model, info) if int(tower["layers"]) == 0
                             else OnnxEncoder(path, staged.model, info, one_at_a_time=True))  # as at query time
    queries = query_like(texts, sample, seed=2)
    full = (fp32_encoder or OnnxEncoder(staged.onnx, staged.model, info)).encode(queries)
    fast = fast_encoder.encode(queries)
    cosines = (full * fast).sum(axis=1) if len(queries) else np.ones(1)
    k = min(10, int(index.ntotal))
    none = np.zeros((0, k), dtype=np.int64)
    full_top, fast_top = (index.search(full, k)[1], index.search(fast, k)[1]) if len(queries) else (none, none)
    overlap = np.mean([len(set(a) & set(b)) / k for a, b in zip(full_top, fast_top, strict=True)]) if len(
        queries) else 1.0
    check = {"file": path.name, "layers": tower.get("layers"), "texts": len(queries),
             "cosine_to_full_mean": round(float(cosines.mean()), 4), "cosine_to_full_min": round(float(cosines.min()), 4),
             "top10_overlap_mean": round(float(overlap), 4)}
    if int(tower["layers"]) == 0:
        stored = vectors if vectors is not None else stored_vectors(index)
        near = near_overlap(stored, full, full_top, fast_top)
        check.update({"top10_near_overlap_mean": round(float(near), 4), "near_tie": NEAR_TIE})
        overlap, bar = near, QUERY_TABLE_MIN_OVERLAP
    else:
        bar = QUERY_TOWER_MIN_OVERLAP
    used = bool(overlap >= bar)
    if not used:
        path.unlink()
    return {**check, "used_for_queries": used, "min_overlap_required": bar}


def near_overlap(vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, found: np.ndarray,
                 tie: float = NEAR_TIE) -> float:
    """The mean share of `found` (rows per query, -1 for none) that the query scores at least as high as its lowest
    row of `truth`, less `tie`: the top-k overlap of two rankings, a near-tie of the first counted as found."""
    shares = []
    for query, best, rows in zip(queries, truth, found, strict=True):
        best, rows = best[best >= 0], rows[rows >= 0]
        if not len(best):
            shares.append(1.0)
            continue
        floor = float((vectors[best] @ query).min()) - tie
        shares.append(min(1.0, float(np.sum(vectors[rows] @ query >= floor)) / len(best)))
    return float(np.mean(shares)) if shares else 1.0


def write_query_tower(staged: layout.IndexFiles, fingerprint: str, tower: dict, cache: Path | None = None) -> Path:
    """Write the query tower of the model in staged.model (tower: tower_info()) into `staged`: its token table
    (layers=0) or its int8 graph (through the graph cache); returns the file written."""
    import tempfile

    if int(tower["layers"]) == 0:
        np.save(staged.query_tokens, token_table(staged.model, tower), allow_pickle=False)
        return staged.query_tokens

    def export(target: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="searchkit-query-") as tmp:
            folder = assemble(staged.model, Path(tmp) / "model", tower)
            export_onnx(folder, Path(tmp) / "query.onnx")
            quantize_graph(Path(tmp) / "query.onnx", target, per_row=True)

    graph_cache.graph(cache, fingerprint, QUERY_GRAPH_NAME, export, staged.query_onnx)
    return staged.query_onnx


def export_graphs(model_dir: Path, fingerprint: str, staged: layout.IndexFiles, cache: Path | None) -> bool:
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


def probes_on_runners(bulk: Encoder, int8_queries: bool) -> bool:
    """Whether the query-like probes that calibrate an approximate index's effort embed on the catalog's graph
    runners (`bulk`), in a build and an update alike: where queries may embed with the int8 graph (check_int8), as
    they cost less there; else the fp32 encoder embeds them."""
    return int8_queries and isinstance(bulk, OnnxEncoder)


def catalog_encoder(encoder: Encoder, staged: layout.IndexFiles, bulk: str, batch_size: int,
                    exported: bool) -> tuple[Encoder, int, Encoding, str]:
    """What embeds the catalog (the torch encoder, or the index's ONNX graph for `bulk`: IndexConfig.bulk), its batch
    size, the Encoding it gives the vectors, and a word on how (for the manifest's device line)."""
    device = str(getattr(encoder, "device", "cpu"))
    if bulk == "torch" or not exported or device.startswith("cuda"):
        return encoder, catalog_batch(encoder, batch_size), Encoding.TORCH, f"torch {device}"
    graph = staged.onnx_int8 if bulk == "onnx-int8" else staged.onnx
    return (OnnxEncoder(graph, staged.model, encoder.info, parallel=bulk_parallelism()), batch_size,
            Encoding.of_bulk(bulk), f"onnxruntime cpu ({graph_label(bulk)})")


def graph_label(bulk: str) -> str:
    """How the manifest's device line names the ONNX graph a catalog was embedded with."""
    return "onnx-int8, per-row scales" if bulk == "onnx-int8" else "onnx"
