"""An index built by reference to its model (`build-index --shared-model`): no model inside, the same results, its
parts made again when the cache is gone, and refused when the installed model differs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from searchkit import Searcher, build_index
from searchkit.errors import IndexFormatError, IndexMismatchError
from searchkit.index import layout
from searchkit.index.build import staleness
from searchkit.index.config import IndexConfig
from searchkit.index.shared import parts_folder
from searchkit.index.update import update_index
from searchkit.models.encoder import model_fingerprint

QUERIES = ["red kettle", "stainless steel sink", "cordless drill 18v", "white paint"]


@pytest.fixture(scope="module")
def model_with_reranker(tmp_path_factory, tiny_model, reranker) -> Path:
    """The tiny model with the tiny cross-encoder as its own reranker/, as the shipped model carries one."""
    folder = tmp_path_factory.mktemp("shared-model") / "tiny"
    shutil.copytree(tiny_model, folder)
    shutil.copytree(reranker, folder / layout.RERANKER_DIR)
    return folder


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    """A graph cache of this test's own, so that each test sees the parts it made."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def sizes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def results(searcher: Searcher, mode: str) -> list[list[tuple[str, float]]]:
    return [[(h.product_id, h.score) for h in searcher.search(q, k=5, mode=mode)] for q in QUERIES]


def same(a: list[list[tuple[str, float]]], b: list[list[tuple[str, float]]]) -> None:
    assert [[i for i, _ in q] for q in a] == [[i for i, _ in q] for q in b]
    assert [s for q in a for _, s in q] == pytest.approx([s for q in b for _, s in q], abs=1e-5)


def test_an_index_by_reference_holds_no_model_and_ranks_alike(tmp_path, cache, catalog_file, model_with_reranker):
    copy = build_index(catalog_file, tmp_path / "copy", model=model_with_reranker)
    shared = build_index(catalog_file, tmp_path / "shared", model=model_with_reranker,
                         config=IndexConfig(shared_model=True))
    assert not copy.model.by_reference and shared.model.by_reference
    held = {p.name for p in (tmp_path / "shared").iterdir()}
    assert not held & set(layout.MODEL_PARTS), held
    assert sizes(tmp_path / "shared") * 3 < sizes(tmp_path / "copy")
    assert set(shared.model.parts) == {n for n in copy.files if layout.is_model_part(n)}
    one, other = Searcher.from_dir(tmp_path / "copy"), Searcher.from_dir(tmp_path / "shared")
    assert type(other.encoder) is type(one.encoder)
    for mode in ("hybrid", "dense", "rerank"):
        same(results(one, mode), results(other, mode))
    # its query path, like an index's own, imports no pandas, torch or build code
    code = ("import sys; from searchkit import Searcher; s = Searcher.from_dir(sys.argv[1]); "
            "assert s.search('red kettle', k=3); "
            "heavy = [m for m in ('pandas', 'bm25s', 'scipy', 'torch', 'nltk', 'onnx', 'searchkit.index.graphs') "
            "if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "shared")], check=True)
    from fastapi.testclient import TestClient

    from searchkit.serve.app import create_app

    with TestClient(create_app(tmp_path / "shared", watch=False)) as client:
        assert client.get("/health").json()["model"]["by_reference"] is True
        assert client.get("/search", params={"q": "red kettle", "mode": "rerank"}).json()["results"]
    # a second index of the same model refers to the same parts
    again = build_index(catalog_file, tmp_path / "again", model=model_with_reranker,
                        config=IndexConfig(shared_model=True, reuse=False))
    assert again.model.shared == shared.model.shared


def test_its_parts_are_made_again_and_a_changed_model_or_part_is_refused(tmp_path, cache, catalog_file,
                                                                         model_with_reranker, monkeypatch):
    model = tmp_path / "model"
    shutil.copytree(model_with_reranker, model)
    built = build_index(catalog_file, tmp_path / "shared", model=model, config=IndexConfig(shared_model=True))
    before = results(Searcher.from_dir(tmp_path / "shared"), "rerank")
    # another machine: an empty cache, so the graphs are exported and quantised again, to the same bytes
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other-cache"))
    assert not parts_folder(built).exists()
    same(results(Searcher.from_dir(tmp_path / "shared"), "rerank"), before)
    assert parts_folder(built).is_dir()

    # a further load does not hash the model again, until its files change (the same size, other bytes)
    import searchkit.index.shared as shared

    hashed = []
    monkeypatch.setattr(shared, "model_fingerprint", lambda d: hashed.append(d) or model_fingerprint(d))
    same(results(Searcher.from_dir(tmp_path / "shared"), "rerank"), before)
    assert hashed == []
    config = (model / "config.json").read_text()
    (model / "config.json").write_text(json.dumps({**json.loads(config), "layer_norm_eps": 1e-6}))
    with pytest.raises(IndexMismatchError, match="refers to the model"):
        Searcher.from_dir(tmp_path / "shared")
    assert model in hashed
    (model / "config.json").write_text(config)
    same(results(Searcher.from_dir(tmp_path / "shared"), "rerank"), before)

    part = parts_folder(built) / layout.ONNX_FILE
    part.write_bytes(part.read_bytes()[:-1] + b"\0")
    with pytest.raises(IndexFormatError, match="checksum differs"):
        Searcher.from_dir(tmp_path / "shared")
    shutil.rmtree(parts_folder(built))

    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "layer_norm_eps": 1e-6}))
    with pytest.raises(IndexMismatchError, match="refers to the model .* rebuild it with"):
        Searcher.from_dir(tmp_path / "shared")


def test_update_and_staleness_of_an_index_by_reference(tmp_path, cache, catalog_file, catalog_frame,
                                                       model_with_reranker):
    out = tmp_path / "shared"
    build_index(catalog_file, out, model=model_with_reranker, config=IndexConfig(shared_model=True))
    assert staleness(out, catalog_file, model_with_reranker, shared=True) is None
    assert "refers to the installed model" in staleness(out, catalog_file, model_with_reranker, shared=False)
    upsert = tmp_path / "upsert.parquet"
    changed = catalog_frame.head(3).assign(title=lambda f: f["title"] + " deluxe edition")
    changed.to_parquet(upsert, index=False)
    report = update_index(out, upsert=upsert)
    assert report.reembedded == 3
    manifest = layout.read_manifest(out)
    assert manifest.model.by_reference and manifest.catalog.version == 2
    assert not {p.name for p in out.iterdir()} & set(layout.MODEL_PARTS)
    hits = Searcher.from_dir(out).search(changed["title"].iloc[0], k=3)
    assert hits[0].product_id == str(changed["product_id"].iloc[0])


def test_a_reranker_from_outside_the_model_is_refused_by_reference(tmp_path, cache, catalog_file, tiny_model,
                                                                   reranker):
    with pytest.raises(Exception, match="refers to its model's own reranker"):
        build_index(catalog_file, tmp_path / "x", model=tiny_model, reranker=reranker,
                    config=IndexConfig(shared_model=True))
    assert not (tmp_path / "x").exists()
