"""The indexed products as a column store of numpy arrays: single records read fast, ids mapped to rows, memory-mapped
by every server worker alike, and pandas only on demand. Neither reading nor writing needs pyarrow.

On disk (a folder the index layout names): `columns.json` (the row count, each column's name and kind) and, per
column number i, `i-values.npy` (numbers and flags), or `i-offsets.npy` and `i-data.npy` (text: the UTF-8 bytes of
every value end to end and where each starts; for a column of few distinct values, each distinct value once and
`i-codes.npy` each row's), plus `i-nulls.npy` where a column has missing values.

Kinds: "text" (str), "float", "int", "bool", and "json" for any other value (lists, dates, mixed columns: each kept as
its JSON text and read back as what JSON makes of it, so dates come back as ISO text).
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..arrays import load_npy
from ..errors import IndexFormatError, QueryError

COLUMNS_FILE = "columns.json"
KINDS = ("text", "float", "int", "bool", "json")
PARTS = ("values", "offsets", "data", "nulls", "codes")  # a column's arrays, each a file i-<part>.npy
NUMERIC = ("float", "int")


def plain(value: Any) -> Any:
    """A table value as plain Python (NaN as None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (datetime.date, datetime.datetime, datetime.time)):
        return value.isoformat()
    return str(value)


@dataclass(frozen=True)
class Column:
    """One stored column: `values` (numbers or flags) or `offsets` + `data` (text), and `nulls` where any are missing.
    A text column of few distinct values (brands, colours) is stored as a dictionary: `offsets` + `data` hold each
    distinct value once and `codes` each row's, so that a filter reads it without a pass over every row."""

    kind: str
    values: np.ndarray | None = None
    offsets: np.ndarray | None = None
    data: bytes | memoryview | None = None  # bytes, or a view of the memory-mapped file: sliced fast, one value a read
    nulls: np.ndarray | None = None
    codes: np.ndarray | None = None

    def __len__(self) -> int:
        if self.codes is not None:
            return len(self.codes)
        return len(self.offsets) - 1 if self.offsets is not None else len(self.values)  # type: ignore[arg-type]

    def _text(self, i: int) -> str:
        assert self.data is not None and self.offsets is not None
        return str(self.data[self.offsets[i]:self.offsets[i + 1]], "utf-8")

    @cached_property
    def dictionary(self) -> list[str]:
        """A dictionary column's distinct values, decoded once."""
        assert self.codes is not None
        return self._texts()

    def _texts(self) -> list[str]:
        assert self.data is not None and self.offsets is not None
        blob, ends = bytes(self.data), self.offsets.tolist()
        return [blob[a:b].decode("utf-8") for a, b in zip(ends[:-1], ends[1:])]

    def get(self, row: int) -> Any:
        if self.nulls is not None and self.nulls[row]:
            return None
        if self.offsets is not None:
            text = self.dictionary[self.codes[row]] if self.codes is not None else self._text(row)
            return json.loads(text) if self.kind == "json" else text
        assert self.values is not None
        return plain(self.values[row])

    def factorized(self) -> tuple[list[Any], np.ndarray]:
        """The column's distinct values (None for missing) in order of first appearance, and each row's number in
        that list: what a filter reads a column as."""
        if self.codes is not None and self.kind == "text":
            numbers = np.asarray(self.codes, dtype=np.int64)
            if self.nulls is None:
                return list(self.dictionary), numbers
            return list(self.dictionary) + [None], np.where(self.nulls, len(self.dictionary), numbers)
        return factorize(self.to_list())

    def to_list(self) -> list[Any]:
        if self.offsets is None:
            assert self.values is not None
            out = [plain(v) for v in self.values.tolist()]
        elif self.codes is not None:
            dictionary = self.dictionary
            out = [dictionary[c] for c in self.codes.tolist()]
        else:
            out = self._texts()
        if self.nulls is not None:
            out = [None if null else v for v, null in zip(out, self.nulls.tolist())]
        if self.kind == "json":
            out = [None if v is None else json.loads(v) for v in out]
        return out

    def numbers(self) -> np.ndarray:
        """A numeric column as float64, missing values as NaN."""
        assert self.values is not None and self.kind in NUMERIC
        numbers = self.values.astype(np.float64)
        if self.nulls is not None:
            numbers[self.nulls] = np.nan
        return numbers


