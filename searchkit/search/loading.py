"""Opening an index folder for search: checked files, the query encoder the index and installation allow, the text
pipeline, BM25, spelling vocabulary and (loaded on first use) the cross-encoder."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.intent import ProductTypes
from ..data.spell import SpellCorrector
from ..data.text import KEYWORD_TEXTS, BrandMatcher, CachedStemmer, Normaliser, TextConfig
from ..errors import IndexFormatError, IndexMismatchError, QueryError, SearchkitError
from ..index import layout
from ..index.ann import apply_params
from ..index.shared import attach
from ..models.cross_encoder import Grader, Reranker, read_info
from ..models.encoder import Encoder, ModelInfo, OnnxEncoder, StaticEncoder, load_encoder, model_fingerprint
from ..models.files import TOKENIZER_FILE

BACKENDS = ("auto", "query-tower", "onnx-int8", "onnx", "torch")


@dataclass(frozen=True)
class LoadOptions:
    """How to open an index (Searcher.from_dir's options; see there)."""

    model: str | Path | None = None
    device: str | None = None
    verify: bool = True
    backend: str = "auto"
    encode_threads: int | None = 1
    mmap: bool = False
    target_recall: float | None = None
    rerank_depth: int | None = None  # hybrid candidates mode rerank reads (None: the reranker's own depth)


@dataclass(frozen=True)
class Parts:
    """What a Searcher is made of, as read from an index folder."""

    index: Any
    products: Any
    encoder: Encoder
    manifest: layout.Manifest
    normaliser: Normaliser
    lexical: Any
    corrector: SpellCorrector
    reranker: Any  # None, or a callable making the Reranker on first use
    search_params: dict[str, int]
    types: ProductTypes  # every product's type (an index built before types were saved: none)
    root: Path | None = None  # the folder read


def pick_backend(backend: str, files: layout.IndexFiles, manifest: layout.Manifest) -> str:
    """The query encoder: "query-tower" (the model's shallower query encoder — int8 layers or a token table — when the
    build kept it), "onnx-int8" (the whole model's int8 graph, when the build measured it close to fp32), "onnx" (its
    fp32 graph) or "torch" (sentence-transformers). "auto" takes the first of those the index and the installation
    allow."""
    if backend not in BACKENDS:
        raise QueryError(f"unknown backend {backend!r}: use {', '.join(BACKENDS)}")
    has = {"onnx": manifest.holds(layout.ONNX_FILE),
           "onnx-int8": manifest.holds(layout.ONNX_INT8_FILE) and manifest.model.int8_queries,
           "query-tower": manifest.holds(layout.query_tower_file(manifest)) and manifest.model.tower_queries}
    if backend in has and not has[backend]:
        name = {"onnx": layout.ONNX_FILE, "onnx-int8": layout.ONNX_INT8_FILE,
                "query-tower": layout.query_tower_file(manifest)}[backend]
        raise IndexFormatError(f"{files.root}: this index has no usable {name}; rebuild it or use backend torch")
    if backend != "auto":
        return backend
    if importlib.util.find_spec("onnxruntime") is None:  # a token table needs tokenizers and numpy only
        return "query-tower" if has["query-tower"] and layout.static_query_tower(manifest) else "torch"
    return next(b for b in ("query-tower", "onnx-int8", "onnx", "torch") if has.get(b, True))


def _query_encoder(files: layout.IndexFiles, manifest: layout.Manifest, backend: str, config: TextConfig,
                   options: LoadOptions) -> Encoder:
    if backend == "torch":
        return load_encoder(files.model, device=options.device)
    info = ModelInfo(name=manifest.model.name, path=str(files.model), fingerprint=manifest.model.fingerprint,
                     dimension=manifest.dimension, text=config)
    if backend == "query-tower" and layout.static_query_tower(manifest):
        return StaticEncoder(files.query_tokens, files.model, info, mmap=options.mmap)
    graph = {"query-tower": files.query_onnx, "onnx-int8": files.onnx_int8, "onnx": files.onnx}[backend]
    return OnnxEncoder(graph, files.model, info, threads=options.encode_threads,
                       one_at_a_time=backend != "onnx")  # int8 graphs run one text at a time


def _reranker_factory(files: layout.IndexFiles, manifest: layout.Manifest, normaliser: Normaliser,
                      threads: int | None, depth: int | None = None) -> Any:
    if not layout.has_reranker(manifest):
        return None
    if depth is not None and depth < 1:  # checked now, where the caller asked for it, not on the first rerank search
        raise SearchkitError(f"the rerank depth must be at least 1, not {depth}")

    def reranker() -> Reranker:  # loaded on the first "rerank" search: other modes never pay for its graph
        info = read_info(files.reranker)
        if depth is not None:
            info = {**info, "settings": {**info["settings"], "depth": depth}}
        grader = Grader(files.grader_graph, files.grader, info["grader"], normaliser,
                        threads=threads) if layout.has_grader(manifest) else None
        return Reranker(files.reranker_graph, files.reranker_tokenizer, info, threads=threads, grader=grader)

    return reranker


def model_words(model: Path) -> list[str]:
    """The whole words of the embedder's vocabulary (a WordPiece vocabulary holds about 22,000 common words of the
    language it was trained on): words a shopper may mean although the catalog never uses them."""
    import json

    try:
        vocab = json.loads((model / TOKENIZER_FILE).read_text())["model"]["vocab"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [w for w in vocab if w.isalpha() and w.isascii() and len(w) > 1]


def load_parts(path: str | Path, options: LoadOptions = LoadOptions()) -> Parts:
    """Read and check an index folder. `options.model`, when given, must be the model the index was built with."""
    files = layout.IndexFiles(layout.live_dir(Path(path)))
    manifest = layout.read_manifest(files.root)
    files = attach(files, manifest, options.model)  # an index built by reference: the installed model's parts
    layout.verify_files(files, manifest, checksums=options.verify)
    expected = manifest.model.fingerprint
    if options.model is not None and not manifest.model.by_reference and model_fingerprint(options.model) != expected:
        raise IndexMismatchError(
            f"{files.root} was built with model {manifest.model.name!r} (fingerprint {expected[:12]}), "
            f"not with {options.model}; rebuild the index with that model or drop --model"
        )
    backend = pick_backend(options.backend, files, manifest)
    if options.verify and backend == "torch" and model_fingerprint(files.model) != expected:
        raise IndexFormatError(f"{files.model}: the model copy differs from the one the index was built with")
    text = layout.read_text(files)
    config = TextConfig.from_dict(text.get("config", {}))
    if config != manifest.text:
        raise IndexFormatError(f"{files.text}: text settings differ from the manifest's")
    index = layout.read_faiss(files, mmap=options.mmap)
    try:
        knob = apply_params(index, manifest.index.ann_facts(), options.target_recall)
    except SearchkitError as exc:
        raise QueryError(f"{files.root}: {exc}") from exc
    if index.ntotal != manifest.rows or index.d != manifest.dimension:
        raise IndexFormatError(
            f"{files.faiss}: {index.ntotal} vectors of dimension {index.d}, the manifest says "
            f"{manifest.rows} x {manifest.dimension}"
        )
    products = layout.read_products(files, manifest.rows, mmap=options.mmap)
    lexical = layout.read_lexical(files, manifest.rows, mmap=options.mmap)
    encoder = _query_encoder(files, manifest, backend, config, options)
    keyword_text = manifest.index.bm25.text
    if keyword_text not in KEYWORD_TEXTS:
        raise IndexFormatError(f"{files.manifest}: keyword text version {keyword_text!r} is not one of "
                               f"{KEYWORD_TEXTS}; rebuild the index with this searchkit")
    normaliser = Normaliser(config, BrandMatcher.from_names(text.get("brands", [])),
                            CachedStemmer(text.get("stems", {})), keyword_text=keyword_text)
    corrector = SpellCorrector(text.get("vocab", {}), dictionary=lambda: model_words(files.model),
                               stem=normaliser.stemmer)
    return Parts(index, products, encoder, manifest, normaliser, lexical, corrector,
                 _reranker_factory(files, manifest, normaliser, options.encode_threads, options.rerank_depth), knob,
                 ProductTypes(text.get("types") or {}), files.root)
