"""The vector index: exact or approximate (HNSW / IVF, with 8-bit scalar quantisation for memory), its search-time
accuracy knob calibrated at build time against exact search, and the recall it measured.

Index types (every one scores by inner product of unit vectors, i.e. cosine):
  flat       exact; 4 bytes x dim per product; search time grows linearly with the catalog
  hnsw       graph (HNSW, flat storage): sub-millisecond at 1M, ~1.1x the flat memory
  hnsw-sq8   the same graph over 8-bit codes: ~0.3x the flat memory, scores decoded from the codes
  ivf-sq8    inverted lists (k-means cells) over 8-bit codes: the smallest, fastest to build
  auto       flat up to FLAT_UP_TO products, hnsw above
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import IndexFormatError, SearchkitError
from .layout import CALIBRATION_FILE, IndexFiles, replace_file

log = logging.getLogger(__name__)

INDEX_TYPES = ("auto", "flat", "hnsw", "hnsw-sq8", "ivf-sq8")
# "auto": exact search up to here, where scanning every vector costs little more than a graph walk; past it the
# scan grows to a millisecond at 20,000 products while the walk stays near 0.2 ms (docs/design-notes.md)
FLAT_UP_TO = 4_000
EF_CHOICES = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)  # HNSW efSearch candidates, cheapest first
NPROBE_CHOICES = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)


@dataclass(frozen=True)
class AnnConfig:
    index_type: str = "auto"
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    ivf_lists: int | None = None  # None: about sqrt(products) (quick k-means on a few cores; nprobe adapts)
    target_recall: float = 0.98  # the search knob (efSearch / nprobe) is the cheapest that reaches this recall@10
    calibration_queries: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        if self.index_type not in INDEX_TYPES:
            raise SearchkitError(f"unknown index type {self.index_type!r}: use {', '.join(INDEX_TYPES)}")
        if not 0.0 < self.target_recall <= 1.0:
            raise SearchkitError(f"target recall must be in (0, 1], not {self.target_recall}")
        if self.hnsw_m < 4 or self.hnsw_ef_construction < 8:
            raise SearchkitError(f"HNSW needs m >= 4 and ef_construction >= 8, not {self.hnsw_m}/"
                                 f"{self.hnsw_ef_construction}")

    def resolved_type(self, rows: int) -> str:
        if self.index_type == "auto":
            return "hnsw" if rows > FLAT_UP_TO else "flat"
        return self.index_type

    def lists(self, rows: int) -> int:
        """IVF cells: ~sqrt(n), but at least 39 training points per cell (faiss's k-means minimum) and one cell."""
        wanted = self.ivf_lists or int(math.sqrt(rows))
        return max(1, min(wanted, rows // 39))


def factory_string(kind: str, config: AnnConfig, rows: int) -> str:
    return {"flat": "Flat", "hnsw": f"HNSW{config.hnsw_m}", "hnsw-sq8": f"HNSW{config.hnsw_m},SQ8",
            "ivf-sq8": f"IVF{config.lists(rows)},SQ8"}[kind]


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """Exact top-k rows by inner product (optionally never returning row exclude[i] for query i), in chunks."""
    out = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 64):
        scores = queries[start:start + 64] @ vectors.T
        if exclude is not None:
            scores[np.arange(len(scores)), exclude[start:start + 64]] = -np.inf
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(scores, part, 1).argsort(axis=1, kind="stable")[:, ::-1]
        out[start:start + 64] = np.take_along_axis(part, order, 1)
    return out


class ExactIndex:
    """Exact inner-product search over vectors held in memory, with no faiss: the same `search` contract as a faiss
    index (scores, ids; -1 padding past the end). Used to evaluate a model without building an index folder."""

    def __init__(self, vectors: np.ndarray):
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.ntotal, self.d = self.vectors.shape

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.asarray(queries, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        found = min(k, self.ntotal)
        if found:
            top = exact_top(self.vectors, queries, found)
            ids[:, :found] = top
            scores[:, :found] = np.einsum("qd,qkd->qk", queries, self.vectors[top])
        return scores, ids


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f[f >= 0][:k]) & set(t)) / k for f, t in zip(found, truth, strict=True)]))


def knob_name(kind: str) -> str:
    """The manifest's name for an approximate index type's search knob: efSearch for HNSW, nprobe for IVF."""
    return "ef_search" if kind.startswith("hnsw") else "nprobe"


def hybrid_knob_name(kind: str) -> str:
    """The manifest's name for the knob of hybrid search's dense leg (`searchkit calibrate` measures it): the leg
    only proposes candidates that BM25's and fusion's scores then rank, so it may search with less effort."""
    return f"hybrid_{knob_name(kind)}"


