"""Encoding a catalog on a Ray cluster (`searchkit build-index --ray ADDRESS`): Ray Data splits the products' texts into
blocks and an actor pool embeds them, each actor holding the index's ONNX graph (sent once through the object
store, so workers on other machines need no files of this one). The vectors come back in catalog order and the index
is assembled as a single-process build assembles it. Ray is an install extra (`searchkit[ray]`), imported only here.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SearchkitError
from .encoder import ModelInfo, OnnxEncoder, graph_session, max_seq_length, progress_log, run_graph
from .files import TOKENIZER_FILE

GROUPS = 4  # plan groups (batch_size texts each) per Ray Data batch


class _Embedder:
    """A Ray actor: the graph and tokenizer from the object store, an OnnxEncoder over them."""

    def __init__(self, graph: Any, tokenizer: str, max_length: int, dimension: int):
        import ray
        from tokenizers import Tokenizer

        graph = ray.get(graph) if isinstance(graph, ray.ObjectRef) else graph  # the graph's bytes, put once
        self.session = graph_session(graph, 1)  # as OnnxEncoder's runners are made, so the vectors are theirs
        self.tokenizer = Tokenizer.from_str(tokenizer)
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.no_padding()
        self.dimension = dimension
        self.inputs = {i.name for i in self.session.get_inputs()}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each item is one group of the driver's plan: run as one graph run, exactly as OnnxEncoder runs it."""
        rows, vectors = [], []
        for group_rows, texts in zip(batch["rows"], batch["texts"], strict=True):
            vectors.append(run_graph(self.session, self.inputs, self.tokenizer.encode_batch([str(t) for t in texts])))
            rows.append(np.asarray(group_rows, dtype=np.int64))
        # a row per text: fixed-shape float32 vectors, whatever the groups' sizes
        return {"row": np.concatenate(rows), "vector": np.concatenate(vectors).astype(np.float32)}


class RayEncoder:
    """An Encoder (searchkit.models.encoder) whose `encode` runs on a Ray cluster; `report` says how it went."""

    def __init__(self, address: str, workers: int, graph: Path, model_dir: Path, info: ModelInfo):
        if workers < 1:
            raise SearchkitError(f"--workers must be at least 1, not {workers}")
        try:
            import ray
        except ImportError as exc:
            raise SearchkitError("--ray needs Ray: pip install 'searchkit[ray]'") from exc
        self.ray = ray
        self.address, self.workers, self.info = address, workers, info
        self.device = f"ray ({workers} workers)"
        self.graph, self.tokenizer = graph, Path(model_dir) / TOKENIZER_FILE
        self.max_length = max_seq_length(Path(model_dir))  # truncated as OnnxEncoder truncates
        self.report: dict[str, Any] = {"engine": "ray", "address": address, "workers": workers}
        self.planner = OnnxEncoder(graph, model_dir, info, threads=1)  # tokenises here to plan the groups

    def _connect(self) -> None:
        if self.ray.is_initialized():
            return
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if self.address == "local":
            self.ray.init(num_cpus=max(2, os.cpu_count() or 2), **kwargs)
        else:
            try:
                self.ray.init(address=self.address, **kwargs)
            except Exception as exc:  # ConnectionError and Ray's own errors: one line with the address
                raise SearchkitError(f"--ray {self.address}: cannot connect ({type(exc).__name__}: {exc})") from exc

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.info.dimension), dtype=np.float32)
        self._connect()
        import ray.data

        started = time.perf_counter()
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = progress
        graph = self.ray.put(self.graph.read_bytes())
        gpus = self.ray.cluster_resources().get("GPU", 0) > 0
        plan = self.planner.plan(texts, batch_size)  # the groups a single-process build runs: the same vectors
        groups = ray.data.from_items([{"rows": rows.tolist(), "texts": [texts[r] for r in rows]} for rows in plan])
        embedded = groups.map_batches(
            _Embedder, batch_size=GROUPS, batch_format="numpy",
            fn_constructor_args=(graph, self.tokenizer.read_text(), self.max_length, self.info.dimension),
            compute=ray.data.ActorPoolStrategy(size=self.workers),
            # fractional CPUs leave room for Ray Data's own read and split tasks on a small cluster
            num_cpus=0.5, num_gpus=1 if gpus else 0)
        out = np.zeros((len(texts), self.info.dimension), dtype=np.float32)
        for batch in embedded.iter_batches(batch_size=4096, batch_format="numpy"):
            out[batch["row"]] = np.asarray(batch["vector"], dtype=np.float32)
        seconds = time.perf_counter() - started
        self.report.update({"texts": len(texts), "seconds": round(seconds, 2),
                            "texts_per_second": round(len(texts) / seconds, 1), "gpus": bool(gpus)})
        progress_log.info("encoded %s texts on Ray (%d workers): %.0f texts/s", f"{len(texts):,}", self.workers,
                          len(texts) / seconds)
        return out