def factorize(values: list[Any]) -> tuple[list[Any], np.ndarray]:
    """The distinct values (hashable) in order of first appearance, and each value's number in that list."""
    first: dict[Any, int] = {}
    numbers = np.fromiter((first.setdefault(v, len(first)) for v in values), dtype=np.int64, count=len(values))
    return list(first), numbers


DICTIONARY_SHARE = 0.5  # a text column with at most this share of distinct values is stored as a dictionary


def _text_column(kind: str, texts: list[str | None]) -> Column:
    nulls = np.array([t is None for t in texts], dtype=bool)
    first: dict[str, int] = {}
    codes = [first.setdefault(t, len(first)) if t is not None else 0 for t in texts]
    dictionary = len(first) <= DICTIONARY_SHARE * len(texts)
    encoded = [t.encode("utf-8") for t in first] if dictionary else [b"" if t is None else t.encode("utf-8")
                                                                      for t in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return Column(kind, offsets=offsets, data=b"".join(encoded), nulls=nulls if nulls.any() else None,
                  codes=np.array(codes, dtype=np.int32) if dictionary else None)


def column_of(values: Any) -> Column:
    """A pandas Series (or any sequence) as a stored column, its kind read from its dtype and values."""
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    nulls = series.isna().to_numpy(dtype=bool)
    some_null = nulls if nulls.any() else None
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return Column("bool", values=series.fillna(False).to_numpy(dtype=bool), nulls=some_null)
    if pd.api.types.is_integer_dtype(dtype):
        return Column("int", values=series.fillna(0).to_numpy(dtype=np.int64), nulls=some_null)
    if pd.api.types.is_float_dtype(dtype):
        return Column("float", values=series.to_numpy(dtype=np.float64, na_value=np.nan))
    objects = series.astype(object).tolist()
    present = [v for v, null in zip(objects, nulls.tolist()) if not null]
    if all(isinstance(v, str) for v in present):
        return _text_column("text", [None if null else v for v, null in zip(objects, nulls.tolist())])
    if present and all(isinstance(v, (bool, np.bool_)) for v in present):
        return Column("bool", values=np.array([bool(v) if not null else False for v, null
                                               in zip(objects, nulls.tolist())]), nulls=some_null)
    return _text_column("json", [None if null else json.dumps(v, default=_jsonable, ensure_ascii=False)
                                 for v, null in zip(objects, nulls.tolist())])


class ProductTable:
    """The catalog as indexed: named columns of equal length, one of them `product_id`."""

    def __init__(self, columns: dict[str, Column]):
        lengths = {len(c) for c in columns.values()}
        if len(lengths) > 1:
            raise IndexFormatError(f"product columns of different lengths {sorted(lengths)}")
        self.columns = columns
        self.num_rows = lengths.pop() if lengths else 0

    @classmethod
    def of(cls, products: Any) -> ProductTable:
        """A ProductTable as it is, or one made from a pandas DataFrame (or anything with to_pandas())."""
        if isinstance(products, ProductTable):
            return products
        if hasattr(products, "to_pandas") and not hasattr(products, "iloc"):
            products = products.to_pandas()
        frame = products.reset_index(drop=True)
        return cls({str(name): column_of(frame[name]) for name in frame.columns})

    @classmethod
    def read_parquet(cls, path: Path) -> ProductTable | None:
        """A parquet file's products (index format 2) through pyarrow; None where pyarrow is not installed."""
        try:
            import pyarrow.parquet as pq
        except ImportError:
            return None
        try:
            return cls.of(pq.ParquetFile(path).read())
        except Exception as exc:  # pyarrow raises many types for a bad file
            raise IndexFormatError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from exc

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)

    def __len__(self) -> int:
        return self.num_rows

    def kind(self, name: str) -> str:
        return self.columns[name].kind

    def values(self, name: str) -> list[Any]:
        """A column as plain Python values (missing: None)."""
        return self.columns[name].to_list()

    def to_pandas(self) -> Any:
        """The catalog as a pandas DataFrame: text as str, numbers as float or int, missing as NaN or None."""
        import pandas as pd

        data: dict[str, Any] = {}
        for name, column in self.columns.items():
            if column.kind == "float":
                data[name] = pd.Series(np.array(column.values, dtype=np.float64), dtype="float64")
            elif column.kind in ("int", "bool"):
                values = pd.Series(np.array(column.values), dtype="Int64" if column.kind == "int" else "boolean")
                data[name] = values.mask(column.nulls) if column.nulls is not None else values.astype(
                    np.int64 if column.kind == "int" else bool)
            else:
                data[name] = pd.Series(column.to_list(), dtype=object)
        return pd.DataFrame(data, index=pd.RangeIndex(self.num_rows))

    @cached_property
    def frame(self) -> Any:
        """The catalog as a pandas DataFrame (built on first use: evaluation, exports)."""
        return self.to_pandas()

    @cached_property
    def row_of(self) -> dict[str, int]:
        return {str(pid): i for i, pid in enumerate(self.values("product_id"))}

    def records(self, rows: list[int]) -> list[dict[str, Any]]:
        columns = list(self.columns.items())
        return [{name: column.get(int(r)) for name, column in columns} for r in rows]

    def rows_of_ids(self, product_ids: list[str]) -> np.ndarray:
        missing = [p for p in product_ids if str(p) not in self.row_of]
        if missing:
            raise QueryError(f"unknown product id(s): {missing[:5]}")
        return np.array([self.row_of[str(p)] for p in product_ids], dtype=np.int64)

    def product(self, product_id: str) -> dict[str, Any]:
        row = self.row_of.get(str(product_id))
        if row is None:
            raise QueryError(f"unknown product id {product_id!r}")
        return self.records([row])[0]

    def save(self, folder: Path) -> None:
        """Into the empty or new folder `folder` (the caller stages and swaps it)."""
        folder.mkdir(parents=True, exist_ok=True)
        spec = []
        for i, (name, column) in enumerate(self.columns.items()):
            spec.append({"name": name, "kind": column.kind})
            for part in PARTS:
                array = getattr(column, part)
                if part == "data" and array is not None:
                    array = np.frombuffer(array, dtype=np.uint8)
                if array is not None:
                    np.save(folder / f"{i}-{part}.npy", np.ascontiguousarray(array), allow_pickle=False)
        (folder / COLUMNS_FILE).write_text(json.dumps({"rows": self.num_rows, "columns": spec}, ensure_ascii=False))

    @classmethod
    def load(cls, folder: Path, mmap: bool = True) -> ProductTable:
        """From `folder`, its arrays memory-mapped (read-only, shared between processes) unless mmap=False."""
        try:
            spec = json.loads((folder / COLUMNS_FILE).read_text())
            columns = {}
            for i, entry in enumerate(spec["columns"]):
                if entry["kind"] not in KINDS:
                    raise ValueError(f"column {entry['name']!r} of unknown kind {entry['kind']!r}")
                parts: dict[str, Any] = {
                    part: load_npy(folder / f"{i}-{part}.npy", mmap)
                    for part in PARTS if (folder / f"{i}-{part}.npy").is_file()}
                if "data" in parts:  # text: bytes, or a view of the mapped file: both slice faster than numpy arrays
                    parts["data"] = memoryview(parts["data"]) if mmap else parts["data"].tobytes()
                columns[str(entry["name"])] = Column(entry["kind"], **parts)
            table = cls(columns)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexFormatError(f"{folder}: unreadable products ({type(exc).__name__}: {exc})") from exc
        if table.num_rows != int(spec["rows"]):
            raise IndexFormatError(f"{folder}: {table.num_rows} rows in the columns, {spec['rows']} in {COLUMNS_FILE}")
        return table

    def files(self) -> list[str]:
        """The names save() writes: columns.json and each column's arrays (the index's manifest lists what its folder
        holds)."""
        names = [COLUMNS_FILE]
        for i, column in enumerate(self.columns.values()):
            names += [f"{i}-{part}.npy" for part in PARTS if getattr(column, part) is not None]
        return names
