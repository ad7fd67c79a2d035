import json
import subprocess
import sys

import numpy as np
import pytest

from searchkit import IndexConfig, IndexFormatError, Searcher, build_index


def test_onnx_and_torch_backends_agree(built_index):
    onnx = Searcher.from_dir(built_index, backend="onnx")
    torch = Searcher.from_dir(built_index, backend="torch")
    assert type(onnx.encoder).__name__ == "OnnxEncoder" and type(torch.encoder).__name__ != "OnnxEncoder"
    queries = ["kohler toilet seat", "swag light kit", "wireless door knob in chrome", "fan"]
    assert np.allclose(onnx.embed_queries(queries), torch.embed_queries(queries), atol=1e-4)
    for q in queries:
        assert [h.product_id for h in onnx.search(q, k=5, mode="dense")] == \
            [h.product_id for h in torch.search(q, k=5, mode="dense")]


def test_query_path_does_not_import_torch(built_index):
    code = ("import sys; from searchkit import Searcher; s = Searcher.from_dir(sys.argv[1]); "
            "assert s.search('kohler toilet seat', k=3); "
            "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code, str(built_index)], check=True)


def test_index_without_onnx_falls_back_or_refuses(tmp_path, catalog_file, tiny_model):
    build_index(catalog_file, tmp_path / "idx", model=tiny_model, config=IndexConfig(onnx=False))
    assert not (tmp_path / "idx" / "encoder.onnx").exists()
    assert type(Searcher.from_dir(tmp_path / "idx").encoder).__name__ == "SentenceTransformerEncoder"
    with pytest.raises(IndexFormatError, match="no usable encoder.onnx"):
        Searcher.from_dir(tmp_path / "idx", backend="onnx")


def test_tampered_onnx_refused(index_copy):
    path = index_copy / "encoder.onnx"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match="encoder.onnx: checksum"):
        Searcher.from_dir(index_copy)


@pytest.mark.parametrize("bulk", ["onnx", "onnx-int8"])
def test_bulk_onnx_encoding_matches_torch(tmp_path, catalog_file, tiny_model, built_index, bulk):
    manifest = build_index(catalog_file, tmp_path / bulk, model=tiny_model, config=IndexConfig(bulk=bulk))
    assert bulk in manifest.device and not (tmp_path / bulk / "bulk-int8.onnx").exists()
    ours, ref = Searcher.from_dir(tmp_path / bulk), Searcher.from_dir(built_index)
    a = np.vstack([ours.index.reconstruct(i) for i in range(ours.index.ntotal)])
    b = np.vstack([ref.index.reconstruct(i) for i in range(ref.index.ntotal)])
    cosines = (a * b).sum(1)
    assert cosines.min() > (0.999 if bulk == "onnx" else 0.95)


def test_int8_graph_embeds_a_text_the_same_in_any_batch(tmp_path, catalog_file, tiny_model, catalog_frame):
    """Per-row activation scales: batch-mates (and their padding) do not move a text's vector, which is what lets an
    update embed only the changed products and still match a rebuild."""
    from searchkit.models.encoder import OnnxEncoder

    build_index(catalog_file, tmp_path / "idx", model=tiny_model, config=IndexConfig(bulk="onnx-int8"))
    searcher = Searcher.from_dir(tmp_path / "idx")
    encoder = OnnxEncoder(tmp_path / "idx" / "encoder-int8.onnx", tmp_path / "idx" / "model", searcher.encoder.info)
    titles = [str(t).lower() for t in catalog_frame["title"]][:40] + ["drill", "a much longer text " * 8]
    batched = encoder.encode(titles, batch_size=16)
    reordered = encoder.encode(titles[::-1], batch_size=7)[::-1]
    alone = np.vstack([encoder.encode([t]) for t in titles[:8]])
    assert np.abs(batched - reordered).max() < 1e-5 and np.abs(batched[:8] - alone).max() < 1e-5
    parallel = OnnxEncoder(tmp_path / "idx" / "encoder-int8.onnx", tmp_path / "idx" / "model",
                           searcher.encoder.info, parallel=3)  # one-thread sessions on alternate batches
    assert len(parallel.sessions) == 3 and np.abs(parallel.encode(titles, batch_size=4) - batched).max() < 1e-5
    fp32 = OnnxEncoder(tmp_path / "idx" / "encoder.onnx", tmp_path / "idx" / "model", searcher.encoder.info)
    assert (batched * fp32.encode(titles)).sum(1).min() > 0.98


