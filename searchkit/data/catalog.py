"""Read and validate catalogs and rated pairs (parquet or CSV) into frames with the canonical column names."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from ..checksums import update_with_file
from ..errors import CatalogError

PRODUCT_COLUMNS = ("product_id", "title", "brand", "color", "description")
REQUIRED_PRODUCT_COLUMNS = ("product_id", "title")
PAIR_COLUMNS = ("query", "product_id", "relevance")
SCALE = (1.0, 3.0)  # the relevance scale every metric and training label assumes (Home Depot's raters' 1..3)

# Names other shops' files use for each field, tried in order when the canonical column is absent (Home Depot's own
# Kaggle files say product_uid / product_title / search_term). Two of them in one file is ambiguous: refused.
PRODUCT_ALIASES = {
    "product_id": ("product_uid", "sku", "item_id", "asin", "id"),
    "title": ("product_title", "product_name", "name"),
    "brand": ("product_brand", "brand_name", "manufacturer"),
    "color": ("product_color", "colour", "product_colour"),
    "description": ("product_description",),
}
# a price under another name, read as "price" (which the search page, its price chips and `sort=price` read); two of
# them in one file ("list_price", "sale_price") are both kept under their own names unless --columns price=NAME picks
PRICE_ALIASES = ("sale_price", "unit_price", "list_price", "retail_price", "current_price", "price_usd", "price_eur",
                 "price_gbp")
PAIR_ALIASES = {
    "query": ("search_term", "search_query", "query_text", "keyword"),
    "product_id": ("product_uid", "sku", "item_id", "asin"),
    "relevance": ("label", "grade", "rating", "esci_label"),
}
# how a user names a field's column on the command line (searchkit.cli's --columns and --pairs-columns)
PRODUCT_OPTIONS = {"product_id": "--columns id=NAME", "title": "--columns title=NAME", "brand": "--columns brand=NAME",
                   "color": "--columns color=NAME", "description": "--columns description=NAME"}
PAIR_OPTIONS = {"query": "--pairs-columns query=NAME", "product_id": "--pairs-columns product_id=NAME",
                "relevance": "--pairs-columns relevance=NAME"}


@dataclass(frozen=True)
class ColumnMap:
    """Which column of the user's file holds each canonical field (`searchkit build-index --columns id=sku`)."""

    product_id: str = "product_id"
    title: str = "title"
    brand: str = "brand"
    color: str = "color"
    description: str = "description"
    # optional: the products' price, under this name or one of PRICE_ALIASES (None: no column is read as the price)
    price: str | None = "price"
    # a value a numeric column cannot read ("abc" among prices): "refuse" the file, naming the row, or store it as
    # "missing" (`--columns bad_numbers=missing`)
    bad_numbers: str = "refuse"

    def __post_init__(self) -> None:
        if self.bad_numbers not in ("refuse", "missing"):
            raise CatalogError(f"bad_numbers={self.bad_numbers!r}: use refuse or missing")

    def source(self, canonical: str) -> str:
        return getattr(self, canonical)


@dataclass(frozen=True)
class PairFormat:
    """How a file of rated pairs says query, product and grade (`searchkit evaluate --relevance-scale 0:2`).

    Columns left None are found by name: the canonical one, else one alias of PAIR_ALIASES. Numeric grades are mapped
    linearly from `scale` (the file's lowest and highest grade) onto 1..3; `labels` maps text grades (e.g. Exact=3)
    straight onto 1..3. A grade outside the scale, or a text grade with no label, is refused with its row."""

    query: str | None = None
    product_id: str | None = None
    relevance: str | None = None
    scale: tuple[float, float] = SCALE
    labels: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        low, high = self.scale
        if not low < high:
            raise CatalogError(f"relevance scale {low:g}:{high:g}: the lowest grade must be below the highest")
        for label, value in self.labels:
            if not SCALE[0] <= value <= SCALE[1]:
                raise CatalogError(f"label {label!r}={value:g}: labels map onto the 1..3 scale")

    def to_dict(self) -> dict:
        """For a model card (training data), read back by from_dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> PairFormat:
        return cls(query=data.get("query"), product_id=data.get("product_id"), relevance=data.get("relevance"),
                   scale=tuple(data.get("scale", SCALE)), labels=tuple((str(k), float(v))
                                                                       for k, v in data.get("labels", ())))


def parse_labels(text: str) -> tuple[tuple[str, float], ...]:
    """'Exact=3,Partial=2,Irrelevant=1' -> (('Exact', 3.0), ...), or a CatalogError naming the bad item."""
    out = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        label, sep, value = item.rpartition("=")
        try:
            if not sep or not label.strip():
                raise ValueError
            out.append((label.strip(), float(value)))
        except ValueError:
            raise CatalogError(f"label {item!r}: write LABEL=GRADE, e.g. Exact=3") from None
    return tuple(out)


def _find_column(path: Path, frame: pd.DataFrame, canonical: str, given: str | None,
                 aliases: Mapping[str, tuple[str, ...]], options: Mapping[str, str]) -> str | None:
    """The frame's column for a field: the one given, else the canonical name, else the single alias present."""
    if given is not None:
        return given if given in frame.columns else None
    if canonical in frame.columns:
        return canonical
    found = [a for a in aliases.get(canonical, ()) if a in frame.columns]
    if len(found) > 1:
        raise CatalogError(f"{path}: columns {found} could each be the {canonical!r}; name the one to use with "
                           f"{options[canonical]}")
    return found[0] if found else None


