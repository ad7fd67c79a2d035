"""Re-measure an approximate index's recall on real queries and set its search effort (searchkit calibrate)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..errors import SearchkitError
from ..index import layout
from ..index.ann import AnnConfig, calibrate, stored_vectors, tuned_facts
from ..search.searcher import Searcher


def recalibrate(index_dir: str | Path, queries: list[str], target_recall: float = 0.98,
                source: str = "queries") -> layout.Manifest:
    """Re-measure an approximate index's recall@10 against exact search on these queries — a query log, say,
    embedded exactly as searches embed them — and set its search knob (efSearch / nprobe) to the cheapest one
    reaching `target_recall`. Only the manifest is rewritten (atomically); the build measured recall on short
    query-like texts cut from titles, which are harder than real queries and so cost more search effort.
    For 8-bit indexes, exact search runs over the decoded vectors (the originals are not kept)."""
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
    manifest = replace(searcher.manifest, index=searcher.manifest.index.with_facts(index_meta))
    layout.rewrite_manifest(layout.IndexFiles(Path(index_dir)), manifest)
    return manifest
