"""The index's manifest: what was built, from what, with what. Each section is a frozen dataclass whose defaults
live here and nowhere else; manifest.json is their JSON. An index of an older format is migrated when read, or
refused with the command that rebuilds it.

Format history:
    1  sections as free dicts; how the vectors were embedded was told by the words of the `device` line
    2  typed sections; `encoding` names how the vectors were embedded; the model's Ray report is `model.ray`
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from enum import Enum
from pathlib import Path
from typing import Any

from ..data.text import TextConfig
from ..errors import IndexFormatError
from .lexical import BM25_B, BM25_K1

FORMAT_VERSION = 3  # 3: products as numpy columns (products/), not products.parquet
MIGRATED_FROM = (1, 2)  # older formats this searchkit reads by migrating them in memory
REBUILD = "rebuild it with `searchkit build-index CATALOG --out {root}`"


class Encoding(str, Enum):
    """How the stored vectors were embedded. A build reuses an older index's vectors only when it embeds the same
    way, since the graphs' vectors differ slightly."""

    TORCH = "torch"
    ONNX = "onnx"  # the exported fp32 graph
    ONNX_INT8 = "onnx-int8"  # int8, one activation scale per batch: a vector depends on its batch-mates
    ONNX_INT8_ROWS = "onnx-int8-rows"  # int8 with per-row activation scales: a product embeds alike in any batch
    # the same graph with each residual addition and layer norm run apart (searchkit.models.encoder.SPLIT_NORMS):
    # as close to fp32, a little apart from ONNX_INT8_ROWS's vectors
    ONNX_INT8_ROWS_SPLIT = "onnx-int8-rows-split-norms"

    @classmethod
    def of_bulk(cls, bulk: str) -> Encoding:
        """The encoding of IndexConfig.bulk ("torch", "onnx", "onnx-int8"): today's int8 graphs scale per row, their
        norms apart."""
        return {"torch": cls.TORCH, "onnx": cls.ONNX, "onnx-int8": cls.ONNX_INT8_ROWS_SPLIT}[bulk]

    @property
    def fused_norms(self) -> bool:
        """Whether the vectors were embedded by sessions fusing residual additions into layer norms."""
        return self in (Encoding.ONNX_INT8, Encoding.ONNX_INT8_ROWS)


@dataclass(frozen=True)
class Bm25:
    k1: float = BM25_K1
    b: float = BM25_B
    text: int = 1  # the keyword text's version (searchkit.data.text.KEYWORD_TEXTS); indexes that lack it read 1


@dataclass(frozen=True)
class CatalogSection:
    path: str
    sha256: str
    columns: list[str] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)  # column -> text | number (searchkit.data.catalog)
    sources: dict[str, str] = field(default_factory=dict)  # product field -> the catalog's own column name
    embedded: int = 0  # products embedded by the build that wrote this version
    reused_embeddings: int = 0  # products whose stored vector was kept
    version: int = 1  # 1 as built; each update adds one
    updated_at: str | None = None
    last_update: dict[str, Any] | None = None

    @property
    def own_names(self) -> dict[str, str]:
        """The catalog file's own name of each column the build renamed, to the index's name ({"colour": "color",
        "price_usd": "price"}): filters, sorts and rules take either."""
        return {source: name for name, source in self.sources.items() if source != name}


@dataclass(frozen=True)
class ModelSection:
    name: str
    fingerprint: str
    source: str = ""
    query_int8: dict[str, Any] | None = None  # the int8 query graph's build check (index.graphs.check_int8)
    query_tower: dict[str, Any] | None = None  # the query tower's build check (index.graphs.build_query_graph)
    reranker: dict[str, Any] | None = None  # the cross-encoder installed for mode rerank (index.reranker.install)
    ray: dict[str, Any] | None = None  # how a Ray cluster embedded the catalog, when one did
    # an index that refers to the installed model instead of holding a copy (searchkit.index.shared): the key of its
    # model parts folder and each part's checksum ({"key": ..., "parts": {name: {"sha256", "bytes"}}})
    shared: dict[str, Any] | None = None

    @property
    def int8_queries(self) -> bool:
        return bool((self.query_int8 or {}).get("used_for_queries"))

    @property
    def tower_queries(self) -> bool:
        return bool((self.query_tower or {}).get("used_for_queries"))

    @property
    def static_tower(self) -> bool:
        """Whether the query tower is a token table (trained with layers=0), not transformer layers."""
        return (self.query_tower or {}).get("layers") == 0

    @property
    def by_reference(self) -> bool:
        """Whether the index refers to the installed model (its model parts live in a shared folder)."""
        return self.shared is not None

    @property
    def parts(self) -> dict[str, dict[str, Any]]:
        """The model parts a by-reference index was built with: name -> {"sha256", "bytes"} ({} for a copy)."""
        return dict((self.shared or {}).get("parts") or {})

    @property
    def reranker_fingerprint(self) -> str | None:
        return (self.reranker or {}).get("fingerprint")


RECALL_KEY = "recall@10_sample"  # the JSON name of IndexSection.recall_sample


