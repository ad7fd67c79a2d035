"""The GPU path: run where faiss-gpu sees a CUDA device (skipped elsewhere by the `gpu` marker in conftest)."""

import numpy as np
import pytest

from searchkit import IndexConfig, Searcher, build_index

pytestmark = pytest.mark.gpu


def test_gpu_build_matches_cpu_search(tmp_path, catalog_file, tiny_model, built_index):
    manifest = build_index(catalog_file, tmp_path / "gpu", model=tiny_model, config=IndexConfig(device="cuda"))
    assert "cuda" in manifest.device and manifest.device.endswith("faiss: cuda:0")
    gpu, cpu = Searcher.from_dir(tmp_path / "gpu"), Searcher.from_dir(built_index)
    for query in ["kohler toilet seat", "swag light kit"]:
        a = [h.score for h in gpu.search(query, k=10, mode="dense")]
        b = [h.score for h in cpu.search(query, k=10, mode="dense")]
        assert np.allclose(a, b, atol=1e-3)
