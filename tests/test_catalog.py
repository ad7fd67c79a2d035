import datetime
import sys

import numpy as np
import pandas as pd
import pytest

from searchkit import CatalogError, ColumnMap, build_index
from searchkit.data.catalog import PairFormat, parse_labels, read_catalog, read_pairs
from searchkit.data.products import ProductTable
from searchkit.eval.metrics import RELEVANT


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
    path = write(tmp_path, pd.DataFrame({"product_id": ["1"], "label_text": ["x"]}))
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
    with pytest.raises(CatalogError, match=r"non-numeric 'relevance' \(e\.g\. \['hi'\]; map text grades with "
                                           r"--labels.*\), first at data row\(s\) \[2\]"):
        read_pairs(bad)


def test_a_shops_own_column_names_are_found(tmp_path):
    """Home Depot's Kaggle files as published: product_uid / product_title / product_color, and search_term."""
    products = write(tmp_path, pd.DataFrame({"product_uid": ["100001", "100002"], "product_title": ["Angle", "Deck"],
                                             "product_color": ["", "brown"], "size": ["s", "m"]}), "products.csv")
    frame = read_catalog(products)
    assert frame["product_id"].tolist() == ["100001", "100002"] and frame["title"].tolist() == ["Angle", "Deck"]
    assert frame["color"].tolist() == ["", "brown"] and frame["size"].tolist() == ["s", "m"]
    assert "product_uid" not in frame.columns  # the id is not carried twice
    pairs = write(tmp_path, pd.DataFrame({"id": ["2", "3"], "product_uid": ["100001", "100002"],
                                          "search_term": ["angle bracket", "deck"], "relevance": [3, 2.33]}),
                  "pairs.csv")
    rated = read_pairs(pairs)
    assert rated.to_dict("list") == {"query": ["angle bracket", "deck"], "product_id": ["100001", "100002"],
                                     "relevance": [3.0, 2.33]}
    named = write(tmp_path, pd.DataFrame({"q": ["a"], "item": ["1"], "stars": [3]}), "named.csv")
    assert read_pairs(named, PairFormat(query="q", product_id="item", relevance="stars"))["query"].tolist() == ["a"]
    with pytest.raises(CatalogError, match=r"missing column\(s\) \['q', 'item', 'stars'\]"):
        read_pairs(pairs, PairFormat(query="q", product_id="item", relevance="stars"))


def test_a_price_under_another_name_is_read_as_the_price(tmp_path):
    """The search page, its price chips and sort=price read "price": a shop's price_usd is read as that, a filter by
    either name finds it (the sources say which file column it was)."""
    usd = write(tmp_path, pd.DataFrame({"sku": ["1", "2"], "name": ["a", "b"], "price_usd": ["$1,299.00", "12.5"]}),
                "usd.csv")
    frame = read_catalog(usd)
    assert frame["price"].tolist() == [1299.0, 12.5] and "price_usd" not in frame.columns
    assert frame.attrs["sources"]["price"] == "price_usd"
    both = write(tmp_path, pd.DataFrame({"sku": ["1"], "name": ["a"], "list_price": ["9"], "sale_price": ["7"]}),
                 "both.csv")
    frame = read_catalog(both)  # which one a shopper pays is the shop's to say: both kept as they are
    assert "price" not in frame.columns and frame["sale_price"].tolist() == [7.0] and "price" not in frame.attrs[
        "sources"]
    assert read_catalog(both, ColumnMap(price="sale_price"))["price"].tolist() == [7.0]
    with pytest.raises(CatalogError, match=r"no column 'cost' to read as the price"):
        read_catalog(both, ColumnMap(price="cost"))
    own = write(tmp_path, pd.DataFrame({"sku": ["1"], "name": ["a"], "price": ["3"], "price_usd": ["4"]}), "own.csv")
    assert read_catalog(own)[["price", "price_usd"]].values.tolist() == [[3.0, 4.0]]  # its own price stays the price
    with pytest.raises(CatalogError, match=r"has a 'price' column already"):
        read_catalog(own, ColumnMap(price="price_usd"))


def test_two_candidate_columns_are_refused_by_name(tmp_path):
    path = write(tmp_path, pd.DataFrame({"sku": ["1"], "item_id": ["2"], "title": ["a"]}))
    with pytest.raises(CatalogError, match=r"columns \['sku', 'item_id'\] could each be the 'product_id'; .*"
                                           r"--columns id=NAME"):
        read_catalog(path)
    pairs = write(tmp_path, pd.DataFrame({"query": ["a"], "sku": ["1"], "label": [1], "grade": [2]}), "p.csv")
    with pytest.raises(CatalogError, match=r"\['label', 'grade'\] could each be the 'relevance'.*--pairs-columns relevance=NAME"):
        read_pairs(pairs)


