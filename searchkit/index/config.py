"""IndexConfig: how a build embeds, indexes and checks a catalog."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data.text import KEYWORD_TEXT, KEYWORD_TEXTS
from ..errors import SearchkitError
from .ann import AnnConfig
from .lexical import BM25_B, BM25_K1


@dataclass(frozen=True)
class IndexConfig:
    # texts per batch on a CPU: small batches keep a layer's activations in the core's cache (a CUDA device takes at
    # least GPU_BATCH); the vectors are the same at any batch size (docs/speed.md)
    batch_size: int = 16
    device: str | None = None  # None/"auto": CUDA when torch sees it
    index_type: str = "auto"  # auto | flat | hnsw | hnsw-sq8 | ivf-sq8 (searchkit.index.ann)
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    ivf_lists: int | None = None
    target_recall: float = 0.98  # ANN search knob: the cheapest reaching this recall@10 against exact search
    bm25_k1: float = BM25_K1  # keyword index (BM25) term saturation
    bm25_b: float = BM25_B  # and length normalisation
    keyword_text: int = KEYWORD_TEXT  # the version of BM25's text (searchkit.data.text.KEYWORD_TEXTS)
    progress: bool = False
    onnx: bool = True  # also save the model as ONNX, for the fast query path
    # how the catalog is embedded on a CPU: "onnx-int8" (the exported graph with per-channel int8 weights and per-row
    # activation scales, so a product embeds the same in any batch,
    # length-sorted batches: faster than torch at the same quality, docs/design-notes.md),
    # "onnx" (that graph in fp32) or "torch" (sentence-transformers); on a CUDA device always torch
    bulk: str = "onnx-int8"
    query_tower: bool = True  # embed queries with the model's query tower when it has one (and it holds)
    reranker: bool = True  # keep a cross-encoder for mode "rerank": the one given, else the model's reranker/ if any
    # refer to the model instead of copying it into the index: its parts are kept once in the graph cache and found
    # again on load by the model's fingerprint (searchkit.index.shared)
    shared_model: bool = False
    cache_dir: Path | None = None  # the graph cache (searchkit.models.graph_cache); None: ~/.cache/searchkit/graphs
    reuse: bool = True  # keep the stored vector of every product whose embedded text the index at out_dir has
    ray: str | None = None  # encode on a Ray cluster: "local" starts one, else its address (searchkit.models.ray)
    workers: int = 2  # Ray actors embedding at once

    def __post_init__(self) -> None:
        """Refuse bad settings when the config is made, before any product is encoded."""
        self.ann()
        if self.bulk not in ("torch", "onnx", "onnx-int8"):
            raise SearchkitError(f"unknown bulk encoder {self.bulk!r}: use torch, onnx or onnx-int8")
        if self.bm25_k1 < 0 or not 0.0 <= self.bm25_b <= 1.0:
            raise SearchkitError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, not k1={self.bm25_k1}, b={self.bm25_b}")
        if self.keyword_text not in KEYWORD_TEXTS:
            raise SearchkitError(f"keyword text version must be one of {KEYWORD_TEXTS}, not {self.keyword_text!r}")

    def ann(self) -> AnnConfig:
        return AnnConfig(index_type=self.index_type, hnsw_m=self.hnsw_m, hnsw_ef_construction=self.hnsw_ef_construction,
                         ivf_lists=self.ivf_lists, target_recall=self.target_recall)
