"""Shared, deterministic fixtures: a tiny BERT sentence-transformer built in code and generated catalogs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # transformers reads it on import: no "Loading weights" bars
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from tests.fixtures import make_catalog, make_pairs, make_tiny_model  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def graph_cache(tmp_path_factory):
    """A graph cache of the test run's own (searchkit.models.graph_cache), not the user's."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))


def pytest_collection_modifyitems(config, items):
    try:
        import faiss

        has_gpu = hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0
    except ImportError:
        has_gpu = False
    if not has_gpu:
        skip = pytest.mark.skip(reason="needs faiss-gpu and a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
    if any("cuda" in item.keywords for item in items):
        import torch

        if not torch.cuda.is_available():
            skip = pytest.mark.skip(reason="needs a CUDA device (torch)")
            for item in items:
                if "cuda" in item.keywords:
                    item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def catalog_frame():
    return make_catalog(n=240, seed=7)


@pytest.fixture(scope="session")
def catalog_file(tmp_path_factory, catalog_frame) -> Path:
    path = tmp_path_factory.mktemp("catalog") / "products.parquet"
    catalog_frame.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="session")
def pairs_file(tmp_path_factory, catalog_frame) -> Path:
    path = tmp_path_factory.mktemp("pairs") / "pairs.parquet"
    make_pairs(catalog_frame, seed=7).to_parquet(path, index=False)
    return path


@pytest.fixture(scope="session")
def built_index(tmp_path_factory, catalog_file, tiny_model) -> Path:
    from searchkit import build_index

    out = tmp_path_factory.mktemp("indexes") / "tiny"
    build_index(catalog_file, out, model=tiny_model)
    return out


@pytest.fixture(scope="session")
def reranker(tmp_path_factory, built_index, pairs_file) -> Path:
    """A tiny cross-encoder trained a few steps on the tiny index's hybrid candidates."""
    from searchkit.models.cross_encoder import RerankerSettings
    from searchkit.training.reranker import RerankTrainConfig, train_reranker

    out = tmp_path_factory.mktemp("rerankers") / "tiny-reranker"
    return train_reranker(RerankTrainConfig(index=built_index, pairs=pairs_file, out=out, max_steps=6, negatives=2,
                                            eval_queries=8, lr=1e-3, settings=RerankerSettings(weight=1.0)))


@pytest.fixture(scope="session")
def reranked_index(tmp_path_factory, catalog_file, tiny_model, reranker) -> Path:
    from searchkit import build_index

    out = tmp_path_factory.mktemp("indexes") / "with-reranker"
    build_index(catalog_file, out, model=tiny_model, reranker=reranker)
    return out


@pytest.fixture()
def index_copy(tmp_path, built_index) -> Path:
    """A private copy of the built index, for tests that damage or rebuild it."""
    dst = tmp_path / "idx"
    shutil.copytree(built_index, dst)
    return dst


@pytest.fixture(scope="session")
def searcher(built_index):
    from searchkit import Searcher

    return Searcher.from_dir(built_index)
