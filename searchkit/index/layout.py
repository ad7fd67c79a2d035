"""The index folder: layout, atomic save and validated load. The ONLY module that knows the index's file names
(tests/test_layout.py checks it; a model folder's are searchkit.models.files', the manifest's sections
searchkit.index.manifest's).

    indexes/<name>/
      manifest.json     what was built, from what, with what (format version, model, counts, checksums, versions)
      index.faiss       the CPU copy of the faiss index (row i = product row i)
      products/         the catalog as indexed, memory-mapped numpy columns (searchkit.data.products; format 2 had
                        products.parquet, still read where pyarrow is installed)
      text.json         the text pipeline: settings, the catalog's brands, and the stems of the catalog's words
      lexical/          the BM25 keyword index over the stemmed normalised text (numpy arrays + vocabulary)
      encoder.onnx      the same model as one ONNX graph (when exportable): fast query embedding without torch
      encoder-int8.onnx that graph with per-channel int8 weights: the query encoder when it measured close to fp32
      query-int8.onnx   the model's query tower (int8), when it has one and it passed its build check
      query-tokens.npy  or, for a static one (`train-query-tower --layers 0`), its token table (fp16), on the same terms
      reranker/         the cross-encoder of mode "rerank" (searchkit.models.cross_encoder), when the build was given one:
                        reranker-int8.onnx, tokenizer.json, reranker.json (its settings and text pipeline), and
                        when the reranker carries a grader (a second embedder the relevance estimate reads):
                        grader-int8.onnx and grader/ (its tokenizer.json and sentence_bert_config.json)
      model/            the model that embedded the catalog, so queries are embedded by the very same weights
      suggest.json      completions while typing (searchkit.data.suggest): the catalog's types, brands and brand + type
      rules.json        the merchandiser's rules (searchkit.search.rules), when installed: not part of the build and not
                        checksummed, replaced atomically by `searchkit rules`, carried by updates and rebuilds
      calibration-queries.npy  the queries `searchkit calibrate` measured on, embedded; unchecksummed; updates reuse them
      .verified.json    written on load, not part of the build: each file's stat (size, mtimes, inode) when its
                        checksum last matched the manifest, so later loads of unchanged files skip re-hashing

An index built by reference to its model (`build-index --shared-model`) holds none of the model parts (MODEL_PARTS:
model/, the graphs, the token table, reranker/); searchkit.index.shared keeps them once per model, laid out as here.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checksums import file_sha256, stat_stamp
from ..data.products import ProductTable
from ..errors import IndexFormatError
from ..models.files import (
    ENCODER_GRAPH_NAME,
    GRADER_DIR,
    GRADER_GRAPH_NAME,
    RERANKER_DIR,
    RERANKER_GRAPH_NAME,
    RERANKER_INFO,
    TOKENIZER_FILE,
)
from .manifest import REBUILD, Manifest

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FAISS_FILE = "index.faiss"
PRODUCTS_DIR = "products"
PRODUCTS_PARQUET = "products.parquet"  # format 2's products (read where pyarrow is installed)
TEXT_FILE = "text.json"
MODEL_DIR = "model"
STAMP_FILE = ".verified.json"
LEXICAL_DIR = "lexical"
ONNX_FILE = ENCODER_GRAPH_NAME  # the model as one ONNX graph, named as in the graph cache
ONNX_INT8_FILE = "encoder-int8.onnx"
QUERY_ONNX_FILE = "query-int8.onnx"  # the model's query tower (searchkit.training.query_tower), int8
QUERY_TOKENS_FILE = "query-tokens.npy"  # or its static token table (distilled with layers=0), fp16
RERANKER_GRAPH = RERANKER_GRAPH_NAME
RERANKER_TOKENIZER = TOKENIZER_FILE
GRADER_GRAPH = GRADER_GRAPH_NAME
SUGGEST_FILE = "suggest.json"
RULES_FILE = "rules.json"
CALIBRATION_FILE = "calibration-queries.npy"
REQUIRED_FILES = (FAISS_FILE, TEXT_FILE)


# what an index holds of its model (MODEL_DIR, the graphs, the reranker): copied into each index, or, for an index built
# by reference (searchkit.index.shared), kept once per model in a shared folder laid out the same way
MODEL_PARTS = (MODEL_DIR, ONNX_FILE, ONNX_INT8_FILE, QUERY_ONNX_FILE, QUERY_TOKENS_FILE, RERANKER_DIR)


@dataclass(frozen=True)
class IndexFiles:
    """Paths inside one index folder; `parts`: the folder holding its model parts, when not the index's own."""

    root: Path
    parts: Path | None = None

    @property
    def model_root(self) -> Path:
        return self.parts if self.parts is not None else self.root

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def faiss(self) -> Path:
        return self.root / FAISS_FILE

    @property
    def products(self) -> Path:
        return self.root / PRODUCTS_DIR

    @property
    def text(self) -> Path:
        return self.root / TEXT_FILE

    @property
    def model(self) -> Path:
        return self.model_root / MODEL_DIR

    @property
    def lexical(self) -> Path:
        return self.root / LEXICAL_DIR

    @property
    def onnx(self) -> Path:
        return self.model_root / ONNX_FILE

    @property
    def onnx_int8(self) -> Path:
        return self.model_root / ONNX_INT8_FILE

    @property
    def query_onnx(self) -> Path:
        return self.model_root / QUERY_ONNX_FILE

    @property
    def query_tokens(self) -> Path:
        return self.model_root / QUERY_TOKENS_FILE

    @property
    def reranker(self) -> Path:
        return self.model_root / RERANKER_DIR

    @property
    def reranker_graph(self) -> Path:
        return self.reranker / RERANKER_GRAPH

    @property
    def reranker_tokenizer(self) -> Path:
        return self.reranker / RERANKER_TOKENIZER

    @property
    def reranker_info(self) -> Path:
        return self.reranker / RERANKER_INFO

    @property
    def grader_graph(self) -> Path:
        return self.reranker / GRADER_GRAPH

    @property
    def grader(self) -> Path:
        return self.reranker / GRADER_DIR

    @property
    def stamp(self) -> Path:
        return self.root / STAMP_FILE

    @property
    def suggest(self) -> Path:
        return self.root / SUGGEST_FILE

    @property
    def rules(self) -> Path:
        return self.root / RULES_FILE


