"""Make a model folder buildable without torch: write the graph skeleton (searchkit.models.skeleton) of the
embedder, its reranker and the reranker's grader, each traced once with torch here."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import ModelError
from ..models.cross_encoder import grader_dir, reranker_dir
from ..models.export import mean_pooled, trace_encoder, trace_reranker
from ..models.skeleton import write_skeleton


def package_model(model_dir: str | Path) -> list[Path]:
    """Write the skeletons of the model at `model_dir` and of the cross-encoder and grader it carries; returns the
    folders given one."""
    model_dir = Path(model_dir)
    if not mean_pooled(model_dir):
        raise ModelError(f"{model_dir}: not a mean-pooled sentence-transformers model; nothing to package")
    done = []
    with tempfile.TemporaryDirectory(prefix="searchkit-package-") as tmp:
        trace_encoder(model_dir, Path(tmp) / "traced-encoder.onnx")
        write_skeleton(model_dir, Path(tmp) / "traced-encoder.onnx")
        done.append(model_dir)
        reranker = reranker_dir(model_dir)
        if reranker is not None:
            trace_reranker(reranker, Path(tmp) / "traced-reranker.onnx")
            write_skeleton(reranker, Path(tmp) / "traced-reranker.onnx")
            done.append(reranker)
            grader = grader_dir(reranker)
            if grader is not None:
                trace_encoder(grader, Path(tmp) / "traced-grader.onnx")
                write_skeleton(grader, Path(tmp) / "traced-grader.onnx")
                done.append(grader)
    return done