def catalog_files(path: str | Path) -> list[Path]:
    """The files of a catalog: the file itself, or a folder's parquet shards, or a glob's matches (sorted)."""
    path = Path(path)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in (".parquet", ".pq"))
    elif any(c in str(path) for c in "*?[") and not path.exists():
        found = sorted(p for p in path.parent.glob(path.name) if p.is_file())
    else:
        return [path]
    if not found:
        raise CatalogError(f"{path}: no parquet shards there")
    return found


def catalog_sha256(path: str | Path) -> str:
    """sha256 of a catalog's bytes: its file, or its shards' names and contents in order."""
    files = catalog_files(path)
    if len(files) == 1 and files[0] == Path(path):
        digest = hashlib.sha256()
        update_with_file(digest, files[0])
        return digest.hexdigest()
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        update_with_file(digest, file)
    return digest.hexdigest()


COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip")  # compressions pandas reads a CSV through, by extension


def file_type(path: str | Path) -> str:
    """A table file's type by its extension, under any compression: "x.csv.gz" -> ".csv"."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if len(suffixes) > 1 and suffixes[-1] in COMPRESSED:
        return suffixes[-2]
    return suffixes[-1] if suffixes else ""


def file_stem(path: str | Path) -> str:
    """A table file's name less its type and compression: "shop-products.csv.gz" -> "shop-products"."""
    name = Path(path).name
    for end in (file_type(path) + c for c in ("",) + COMPRESSED):
        if end and name.lower().endswith(end) and len(name) > len(end):
            return name[: -len(end)]
    return Path(path).stem


def require_parquet(path: Path, doing: str = "reading") -> None:
    """Parquet goes through pyarrow, which the base install leaves out (170 MB): without it, one line saying what
    to do."""
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise CatalogError(f"{path}: {doing} parquet needs pyarrow, which this install lacks: pip install "
                           "'searchkit[parquet]', or use CSV (.csv or .csv.gz)") from None


def _read_parquet(path: Path) -> pd.DataFrame:
    require_parquet(path)
    return pd.read_parquet(path, engine="pyarrow")


def read_table(path: str | Path) -> pd.DataFrame:
    """A parquet or CSV file (or a folder or glob of parquet shards, read in name order) as a frame of strings (ids
    stay '00123', not 123), or a CatalogError saying why not."""
    files = catalog_files(path)
    if len(files) > 1 or files[0] != Path(path):
        return pd.concat([read_table(f) for f in files], ignore_index=True)
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"{path}: no such file")
    suffix = file_type(path)
    try:
        if suffix in (".parquet", ".pq"):
            frame = _read_parquet(path)
        elif suffix in (".csv", ".tsv", ".txt"):
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
        else:
            raise CatalogError(f"{path}: unknown file type {suffix!r}; use .parquet or .csv (.csv.gz and other "
                               "compressed CSV too)")
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
    sources = {c: _find_column(path, frame, c, None if columns.source(c) == c else columns.source(c), PRODUCT_ALIASES,
                            PRODUCT_OPTIONS)
               for c in PRODUCT_COLUMNS}
    missing = [c for c in REQUIRED_PRODUCT_COLUMNS if sources[c] is None]
    if missing:
        raise CatalogError(f"{path}: missing required column(s) {[columns.source(c) for c in missing]}; found "
                           f"{list(frame.columns)}; name yours with " + ", ".join(PRODUCT_OPTIONS[c] for c in missing))
    out = pd.DataFrame(index=range(len(frame)))
    for canonical in PRODUCT_COLUMNS:
        source = sources[canonical]
        out[canonical] = _text_column(frame, source).to_numpy() if source is not None else ""
    extra = [c for c in frame.columns if c not in set(sources.values())]
    price = _price_column(path, frame, columns.price, set(extra))
    for column in extra:  # other catalog columns ride along (for display and filters), numbers as numbers
        name = "price" if column == price else column
        out[name] = as_numbers(frame[column], f"{path}: column {column!r}", columns.bad_numbers).to_numpy()
    if len(out) == 0:
        raise CatalogError(f"{path}: the catalog has no rows")
    ids, titles = out["product_id"], out["title"]
    if (ids == "").any():
        raise _first_bad(path, out, ids == "", f"an empty {sources['product_id']!r}")
    dupes = ids.duplicated(keep=False)
    if dupes.any():
        examples = sorted(set(ids[dupes]))[:3]
        raise _first_bad(path, out, ids.duplicated(), f"a duplicate {sources['product_id']!r} (e.g. {examples})")
    if (titles == "").any():
        raise _first_bad(path, out, titles == "", f"an empty {sources['title']!r}")
    out.attrs["sources"] = {c: s for c, s in {**sources, "price": price}.items() if s is not None}  # field -> column
    return out