def has_reranker(manifest: Manifest) -> bool:
    """Whether the index was built with a cross-encoder (its three files checksummed in the manifest)."""
    return all(manifest.holds(f"{RERANKER_DIR}/{name}") for name in (RERANKER_GRAPH, RERANKER_TOKENIZER, RERANKER_INFO))


def has_grader(manifest: Manifest) -> bool:
    """Whether the index's reranker came with a grader (its int8 graph checksummed in the manifest)."""
    return has_reranker(manifest) and manifest.holds(f"{RERANKER_DIR}/{GRADER_GRAPH}")


def is_model_part(name: str) -> bool:
    """Whether the path `name` inside an index folder is one of its model parts (MODEL_PARTS)."""
    return Path(name).parts[0] in MODEL_PARTS


def model_part_files(files: IndexFiles) -> list[str]:
    """The model parts' files in `files` (relative names), less the model folder (its fingerprint stands for it)."""
    names = [p.relative_to(files.root) for p in files.root.rglob("*") if p.is_file()]
    return sorted(n.as_posix() for n in names if is_model_part(n.as_posix()) and n.parts[0] != MODEL_DIR)


def static_query_tower(manifest: Manifest) -> bool:
    """Whether the index's query tower is a token table (distilled with layers=0), not layers."""
    return manifest.model.static_tower


def query_tower_file(manifest: Manifest) -> str:
    """The file of the index's query tower: its token table for a static one, else its int8 graph."""
    return QUERY_TOKENS_FILE if static_query_tower(manifest) else QUERY_ONNX_FILE


