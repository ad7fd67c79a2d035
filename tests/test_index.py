import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from searchkit import IndexConfig, IndexFormatError, IndexMismatchError, Searcher, build_index
from searchkit.arrays import is_mapped
from searchkit.data.catalog import read_catalog
from searchkit.data.text import KEYWORD_TEXT
from searchkit.index import layout
from searchkit.index.manifest import FORMAT_VERSION, Bm25, Encoding, Manifest
from tests.fixtures import make_tiny_model


def test_manifest_describes_the_build(built_index, catalog_frame, tiny_model):
    manifest = json.loads((built_index / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["rows"] == len(catalog_frame) == manifest["index"]["ntotal"]
    assert manifest["dimension"] == 32 and manifest["index"]["type"] == "flat"
    assert len(manifest["catalog"]["sha256"]) == 64 and len(manifest["model"]["fingerprint"]) == 64
    assert manifest["text"]["stem"] is True and "faiss" in manifest["libraries"]
    assert {"index.faiss", "products/columns.json", "text.json"} <= set(manifest["files"])


def test_round_trip_keeps_products_and_order(searcher, catalog_frame):
    assert searcher.products["product_id"].tolist() == catalog_frame["product_id"].tolist()
    hit = searcher.search(catalog_frame["title"][3], k=1, mode="dense")[0]
    assert hit.rank == 1 and -1.0 <= hit.score <= 1.0 + 1e-6


def _exact(searcher, query, k):
    vector = searcher.embed_queries([query])[0]
    vectors = np.vstack([searcher.index.reconstruct(i) for i in range(searcher.index.ntotal)])
    scores = vectors @ vector
    return scores, np.sort(scores)[::-1][:k]


@pytest.mark.parametrize("query", ["kohler toilet seat", "swag light kit in chrome", "wireless door knob"])
def test_faiss_matches_exact_numpy_search(searcher, query):
    hits = searcher.search(query, k=10, mode="dense")
    scores, best = _exact(searcher, query, 10)
    assert np.allclose([h.score for h in hits], best, atol=1e-5)
    rows = [searcher._row_of[h.product_id] for h in hits]
    assert np.allclose(scores[rows], [h.score for h in hits], atol=1e-5)  # ties may swap ids, never scores


def test_hnsw_recall_against_exact(tmp_path, catalog_file, tiny_model):
    out = tmp_path / "hnsw"
    manifest = build_index(catalog_file, out, model=tiny_model, config=IndexConfig(index_type="hnsw"))
    assert manifest.index.type == "hnsw" and manifest.index.params["m"] == 32
    assert manifest.index.recall_sample >= 0.9
    searcher = Searcher.from_dir(out)
    _, best = _exact(searcher, "classic garden hose", 10)
    hits = searcher.search("classic garden hose", k=10, mode="dense")
    assert np.sum(np.isclose([h.score for h in hits], best, atol=1e-5)) >= 9


def test_k_larger_than_catalog_is_clipped(searcher, catalog_frame):
    hits = searcher.search("fan", k=10_000, mode="dense")
    assert len(hits) == len(catalog_frame)
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert len({h.product_id for h in hits}) == len(hits)


def test_truncated_faiss_file_refused(index_copy):
    path = index_copy / "index.faiss"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(IndexFormatError, match="truncated"):
        Searcher.from_dir(index_copy)


def test_edited_products_refused(index_copy):
    path = index_copy / "products" / "1-data.npy"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match="checksum"):
        Searcher.from_dir(index_copy)


def test_broken_manifest_refused(index_copy):
    (index_copy / "manifest.json").write_text("{not json")
    with pytest.raises(IndexFormatError, match="unreadable manifest"):
        Searcher.from_dir(index_copy)


def as_format_1(manifest: dict) -> dict:
    """The manifest as searchkit wrote format 1: no encoding field (the device line told it), the Ray report under
    model.encoding."""
    old = {k: v for k, v in manifest.items() if k != "encoding"}
    return {**old, "format_version": 1, "model": {**old["model"], "encoding": {"engine": "ray", "workers": 2}}}


def test_a_format_1_index_is_migrated_on_load(index_copy):
    path = index_copy / "manifest.json"
    current = json.loads(path.read_text())
    path.write_text(json.dumps(as_format_1(current)))
    migrated = layout.read_manifest(index_copy)
    # format 1 predates split norms: its per-row int8 vectors were embedded by fused sessions
    assert current["encoding"] == Encoding.ONNX_INT8_ROWS_SPLIT.value
    assert migrated.format_version == FORMAT_VERSION and migrated.encoding == Encoding.ONNX_INT8_ROWS
    assert migrated.model.ray == {"engine": "ray", "workers": 2} and migrated.files == current["files"]
    searcher = Searcher.from_dir(index_copy)
    assert searcher.search("toilet seat", k=3)
    old_line = {**as_format_1(current), "device": "encode: torch cpu, faiss: cpu"}
    path.write_text(json.dumps(old_line))
    assert layout.read_manifest(index_copy).encoding == Encoding.TORCH


def as_format_2(index: Path) -> None:
    """The index as searchkit wrote format 2: its products one parquet file (no pandas metadata), listed in the
    manifest in place of the products/ folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = Searcher.from_dir(index).products
    path = index / "products.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None), path)
    shutil.rmtree(index / "products")
    manifest = json.loads((index / "manifest.json").read_text())
    files = {k: v for k, v in manifest["files"].items() if not k.startswith("products/")}
    files["products.parquet"] = {"sha256": layout.file_sha256(path), "bytes": path.stat().st_size}
    (index / "manifest.json").write_text(json.dumps({**manifest, "format_version": 2, "files": files}))


def test_a_format_2_index_is_read_where_pyarrow_is_and_refused_with_the_rebuild_command_where_not(
        index_copy, searcher, monkeypatch):
    as_format_2(index_copy)
    old = Searcher.from_dir(index_copy)
    assert old.manifest.format_version == FORMAT_VERSION
    assert old.products.equals(searcher.products)
    for query in ("toilet seat", "kohler", "white paint"):
        a, b = old.search(query, k=5), searcher.search(query, k=5)
        assert [r.to_dict() for r in a] == [r.to_dict() for r in b]
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # an install without pyarrow
    with pytest.raises(IndexFormatError, match=r"need pyarrow.*searchkit build-index CATALOG --out"):
        Searcher.from_dir(index_copy)


def test_a_manifest_round_trips_through_its_json(built_index):
    manifest = layout.read_manifest(built_index)
    again = Manifest.from_dict(json.loads(manifest.to_json()), built_index)
    assert again == manifest


def test_other_format_version_refused(index_copy):
    manifest = json.loads((index_copy / "manifest.json").read_text())
    manifest["format_version"] = 99
    (index_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="format version 99.*searchkit build-index"):
        Searcher.from_dir(index_copy)


def test_missing_model_copy_refused(index_copy):
    shutil.rmtree(index_copy / "model")
    with pytest.raises(IndexFormatError, match="model folder"):
        Searcher.from_dir(index_copy)


def test_missing_index_says_how_to_build(tmp_path):
    with pytest.raises(IndexFormatError, match="searchkit build-index"):
        Searcher.from_dir(tmp_path / "nothing")


def test_other_model_refused(built_index, tmp_path):
    other = make_tiny_model(tmp_path / "other")
    from safetensors.torch import load_file, save_file

    weights = load_file(other / "model.safetensors")
    save_file({k: v + 0.01 if v.is_floating_point() else v for k, v in weights.items()}, other / "model.safetensors")
    with pytest.raises(IndexMismatchError, match="was built with model"):
        Searcher.from_dir(built_index, model=other)


def test_interrupted_build_keeps_the_old_index(index_copy, catalog_file, tiny_model, monkeypatch):
    before = (index_copy / "manifest.json").read_text()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(layout, "write_lexical", crash)
    with pytest.raises(KeyboardInterrupt):
        build_index(catalog_file, index_copy, model=tiny_model)
    assert (index_copy / "manifest.json").read_text() == before
    assert sorted(p.name for p in index_copy.parent.iterdir()) == ["idx"]  # no staging folder left
    assert len(Searcher.from_dir(index_copy)) == len(read_catalog(catalog_file))


def test_rebuild_replaces_atomically(index_copy, tmp_path, catalog_frame, tiny_model):
    smaller = tmp_path / "small.parquet"
    catalog_frame.head(50).to_parquet(smaller, index=False)
    build_index(smaller, index_copy, model=tiny_model)
    assert len(Searcher.from_dir(index_copy)) == 50
    assert sorted(p.name for p in index_copy.parent.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize(("device", "expected"), [("cpu", 16), ("cuda", 1024), ("cuda:0", 1024)])
def test_catalog_batch_grows_on_a_gpu(tmp_path, device, expected):
    from searchkit.index.graphs import GPU_BATCH, catalog_encoder

    class Recording:
        info = None

        def __init__(self):
            self.device, self.batches = device, []

        def encode(self, texts, batch_size=64, progress=False):
            self.batches.append(batch_size)
            return np.zeros((len(texts), 4), dtype=np.float32)

    encoder = Recording()
    bulk, batch, encoding, how = catalog_encoder(encoder, layout.IndexFiles(tmp_path), "torch",
                                                 IndexConfig().batch_size, False)
    vectors = bulk.encode(["a b", "c"], batch_size=batch)
    assert vectors.shape == (2, 4) and encoder.batches == [expected] and how == f"torch {device}"
    assert GPU_BATCH == 1024


def test_probes_embed_with_the_int8_runners_only_where_queries_may():
    from searchkit.index.graphs import probes_on_runners
    from searchkit.models.encoder import OnnxEncoder

    int8 = OnnxEncoder.__new__(OnnxEncoder)  # only its type is read
    assert probes_on_runners(int8, True)
    assert not probes_on_runners(int8, False)  # the int8 graph was too far from fp32 for queries
    assert not probes_on_runners(object(), True)  # a torch or Ray bulk encoder: not for 500 probes


def test_unchanged_files_are_not_hashed_again_but_edited_ones_are(index_copy, monkeypatch):
    import searchkit.index.layout

    hashed = []
    real = searchkit.index.layout.file_sha256
    monkeypatch.setattr(searchkit.index.layout, "file_sha256", lambda p: hashed.append(p.name) or real(p))
    Searcher.from_dir(index_copy)
    assert "index.faiss" in hashed and (index_copy / ".verified.json").is_file()
    hashed.clear()
    Searcher.from_dir(index_copy)
    assert hashed == []  # every file as it was when its checksum matched
    path = index_copy / "products" / "1-data.npy"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF  # same size; the write changes mtime/ctime
    path.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match="checksum"):
        Searcher.from_dir(index_copy)
    assert hashed == ["1-data.npy"]


def test_a_forged_or_broken_stamp_only_costs_a_re_hash(index_copy):
    Searcher.from_dir(index_copy)
    stamp = json.loads((index_copy / ".verified.json").read_text())
    stamp["products/1-data.npy"]["sha256"] = "0" * 64
    (index_copy / ".verified.json").write_text(json.dumps(stamp))
    Searcher.from_dir(index_copy)  # the stamp's checksum disagrees with the manifest: hashed again, and it matches
    assert json.loads((index_copy / ".verified.json").read_text())["products/1-data.npy"]["sha256"] != "0" * 64
    (index_copy / ".verified.json").write_text("{not json")
    assert Searcher.from_dir(index_copy).search("toilet seat", k=3)


def test_mapped_index_searches_like_a_read_one(built_index):
    mapped, read = Searcher.from_dir(built_index, mmap=True), Searcher.from_dir(built_index)
    assert is_mapped(mapped.lexical.data) and not is_mapped(read.lexical.data)
    # plain arrays over the mapping: numpy's memmap subclass would run Python code on every slice a search makes
    assert type(mapped.lexical.data) is np.ndarray and type(mapped.table.columns["title"].offsets) is np.ndarray
    assert is_mapped(mapped.table.columns["title"].offsets)
    for mode in ("dense", "lexical", "hybrid"):
        a, b = mapped.search("toilet seat white", k=8, mode=mode), read.search("toilet seat white", k=8, mode=mode)
        assert [(h.product_id, round(h.score, 6)) for h in a] == [(h.product_id, round(h.score, 6)) for h in b]


def test_bm25_settings_are_recorded_and_checked(tmp_path, catalog_file, tiny_model, built_index):
    from searchkit import SearchkitError
    from searchkit.index.lexical import BM25_B, BM25_K1

    assert json.loads((built_index / "manifest.json").read_text())["index"]["bm25"] == {
        "k1": BM25_K1, "b": BM25_B, "text": KEYWORD_TEXT}
    manifest = build_index(catalog_file, tmp_path / "i", model=tiny_model,
                           config=IndexConfig(bm25_k1=1.2, bm25_b=0.75, keyword_text=1))
    assert manifest.index.bm25 == Bm25(k1=1.2, b=0.75, text=1)
    with pytest.raises(SearchkitError, match="BM25"):
        IndexConfig(bm25_b=1.5)
    with pytest.raises(SearchkitError, match="keyword text version"):
        IndexConfig(keyword_text=3)


def test_keyword_text_version_is_kept_by_the_index(tmp_path, tiny_model, catalog_frame):
    """Keyword text 2 (the default) finds "20v" in "20-Volt", "2x4" in "2 in. x 4 in." and glued or split compound
    words; an index built with version 1 searches as indexes built before it did."""
    import pandas as pd

    from searchkit.index.build import staleness

    extra = pd.DataFrame({
        "product_id": ["M1", "M2", "M3", "M4", "M5", "M6", "M7", "M8"],
        "title": ["Acme 20-Volt Cordless Drill", "Acme 12-Volt Cordless Drill", "2 in. x 4 in. x 8 ft. Stud",
                  "2 in. x 6 in. x 8 ft. Stud", "Glass Backsplash Tile", "Carpet Shampoo Concentrate",
                  "Back Brace Support Strap Set", "Splash Guard Shield Panel Set"],
        "brand": ["acme", "acme"] + [""] * 6, "color": [None] * 8})
    copies = [extra.assign(product_id=extra.product_id + tag, title=extra.title + " " + name)
              for tag, name in (("b", "Refill"), ("c", "Kit"))]  # a joined word counts when 3 products use it
    frame = pd.concat([catalog_frame, extra, *copies], ignore_index=True)
    path = tmp_path / "measures.parquet"
    frame.to_parquet(path, index=False)
    build_index(path, tmp_path / "v2", model=tiny_model)
    new = Searcher.from_dir(tmp_path / "v2")
    old_dir = tmp_path / "v1"
    build_index(path, old_dir, model=tiny_model, config=IndexConfig(keyword_text=1))
    old = Searcher.from_dir(old_dir)

    def top(searcher, query):
        hits = searcher.search(query, k=1, mode="lexical")
        return hits[0].product_id if hits else None

    # (ties go to the earlier row: M1 before M2, M3 before M4, so the second of each pair tells)
    assert top(new, "12v drill") == "M2" and top(old, "12v drill") == "M1"
    assert top(new, "2x6 stud") == "M4" and top(old, "2x6 stud") == "M3"
    assert top(new, "back splash") == "M5" and top(old, "back splash") != "M5"
    hit = new.search("carpetshampoo", k=1, mode="lexical", explain=True)[0]
    assert hit.product_id == "M6" and hit.explain["corrections"] == [["carpetshampoo", "carpet shampoo"]]
    assert top(old, "carpetshampoo") is None
    assert new.relevance_parts()[1][2] == 2 and old.relevance_parts()[1][2] == 1
    assert staleness(tmp_path / "v2", path, tiny_model) is None
    assert "keyword text is version 1" in staleness(old_dir, path, tiny_model)  # `build-index --if-stale` rebuilds

    manifest = json.loads((old_dir / "manifest.json").read_text())
    manifest["index"]["bm25"]["text"] = 7
    (old_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="keyword text version 7"):
        Searcher.from_dir(old_dir)


def test_the_fine_tuned_model_is_found_in_a_checkout_or_installed_else_a_warning(tmp_path, monkeypatch, tiny_model,
                                                                                  caplog):
    """An installed searchkit (no checkout around it) finds the model installed as searchkit_homedepot_model
    (`pip install models/searchkit-homedepot`); with neither, it says so and uses the base model."""
    import sys

    from searchkit.models import encoder

    monkeypatch.setattr(encoder, "repo_root", lambda: tmp_path / "site-packages")  # no models/ beside the package
    monkeypatch.setattr(encoder, "base_model_dir", lambda: tmp_path / "base")
    monkeypatch.setattr(encoder, "SHIPPED_PACKAGE", "searchkit_probe_model")
    with caplog.at_level("WARNING", logger="searchkit.models.encoder"):
        assert encoder.default_model_dir() == tmp_path / "base"
    assert "not installed" in caplog.text and "pip install models/searchkit-homedepot" in caplog.text

    installed = tmp_path / "site" / "searchkit_probe_model"
    shutil.copytree(tiny_model, installed)
    (installed / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    caplog.clear()
    assert encoder.default_model_dir() == installed and not caplog.text
    assert "searchkit_probe_model" not in sys.modules  # found, not imported

    checkout = tmp_path / "checkout"
    shutil.copytree(tiny_model, checkout / "models" / encoder.SHIPPED_MODEL)
    monkeypatch.setattr(encoder, "repo_root", lambda: checkout)
    assert encoder.default_model_dir() == checkout / "models" / encoder.SHIPPED_MODEL


def test_the_model_distribution_packages_every_file_of_the_model():
    """models/searchkit-homedepot/pyproject.toml's package data covers every tracked file of the model folder but the
    cross-encoder's and grader's weights and skeletons, which its setup.py ships as their int8 graphs instead."""
    import fnmatch
    import subprocess
    import tomllib

    root = Path(__file__).resolve().parents[1]
    folder = root / "models" / "searchkit-homedepot"
    patterns = tomllib.loads((folder / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "searchkit_homedepot_model"]
    tracked = subprocess.run(["git", "ls-files", "."], cwd=folder, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    replaced = [f"{d}/{n}" for d in ("reranker", "reranker/grader")
                for n in ("model.safetensors", "onnx/skeleton.onnx", "onnx/skeleton.json")]
    assert set(replaced) <= set(tracked)
    files = [f for f in tracked if f not in ("pyproject.toml", "setup.py", "__init__.py", *replaced)]
    missed = [f for f in files if not any(fnmatch.fnmatch(f, p) and f.count("/") == p.count("/") for p in patterns)]
    assert missed == []
    shipped = [f for f in replaced if any(fnmatch.fnmatch(f, p) and f.count("/") == p.count("/") for p in patterns)]
    assert shipped == []


def test_building_loading_and_searching_leave_process_state_alone(tmp_path, catalog_file, tiny_model):
    """No environment variable, logging switch or faiss thread count changes behind the caller."""
    import logging
    import os

    import faiss

    before = (dict(os.environ), logging.root.manager.disable, list(logging.root.handlers), logging.root.level,
              faiss.omp_get_max_threads())
    out = tmp_path / "idx"
    build_index(catalog_file, out, model=tiny_model, config=IndexConfig(bulk="onnx-int8", index_type="hnsw"))
    Searcher.from_dir(out).search("toilet seat", k=3, mode="hybrid")
    after = (dict(os.environ), logging.root.manager.disable, list(logging.root.handlers), logging.root.level,
             faiss.omp_get_max_threads())
    assert after == before


def test_updating_a_format_2_index_writes_format_3(index_copy, tmp_path, searcher):
    """An update reads the old products.parquet (pyarrow installed) and writes the products as columns; the old file
    does not ride along."""
    import pandas as pd

    from searchkit.index.update import update_index

    as_format_2(index_copy)
    upsert = tmp_path / "up.csv"
    pd.DataFrame({"product_id": ["NEW1"], "title": ["kohler toilet seat in white"]}).to_csv(upsert, index=False)
    update_index(index_copy, upsert=upsert)
    manifest = json.loads((index_copy / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION and "products.parquet" not in manifest["files"]
    assert not (index_copy / "products.parquet").exists() and (index_copy / "products" / "columns.json").is_file()
    updated = Searcher.from_dir(index_copy)
    assert len(updated) == len(searcher) + 1 and updated.product("NEW1")["title"] == "kohler toilet seat in white"
    assert updated.products.iloc[:-1].reset_index(drop=True).equals(searcher.products)