def _price_column(path: Path, frame: pd.DataFrame, given: str | None, extra: set[str]) -> str | None:
    """The column to read as "price" when the file calls it otherwise: the one `--columns price=NAME` gives, else the
    one PRICE_ALIASES column present; None when the file has "price" itself, or no alias, or several, or given is
    None."""
    if given is None:
        return None
    if given != "price":
        if given not in extra:
            raise CatalogError(f"{path}: no column {given!r} to read as the price (--columns price={given}); found "
                               f"{list(frame.columns)}")
        if "price" in frame.columns:
            raise CatalogError(f"{path}: has a 'price' column already; --columns price={given} would hide it")
        return given
    if "price" in frame.columns:
        return None
    found = [a for a in PRICE_ALIASES if a in extra]
    return found[0] if len(found) == 1 else None


def as_numbers(column: pd.Series, where: str = "a column", bad: str = "refuse") -> pd.Series:
    """A text column of numbers as floats (empty: NaN), so a CSV's price filters by range as a parquet's does:
    plain numbers ("19.99", "-3", "1e3") and prices as shops write them ("$1,299.00", "€12"). Codes with leading
    zeros ("00123") and columns of words stay text. A column that is almost all numbers (NUMERIC_SHARE) with a few
    values that are not ("abc") is refused with the first of them (`where` names it), or, with bad="missing", read
    with those values missing. Columns that are not text are left as they are."""
    if not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)):
        return column
    text, numbers, unread = _read_numbers(column)
    filled = text != ""
    if not filled.any() or text[filled].str.match(r"^[+-]?0\d").any():
        return column
    if unread.any() and (~unread[filled]).mean() < NUMERIC_SHARE:
        return column
    return numbers_of(column, where, "holds numbers", bad)


def _read_numbers(column: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Each value as stripped text ("" where empty or missing), as a number (plain or a shop's price), and whether a
    filled value failed to read as one."""
    text = column.map(lambda v: "" if v is None or (isinstance(v, float) and v != v) else str(v).strip())
    text = text.astype("string")
    plain = text.where(~text.str.fullmatch(_PRICE).fillna(False), text.str.replace(r"[$€£,\s]", "", regex=True))
    numbers = pd.to_numeric(plain.where(text != ""), errors="coerce")
    return text, numbers, (text != "") & numbers.isna()


def numbers_of(column: pd.Series, where: str, what: str, bad: str = "refuse") -> pd.Series:
    """A column that must hold numbers, as floats: a value that is not one is refused naming its data row(s) (`where`
    and `what` say which column and why it is numeric), or, with bad="missing", read as missing."""
    text, numbers, unread = _read_numbers(column)
    if unread.any() and bad != "missing":
        rows = [int(i) for i in unread.to_numpy().nonzero()[0][:3]]
        raise CatalogError(f"{where} {what}, but data row(s) {[r + 1 for r in rows]} hold "
                           f"{[str(text.iloc[r]) for r in rows]}; fix them, or read them as missing with "
                           "--columns bad_numbers=missing")
    return numbers.astype("float64")


NUMERIC_SHARE = 0.9  # a column with at least this share of numbers is a numeric column with bad values in it
_PRICE = r"[$€£]?\s*[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?|[$€£]\s*[+-]?\d+(?:\.\d+)?"


def column_types(products: pd.DataFrame) -> dict[str, str]:
    """Each column of a read catalog and how it was read: "number" or "text"."""
    return {c: "number" if pd.api.types.is_numeric_dtype(products[c]) and not pd.api.types.is_bool_dtype(products[c])
            else "text" for c in products.columns}


def read_pairs(path: str | Path, form: PairFormat = PairFormat()) -> pd.DataFrame:
    """Rated query-product pairs: query (str), product_id (str), relevance (float on the 1..3 scale)."""
    path = Path(path)
    frame = read_table(path)
    sources = {c: _find_column(path, frame, c, getattr(form, c), PAIR_ALIASES, PAIR_OPTIONS) for c in PAIR_COLUMNS}
    missing = [c for c in PAIR_COLUMNS if sources[c] is None]
    if missing:
        raise CatalogError(f"{path}: missing column(s) {[getattr(form, c) or c for c in missing]}; found "
                           f"{list(frame.columns)}; name yours with " + ", ".join(PAIR_OPTIONS[c] for c in missing))
    query, product_id, relevance = (str(sources[c]) for c in ("query", "product_id", "relevance"))
    out = pd.DataFrame({"query": _text_column(frame, query), "product_id": _text_column(frame, product_id)})
    out["relevance"] = _grades(path, out, frame, relevance, form)
    if (out["query"] == "").any():
        raise _first_bad(path, out, out["query"] == "", f"an empty {sources['query']!r}")
    return out


def _grades(path: Path, out: pd.DataFrame, frame: pd.DataFrame, column: str, form: PairFormat) -> pd.Series:
    """The grades of frame[column] on the 1..3 scale, from numbers on form.scale or text labels."""
    raw = frame[column]
    if form.labels:
        labels = dict(form.labels)
        text = _text_column(frame, column)
        unknown = ~text.isin(list(labels))
        if unknown.any():
            seen = sorted(set(text[unknown]))[:3]
            raise _first_bad(path, out, unknown, f"a {column!r} with no label mapping (e.g. {seen}; "
                                                 f"mapped: {sorted(labels)})")
        return text.map(labels).astype("float64")
    relevance = pd.to_numeric(raw, errors="coerce")
    if relevance.isna().any():
        examples = sorted(set(raw[relevance.isna()].astype(str)))[:3]
        raise _first_bad(path, out, relevance.isna(), f"a non-numeric {column!r} (e.g. {examples}; map text grades "
                                                      "with --labels, e.g. Exact=3,Partial=2,Irrelevant=1)")
    low, high = form.scale
    outside = (relevance < low) | (relevance > high)
    if outside.any():
        examples = sorted(set(relevance[outside].tolist()))[:3]
        raise _first_bad(path, out, outside, f"a {column!r} outside the scale {low:g}..{high:g} (e.g. {examples}; "
                                             "give the file's scale with --relevance-scale LOW:HIGH)")
    grades = SCALE[0] + (relevance.astype("float64") - low) * (SCALE[1] - SCALE[0]) / (high - low)
    # Raters' averages such as 2.33 stored as float32 read back as 2.3299999 and would fall below RELEVANT (2.33):
    # grades are averages of a few ratings, so six decimals keep all they say and drop the storage error
    return grades.round(6)


def read_ids(path: str | Path, columns: ColumnMap = ColumnMap()) -> list[str]:
    """Product ids from a text file (one per line; blank lines skipped) or a parquet/CSV file's id column (found as
    read_catalog finds it). Duplicates are refused with the first of them."""
    path = Path(path)
    if path.suffix.lower() in (".txt", ".ids", ""):
        try:
            ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise CatalogError(f"{path}: unreadable ({exc})") from exc
    else:
        frame = read_table(path)
        given = None if columns.product_id == "product_id" else columns.product_id
        column = _find_column(path, frame, "product_id", given, PRODUCT_ALIASES, PRODUCT_OPTIONS)
        if column is None:
            raise CatalogError(f"{path}: no product id column; found {list(frame.columns)}; name yours with "
                               f"{PRODUCT_OPTIONS['product_id']}")
        ids = [i for i in _text_column(frame, column).tolist() if i]
    seen: set[str] = set()
    for product_id in ids:
        if product_id in seen:
            raise CatalogError(f"{path}: product id {product_id!r} is listed twice")
        seen.add(product_id)
    return ids
