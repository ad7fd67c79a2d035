"""The second stage and the account of a ranking: the cross-encoder's reordering of hybrid candidates, the
relevance estimate's signals for (query, product) pairs, and each result's explanation."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.text import Normaliser
from ..errors import IndexMismatchError, ModelError, SearchkitError
from ..index import layout
from ..models.cross_encoder import Reranker, unread_scores
from .relevance import RelevanceModel, features, text_key
from .results import Mode
from .retrieval import Ranked
from .understanding import ParsedQuery


def reranked(reranker: Reranker, query: str, ranked: Ranked, records: list[dict[str, Any]]) -> Ranked:
    """The top `depth` hybrid candidates (records: theirs, in order) in the cross-encoder's order (ties: hybrid
    order), then the rest in hybrid order; "score" is the final blend (rerank.blend, rerank.unread_scores)."""
    depth = reranker.settings.depth
    head, tail = ranked[:depth], ranked[depth:]
    if not head:
        return ranked
    logits = reranker.scores(query, records[:len(head)])
    fused = np.array([signals["fusion"] for _, signals in head])
    final = reranker.combine(logits, fused)
    rest = unread_scores(fused, np.array([signals["fusion"] for _, signals in tail]), reranker.settings.weight)
    order = np.lexsort((np.arange(len(head)), -final))
    return [(head[i][0], {**head[i][1], "score": float(final[i]), "rerank": float(final[i]),
                          "cross_encoder": float(logits[i])}) for i in order] + [
        (row, {**signals, "score": float(s)}) for (row, signals), s in zip(tail, rest, strict=True)]


def product_terms(normaliser: Normaliser, records: list[dict[str, Any]]) -> list[set[str]]:
    """Each product record's keyword-index words (what BM25 and `matched_terms` compare the query with)."""
    lex = normaliser.lexical
    return [set(lex.product(r.get("title") or "", r.get("brand"), r.get("color")).split()) for r in records]


def relevance_parts(manifest: layout.Manifest,
                    normaliser: Normaliser) -> tuple[str, tuple[float, float, int], str, str]:
    """What a relevance fit depends on: the embedder's fingerprint, BM25's k1, b and keyword text version, the
    reranker's fingerprint, the embedder's text settings (relevance.text_key)."""
    bm25 = manifest.index.bm25
    return (manifest.model.fingerprint,
            (float(bm25.k1), float(bm25.b), normaliser.keyword_text),
            manifest.model.reranker_fingerprint or "",
            text_key(normaliser.config))


def relevance_model(reranker: Reranker, parts: tuple) -> RelevanceModel:
    """The reranker's fitted relevance estimate; ModelError when it has none, IndexMismatchError when it was fitted
    on other parts (relevance_parts) than these."""
    if not reranker.info.get("relevance"):
        raise ModelError(f"the index's reranker {reranker.name!r} has no relevance fit: run `searchkit "
                         "fit-relevance --index INDEX`, then rebuild the index")
    model = RelevanceModel.from_dict(reranker.info["relevance"])
    why = model.mismatch(*parts)
    if why:
        raise IndexMismatchError(f"the relevance fit does not belong to this index: {why}; fit it again with "
                                 "`searchkit fit-relevance`")
    return model


def signals(reranker: Reranker, parsed: ParsedQuery, records: list[dict[str, Any]], cosines: np.ndarray,
            logits: np.ndarray, bm25: np.ndarray, terms: list[set[str]]) -> np.ndarray:
    """The relevance estimate's features of each product, from the signals a search already has, plus the word
    counts and the grader's cosine."""
    rows = features(cosines, logits, bm25, parsed.keywords.split(), terms)
    grader = reranker.grader
    return rows if grader is None else np.column_stack([rows, grader.cosines(parsed.understood, records)])


def graded(model: RelevanceModel, reranker: Reranker, parsed: ParsedQuery, ranked: Ranked,
           records: list[dict[str, Any]], cosines: np.ndarray, terms: list[set[str]]) -> dict[int, float]:
    """{position: relevance estimate} of the results the cross-encoder read."""
    head = [i for i, (_, s) in enumerate(ranked) if "cross_encoder" in s]
    if not head:
        return {}
    rows = signals(reranker, parsed, [records[i] for i in head], cosines[head],
                   np.array([ranked[i][1]["cross_encoder"] for i in head]),
                   np.array([ranked[i][1]["lexical"] for i in head]), [terms[i] for i in head])
    return dict(zip(head, map(float, model.predict(rows)), strict=True))


def explanation(mode: Mode, parsed: ParsedQuery, signals_of: dict[str, float], cosine: float, lexical: float | None,
                product_words: set[str]) -> dict[str, Any]:
    """Why one product ranked where it did: its cosine, BM25 score, the query words it matched and the mode's own
    scores (fusion, rerank, cross-encoder)."""
    return {"mode": mode, "score": signals_of["score"], "dense": float(cosine), "lexical": lexical,
            "query_as_searched": parsed.understood,
            "corrections": [[c.original, c.corrected] for c in parsed.corrections],
            "matched_terms": sorted(set(parsed.keywords.split()) & product_words),
            **{key: signals_of[key] for key in ("fusion", "rerank", "cross_encoder") if key in signals_of}}


def try_model(get) -> RelevanceModel | None:
    """get() or None when the index cannot estimate relevance (no reranker, no fit, or a fit of other parts)."""
    try:
        return get()
    except SearchkitError:
        return None