def knob_choices(index, kind: str) -> list[int]:
    """The values calibration tries for an approximate index's knob, cheapest first."""
    if kind.startswith("hnsw"):
        return list(EF_CHOICES)
    return [p for p in NPROBE_CHOICES if p <= faiss_lists(index)] or [1]


def set_knob(index, kind: str, value: int) -> None:
    """Set the search-time accuracy knob: efSearch for HNSW, nprobe for IVF (nothing for flat)."""
    import faiss

    if kind.startswith("hnsw"):
        hnsw: Any = faiss.downcast_index(index)
        hnsw.hnsw.efSearch = int(value)
    elif kind.startswith("ivf"):
        faiss.extract_index_ivf(index).nprobe = int(value)


def tuned_facts(meta: dict, tuned: dict) -> dict:
    """An index's manifest facts updated with a calibrate() result: the search knob it chose (when it chose one),
    the sampled recall@10, and the target and curve it calibrated on (when it calibrated)."""
    knobs = {k: v for k, v in tuned.items() if k in ("ef_search", "nprobe")}
    params = {**meta.get("params", {}), **knobs}
    if "calibration" in tuned:  # a hybrid leg's knob was measured against the graph and knob calibrated before
        params = {k: v for k, v in params.items() if not k.startswith("hybrid_")}
    facts = {**meta, "params": params, "recall@10_sample": tuned["recall@10"]}
    if "calibration" in tuned:
        facts.update(calibration=tuned["calibration"], target_recall=tuned["target_recall"])
    return facts


def calibrate(index, kind: str, vectors: np.ndarray, config: AnnConfig, queries: np.ndarray | None = None,
              k: int = 10) -> dict:
    """Pick the cheapest knob value whose recall@k (against exact search) reaches the target. Measured with the
    given query vectors (build_index passes embedded query-like texts: queries sit farther from products than
    products from each other, which is harder for ANN), else with a sample of stored vectors, each excluding
    itself (else every query trivially finds its own row)."""
    if kind == "flat":
        return {"recall@10": 1.0}
    rows = len(vectors)
    k = min(k, rows - 1)
    if k < 1:
        return {"recall@10": 1.0}
    sample = None  # the stored rows used as queries, each to be excluded from its own results
    if queries is not None and len(queries):
        source = "query vectors"
        truth = exact_top(vectors, queries, k)
    else:
        source = "stored vectors (self excluded)"
        rng = np.random.default_rng(config.seed)
        sample = np.sort(rng.choice(rows, size=min(config.calibration_queries, rows), replace=False))
        queries = vectors[sample]
        truth = exact_top(vectors, queries, k, exclude=sample)
    choices = knob_choices(index, kind)
    curve = {}
    chosen = choices[-1]
    for value in choices:
        set_knob(index, kind, value)
        _, found = index.search(queries, k + 1)
        if sample is None:
            found = found[:, :k]  # -1 (fewer than k found) stays in place and counts as a miss
        else:  # dropping the query's own row leaves at least k of the k + 1
            found = np.array([[r for r in row if r != s][:k] for row, s in zip(found, sample, strict=True)])
        curve[value] = round(recall_at_k(found, truth), 4)
        if curve[value] >= config.target_recall:
            chosen = value
            break
    set_knob(index, kind, chosen)
    return {knob_name(kind): int(chosen), "recall@10": curve[chosen], "target_recall": config.target_recall,
            "calibration": {"queries": len(queries), "source": source,
                            "curve": {str(v): r for v, r in curve.items()}}}


def faiss_lists(index) -> int:
    import faiss

    return int(faiss.extract_index_ivf(index).nlist)


def make_index(vectors: np.ndarray, config: AnnConfig, queries: np.ndarray | None = None) -> tuple[Any, dict, str]:
    """An inner-product index over unit vectors (scores are cosines), built on the GPU when faiss has one (flat
    and IVF), with its search knob calibrated. Returns the CPU index, manifest facts and where it was built."""
    import faiss

    rows, dim = vectors.shape
    kind = config.resolved_type(rows)
    factory = factory_string(kind, config, rows)
    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    params: dict = {}
    if kind.startswith("hnsw"):
        graph: Any = faiss.downcast_index(index)
        graph.hnsw.efConstruction = config.hnsw_ef_construction
        params = {"m": config.hnsw_m, "ef_construction": config.hnsw_ef_construction}
    elif kind == "ivf-sq8":
        params = {"lists": config.lists(rows)}
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    where = "cpu"
    if gpus > 0 and kind in ("flat", "ivf-sq8"):
        gpu_index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
        _train_add(gpu_index, vectors, params.get("lists", 0), config.seed)
        index, where = faiss.index_gpu_to_cpu(gpu_index), "cuda:0"
    else:
        _train_add(index, vectors, params.get("lists", 0), config.seed)
    if kind == "ivf-sq8":
        faiss.extract_index_ivf(index).make_direct_map()  # reconstruct(row): cosines of fused candidates
    meta = {"type": kind, "factory": factory, "faiss_class": type(faiss.downcast_index(index)).__name__,
            "params": params}
    return index, tuned_facts(meta, calibrate(index, kind, vectors, config, queries)), where