def test_unknown_bulk_refused(tmp_path, catalog_file, tiny_model):
    from searchkit import SearchkitError

    with pytest.raises(SearchkitError, match="unknown bulk encoder"):
        build_index(catalog_file, tmp_path / "x", model=tiny_model, config=IndexConfig(bulk="magic"))
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.*"))


def test_int8_query_graph_checked_at_build_and_used_when_close(built_index):
    check = json.loads((built_index / "manifest.json").read_text())["model"]["query_int8"]
    assert check["texts"] > 0 and -1 <= check["cosine_to_fp32_min"] <= check["cosine_to_fp32_mean"] <= 1
    assert check["used_for_queries"] == (check["cosine_to_fp32_min"] >= check["min_cosine_required"])
    auto = Searcher.from_dir(built_index)
    assert auto.encoder.path.name == ("encoder-int8.onnx" if check["used_for_queries"] else "encoder.onnx")
    if check["used_for_queries"]:
        fp32 = Searcher.from_dir(built_index, backend="onnx")
        queries = ["kohler toilet seat", "swag light kit", "fan"]
        cosines = (auto.embed_queries(queries) * fp32.embed_queries(queries)).sum(1)
        assert cosines.min() > check["min_cosine_required"] - 0.02


def test_int8_query_graph_dropped_when_too_far_from_fp32(tmp_path, catalog_file, tiny_model, monkeypatch):
    import searchkit.index.graphs

    monkeypatch.setattr(searchkit.index.graphs, "QUERY_INT8_MIN_COSINE", 1.01)  # no int8 graph can pass this
    manifest = build_index(catalog_file, tmp_path / "idx", model=tiny_model)
    assert manifest.model.query_int8["used_for_queries"] is False
    assert not (tmp_path / "idx" / "encoder-int8.onnx").exists() and "encoder-int8.onnx" not in manifest.files
    assert Searcher.from_dir(tmp_path / "idx").encoder.path.name == "encoder.onnx"
    with pytest.raises(IndexFormatError, match="no usable encoder-int8.onnx"):
        Searcher.from_dir(tmp_path / "idx", backend="onnx-int8")


def test_int8_query_embedding_does_not_depend_on_batch_mates(tmp_path, built_index):
    """Dynamic int8 quantisation scales activations over a whole batch: queries are run one at a time so that a
    query embeds (and ranks) the same alone as in a batch."""
    from searchkit.models.encoder import OnnxEncoder

    assert (built_index / "encoder-int8.onnx").is_file()  # the tiny model passes the build's int8 check
    searcher = Searcher.from_dir(built_index, backend="onnx-int8")
    queries = ["kohler toilet seat", "swag light kit with a long chain in brushed nickel", "fan", "white paint"]
    searcher.cache_size = 0
    together = searcher.embed_queries(queries)
    alone = np.vstack([searcher.embed_queries([q]) for q in queries])
    assert np.array_equal(together, alone)
    batched = OnnxEncoder(searcher.encoder.path, built_index / "model", searcher.encoder.info)  # the old behaviour
    assert not np.array_equal(batched.encode([searcher._parse(q).normalised for q in queries], batch_size=64), alone)


def test_onnx_encoding_in_chunks_keeps_row_order(built_index, monkeypatch):
    import searchkit.models.encoder

    encoder = Searcher.from_dir(built_index, backend="onnx").encoder
    texts = [f"toilet seat {'white ' * (i % 5)}{i}" for i in range(23)]
    whole = encoder.encode(texts, batch_size=4)
    monkeypatch.setattr(searchkit.models.encoder, "TOKENIZE_CHUNK", 5)
    chunked = encoder.encode(texts, batch_size=4)
    assert chunked.shape == (23, whole.shape[1]) and np.allclose(chunked, whole, atol=1e-5)
    assert np.allclose(encoder.encode(texts[7:8]), whole[7:8], atol=1e-5)


