"""Filters on catalog columns and facet counts; pandas/numpy (imported when a filter is used), no model code.

    {"brand": "kohler"}                       equality (text compared as words: "Hampton-Bay" == "hampton bay")
    {"color": ["white", "biscuit"]}           any of a list
    {"price": {"min": 10, "max": 50}}         numeric range (either bound optional), numeric columns only
    {"price": 19.99}                          numeric equality
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import QueryError
from .text import slug

if TYPE_CHECKING:
    import pandas as pd

Filters = dict[str, Any]


def _numeric(column: pd.Series) -> pd.Series | None:
    import pandas as pd

    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.astype("float64")
    return None


def _as_number(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise QueryError(f"filter {name!r}: {value!r} is not a number (the column is numeric)") from None


def _column_mask(name: str, column: pd.Series, wanted: Any) -> np.ndarray:
    numbers = _numeric(column)
    if isinstance(wanted, dict):
        unknown = set(wanted) - {"min", "max"}
        if unknown or not wanted:
            raise QueryError(f"filter {name!r}: a range takes 'min' and/or 'max', not {sorted(unknown)}")
        if numbers is None:
            raise QueryError(f"filter {name!r}: ranges need a numeric column; {name!r} holds text")
        mask = numbers.notna().to_numpy().copy()
        if "min" in wanted:
            mask &= (numbers >= _as_number(name, wanted["min"])).to_numpy()
        if "max" in wanted:
            mask &= (numbers <= _as_number(name, wanted["max"])).to_numpy()
        return mask
    values = list(wanted) if isinstance(wanted, (list, tuple, set, frozenset)) else [wanted]
    if not values:
        raise QueryError(f"filter {name!r}: an empty list matches nothing")
    if numbers is not None:
        return numbers.isin([_as_number(name, v) for v in values]).to_numpy()
    keys = {slug(str(v)) for v in values}
    return column.map(lambda v: slug(None if v is None else str(v)) in keys).to_numpy(dtype=bool)


def filter_mask(products: pd.DataFrame, filters: Filters) -> np.ndarray:
    """Rows that pass every filter (filters on different columns combine with AND)."""
    mask = np.ones(len(products), dtype=bool)
    for name, wanted in filters.items():
        if name not in products.columns:
            raise QueryError(f"unknown filter column {name!r}; the catalog has {sorted(products.columns)}")
        mask &= _column_mask(name, products[name], wanted)
    return mask


def parse_filter(expression: str) -> tuple[str, Any]:
    """CLI/HTTP syntax: 'brand=kohler', 'color=white,biscuit', 'price=10..50', 'price=..50'."""
    name, sep, value = expression.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise QueryError(f"filter {expression!r}: write COLUMN=VALUE (e.g. brand=kohler)")
    name, value = name.strip(), value.strip()
    if ".." in value:
        low, _, high = value.partition("..")
        bounds = {k: v for k, v in (("min", low.strip()), ("max", high.strip())) if v}
        if not bounds:
            raise QueryError(f"filter {expression!r}: a range needs at least one bound (e.g. price=10..50)")
        return name, {k: _as_number(name, v) for k, v in bounds.items()}
    parts = [p.strip() for p in value.split(",") if p.strip()]
    return name, parts if len(parts) > 1 else parts[0]


def merge_filters(expressions: list[str]) -> Filters:
    filters: Filters = {}
    for expression in expressions:
        name, value = parse_filter(expression)
        if name in filters:
            raise QueryError(f"filter column {name!r} given twice; list values instead ({name}=a,b)")
        filters[name] = value
    return filters


def facet_counts(products: pd.DataFrame, columns: tuple[str, ...]) -> dict[str, list[tuple[str, int]]]:
    out = {}
    for column in columns:
        if column in products.columns:
            counts = Counter(str(v) for v in products[column] if v is not None and str(v).strip())
            out[column] = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return out
