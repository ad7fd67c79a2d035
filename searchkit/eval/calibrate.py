"""Re-measure an approximate index's recall on real queries and set its search effort (searchkit calibrate)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from ..errors import SearchkitError
from ..index import layout
from ..index.ann import (
    AnnConfig,
    ExactIndex,
    calibrate,
    hybrid_knob_name,
    keep_queries,
    knob_choices,
    knob_name,
    stored_vectors,
    tuned_facts,
)
from ..search.results import Mode
from ..search.retrieval import Retriever
from ..search.searcher import Searcher

BATCH = 256  # queries searched together while calibrating


def recalibrate(index_dir: str | Path, queries: list[str], target_recall: float = 0.98,
                source: str = "queries") -> layout.Manifest:
    """Re-measure an approximate index's recall@10 against exact search on these queries — a query log, say,
    embedded exactly as searches embed them — and set its search knob (efSearch / nprobe) to the cheapest one
    reaching `target_recall`. Only the manifest is rewritten (atomically); the build measured recall on short
    query-like texts cut from titles, which are harder than real queries and so cost more search effort.
    For 8-bit indexes, exact search runs over the decoded vectors (the originals are not kept).

    With a keyword index, hybrid search's dense leg is then measured on the same queries (hybrid_curve): the
    cheapest knob whose hybrid top 10 holds `target_recall` of the hybrid top 10 that an exact dense leg gives. The
    leg only proposes candidates, which BM25's and the fusion's scores then rank, so it needs less effort than dense
    search's own top 10. The query vectors are kept in the index folder, so that an update calibrates its edited
    graph again on them rather than on texts cut from titles."""
    searcher = Searcher.from_dir(index_dir)
    meta = searcher.manifest.index.ann_facts()
    kind = meta.get("type", "flat")
    if kind == "flat":
        raise SearchkitError(f"{index_dir}: an exact (flat) index has no search knob to calibrate")
    if not 0.0 < target_recall <= 1.0:
        raise SearchkitError(f"target recall must be in (0, 1], not {target_recall}")
    texts = list(dict.fromkeys(q.strip() for q in queries if q and q.strip()))
    if not texts:
        raise SearchkitError("no queries to calibrate with")
    probes = searcher.embed_queries(texts)
    tuned = calibrate(searcher.index, kind, stored_vectors(searcher.index),
                      AnnConfig(index_type=kind, target_recall=target_recall), probes)
    index_meta = {**tuned_facts(meta, tuned), "calibration": {**tuned["calibration"], "source": source}}
    if searcher.lexical is not None:
        chosen, curve = hybrid_calibration(searcher, texts, target_recall, tuned[knob_name(kind)])
        index_meta["calibration"]["hybrid_curve"] = {str(v): r for v, r in curve.items()}
        if chosen < tuned[knob_name(kind)]:
            index_meta["params"] = {**index_meta["params"], hybrid_knob_name(kind): chosen}
    manifest = replace(searcher.manifest, index=searcher.manifest.index.with_facts(index_meta))
    files = layout.IndexFiles(layout.live_dir(Path(index_dir)))
    keep_queries(files, probes)  # an update calibrates its graph again on them
    layout.rewrite_manifest(files, manifest)
    return manifest


def hybrid_calibration(searcher: Searcher, texts: list[str], target_recall: float, ceiling: int
                       ) -> tuple[int, dict[int, float]]:
    """The cheapest knob for hybrid's dense leg, no more than `ceiling` (dense search's own), whose hybrid top 10
    reaches `target_recall` of an exact dense leg's (hybrid_recall), and the curve measured on the way."""
    kind = searcher.manifest.index.type
    truth = exact_leg_tops(searcher, texts)
    curve: dict[int, float] = {}
    for value in [v for v in knob_choices(searcher.index, kind) if v <= ceiling]:
        curve[value] = hybrid_recall(searcher, texts, truth, value)
        if curve[value] >= target_recall:
            return value, curve
    return ceiling, curve


def hybrid_recall(searcher: Searcher, texts: list[str], truth: list[list[str]] | None = None,
                  effort: int | None = None) -> float:
    """The share of each query's hybrid top 10 with an exact dense leg (truth: exact_leg_tops) that the searcher's
    hybrid top 10 holds, averaged over the queries; effort: the dense leg's knob to measure (None: as it searches)."""
    truth = exact_leg_tops(searcher, texts) if truth is None else truth
    kept = dict(searcher.search_params)
    if effort is not None:
        searcher.search_params = {**kept, hybrid_knob_name(searcher.manifest.index.type): int(effort)}
    try:
        found = tops(searcher, texts)
    finally:
        searcher.search_params = kept
    shares = [len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True) if t]
    return round(sum(shares) / len(shares), 4) if shares else 1.0


def exact_leg_tops(searcher: Searcher, texts: list[str]) -> list[list[str]]:
    """Each query's hybrid top 10 (product ids) with the dense leg searched exactly."""
    with exact_leg(searcher):
        return tops(searcher, texts)


def tops(searcher: Searcher, texts: list[str], k: int = 10) -> list[list[str]]:
    out: list[list[str]] = []
    for start in range(0, len(texts), BATCH):
        out += [[h.product_id for h in hits]
                for hits in searcher.search_batch(texts[start:start + BATCH], k=k, mode=Mode.HYBRID)]
    return out


@contextmanager
def exact_leg(searcher: Searcher) -> Iterator[None]:
    """The searcher's vector search made exact (over the stored or decoded vectors) while inside."""
    live = searcher.retriever
    searcher.retriever = Retriever(ExactIndex(stored_vectors(live.index)), live.lexical, live.fusion, live.types)
    try:
        yield
    finally:
        searcher.retriever = live