def test_graphs_are_exported_once_per_model_and_a_cached_build_imports_no_torch(tmp_path, catalog_file, tiny_model,
                                                                                monkeypatch):
    import subprocess
    import sys

    import searchkit.index.graphs as index_module

    cache = tmp_path / "cache"
    config = IndexConfig(bulk="onnx-int8", cache_dir=cache)
    first = build_index(catalog_file, tmp_path / "a", model=tiny_model, config=config)
    cached = sorted(p.name for p in cache.rglob("*.onnx"))
    assert cached == ["encoder.int8-rows.onnx", "encoder.onnx"]

    def no_export(*args):
        raise AssertionError("exported again")

    monkeypatch.setattr(index_module, "export_onnx", no_export)
    monkeypatch.setattr(index_module, "quantize_graph", no_export)
    second = build_index(catalog_file, tmp_path / "b", model=tiny_model, config=config)
    for name in ("encoder.onnx", "encoder-int8.onnx"):  # the same graphs, copied
        assert second.files.get(name, {}).get("sha256") == first.files.get(name, {}).get("sha256")
    a, b = Searcher.from_dir(tmp_path / "a"), Searcher.from_dir(tmp_path / "b")
    assert [h.product_id for h in a.search("kohler toilet seat")] == [h.product_id for h in b.search("kohler toilet seat")]

    script = (f"import sys; from searchkit import IndexConfig, build_index; "
              f"build_index({str(catalog_file)!r}, {str(tmp_path / 'c')!r}, model={str(tiny_model)!r}, "
              f"config=IndexConfig(bulk='onnx-int8', cache_dir=__import__('pathlib').Path({str(cache)!r}))); "
              f"print('torch' in sys.modules, 'sentence_transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]  # a cached build of a CPU catalog never loads torch


def test_an_unwritable_graph_cache_still_builds(tmp_path, catalog_file, tiny_model):
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")
    manifest = build_index(catalog_file, tmp_path / "idx", model=tiny_model,
                           config=IndexConfig(bulk="onnx-int8", cache_dir=blocked))
    assert "encoder.onnx" in manifest.files and blocked.is_file()


BLOCK_TORCH = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in ('torch', 'transformers', 'sentence_transformers'):
            raise ImportError('not installed here: ' + name)
sys.meta_path.insert(0, Block())
"""


def test_a_packaged_model_builds_queries_and_serves_where_torch_cannot_be_imported(tmp_path, catalog_file,
                                                                                   tiny_model):
    """The base install's promise: with the model's graph skeleton, an empty graph cache and no torch, transformers
    or sentence-transformers importable, a build embeds the catalog, a search answers, the server serves."""
    import shutil
    import subprocess
    import sys

    from searchkit.training.package import package_model

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    assert package_model(model) == [model]
    traced = tmp_path / "traced"
    build_index(catalog_file, traced, model=tiny_model, config=IndexConfig(cache_dir=tmp_path / "cache-a"))
    script = BLOCK_TORCH + f"""
from pathlib import Path
from fastapi.testclient import TestClient
from searchkit import IndexConfig, Searcher, build_index
from searchkit.serve.app import create_app
out = Path({str(tmp_path / 'idx')!r})
cache = Path({str(tmp_path / 'cache-b')!r})
build_index({str(catalog_file)!r}, out, model={str(model)!r}, config=IndexConfig(cache_dir=cache))
hits = Searcher.from_dir(out).search('kohler toilet seat', k=3)
answer = TestClient(create_app(out, watch=False)).get('/search', params={{'q': 'kohler toilet seat', 'k': 3}})
assert answer.status_code == 200, answer.text
print([h.product_id for h in hits] == [r['product_id'] for r in answer.json()['results']], 'torch' in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False"]
    built, reference = json.loads((tmp_path / "idx" / "manifest.json").read_text()), json.loads(
        (traced / "manifest.json").read_text())
    for name in ("encoder.onnx", "index.faiss"):  # the very graph a torch export writes, and the same vectors
        assert built["files"][name]["sha256"] == reference["files"][name]["sha256"]


def test_a_skeleton_of_other_weights_is_not_used(tmp_path, tiny_model):
    import shutil

    from searchkit.models.skeleton import rebuild_graph
    from searchkit.training.package import package_model

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    package_model(model)
    assert rebuild_graph(model, tmp_path / "a.onnx")
    record = json.loads((model / "onnx" / "skeleton.json").read_text())
    (model / "onnx" / "skeleton.json").write_text(json.dumps({**record, "weights_sha256": "0" * 64}))
    assert not rebuild_graph(model, tmp_path / "b.onnx") and not (tmp_path / "b.onnx").exists()
