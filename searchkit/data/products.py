"""The indexed products as a pyarrow table: single records read fast, ids mapped to rows, pandas only on demand."""

from __future__ import annotations

import math
from functools import cached_property
from typing import Any

import numpy as np

from ..errors import QueryError


def plain(value: Any) -> Any:
    """A table value as plain Python (NaN as None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def as_table(products: Any) -> Any:
    """A pyarrow Table of the products, from a Table or a pandas DataFrame."""
    import pyarrow as pa

    if isinstance(products, pa.Table):
        return products
    return pa.Table.from_pandas(products.reset_index(drop=True), preserve_index=False)


class ProductTable:
    def __init__(self, products: Any):
        self.table = as_table(products)

    def __len__(self) -> int:
        return self.table.num_rows

    @cached_property
    def frame(self) -> Any:
        """The catalog as a pandas DataFrame (built on first use: filters, facets, evaluation)."""
        return self.table.to_pandas()

    @cached_property
    def row_of(self) -> dict[str, int]:
        return {str(pid): i for i, pid in enumerate(self.table.column("product_id").to_pylist())}

    @cached_property
    def _columns(self) -> list[tuple[str, Any]]:
        """(name, contiguous arrow array) per product column, for reading single rows."""
        table = self.table.combine_chunks()
        return [(name, table.column(name).chunk(0) if table.column(name).num_chunks == 1
                 else table.column(name).combine_chunks()) for name in table.column_names]

    def records(self, rows: list[int]) -> list[dict[str, Any]]:
        # scalar reads from whole-column arrays, faster than a one-row slice per row, and not Table.take, which loads
        # pyarrow.compute and so pandas on a cold start (docs/design-notes.md)
        columns = self._columns
        return [{name: array[int(r)].as_py() for name, array in columns} for r in rows]

    def rows_of_ids(self, product_ids: list[str]) -> np.ndarray:
        missing = [p for p in product_ids if str(p) not in self.row_of]
        if missing:
            raise QueryError(f"unknown product id(s): {missing[:5]}")
        return np.array([self.row_of[str(p)] for p in product_ids], dtype=np.int64)

    def product(self, product_id: str) -> dict[str, Any]:
        row = self.row_of.get(str(product_id))
        if row is None:
            raise QueryError(f"unknown product id {product_id!r}")
        return {k: plain(v) for k, v in self.records([row])[0].items()}
