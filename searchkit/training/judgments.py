"""Search logs into graded judgments (`searchkit judgments`): how relevant each shown product is to each query, with the
position bias taken out, on the raters' 1-3 scale, so training and evaluation read a shop's logs as they read rated
pairs.

Products shown on top are clicked because they are on top. A position-based click model (PBM; Craswell et al. 2008,
fitted by expectation-maximisation as in Chuklin, Markov and de Rijke's "Click Models for Web Search") separates the
two: P(click) = attraction(query, product) x examination(position). Purchases and carts say more than clicks: an
impression counts a click, an add to cart or a purchase as WEIGHTS of a click (capped at one). A pair's attraction
becomes a grade by ranking: within the log, a pair at the top of the attraction distribution gets 3, at the bottom 1
(`relevance = 1 + 2 x percentile rank`), and its confidence grows with its impressions.

Reads the server's log folder (searchkit.data.logs) and a shop's own impression files: one row per product shown, with
columns query, product_id, position (1-based), clicked (0/1), and optionally query_id, added_to_cart, purchased.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.catalog import read_table, require_parquet
from ..data.logs import read_records
from ..errors import CatalogError

WEIGHTS = {"click": 1.0, "add_to_cart": 1.0, "purchase": 1.0}  # each makes the impression a "click" (capped at 1)
IMPRESSION_COLUMNS = ("query", "product_id", "position", "clicked")
MAX_POSITION = 50  # positions past this share one examination estimate


@dataclass(frozen=True)
class JudgmentConfig:
    min_impressions: int = 3  # pairs shown fewer times are left out
    iterations: int = 50  # EM steps
    prior: float = 1.0  # pseudo-impressions of the average attraction, so one lucky click does not grade 3


def impressions_from_logs(folder: str | Path) -> pd.DataFrame:
    """A server's log folder as impression rows: query (as typed), product_id, position, clicked, plus query_id,
    added_to_cart, purchased."""
    searches = read_records(folder, "searches")
    if not searches:
        raise CatalogError(f"{folder}: no searches logged there")
    events: dict[tuple[str, str], set[str]] = {}
    for event in read_records(folder, "events"):
        events.setdefault((event["query_id"], event["product_id"]), set()).add(event["type"])
    rows = []
    for search in searches:
        for position, product in enumerate(search["shown"], start=int(search.get("offset", 0)) + 1):
            kinds = events.get((search["query_id"], product), set())
            rows.append((search["query"], product, position, int("click" in kinds or bool(kinds)),
                         search["query_id"], int("add_to_cart" in kinds), int("purchase" in kinds)))
    return pd.DataFrame(rows, columns=[*IMPRESSION_COLUMNS, "query_id", "added_to_cart", "purchased"])


def impressions_from_file(path: str | Path, names: dict[str, str] | None = None) -> pd.DataFrame:
    """A shop's own impressions file (CSV or parquet), its columns renamed by `names` (field -> the file's column)."""
    frame = read_table(path)
    renames = {v: k for k, v in (names or {}).items()}
    frame = frame.rename(columns=renames)
    missing = [c for c in IMPRESSION_COLUMNS if c not in frame.columns]
    if missing:
        raise CatalogError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}; name yours with "
                           "--columns query=...,product_id=...,position=...,clicked=...")
    out = frame.copy()
    for column in ("position", "clicked", "added_to_cart", "purchased"):
        if column not in out.columns:
            out[column] = 0
        values = pd.to_numeric(out[column], errors="coerce")
        bad = values.isna() | (values < (1 if column == "position" else 0))
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise CatalogError(f"{path}: column {column!r} holds {out[column].iloc[row]!r} at data row {row + 1}; "
                               f"give {'a position from 1' if column == 'position' else '0 or 1'}")
        out[column] = values.astype(int)
    out["query"] = out["query"].astype(str).str.strip()
    out["product_id"] = out["product_id"].astype(str).str.strip()
    return out


def read_impressions(paths: list[str | Path], names: dict[str, str] | None = None) -> pd.DataFrame:
    frames = [impressions_from_logs(p) if Path(p).is_dir() else impressions_from_file(p, names) for p in paths]
    return pd.concat(frames, ignore_index=True)


def position_based_model(frame: pd.DataFrame, config: JudgmentConfig = JudgmentConfig()
                         ) -> tuple[pd.DataFrame, np.ndarray]:
    """Fit a PBM by EM: each (query, product)'s attraction and each position's examination probability. Returns the
    pairs (query, product_id, impressions, clicks, attraction) and the examination by position (index 0 = position 1)."""
    clicked = frame["clicked"].to_numpy().astype(bool)
    for column in ("added_to_cart", "purchased"):  # a cart or a purchase without a logged click is a click too
        if column in frame.columns:
            clicked |= frame[column].to_numpy() > 0
    keys = frame["query"].str.lower().str.split().str.join(" ") + "\t" + frame["product_id"]
    pair, pairs = pd.factorize(keys)
    position = np.minimum(frame["position"].to_numpy(), MAX_POSITION) - 1
    n_pairs, n_pos = len(pairs), MAX_POSITION
    attraction = np.full(n_pairs, 0.2)
    examination = 1.0 / (1.0 + np.arange(n_pos))
    shown = np.bincount(pair, minlength=n_pairs).astype(float)
    mean = clicked.mean() if len(clicked) else 0.0
    for _ in range(config.iterations):
        a, e = attraction[pair], examination[position]
        # not clicked: was it attractive but unexamined, or examined and unattractive?
        p_attr = np.where(clicked, 1.0, a * (1 - e) / np.maximum(1 - a * e, 1e-12))
        p_exam = np.where(clicked, 1.0, e * (1 - a) / np.maximum(1 - a * e, 1e-12))
        attraction = (np.bincount(pair, weights=p_attr, minlength=n_pairs) + config.prior * mean) / (
            shown + config.prior)
        examination = np.bincount(position, weights=p_exam, minlength=n_pos) / np.maximum(
            np.bincount(position, minlength=n_pos), 1)
        examination = np.where(np.bincount(position, minlength=n_pos) > 0, examination, 0.0)
        top = examination.max()
        if top > 0:  # the scale is shared between the two factors: the first position is examined
            attraction, examination = np.clip(attraction * top, 0, 1), examination / top
    split = pd.Series(pairs).str.split("\t", n=1, expand=True)
    out = pd.DataFrame({"query": split[0], "product_id": split[1], "impressions": shown.astype(int),
                        "clicks": np.bincount(pair, weights=clicked.astype(float), minlength=n_pairs).astype(int),
                        "attraction": attraction})
    return out, examination


def cascade_model(frame: pd.DataFrame) -> pd.Series:
    """The cascade model's attraction of each (query, product) (Craswell et al. 2008): a shopper reads down the list
    and stops at the first click, so the products at or above a search's first click were examined and the others were
    not; attraction = clicks / times examined. Keyed like position_based_model's pairs ("query\tproduct_id"). Needs
    query_id to tell one search's rows from another's."""
    if "query_id" not in frame.columns:
        raise CatalogError("the cascade model needs each search's rows (a query_id column)")
    clicked = frame["clicked"].to_numpy() > 0
    first = frame.assign(c=np.where(clicked, frame["position"], np.iinfo(np.int64).max)).groupby("query_id")["c"]
    examined = frame["position"].to_numpy() <= first.transform("min").to_numpy()
    key = frame["query"].str.lower().str.split().str.join(" ") + "\t" + frame["product_id"]
    seen = pd.Series(examined.astype(float)).groupby(key.to_numpy()).sum()
    hits = pd.Series((clicked & examined).astype(float)).groupby(key.to_numpy()).sum()
    return (hits / seen.where(seen > 0)).fillna(0.0)


def judgments(frame: pd.DataFrame, config: JudgmentConfig = JudgmentConfig()) -> pd.DataFrame:
    """Graded pairs from impressions: query, product_id, relevance (1..3), impressions, clicks, confidence,
    attraction, ctr; pairs with fewer than config.min_impressions impressions left out."""
    if frame.empty:
        raise CatalogError("no impressions to judge")
    pairs, _ = position_based_model(frame, config)
    pairs = pairs[pairs["impressions"] >= config.min_impressions].reset_index(drop=True)
    if pairs.empty:
        raise CatalogError(f"no (query, product) pair was shown {config.min_impressions} times or more; lower "
                           "--min-impressions or log longer")
    pairs["relevance"] = (1.0 + 2.0 * pairs["attraction"].rank(pct=True, method="average")).round(4)
    pairs["confidence"] = (1.0 - 1.0 / np.sqrt(pairs["impressions"])).round(4)
    pairs["ctr"] = (pairs["clicks"] / pairs["impressions"]).round(4)
    pairs["attraction"] = pairs["attraction"].round(6)
    return pairs[["query", "product_id", "relevance", "impressions", "clicks", "confidence", "attraction", "ctr"]]


def write_judgments(pairs: pd.DataFrame, out: str | Path) -> Path:
    """CSV or parquet by the file's extension, written to a temporary sibling and renamed into place."""
    import os
    import uuid

    out = Path(out)
    if out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise CatalogError(f"{out}: write judgments to a .csv or .parquet file")
    if out.suffix.lower() != ".csv":
        require_parquet(out, "writing")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}"
    try:
        if out.suffix.lower() == ".csv":
            pairs.to_csv(tmp, index=False)
        else:
            pairs.to_parquet(tmp, index=False)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