def test_grades_on_another_scale_or_as_labels(tmp_path):
    frame = pd.DataFrame({"query": ["a", "a", "b"], "product_id": ["1", "2", "3"], "relevance": [0, 1.33, 2]})
    path = write(tmp_path, frame, "p.csv")
    assert read_pairs(path, PairFormat(scale=(0, 2)))["relevance"].tolist() == [1.0, 2.33, 3.0]
    assert read_pairs(path, PairFormat(scale=(0, 4)))["relevance"].tolist() == [1.0, 1.665, 2.0]
    with pytest.raises(CatalogError, match=r"1 row\(s\) with a 'relevance' outside the scale 1\.\.3 \(e\.g\. "
                                           r"\[0\.0\].*--relevance-scale.*first at data row\(s\) \[1\]"):
        read_pairs(path)  # a 0..2 file read as 1..3 would give negative gains: refused, not measured wrongly
    esci = write(tmp_path, pd.DataFrame({"query": ["a", "a", "b"], "product_id": ["1", "2", "3"],
                                         "esci_label": ["E", "S", "I"]}), "esci.csv")
    labels = parse_labels("E=3, S=2,C=1.5 ,I=1")
    assert labels == (("E", 3.0), ("S", 2.0), ("C", 1.5), ("I", 1.0))
    assert read_pairs(esci, PairFormat(labels=labels))["relevance"].tolist() == [3.0, 2.0, 1.0]
    with pytest.raises(CatalogError, match=r"1 row\(s\) with a 'esci_label' with no label mapping \(e\.g\. "
                                           r"\['I'\]; mapped: \['E', 'S'\]\), first at data row\(s\) \[3\]"):
        read_pairs(esci, PairFormat(labels=(("E", 3.0), ("S", 2.0))))
    with pytest.raises(CatalogError, match="non-numeric 'esci_label'"):
        read_pairs(esci)
    for bad in ("E", "=3", "E=x"):
        with pytest.raises(CatalogError, match="write LABEL=GRADE"):
            parse_labels(bad)
    with pytest.raises(CatalogError, match="labels map onto the 1..3 scale"):
        PairFormat(labels=(("E", 4.0),))
    with pytest.raises(CatalogError, match="lowest grade must be below the highest"):
        PairFormat(scale=(2, 2))
    assert PairFormat.from_dict(PairFormat(scale=(0, 2), labels=labels).to_dict()) == PairFormat(scale=(0, 2),
                                                                                                 labels=labels)


def test_grades_stored_as_float32_keep_their_value(tmp_path):
    """The bundled pairs once stored 2.33 as float32 (2.3299999): it must still count as relevant (>= 2.33)."""
    frame = pd.DataFrame({"query": ["a", "b"], "product_id": ["1", "2"],
                          "relevance": pd.Series([2.33, 1.67], dtype="float32")})
    rated = read_pairs(write(tmp_path, frame, "p.parquet"))
    assert rated["relevance"].tolist() == [2.33, 1.67] and rated["relevance"].dtype == "float64"
    assert (rated["relevance"] >= RELEVANT).tolist() == [True, False]


def test_a_compressed_csv_reads_as_the_csv_and_parquet_without_pyarrow_says_what_to_do(tmp_path, catalog_frame,
                                                                                        monkeypatch):
    plain = read_catalog(write(tmp_path, catalog_frame, "shop-products.csv"))
    packed = tmp_path / "shop-products.csv.gz"
    catalog_frame.to_csv(packed, index=False)
    assert read_catalog(packed).equals(plain)
    from searchkit.index.build import default_out
    assert default_out(packed).name == "shop"
    parquet = write(tmp_path, catalog_frame, "c.parquet")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # an install without pyarrow
    with pytest.raises(CatalogError, match=r"c.parquet: reading parquet needs pyarrow.*searchkit\[parquet\]"):
        read_catalog(parquet)
    from searchkit.training.judgments import write_judgments
    with pytest.raises(CatalogError, match=r"j.parquet: writing parquet needs pyarrow"):
        write_judgments(pd.DataFrame({"query": ["a"]}), tmp_path / "j.parquet")
    assert not (tmp_path / "j.parquet").exists()


