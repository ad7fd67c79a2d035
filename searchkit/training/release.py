"""Learn from shoppers, safely (`searchkit learn`): search logs -> judgments -> a candidate embedder trained on them ->
measured against the model in use -> adopted only when better beyond the noise.

The gate measures both models the same way: each embeds the index's catalog in memory (exact search,
searchkit.eval.evaluate.in_memory_searcher) and ranks the judgments' held-out queries (their test split, by query) in hybrid
mode; per query NDCG@10, whole catalog and judged products only. The candidate is adopted when the lower end of the
paired bootstrap's 95% interval of its whole-catalog gain is above zero and its judged-only gain's is above -TOLERANCE;
it is then built into the index folder (atomically: a running server picks it up), else the report says why not.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..data.catalog import read_pairs
from ..data.splits import split_pairs
from ..errors import SearchkitError
from ..index import layout
from ..index.shared import attach
from ..search.results import Mode
from .judgments import JudgmentConfig, judgments, read_impressions, write_judgments

RESAMPLES = 2000
TOLERANCE = 0.005  # the judged-only view may fall by this much at the interval's low end


@dataclass(frozen=True)
class Verdict:
    adopt: bool
    reason: str
    queries: int
    gain: float  # mean per-query NDCG@10 gain, whole catalog
    interval: tuple[float, float]  # its paired bootstrap 95% interval
    judged_gain: float
    judged_interval: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def interval(gains: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """The paired bootstrap's 95% interval of the mean gain."""
    if len(gains) == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    means = gains[rng.integers(0, len(gains), (RESAMPLES, len(gains)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def gate(current: np.ndarray, candidate: np.ndarray, current_judged: np.ndarray, candidate_judged: np.ndarray
         ) -> Verdict:
    """Adopt or not, from per-query NDCG@10 of the two models on the same held-out queries."""
    gains, judged = np.asarray(candidate) - np.asarray(current), np.asarray(candidate_judged) - np.asarray(
        current_judged)
    low, high = interval(gains)
    j_low, j_high = interval(judged)
    if len(gains) == 0:
        adopt, reason = False, "no held-out queries to measure on: log more searches"
    elif low <= 0:
        adopt, reason = False, (f"not better beyond the noise: NDCG@10 gain {gains.mean():+.4f}, 95% interval "
                                f"[{low:+.4f}, {high:+.4f}] holds zero or less")
    elif j_low < -TOLERANCE:
        adopt, reason = False, (f"better over the catalog ({gains.mean():+.4f}) but possibly worse on judged products: "
                                f"interval [{j_low:+.4f}, {j_high:+.4f}]")
    else:
        adopt, reason = True, f"better: NDCG@10 gain {gains.mean():+.4f}, 95% interval [{low:+.4f}, {high:+.4f}]"
    return Verdict(adopt, reason, len(gains), round(float(gains.mean()) if len(gains) else 0.0, 6),
                   (round(low, 6), round(high, 6)), round(float(judged.mean()) if len(judged) else 0.0, 6),
                   (round(j_low, 6), round(j_high, 6)))


def measure(catalog: Path, model: Path, pairs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-query NDCG@10 (whole catalog, judged only) of a model embedding the catalog in memory, hybrid mode."""
    from ..eval.in_memory import in_memory_searcher
    from ..eval.measure import query_metrics

    frame = query_metrics(in_memory_searcher(catalog, model=model), pairs, Mode.HYBRID).sort_index()
    return frame["ndcg@10"].to_numpy(), frame["ndcg@10_judged"].to_numpy()


def learn(logs: list[str | Path], index_dir: str | Path, work: str | Path | None = None, dry_run: bool = False,
          template: Any = None, min_impressions: int = 3, names: dict[str, str] | None = None) -> dict[str, Any]:
    """The loop: judgments from `logs`, a candidate trained on their training split from the index's model, the gate
    on their test split, and (unless dry_run, and only when the gate says so) the index rebuilt with the candidate.
    template: a TrainConfig whose training settings (recipe, steps, batch size, split) the candidate is trained with;
    work: where the judgments and the candidate are kept (default: a temporary folder, removed afterwards)."""
    from ..index.build import build_index
    from .embedder import TrainConfig, train

    template = template or TrainConfig()
    split = template.split
    root = layout.live_dir(Path(index_dir))
    manifest = layout.read_manifest(root)
    files = attach(layout.IndexFiles(root), manifest)
    folder = Path(work) if work is not None else Path(tempfile.mkdtemp(prefix="searchkit-learn-"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        catalog = folder / "catalog.parquet"
        # the catalog as indexed: the build reads it after the swap too
        layout.read_products(files, manifest.rows).to_pandas().to_parquet(catalog, index=False)
        judged = write_judgments(judgments(read_impressions(list(logs), names),
                                           JudgmentConfig(min_impressions=min_impressions)), folder / "judgments.csv")
        held_out = split_pairs(read_pairs(judged), split)["test"]
        if held_out.empty:
            raise SearchkitError(f"the judgments' test split is empty ({judged}): log more searches")
        candidate = folder / "candidate"
        train(replace(template, pairs=judged, catalog=catalog, out=candidate, base_model=files.model, resume=False))
        current_ndcg, current_judged = measure(catalog, files.model, held_out)
        candidate_ndcg, candidate_judged = measure(catalog, candidate, held_out)
        verdict = gate(current_ndcg, candidate_ndcg, current_judged, candidate_judged)
        adopted = False
        if verdict.adopt and not dry_run:
            build_index(catalog, Path(index_dir), model=candidate)
            adopted = True
        return {"judgments": str(judged) if work is not None else None, "pairs": len(read_pairs(judged)),
                "held_out_queries": int(held_out["query"].nunique()), "verdict": verdict.to_dict(),
                "adopted": adopted, "dry_run": dry_run}
    finally:
        if work is None:
            shutil.rmtree(folder, ignore_errors=True)