def staging_dir(target: Path) -> IndexFiles:
    """A fresh temporary sibling of `target` to build into (same file system, so the final rename is cheap)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.building-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return IndexFiles(tmp)


def write_products(files: IndexFiles, products: Any) -> None:
    ProductTable.of(products).save(files.products)


def write_text(files: IndexFiles, text: dict[str, Any]) -> None:
    files.text.write_text(json.dumps(text, sort_keys=True))


def previous_dir(target: Path) -> Path:
    """Where the version an update replaced is kept (for `searchkit update --rollback`), and where the old version
    waits during the swap."""
    return target.parent / f".{target.name}.previous"


def live_dir(target: Path) -> Path:
    """The folder to read the index at `target` from: `target`, or, when a swap was cut off between its two renames
    (the old version moved aside, the new one not yet in), the old version beside it."""
    target = Path(target)
    previous = previous_dir(target)
    if not target.exists() and (previous / MANIFEST).is_file():
        return previous
    return target


def finish(staged: IndexFiles, manifest: Manifest, target: Path, keep_previous: bool = False) -> Manifest:
    """Checksum the staged files, write the manifest last, then swap the folder into place.

    The old index is renamed aside (previous_dir) before the new one is renamed in, and deleted afterwards unless
    `keep_previous`: a crash at any point leaves the old complete index or the new complete one, which live_dir
    finds.
    """
    checked = [p for p in sorted(staged.root.rglob("*"))
               if p.is_file() and p.relative_to(staged.root).parts[0] != MODEL_DIR]
    sums = {p.relative_to(staged.root).as_posix(): {"sha256": file_sha256(p), "bytes": p.stat().st_size}
            for p in checked if p.relative_to(staged.root).as_posix() not in (MANIFEST, RULES_FILE, CALIBRATION_FILE)}
    manifest = manifest.with_files(sums)
    rewrite_manifest(staged, manifest)
    previous = previous_dir(target)
    if target.exists():
        if previous.exists():  # an older kept version: the one being replaced takes its place
            discard(IndexFiles(previous))
        os.replace(target, previous)
    os.replace(staged.root, target)
    if not keep_previous:
        shutil.rmtree(previous, ignore_errors=True)
    return manifest


def roll_back(target: Path) -> Manifest:
    """Swap the kept previous version back in; the current one becomes the kept one (so a second rollback undoes
    the first). Each step is a rename, and live_dir reads a version whatever step a crash stops at."""
    previous = previous_dir(target)
    if not (previous / MANIFEST).is_file():
        raise IndexFormatError(f"{target}: no previous version is kept (an update keeps one, a build does not)")
    aside = target.parent / f".{target.name}.rollback-{uuid.uuid4().hex[:8]}"
    os.replace(target, aside)
    os.replace(previous, target)
    os.replace(aside, previous)
    return read_manifest(target)


def rewrite_manifest(files: IndexFiles, manifest: Manifest) -> None:
    """Replace the manifest of a complete index (its files unchanged) atomically: readers see the old or the new."""
    replace_file(files.manifest, manifest.to_json().encode("utf-8"))


def replace_file(target: Path, data: bytes) -> None:
    """Write `data` to `target` through a temporary sibling and a rename: a reader sees the old file or the new."""
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def discard(staged: IndexFiles) -> None:
    shutil.rmtree(staged.root, ignore_errors=True)


def read_manifest(root: str | Path) -> Manifest:
    files = IndexFiles(live_dir(Path(root)))
    if not files.root.is_dir():
        raise IndexFormatError(
            f"{files.root}: no index here; build one with `searchkit build-index CATALOG --out {files.root}`"
        )
    if not files.manifest.is_file():
        raise IndexFormatError(f"{files.root}: not an index folder (no {MANIFEST}); rebuild it")
    try:
        data = json.loads(files.manifest.read_text())
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"{files.manifest}: unreadable manifest ({exc})") from exc
    if not isinstance(data, dict):
        raise IndexFormatError(f"{files.manifest}: manifest is not a JSON object")
    return Manifest.from_dict(data, files.root)


def verify_files(files: IndexFiles, manifest: Manifest, checksums: bool = True) -> None:
    """Every recorded file is present with the recorded size (and checksum): a truncated or edited index is refused.
    An index built by reference has its model parts checked in their shared folder (files.parts) when one is given.

    A file whose size, mtime, ctime and inode are those it had when its checksum last matched (the stamp file) is
    not hashed again: re-hashing a large index would cost every cold query seconds (docs/design-notes.md). Any write to a file
    changes its ctime, so an edited file is always re-hashed; only corruption that bypasses the file system
    (bit rot) would go unnoticed until the stamp is gone."""
    absent = [name for name in REQUIRED_FILES if name not in manifest.files]
    if PRODUCTS_PARQUET not in manifest.files and not any(n.startswith(f"{PRODUCTS_DIR}/") for n in manifest.files):
        absent.append(PRODUCTS_DIR)
    if absent:
        raise IndexFormatError(f"{files.root}: the manifest lists no {absent}; rebuild the index")
    verify_entries(files.root, manifest.files, checksums)
    if manifest.model.by_reference:
        if files.parts is None:  # the index's own files only (searchkit.index.shared.attach finds the parts)
            return
        verify_entries(files.parts, manifest.model.parts, checksums)
    if not is_model_folder(files.model):
        raise IndexFormatError(f"{files.root}: the model folder {MODEL_DIR}/ is missing; rebuild the index")


def is_model_folder(folder: Path) -> bool:
    """Whether `folder` holds a sentence-transformers model."""
    return (folder / "modules.json").is_file()


def verify_entries(root: Path, entries: dict[str, dict[str, Any]], checksums: bool = True) -> None:
    """The files `entries` names ({name: {"sha256", "bytes"}}) are in `root` as recorded; stamped in root's
    STAMP_FILE when their checksums match (verify_files)."""
    stamp = read_stamp(root / STAMP_FILE) if checksums else {}
    fresh = {}
    for name, expect in entries.items():
        path = root / name
        if not path.is_file():
            raise IndexFormatError(f"{root}: {name} is missing; rebuild the index")
        stat = path.stat()
        if stat.st_size != expect.get("bytes"):
            raise IndexFormatError(f"{path}: {stat.st_size} bytes, the manifest says {expect.get('bytes')} (truncated?)")
        if not checksums:
            continue
        seen = {"stat": stat_stamp(stat), "sha256": expect.get("sha256")}
        if stamp.get(name) != seen and file_sha256(path) != expect.get("sha256"):
            raise IndexFormatError(f"{path}: checksum differs from the manifest (file changed after the build)")
        fresh[name] = seen
    if checksums and fresh != stamp:
        write_stamp(root / STAMP_FILE, fresh)


def read_stamp(path: Path) -> dict[str, Any]:
    """A stamp of files' stats (write_stamp); empty when missing or unreadable."""
    try:
        stamp = json.loads(path.read_text())
        return stamp if isinstance(stamp, dict) else {}
    except (OSError, ValueError):
        return {}