TRAIN_PER_LIST = 64  # k-means points per IVF cell (faiss wants >= 39)
SQ_TRAIN = 100_000  # vectors that set the 8-bit quantiser's ranges


def _train_add(index, vectors: np.ndarray, lists: int, seed: int) -> None:
    if not index.is_trained:
        rng = np.random.default_rng(seed)
        limit = TRAIN_PER_LIST * lists if lists else SQ_TRAIN
        sample = vectors if len(vectors) <= limit else vectors[np.sort(rng.choice(len(vectors), limit, replace=False))]
        index.train(np.ascontiguousarray(sample))
    index.add(vectors)


def knob_for_recall(manifest_index: dict, target: float) -> int | None:
    """The cheapest knob value whose recall@10 in the index's calibration curve reaches `target` (None for an exact
    index). The curve stops at the first value that reached the target it was measured for, so a higher target may
    need `searchkit calibrate` to measure further. Raises SearchkitError when the curve has no value reaching
    `target`, or the index has no curve."""
    kind = manifest_index.get("type", "flat")
    if kind == "flat":
        return None
    curve = {int(v): r for v, r in manifest_index.get("calibration", {}).get("curve", {}).items()}
    if not curve:
        raise SearchkitError("this index records no recall calibration; rebuild it to choose recall at search time")
    reaching = [v for v, r in curve.items() if r >= target]
    if not reaching:
        best = max(curve, key=lambda v: (curve[v], -v))
        raise SearchkitError(f"no search setting in the index's calibration curve reaches recall@10 {target} (the "
                             f"best: {curve[best]} at {best}); measure further with `searchkit calibrate "
                             f"--target-recall {target}`")
    return min(reaching)


def apply_params(index, manifest_index: dict, target_recall: float | None = None) -> dict:
    """Set the knob recorded in the manifest (faiss files keep it too; the manifest is the source of truth), or,
    given target_recall, the cheapest one the build's calibration measured reaching it. Returns what was set, with
    the knob of hybrid search's dense leg when calibrated below it (hybrid_knob)."""
    params = manifest_index.get("params", {})
    kind = manifest_index.get("type", "flat")
    name = knob_name(kind)
    value = params.get(name)
    if target_recall is not None:
        value = knob_for_recall(manifest_index, target_recall)
    if not value:
        return {}
    set_knob(index, kind, value)
    hybrid = hybrid_knob(manifest_index, target_recall)
    return {name: int(value), **({hybrid_knob_name(kind): hybrid} if hybrid and hybrid < int(value) else {})}


def hybrid_knob(manifest_index: dict, target_recall: float | None = None) -> int | None:
    """The knob of hybrid search's dense leg that `searchkit calibrate` chose, or, given target_recall, the cheapest
    its hybrid curve measured reaching it; None when it measured none (the leg then searches as dense search does)."""
    kind = manifest_index.get("type", "flat")
    if kind == "flat":
        return None
    if target_recall is None:
        value = manifest_index.get("params", {}).get(hybrid_knob_name(kind))
        return int(value) if value else None
    curve = {int(v): r for v, r in (manifest_index.get("calibration") or {}).get("hybrid_curve", {}).items()}
    reaching = [v for v, r in curve.items() if r >= target_recall]
    return min(reaching) if reaching else None


def hnsw_edited(index, sources: np.ndarray, vectors: np.ndarray):
    """An HNSW index (flat storage) for a changed catalog without rebuilding its graph: row r of the result holds
    vectors[r]; rows with sources[r] >= 0 keep old node sources[r] and its links (links to dropped nodes removed),
    the others are inserted into the graph as a build would insert them. Old nodes no row names are dropped
    (tombstoned and compacted at once). The caller calibrates the search knob again."""
    import faiss

    sources = np.asarray(sources, dtype=np.int64)
    kept_rows, fresh_rows = np.flatnonzero(sources >= 0), np.flatnonzero(sources < 0)
    edited = _hnsw_relabelled(faiss.downcast_index(index), sources[kept_rows], vectors[kept_rows])
    if len(fresh_rows):
        edited.add(np.ascontiguousarray(vectors[fresh_rows], dtype=np.float32))
    node_of_row = np.empty(len(sources), dtype=np.int64)
    node_of_row[np.concatenate([kept_rows, fresh_rows])] = np.arange(len(sources))
    return _hnsw_relabelled(edited, node_of_row, vectors)


