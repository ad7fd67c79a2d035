"""The libraries whose internals searchkit relies on are pinned below their next release, the installed ones are in
range, and the internals are what searchkit reads: a new release fails here, loudly, before it changes an index."""

from __future__ import annotations

import configparser
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
RELIED_ON = {
    "onnxruntime": "its quantiser's nodes, which models.export.per_row_activations rewrites",
    "onnx": "the graph format the skeletons (models.skeleton) and the rewrite write",
    "bm25s": "its index arrays and file names (index.lexical)",
    "faiss-cpu": "the HNSW graph's arrays, which index.ann edits in place on update",
}


def base_requirements() -> dict[str, Requirement]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = [line.strip() for line in config["options"]["install_requires"].splitlines() if line.strip()]
    return {Requirement(line).name: Requirement(line) for line in lines}


@pytest.mark.parametrize("name", sorted(RELIED_ON))
def test_relied_on_libraries_have_an_upper_bound_and_the_installed_one_is_within(name):
    requirement = base_requirements()[name]
    assert any(spec.operator in ("<", "<=", "==", "~=") for spec in requirement.specifier), (name, RELIED_ON[name])
    assert requirement.specifier.contains(metadata.version(name), prereleases=True), (name, metadata.version(name))


def test_bm25s_scores_and_files_are_those_the_lexical_index_reads(tmp_path):
    import bm25s

    from searchkit.index.lexical import _BM25S_NAMES, LexicalIndex

    texts = ["kohler toilet seat", "toilet paper holder", "garden hose"]
    model = bm25s.BM25(k1=0.45, b=0.5, method="lucene")
    model.index([t.split() for t in texts], show_progress=False)
    model.save(str(tmp_path / "bm25s"))
    assert set(_BM25S_NAMES) <= {p.name for p in (tmp_path / "bm25s").iterdir()}
    ours = LexicalIndex.build(texts, k1=0.45, b=0.5)
    reread = LexicalIndex.load(tmp_path / "bm25s")
    for query in ("toilet", "kohler toilet", "hose"):
        with ours.scored(query) as a, reread.scored(query) as b:
            assert np.allclose(a.of(np.arange(3)), b.of(np.arange(3)))
            assert np.allclose(a.of(np.arange(3)), model.get_scores(query.split()), atol=1e-6)


def test_the_quantiser_writes_the_nodes_the_per_row_rewrite_reads(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from searchkit.models.export import quantize_graph

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "fp32.onnx"))
    quantize_graph(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", per_row=True)  # raises on an unknown pattern
    ops = [n.op_type for n in onnx.load(str(tmp_path / "int8.onnx")).graph.node]
    assert "MatMulIntegerToFloat" in ops and "DynamicQuantizeLinear" not in ops


def test_the_model_distribution_makes_its_graphs_with_the_libraries_searchkit_pins():
    """models/searchkit-homedepot/setup.py makes the cross-encoder's and grader's int8 graphs while its wheel is built:
    its build requirements pin onnx and onnxruntime as searchkit does, so the shipped graphs are made as a build
    would make them."""
    import tomllib

    project = tomllib.loads((ROOT / "models" / "searchkit-homedepot" / "pyproject.toml").read_text())
    build = {Requirement(line).name: Requirement(line) for line in project["build-system"]["requires"]}
    for name in ("onnx", "onnxruntime", "numpy", "safetensors"):
        assert name in build, name
    for name in ("onnx", "onnxruntime"):
        assert build[name].specifier == base_requirements()[name].specifier, name
