"""Graded relevance of a (query, product) pair on the raters' 1-3 scale: a linear model over signals an index with a
reranker computes — the embedder's cosine, the cross-encoder's logit, BM25, a few word-match counts and, when the
reranker carries one, a grader's cosine (a second embedder trained to grade pairs, such as the reference `seed`
recipe). The Searcher gathers the signals (`Searcher.pair_signals`); this module turns them into features, fits the
weights by least squares on rated pairs and predicts, in numpy (searchkit.training.relevance reads an index and writes a fit).

Each signal alone grades pairs less well than together: on the validation split (1,011 queries unseen in training)
the cosine's Spearman with the label is 0.452, the cross-encoder's 0.473, the `seed` grader's 0.481, the fit's 0.520
without the grader and 0.541 with it (cross-validated by query).
The fit lives in the reranker's settings file (reranker.json, key "relevance") with the fingerprints of the
embedder and reranker (grader included), the embedder's text settings and the BM25 settings it was fitted on; an
index whose parts differ refuses to estimate relevance, with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..data.text import TextConfig
from ..errors import ModelError

FEATURES = (
    "cosine",  # the embedder's cosine, as the index scores it
    "cross_encoder",  # the reranker's logit
    "bm25",  # log(1 + BM25 score)
    "query_words",  # query words (stemmed, brand token left out)
    "matched_share",  # share of them in the product's words
    "first_word",  # the first query word is in the product's words (1/0)
    "last_word",  # the last one is: usually the kind of product asked for
    "all_words",  # every query word is
    "product_words",  # distinct words of the product's text, with brand and colour tokens
    "brand",  # the query's brand token is the product's
    "number_share",  # share of the query's words with a digit in them found in the product; -1 when it has none
)
GRADER = "grader"  # the grader's cosine: one more feature, last, when the index's reranker carries a grader


def feature_names(grader: bool) -> tuple[str, ...]:
    return FEATURES + (GRADER,) if grader else FEATURES


def word_features(query_terms: Sequence[str], product_terms: set[str]) -> list[float]:
    """The word-match features (FEATURES[3:]) of one pair, from the lexical text of both sides."""
    words = [t for t in query_terms if not t.startswith("brand_")]
    found = [w in product_terms for w in words]
    numbers = [w in product_terms for w in words if any(c.isdigit() for c in w)]
    brand = any(t.startswith("brand_") and t in product_terms for t in query_terms)
    return [float(len(words)), float(np.mean(found)) if found else 0.0,
            float(bool(words) and words[0] in product_terms), float(bool(words) and words[-1] in product_terms),
            float(bool(found) and all(found)), float(len(product_terms)), float(brand),
            float(np.mean(numbers)) if numbers else -1.0]


def features(cosines: np.ndarray, logits: np.ndarray, bm25: np.ndarray, query_terms: Sequence[str],
             product_terms: Sequence[set[str]]) -> np.ndarray:
    """One row of FEATURES per product."""
    n = len(product_terms)
    if not len(cosines) == len(logits) == len(bm25) == n:
        raise ValueError(f"{len(cosines)} cosines, {len(logits)} logits, {len(bm25)} BM25 scores for {n} products")
    head = np.column_stack([np.asarray(cosines, dtype=np.float64), np.asarray(logits, dtype=np.float64),
                            np.log1p(np.maximum(np.asarray(bm25, dtype=np.float64), 0.0))])
    words = np.array([word_features(query_terms, terms) for terms in product_terms], dtype=np.float64)
    return np.hstack([head, words.reshape(n, len(FEATURES) - 3)])


def on_scale(label: np.ndarray) -> np.ndarray:
    """A predicted label (relevance - 1) / 2 as relevance on the raters' 1-3 scale, clipped to it."""
    return 1.0 + 2.0 * np.clip(label, 0.0, 1.0)