def _hnsw_relabelled(index, old_of_new: np.ndarray, vectors: np.ndarray):
    """A new IndexHNSWFlat whose node j is node old_of_new[j] of `index` (vector vectors[j]), with every link
    renumbered, links to nodes left out removed (the rest of a neighbour list moves up), and the entry point kept
    (or the highest remaining node, when it was left out)."""
    import faiss

    hnsw = index.hnsw
    old_count = int(index.ntotal)
    levels = faiss.vector_to_array(hnsw.levels).astype(np.int64)  # per node: its top level + 1
    offsets = faiss.vector_to_array(hnsw.offsets).astype(np.int64)
    links = faiss.vector_to_array(hnsw.neighbors).astype(np.int64)
    per_level = faiss.vector_to_array(hnsw.cum_nneighbor_per_level).astype(np.int64)
    new_of_old = np.full(old_count, -1, dtype=np.int64)
    new_of_old[old_of_new] = np.arange(len(old_of_new))
    links = np.where(links >= 0, new_of_old[np.maximum(links, 0)], -1)
    # one segment per (node, level); within each, the links still present first, in their order
    first_segment = np.cumsum(levels) - levels
    segment_level = np.arange(int(levels.sum())) - np.repeat(first_segment, levels)
    segment = np.repeat(np.arange(len(segment_level)), per_level[segment_level + 1] - per_level[segment_level])
    if len(segment) != len(links):
        raise SearchkitError("unexpected HNSW layout: rebuild the index")
    links = links[np.lexsort((links < 0, segment))]
    sizes = (offsets[1:] - offsets[:-1])[old_of_new]
    new_offsets = np.concatenate([[0], np.cumsum(sizes)])
    gather = np.repeat(offsets[:-1][old_of_new] - new_offsets[:-1], sizes) + np.arange(int(new_offsets[-1]))
    out: Any = faiss.IndexHNSWFlat(index.d, int(hnsw.nb_neighbors(1)), index.metric_type)
    if not np.array_equal(faiss.vector_to_array(out.hnsw.cum_nneighbor_per_level).astype(np.int64), per_level):
        raise SearchkitError("unexpected HNSW layout: rebuild the index")
    faiss.copy_array_to_vector(levels[old_of_new].astype(np.int32), out.hnsw.levels)
    faiss.copy_array_to_vector(new_offsets.astype(np.uint64), out.hnsw.offsets)
    faiss.copy_array_to_vector(links[gather].astype(np.int32), out.hnsw.neighbors)
    out.storage.add(np.ascontiguousarray(vectors, dtype=np.float32))
    out.ntotal = len(old_of_new)
    out.hnsw.efConstruction, out.hnsw.efSearch = hnsw.efConstruction, hnsw.efSearch
    entry = new_of_old[hnsw.entry_point] if hnsw.entry_point >= 0 else -1
    if len(old_of_new):
        entry = entry if entry >= 0 else int(np.argmax(levels[old_of_new]))
        out.hnsw.entry_point, out.hnsw.max_level = int(entry), int(levels[old_of_new][entry] - 1)
    return out


def flat_vectors(index: Any) -> np.ndarray | None:
    """A zero-copy (n, d) view of the stored vectors for flat storage (IndexFlat, IndexHNSWFlat), else None."""
    if isinstance(index, ExactIndex):
        return index.vectors
    import faiss

    storage = faiss.downcast_index(index.storage) if hasattr(index, "storage") else index
    if not isinstance(storage, faiss.IndexFlat) or storage.ntotal == 0:
        return None
    return faiss.rev_swig_ptr(storage.get_xb(), storage.ntotal * storage.d).reshape(storage.ntotal, storage.d)


def stored_vectors(index: Any) -> np.ndarray:
    """Every stored vector: the zero-copy view of flat storage, else decoded from the index's codes."""
    vectors = flat_vectors(index)
    return vectors if vectors is not None else index.reconstruct_n(0, index.ntotal)


def keep_queries(files: IndexFiles, vectors: np.ndarray) -> None:
    """Keep the query vectors a calibration measured on in the index folder, replacing any kept before atomically:
    an update calibrates its graph again on them (searchkit.index.update)."""
    data = io.BytesIO()
    np.save(data, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
    replace_file(files.root / CALIBRATION_FILE, data.getvalue())


def kept_queries(files: IndexFiles, dimension: int) -> np.ndarray | None:
    """The query vectors keep_queries kept, or None; IndexFormatError when unreadable or not `dimension` wide."""
    path = files.root / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"{path}: unreadable ({exc}); run `searchkit calibrate` again") from exc
    if vectors.ndim != 2 or vectors.shape[1] != dimension or not len(vectors):
        raise IndexFormatError(f"{path}: {vectors.shape} query vectors, not n x {dimension}; run `searchkit calibrate` "
                             "again")
    return vectors
