"""build-index --ray: a real local Ray cluster (num_cpus=2) embeds the catalog; the index equals a single-process one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from searchkit import IndexConfig, Searcher, build_index
from searchkit.cli import main

ray = pytest.importorskip("ray")


@pytest.fixture(scope="session")
def ray_cluster():
    import os

    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.parametrize("bulk", ["onnx-int8", "onnx"])
def test_a_ray_build_gives_the_vectors_and_results_of_a_single_process_build(ray_cluster, tmp_path, catalog_file,
                                                                            tiny_model, bulk):
    """The workers run the very groups a single process runs (OnnxEncoder.plan), so the vectors are the same either
    way (needed for an int8 graph with one activation scale per run; the default per-row graph needs it no more)."""
    single = build_index(catalog_file, tmp_path / "single", model=tiny_model,
                         config=IndexConfig(bulk=bulk, batch_size=16))
    manifest = build_index(catalog_file, tmp_path / "ray", model=tiny_model,
                           config=IndexConfig(bulk=bulk, batch_size=16, ray="local", workers=2, reuse=False))
    encoding = manifest.model.ray
    assert encoding["engine"] == "ray" and encoding["workers"] == 2 and encoding["texts_per_second"] > 0
    assert encoding["texts"] == single.rows and manifest.device.startswith(f"encode: ray, 2 workers ({bulk}")
    a, b = Searcher.from_dir(tmp_path / "single"), Searcher.from_dir(tmp_path / "ray")
    assert a.products["product_id"].tolist() == b.products["product_id"].tolist()
    cosines = np.sum(np.asarray(a.retriever.vectors) * np.asarray(b.retriever.vectors), axis=1)
    assert cosines.min() >= 0.999
    for query in ("kohler toilet seat", "white garden hose", "ceiling fan"):
        for mode in ("dense", "hybrid", "lexical"):
            assert [h.score for h in a.search(query, k=10, mode=mode)] == pytest.approx(
                [h.score for h in b.search(query, k=10, mode=mode)], abs=1e-4)


def test_cli_build_index_on_ray(ray_cluster, tmp_path, catalog_file, tiny_model):
    result = CliRunner().invoke(main, ["build-index", str(catalog_file), "--model", str(tiny_model), "--out",
                                       str(tmp_path / "idx"), "--ray", "local", "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"]["ray"]["workers"] == 1
    bad = CliRunner().invoke(main, ["build-index", str(catalog_file), "--model", str(tiny_model), "--out",
                                    str(tmp_path / "x"), "--ray", "local", "--workers", "0"])
    assert bad.exit_code != 0 and "--workers" in bad.output


def test_groups_of_every_size_come_back_in_catalog_order(ray_cluster, tmp_path, catalog_file, tiny_model):
    """240 products in groups of 64: the last group is shorter, and Ray Data joins outputs of both sizes."""
    single = build_index(catalog_file, tmp_path / "single", model=tiny_model, config=IndexConfig(batch_size=64))
    build_index(catalog_file, tmp_path / "ray", model=tiny_model,
                config=IndexConfig(batch_size=64, ray="local", workers=2, reuse=False))
    a, b = Searcher.from_dir(tmp_path / "single"), Searcher.from_dir(tmp_path / "ray")
    assert single.rows == len(b)
    assert np.allclose(np.asarray(a.retriever.vectors), np.asarray(b.retriever.vectors), atol=1e-6)


def test_a_folder_or_glob_of_parquet_shards_is_one_catalog(ray_cluster, tmp_path, catalog_frame, catalog_file,
                                                           tiny_model):
    shards = tmp_path / "shards"
    shards.mkdir()
    for i, start in enumerate(range(0, len(catalog_frame), 100)):
        catalog_frame.iloc[start:start + 100].to_parquet(shards / f"part-{i:03d}.parquet", index=False)
    build_index(catalog_file, tmp_path / "single", model=tiny_model)
    folder = build_index(shards, tmp_path / "ray", model=tiny_model,
                         config=IndexConfig(ray="local", workers=2, reuse=False))
    globbed = build_index(shards / "part-*.parquet", tmp_path / "glob", model=tiny_model)
    assert folder.rows == globbed.rows == len(catalog_frame) and folder.catalog.sha256 == globbed.catalog.sha256
    a, b = Searcher.from_dir(tmp_path / "single"), Searcher.from_dir(tmp_path / "ray")
    assert a.products["product_id"].tolist() == b.products["product_id"].tolist()
    assert [h.product_id for h in a.search("kohler toilet seat")] == [h.product_id for h in b.search(
        "kohler toilet seat")]
    with pytest.raises(Exception, match="no parquet shards"):
        build_index(tmp_path / "nothing-*.parquet", tmp_path / "x", model=tiny_model)