def write_stamp(path: Path, stamp: dict[str, Any]) -> None:
    """Best effort (a read-only folder is fine), atomic (concurrent loaders never see half a file)."""
    tmp = path.parent / f"{path.name}.{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(json.dumps(stamp))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def read_text(files: IndexFiles) -> dict[str, Any]:
    try:
        return json.loads(files.text.read_text())
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"{files.text}: unreadable ({exc})") from exc


def read_products(files: IndexFiles, rows: int, mmap: bool = False) -> ProductTable:
    """The indexed products (memory-mapped with mmap); a format-2 index's parquet read through pyarrow."""
    if files.products.is_dir():
        products = ProductTable.load(files.products, mmap=mmap)
    elif (legacy := ProductTable.read_parquet(files.root / PRODUCTS_PARQUET)) is not None:
        products = legacy
    else:
        raise IndexFormatError(f"{files.root / PRODUCTS_PARQUET}: products stored as parquet (index format 2) need "
                               "pyarrow; install searchkit[parquet] or " + REBUILD.format(root=files.root))
    if products.num_rows != rows or "product_id" not in products.column_names:
        raise IndexFormatError(f"{files.products}: {products.num_rows} rows, the manifest says {rows}")
    return products


def copy_model(source: Path, files: IndexFiles, leave_out: tuple[str, ...] = ()) -> None:
    """The embedder's folder, less training checkpoints, graphs and the top-level entries named in `leave_out` (its
    reranker: the index keeps that as its own graph)."""
    skip = shutil.ignore_patterns("checkpoints", "*.onnx", "__pycache__", "__init__.py", "pyproject.toml", "build",
                                  "*.egg-info")

    def ignore(folder: str, names: list[str]) -> set[str]:
        return set(skip(folder, names)) | (set(leave_out) & set(names) if Path(folder) == Path(source) else set())

    shutil.copytree(source, files.model, ignore=ignore)