@dataclass(frozen=True)
class IndexSection:
    type: str  # flat | hnsw | hnsw-sq8 | ivf-sq8 (searchkit.index.ann)
    ntotal: int
    factory: str = "Flat"
    faiss_class: str = ""
    params: dict[str, int] = field(default_factory=dict)  # the faiss knobs: m, ef_construction, ef_search, nprobe
    bm25: Bm25 = Bm25()
    recall_sample: float | None = None  # recall@10 against exact search at the chosen knob, on the build's probes
    target_recall: float | None = None
    calibration: dict[str, Any] | None = None  # the knob's recall curve and the queries it was measured on
    edited_share: float | None = None  # of an HNSW graph edited in place by updates (searchkit.index.update)

    def ann_facts(self) -> dict[str, Any]:
        """The section as searchkit.index.ann reads and writes it."""
        out = {k: v for k, v in self.to_dict().items() if v is not None}
        out.pop("bm25", None)
        return out

    def with_facts(self, facts: dict[str, Any]) -> IndexSection:
        """This section with the ANN facts searchkit.index.ann measured (its BM25 settings kept)."""
        return IndexSection.from_dict({**facts, "bm25": asdict(self.bm25)})

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out[RECALL_KEY] = out.pop("recall_sample")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexSection:
        data = dict(data)
        if RECALL_KEY in data:
            data["recall_sample"] = data.pop(RECALL_KEY)
        bm25 = data.pop("bm25", None) or {}
        return cls(**_known(cls, data), bm25=Bm25(**_known(Bm25, bm25)))


@dataclass(frozen=True)
class Manifest:
    format_version: int
    searchkit_version: str
    built_at: str
    rows: int
    dimension: int
    metric: str
    model: ModelSection
    index: IndexSection
    catalog: CatalogSection
    text: TextConfig
    encoding: Encoding
    libraries: dict[str, str]
    device: str
    build_seconds: float
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": self.format_version, "searchkit_version": self.searchkit_version,
                "built_at": self.built_at, "rows": self.rows, "dimension": self.dimension, "metric": self.metric,
                "model": {k: v for k, v in asdict(self.model).items() if v is not None},
                "index": {k: v for k, v in self.index.to_dict().items() if v is not None},
                "catalog": {k: v for k, v in asdict(self.catalog).items() if v is not None},
                "text": self.text.to_dict(), "encoding": self.encoding.value, "libraries": self.libraries,
                "device": self.device, "build_seconds": self.build_seconds, "files": self.files}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def holds(self, name: str) -> bool:
        """Whether the index has the file `name` (a path inside its folder): its own, or a model part it refers to."""
        return name in self.files or name in self.model.parts

    def with_files(self, files: dict[str, dict[str, Any]]) -> Manifest:
        return replace(self, files=files)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: Path) -> Manifest:
        version = data.get("format_version")
        if version in MIGRATED_FROM:
            data = migrate(data)
        elif version != FORMAT_VERSION:
            raise IndexFormatError(f"{where}: index format version {version!r}, this searchkit reads version "
                                   f"{FORMAT_VERSION} (and migrates {', '.join(map(str, MIGRATED_FROM))}); "
                                   + REBUILD.format(root=where))
        required = [f.name for f in fields(cls) if f.name != "files"]
        missing = sorted(n for n in required if n not in data)
        if missing:
            raise IndexFormatError(f"{where}: manifest lacks {missing}; " + REBUILD.format(root=where))
        try:
            return cls(
                format_version=FORMAT_VERSION, searchkit_version=str(data["searchkit_version"]),
                built_at=str(data["built_at"]), rows=int(data["rows"]), dimension=int(data["dimension"]),
                metric=str(data["metric"]), model=ModelSection(**_known(ModelSection, data["model"])),
                index=IndexSection.from_dict(data["index"]),
                catalog=CatalogSection(**_known(CatalogSection, data["catalog"])),
                text=TextConfig.from_dict(data["text"]), encoding=Encoding(data["encoding"]),
                libraries=dict(data["libraries"]), device=str(data["device"]),
                build_seconds=float(data["build_seconds"]), files=dict(data.get("files") or {}))
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise IndexFormatError(f"{where}: malformed manifest ({exc}); " + REBUILD.format(root=where)) from exc


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The fields of `data` the dataclass `cls` has (keys a later searchkit added are left out)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """A format-1 or 2 manifest as format 3: its files and checksums stay valid, only the manifest's form changes
    (format 2's products.parquet is read where pyarrow is installed: searchkit.index.layout.read_products)."""
    if data.get("format_version") == 2:
        return {**data, "format_version": FORMAT_VERSION}
    device = str(data.get("device", ""))
    if "int8" in device:
        encoding = Encoding.ONNX_INT8_ROWS if "per-row scales" in device else Encoding.ONNX_INT8
    elif "onnxruntime" in device or "(onnx)" in device:
        encoding = Encoding.ONNX
    else:
        encoding = Encoding.TORCH
    model = dict(data.get("model") or {})
    if "encoding" in model:
        model["ray"] = model.pop("encoding")
    return {**data, "format_version": FORMAT_VERSION, "encoding": encoding.value, "model": model}


LIBRARIES = {"faiss": "faiss-cpu", "numpy": "numpy", "pandas": "pandas", "pyarrow": "pyarrow", "torch": "torch",
             "sentence_transformers": "sentence-transformers", "transformers": "transformers", "nltk": "nltk",
             "onnxruntime": "onnxruntime"}


def library_versions() -> dict[str, str]:
    """The versions of the libraries a build used: from the imported module, else the installed distribution's
    metadata (importing torch only to read its version would cost a cached build two seconds)."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name, distribution in LIBRARIES.items():
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = str(getattr(module, "__version__", "unknown"))
            continue
        for candidate in (distribution, "faiss-gpu") if name == "faiss" else (distribution,):
            try:
                versions[name] = metadata.version(candidate)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions
