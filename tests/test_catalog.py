import pandas as pd
import pytest

from searchkit import CatalogError, ColumnMap, build_index
from searchkit.catalog import read_catalog, read_pairs


def write(tmp_path, frame, name="c.csv"):
    path = tmp_path / name
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def test_csv_and_parquet_read_alike(tmp_path, catalog_frame):
    a = read_catalog(write(tmp_path, catalog_frame, "c.csv"))
    b = read_catalog(write(tmp_path, catalog_frame, "c.parquet"))
    assert list(a.columns[:5]) == ["product_id", "title", "brand", "color", "description"]
    assert a["product_id"].tolist() == b["product_id"].tolist()
    assert a["title"].tolist() == b["title"].tolist()


def test_ids_stay_strings(tmp_path):
    frame = read_catalog(write(tmp_path, pd.DataFrame({"product_id": ["007", "010"], "title": ["a", "b"]})))
    assert frame["product_id"].tolist() == ["007", "010"]
    assert frame["brand"].tolist() == ["", ""]


def test_other_column_names_by_option(tmp_path):
    path = write(tmp_path, pd.DataFrame({"sku": ["1", "2"], "name": ["Lamp", "Fan"], "maker": ["x", "y"]}))
    frame = read_catalog(path, ColumnMap(product_id="sku", title="name", brand="maker"))
    assert frame["title"].tolist() == ["Lamp", "Fan"] and frame["brand"].tolist() == ["x", "y"]


def test_missing_column_named(tmp_path):
    path = write(tmp_path, pd.DataFrame({"product_id": ["1"], "name": ["x"]}))
    with pytest.raises(CatalogError, match=r"c\.csv: missing required column\(s\) \['title'\]"):
        read_catalog(path)


def test_duplicate_ids_named(tmp_path):
    path = write(tmp_path, pd.DataFrame({"product_id": ["1", "2", "1"], "title": ["a", "b", "c"]}))
    with pytest.raises(CatalogError, match=r"duplicate 'product_id' \(e.g. \['1'\]\), first at data row\(s\) \[3\]"):
        read_catalog(path)


def test_empty_title_named_with_row(tmp_path):
    path = write(tmp_path, pd.DataFrame({"product_id": ["1", "2"], "title": ["a", "  "]}))
    with pytest.raises(CatalogError, match=r"empty 'title', first at data row\(s\) \[2\]"):
        read_catalog(path)


def test_unreadable_and_unknown_files(tmp_path):
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"not a parquet file at all")
    with pytest.raises(CatalogError, match="broken.parquet: not a readable parquet table"):
        read_catalog(bad)
    other = tmp_path / "catalog.xlsx"
    other.write_bytes(b"x")
    with pytest.raises(CatalogError, match="unknown file type"):
        read_catalog(other)
    with pytest.raises(CatalogError, match="no such file"):
        read_catalog(tmp_path / "absent.csv")


def test_empty_catalog_refused(tmp_path):
    with pytest.raises(CatalogError, match="no rows"):
        read_catalog(write(tmp_path, pd.DataFrame({"product_id": [], "title": []})))


def test_bad_catalog_writes_nothing(tmp_path, tiny_model):
    path = write(tmp_path, pd.DataFrame({"product_id": ["1", "1"], "title": ["a", "b"]}))
    out = tmp_path / "indexes" / "new"
    with pytest.raises(CatalogError):
        build_index(path, out, model=tiny_model)
    assert not out.exists()
    assert not (tmp_path / "indexes").exists() or not any((tmp_path / "indexes").iterdir())


def test_pairs_validation(tmp_path):
    good = write(tmp_path, pd.DataFrame({"query": ["a"], "product_id": ["1"], "relevance": [2.5]}), "p.csv")
    assert read_pairs(good)["relevance"].tolist() == [2.5]
    bad = write(tmp_path, pd.DataFrame({"query": ["a", "b"], "product_id": ["1", "2"], "relevance": ["3", "hi"]}),
                "q.csv")
    with pytest.raises(CatalogError, match=r"non-numeric 'relevance', first at data row\(s\) \[2\]"):
        read_pairs(bad)
