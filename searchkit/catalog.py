"""Read and validate catalogs and rated pairs (parquet or CSV) into frames with the canonical column names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import CatalogError

PRODUCT_COLUMNS = ("product_id", "title", "brand", "color", "description")
REQUIRED_PRODUCT_COLUMNS = ("product_id", "title")
PAIR_COLUMNS = ("query", "product_id", "relevance")


@dataclass(frozen=True)
class ColumnMap:
    """Which column of the user's file holds each canonical field (`searchkit build-index --id-column sku`)."""

    product_id: str = "product_id"
    title: str = "title"
    brand: str = "brand"
    color: str = "color"
    description: str = "description"

    def source(self, canonical: str) -> str:
        return getattr(self, canonical)


def read_table(path: str | Path) -> pd.DataFrame:
    """A parquet or CSV file as a frame of strings (ids stay '00123', not 123), or a CatalogError saying why not."""
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".tsv", ".txt"):
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
        else:
            raise CatalogError(f"{path}: unknown file type {suffix!r}; use .parquet or .csv")
    except CatalogError:
        raise
    except Exception as exc:  # pyarrow / pandas raise many types for a bad file
        raise CatalogError(f"{path}: not a readable {suffix.lstrip('.')} table ({type(exc).__name__}: {exc})") from exc
    if frame.shape[1] == 0:
        raise CatalogError(f"{path}: no columns")
    return frame


def _text_column(frame: pd.DataFrame, column: str) -> pd.Series:
    values = frame[column]
    return values.where(values.notna(), "").astype(str).str.strip()


def _first_bad(path: Path, frame: pd.DataFrame, mask: pd.Series, what: str) -> CatalogError:
    rows = [int(i) for i in mask.to_numpy().nonzero()[0][:5]]
    return CatalogError(f"{path}: {int(mask.sum())} row(s) with {what}, first at data row(s) {[r + 1 for r in rows]}")


def read_catalog(path: str | Path, columns: ColumnMap = ColumnMap()) -> pd.DataFrame:
    """Products with columns product_id, title, brand, color, description (all str, '' where unknown)."""
    path = Path(path)
    frame = read_table(path)
    missing = [columns.source(c) for c in REQUIRED_PRODUCT_COLUMNS if columns.source(c) not in frame.columns]
    if missing:
        raise CatalogError(f"{path}: missing required column(s) {missing}; found {list(frame.columns)}")
    out = pd.DataFrame(index=range(len(frame)))
    for canonical in PRODUCT_COLUMNS:
        source = columns.source(canonical)
        out[canonical] = _text_column(frame, source).to_numpy() if source in frame.columns else ""
    extra = [c for c in frame.columns if c not in {columns.source(x) for x in PRODUCT_COLUMNS}]
    for column in extra:  # other catalog columns ride along (for display and filters)
        out[column] = frame[column].to_numpy()
    if len(out) == 0:
        raise CatalogError(f"{path}: the catalog has no rows")
    ids, titles = out["product_id"], out["title"]
    if (ids == "").any():
        raise _first_bad(path, out, ids == "", f"an empty {columns.product_id!r}")
    dupes = ids.duplicated(keep=False)
    if dupes.any():
        examples = sorted(set(ids[dupes]))[:3]
        raise _first_bad(path, out, ids.duplicated(), f"a duplicate {columns.product_id!r} (e.g. {examples})")
    if (titles == "").any():
        raise _first_bad(path, out, titles == "", f"an empty {columns.title!r}")
    return out


def read_pairs(path: str | Path) -> pd.DataFrame:
    """Rated query-product pairs: query (str), product_id (str), relevance (float)."""
    path = Path(path)
    frame = read_table(path)
    missing = [c for c in PAIR_COLUMNS if c not in frame.columns]
    if missing:
        raise CatalogError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    out = pd.DataFrame({"query": _text_column(frame, "query"), "product_id": _text_column(frame, "product_id")})
    relevance = pd.to_numeric(frame["relevance"], errors="coerce")
    if relevance.isna().any():
        raise _first_bad(path, out, relevance.isna(), "a non-numeric 'relevance'")
    out["relevance"] = relevance.astype("float64").to_numpy()
    if (out["query"] == "").any():
        raise _first_bad(path, out, out["query"] == "", "an empty 'query'")
    return out