def test_the_product_store_keeps_every_kind_of_column(tmp_path):
    frame = pd.DataFrame({
        "product_id": ["a", "b", "c"],
        "title": ["Kohler seat", "", "naïve ünïcode ☃"],
        "brand": ["Kohler", None, "Delta"],
        "price": [19.99, np.nan, 3.0],
        "stock": np.array([1, 0, 7], dtype=np.int64),
        "rating": pd.array([4, None, 5], dtype="Int64"),
        "sale": [True, False, True],
        "tags": [["a", "b"], None, []],
        "added": [datetime.date(2026, 1, 2), None, datetime.date(2026, 3, 4)],
    })
    table = ProductTable.of(frame)
    assert [table.kind(c) for c in frame.columns] == ["text", "text", "text", "float", "int", "int", "bool",
                                                      "json", "json"]
    expected = [
        {"product_id": "a", "title": "Kohler seat", "brand": "Kohler", "price": 19.99, "stock": 1, "rating": 4,
         "sale": True, "tags": ["a", "b"], "added": "2026-01-02"},
        {"product_id": "b", "title": "", "brand": None, "price": None, "stock": 0, "rating": None, "sale": False,
         "tags": None, "added": None},
        {"product_id": "c", "title": "naïve ünïcode ☃", "brand": "Delta", "price": 3.0, "stock": 7, "rating": 5,
         "sale": True, "tags": [], "added": "2026-03-04"},
    ]
    table.save(tmp_path / "p")
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == sorted(table.files())
    for again in (table, ProductTable.load(tmp_path / "p", mmap=False), ProductTable.load(tmp_path / "p")):
        assert again.records([0, 1, 2]) == expected
        assert again.product("c") == expected[2] and again.rows_of_ids(["c", "a"]).tolist() == [2, 0]
        assert again.values("brand") == ["Kohler", None, "Delta"]
        back = again.to_pandas()
        assert back["price"].dtype == np.float64 and np.isnan(back["price"].iloc[1])
        assert back["stock"].tolist() == [1, 0, 7] and back["title"].tolist() == frame["title"].tolist()
    again = ProductTable.of(ProductTable.load(tmp_path / "p").to_pandas())
    assert again.kind("added") == "text" and again.values("added") == ["2026-01-02", None, "2026-03-04"]
    again.columns.pop("added")
    table.columns.pop("added")
    table.save(tmp_path / "q")
    again.save(tmp_path / "r")
    for name in table.files():  # written, read and written again: the same bytes
        assert (tmp_path / "q" / name).read_bytes() == (tmp_path / "r" / name).read_bytes()


def test_unreadable_products_are_refused_naming_the_folder(tmp_path):
    from searchkit import IndexFormatError

    ProductTable.of(pd.DataFrame({"product_id": ["a", "b"]})).save(tmp_path / "p")
    (tmp_path / "p" / "0-offsets.npy").write_bytes(b"not numpy")
    with pytest.raises(IndexFormatError, match=r"/p: unreadable products"):
        ProductTable.load(tmp_path / "p")


def test_the_bundled_catalog_as_csv_is_the_parquet_catalog():
    """catalog/homedepot-*.csv.gz (what the base install reads) hold the parquet files' products and pairs, field for
    field; scripts/build_catalog.py writes both."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "catalog"
    assert read_catalog(root / "homedepot-products.csv.gz").equals(read_catalog(root / "homedepot-products.parquet"))
    assert read_pairs(root / "homedepot-pairs.csv.gz").equals(read_pairs(root / "homedepot-pairs.parquet"))


def test_a_column_of_few_values_is_stored_once_per_value_and_reads_the_same(tmp_path):
    from searchkit.search.filters import read_column

    brands = ["Kohler", "Delta", None, "Kohler", "kohler", "Delta", "Moen", "Kohler"]
    frame = pd.DataFrame({"product_id": [f"p{i}" for i in range(8)], "brand": brands})
    table = ProductTable.of(frame)
    assert table.columns["brand"].codes is not None and table.columns["product_id"].codes is None
    table.save(tmp_path / "p")
    assert "1-codes.npy" in table.files() and (tmp_path / "p" / "1-codes.npy").is_file()
    for again in (table, ProductTable.load(tmp_path / "p", mmap=False), ProductTable.load(tmp_path / "p")):
        assert again.values("brand") == brands
        assert [r["brand"] for r in again.records(list(range(8)))] == brands
        assert again.to_pandas()["brand"].tolist() == brands
        column = read_column(again.columns["brand"])  # as a filter reads it: words compared, missing as -1
        assert column.codes.tolist() == [0, 1, -1, 0, 0, 1, 2, 0] and column.shown == ("Kohler", "Delta", "Moen")
    plain = read_column(list(brands))  # the same from plain values
    assert plain.codes.tolist() == column.codes.tolist() and plain.shown == column.shown