def write_lexical(files: IndexFiles, lexical: Any) -> None:
    files.lexical.mkdir()
    lexical.save(files.lexical)


def read_lexical(files: IndexFiles, rows: int, mmap: bool = False) -> Any:
    from .lexical import LexicalIndex

    if not files.lexical.is_dir():
        raise IndexFormatError(f"{files.root}: no {LEXICAL_DIR}/ keyword index; rebuild the index")
    lexical = LexicalIndex.load(files.lexical, mmap=mmap)
    if lexical.rows != rows:
        raise IndexFormatError(f"{files.lexical}: {lexical.rows} documents, the manifest says {rows}")
    return lexical


def write_faiss(files: IndexFiles, index: Any) -> None:
    import faiss

    faiss.write_index(index, str(files.faiss))


def read_faiss(files: IndexFiles, mmap: bool = False) -> Any:
    """mmap: map flat vector storage instead of reading it (a large HNSW loads at once instead of being read).
    Only for short-lived processes: a file rewritten in place under a mapping kills the process (SIGBUS)."""
    import faiss

    try:
        return faiss.read_index(str(files.faiss), getattr(faiss, "IO_FLAG_MMAP_IFC", 0) if mmap else 0)
    except Exception as exc:  # faiss raises RuntimeError with a C++ message for a broken file
        raise IndexFormatError(f"{files.faiss}: unreadable faiss index ({str(exc).splitlines()[0]})") from exc


def write_suggest(files: IndexFiles, data: dict[str, Any]) -> None:
    files.suggest.write_text(json.dumps(data))


def read_suggest(files: IndexFiles) -> dict[str, Any]:
    """The index's completions ({} for an index built before they were kept)."""
    if not files.suggest.is_file():
        return {}
    try:
        return json.loads(files.suggest.read_text())
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"{files.suggest}: unreadable ({exc})") from exc


def rules_stamp(root: Path) -> tuple | None:
    """What changes when rules are installed or removed (a server compares it to pick them up)."""
    try:
        stat = (Path(root) / RULES_FILE).stat()
        return stat.st_ino, stat.st_mtime_ns, stat.st_size
    except OSError:
        return None


def read_rules_text(root: Path) -> str | None:
    """The installed rules (JSON text), or None when the index has none."""
    try:
        return (Path(root) / RULES_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IndexFormatError(f"{Path(root) / RULES_FILE}: unreadable ({exc})") from exc


def write_rules_text(root: Path, text: str | None) -> None:
    """Install rules (or remove them, text None) in an index folder atomically: a reader sees the old or the new."""
    target = Path(root) / RULES_FILE
    if text is None:
        target.unlink(missing_ok=True)
        return
    replace_file(target, text.encode("utf-8"))


def carry_rules(old_root: Path, staged: IndexFiles) -> None:
    """A rebuild keeps the rules installed in the index it replaces."""
    text = read_rules_text(old_root) if Path(old_root).is_dir() else None
    if text is not None:
        staged.rules.write_text(text, encoding="utf-8")


def write_parts(files: IndexFiles, index: Any, products: Any, lexical: Any, text: dict[str, Any],
                suggest: dict[str, Any]) -> None:
    """Everything a build and an update both write of a catalog, in one place: the vectors, the products, the
    keyword index, text.json and suggest.json."""
    write_faiss(files, index)
    write_products(files, products)
    write_lexical(files, lexical)
    write_text(files, text)
    write_suggest(files, suggest)
