"""A model's fp32 ONNX graph stored without its weights: the graph a torch export wrote, less every initializer
that is one of the folder's safetensors tensors (cast to fp32, perhaps transposed), plus where each came from.

A model distribution ships its skeleton (a few hundred KB beside weights it ships anyway), so an install without
torch rebuilds the very graph a torch export would write, byte for byte, with onnx and numpy alone (checked against
the export's sha256 when the skeleton is written and again when it is rebuilt). `searchkit package-model` writes
the skeletons of a model, its reranker and the reranker's grader.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from ..checksums import file_sha256 as _sha256
from ..errors import ModelError
from .files import SAFETENSORS_FILE, SKELETON_DIR, SKELETON_GRAPH, SKELETON_MAP

log = logging.getLogger(__name__)

SKELETON_FORMAT = 1
MIN_TENSOR = 1024  # initializers smaller than this many values stay in the skeleton (shapes, constants)


def _weights(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    tensors = load_file(str(folder / SAFETENSORS_FILE))
    return {name: np.asarray(value, dtype=np.float32) for name, value in tensors.items()
            if np.issubdtype(value.dtype, np.floating)}


def write_skeleton(folder: str | Path, graph: str | Path) -> dict[str, Any]:
    """Store `graph` (an fp32 graph exported from the weights of `folder`) as the folder's skeleton; returns its
    record. Refused when the skeleton would not rebuild the graph exactly."""
    import onnx
    from onnx import numpy_helper

    folder, graph = Path(folder), Path(graph)
    model = onnx.load(str(graph))
    weights = _weights(folder)
    by_shape: dict[tuple, list[str]] = {}
    for name, value in weights.items():
        by_shape.setdefault(value.shape, []).append(name)
    tensors: dict[str, list] = {}
    kept = []
    for init in model.graph.initializer:
        value = numpy_helper.to_array(init)
        source = _source(value, weights, by_shape) if value.dtype == np.float32 and value.size >= MIN_TENSOR else None
        if source is None:
            kept.append(init)
        else:
            tensors[init.name] = list(source)
    order = [init.name for init in model.graph.initializer]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    record = {"format": SKELETON_FORMAT, "weights": SAFETENSORS_FILE,
              "weights_sha256": _sha256(folder / SAFETENSORS_FILE), "graph_sha256": _sha256(graph), "order": order,
              "tensors": tensors}
    out = folder / SKELETON_DIR
    out.mkdir(exist_ok=True)
    tmp = out / f".{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        onnx.save(model, str(tmp / SKELETON_GRAPH))
        (tmp / SKELETON_MAP).write_text(json.dumps(record, indent=1, sort_keys=True))
        check = tmp / "check.onnx"
        if not _rebuild(folder, tmp, check) or _sha256(check) != record["graph_sha256"]:
            raise ModelError(f"{folder}: the graph's skeleton does not rebuild it exactly")
        for name in (SKELETON_GRAPH, SKELETON_MAP):
            os.replace(tmp / name, out / name)
    finally:
        for path in tmp.glob("*"):
            path.unlink()
        tmp.rmdir()
    log.info("%s: graph skeleton written (%d of %d initializers from the weights)", folder, len(tensors), len(order))
    return record


def _source(value: np.ndarray, weights: dict[str, np.ndarray], by_shape: dict[tuple, list[str]]
            ) -> tuple[str, bool] | None:
    for name in by_shape.get(value.shape, []):
        if np.array_equal(value, weights[name]):
            return name, False
    if value.ndim == 2:
        for name in by_shape.get(value.shape[::-1], []):
            if np.array_equal(value, weights[name].T):
                return name, True
    return None


def has_skeleton(folder: str | Path) -> bool:
    return (Path(folder) / SKELETON_DIR / SKELETON_MAP).is_file()


def rebuild_graph(folder: str | Path, out_path: str | Path) -> bool:
    """Write the folder's fp32 graph from its skeleton and weights; False when it has no skeleton, or one written
    for other weights (then the caller exports with torch)."""
    folder = Path(folder)
    if not has_skeleton(folder):
        return False
    return _rebuild(folder, folder / SKELETON_DIR, Path(out_path))


def _rebuild(folder: Path, skeleton: Path, out_path: Path) -> bool:
    import onnx
    from onnx import numpy_helper

    try:
        record = json.loads((skeleton / SKELETON_MAP).read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{skeleton / SKELETON_MAP}: unreadable ({exc})") from exc
    if record.get("format") != SKELETON_FORMAT or record.get("weights_sha256") != _sha256(folder / SAFETENSORS_FILE):
        log.warning("%s: its graph skeleton was written for other weights; exporting anew", folder)
        return False
    model = onnx.load(str(skeleton / SKELETON_GRAPH))
    weights = _weights(folder)
    present = {init.name: init for init in model.graph.initializer}
    for name, (tensor, transposed) in record["tensors"].items():
        value = weights[tensor].T if transposed else weights[tensor]
        present[name] = numpy_helper.from_array(np.ascontiguousarray(value), name)
    del model.graph.initializer[:]
    model.graph.initializer.extend(present[name] for name in record["order"])
    onnx.save(model, str(out_path))
    if _sha256(out_path) != record["graph_sha256"]:
        raise ModelError(f"{folder}: the graph rebuilt from its skeleton differs from the one exported")
    return True