@dataclass(frozen=True)
class RelevanceModel:
    weights: tuple[float, ...]  # one per feature, on the label scale (relevance - 1) / 2
    intercept: float
    embedder: str  # fingerprint of the model whose cosines it was fitted on
    bm25: tuple[float, float, int]  # k1, b and keyword text version (searchkit.data.text) of the BM25 it was fitted on
    reranker: str  # fingerprint of the cross-encoder (weights and settings) it was fitted on
    fitted_on: str = ""  # which pairs, in words
    features: tuple[str, ...] = FEATURES  # FEATURES, then GRADER when fitted with a grader
    # the embedder's text settings (searchkit.data.text.TextConfig) its cosines were fitted on: the same weights read
    # "ceil fan" and "ceiling fans" differently, and the fingerprint covers weights only. Fits made before this was
    # recorded were all made on the default settings.
    embedder_text: str = ""

    def __post_init__(self) -> None:
        if tuple(self.features) not in (FEATURES, feature_names(True)) or len(self.weights) != len(self.features):
            raise ModelError(f"relevance model: expected weights for {list(FEATURES)} (and {GRADER!r}), got "
                             f"{len(self.weights)} for {list(self.features)}")
        if not all(np.isfinite(self.weights)) or not np.isfinite(self.intercept):
            raise ModelError("relevance model: weights must be finite numbers")

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Relevance on the 1-3 scale for rows of its features (clipped to that scale)."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != len(self.features):
            raise ModelError(f"relevance model: fitted on {len(self.features)} features, given rows of shape "
                             f"{rows.shape}")
        return on_scale(rows @ np.asarray(self.weights) + self.intercept)

    def mismatch(self, embedder: str, bm25: tuple[float, float, int], reranker: str,
                 embedder_text: str | None = None) -> str | None:
        """Why this fit does not belong to an index with these parts, or None when it does (embedder_text: see
        text_key; None skips that check)."""
        if embedder != self.embedder:
            return f"it was fitted on embedder {self.embedder[:12]}, the index has {embedder[:12]}"
        fitted_text = self.embedder_text or text_key(TextConfig())
        if embedder_text is not None and embedder_text != fitted_text:
            return f"it was fitted on the embedder reading text as {fitted_text}, the index has it read {embedder_text}"
        if tuple(map(float, bm25[:2])) != tuple(map(float, self.bm25[:2])):
            return f"it was fitted on BM25 k1/b {tuple(self.bm25[:2])}, the index uses {tuple(bm25[:2])}"
        if int(bm25[2]) != int(self.bm25[2]):
            return f"it was fitted on keyword text version {self.bm25[2]}, the index has version {bm25[2]}"
        if reranker != self.reranker:
            return f"it was fitted on reranker {self.reranker[:12]}, the index has {reranker[:12]}"
        return None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["weights"] = dict(zip(self.features, self.weights, strict=True))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RelevanceModel:
        try:
            weights = data["weights"]
            known = {frozenset(names): names for names in (FEATURES, feature_names(True))}
            names = known.get(frozenset(weights), tuple(weights))  # JSON may hold them sorted
            return cls(weights=tuple(float(weights[f]) for f in names), intercept=float(data["intercept"]),
                       embedder=str(data["embedder"]),
                       bm25=(float(data["bm25"][0]), float(data["bm25"][1]), int((*data["bm25"], 1)[2])),
                       reranker=str(data["reranker"]), fitted_on=str(data.get("fitted_on", "")), features=names,
                       embedder_text=str(data.get("embedder_text", "")))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ModelError(f"relevance model: unreadable ({exc!r})") from exc


def text_key(text: TextConfig) -> str:
    """An embedder's text settings as one comparable string, e.g. '{"brand_token": true, ..., "stem": false}'."""
    return json.dumps(text.to_dict(), sort_keys=True)


def fit(rows: np.ndarray, relevance: np.ndarray) -> tuple[tuple[float, ...], float]:
    """Least-squares weights and intercept predicting (relevance - 1) / 2 from rows of features."""
    x = np.asarray(rows, dtype=np.float64)
    y = (np.asarray(relevance, dtype=np.float64) - 1.0) / 2.0
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"fit needs rows of features and one label per row, got {x.shape}, {y.shape}")
    if len(x) <= x.shape[1]:
        raise ValueError(f"fit needs more than {x.shape[1]} rated pairs, got {len(x)}")
    solution, *_ = np.linalg.lstsq(np.hstack([x, np.ones((len(x), 1))]), y, rcond=None)
    return tuple(float(w) for w in solution[:-1]), float(solution[-1])


def cross_validated(rows: np.ndarray, relevance: np.ndarray, groups: np.ndarray, folds: int = 5,
                    seed: int = 0) -> np.ndarray:
    """Out-of-fold estimates (1-3 scale): each query's pairs predicted by a fit on the other folds' queries, so a
    fit's quality can be reported on the pairs it was fitted on without flattering it."""
    names = np.array(sorted(set(groups.tolist())), dtype=object)
    if len(names) < folds:
        raise ValueError(f"cross-validation needs at least {folds} queries, got {len(names)}")
    fold_of = dict(zip(names[np.random.default_rng(seed).permutation(len(names))], np.arange(len(names)) % folds,
                       strict=True))
    fold = np.array([fold_of[g] for g in groups])
    out = np.zeros(len(rows))
    for k in range(folds):
        weights, intercept = fit(rows[fold != k], relevance[fold != k])
        out[fold == k] = on_scale(rows[fold == k] @ np.asarray(weights) + intercept)
    return out
