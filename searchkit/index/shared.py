"""An index that refers to the installed model instead of holding a copy (`searchkit build-index --shared-model`).

An index normally carries its model parts (layout.MODEL_PARTS: the weights, the ONNX graphs made from them, the query
tower, the cross-encoder), which for the shipped model is most of a small shop's index. An index built by reference
keeps none of them: its manifest records the model's fingerprint and each part's checksum (ModelSection.shared), and
the parts live once per model in a folder of the graph cache named by those checksums, which every index built by
reference to the same model shares.

On load the model is the one passed (`--model`), else the installed one (searchkit.models.encoder.shipped_model_dir),
else the folder the build read; it must have the fingerprint the index was built with, or the index is refused. When
the parts folder is gone (a cleared cache, another machine), it is made again from that model as a build makes it,
and kept only when every part has the checksum the manifest records.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from ..checksums import file_sha256, stat_stamp
from ..errors import IndexMismatchError, SearchkitError
from ..models import graph_cache
from ..models.cross_encoder import reranker_dir
from ..models.encoder import fingerprint_files, model_fingerprint, shipped_model_dir
from ..models.query_tower import tower_info
from . import layout
from .manifest import Manifest

PARTS_FOLDER = "index-parts"  # under the graph cache's root
# beside the parts folders: the fingerprint of each model folder a load looked at, with its files' stats, so that a
# cold load does not hash the installed weights again (as an index's own files are stamped: layout.verify_entries)
SEEN_MODELS = ".models.json"


def parts_root(cache: Path | None = None) -> Path:
    return (cache or graph_cache.default_root()) / PARTS_FOLDER


def parts_folder(manifest: Manifest, cache: Path | None = None) -> Path:
    """Where the model parts of a by-reference index live (whether or not they are there now)."""
    return parts_root(cache) / str((manifest.model.shared or {}).get("key", ""))


def _key(fingerprint: str, parts: dict[str, dict[str, Any]]) -> str:
    record = {"model": fingerprint, "parts": {name: entry["sha256"] for name, entry in sorted(parts.items())}}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:32]


def _records(files: layout.IndexFiles) -> dict[str, dict[str, Any]]:
    return {name: {"sha256": file_sha256(files.root / name), "bytes": (files.root / name).stat().st_size}
            for name in layout.model_part_files(files)}


def _settle_reranker_info(files: layout.IndexFiles, model_name: str) -> None:
    """The reranker's settings name the folder it was installed from; parts shared between machines name the model
    instead, so that they are the same bytes wherever they are made."""
    if not files.reranker_info.is_file():
        return
    info = json.loads(files.reranker_info.read_text())
    info["source"] = f"{layout.RERANKER_DIR}/ of the model {model_name}"
    files.reranker_info.write_text(json.dumps(info, indent=2, sort_keys=True))


def _complete(folder: Path, parts: dict[str, dict[str, Any]]) -> bool:
    return layout.is_model_folder(layout.IndexFiles(folder).model) and all(
        (folder / name).is_file() and (folder / name).stat().st_size == entry["bytes"] for name, entry in parts.items())


def _put(made: Path, folder: Path) -> None:
    """Rename the finished folder `made` into place; a folder already there (incomplete or from a race) goes first."""
    if folder.exists():
        aside = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
        try:
            os.replace(folder, aside)
        except OSError:
            pass
        shutil.rmtree(aside, ignore_errors=True)
    try:
        os.replace(made, folder)
    except OSError:  # another process put the same parts there first
        shutil.rmtree(made, ignore_errors=True)


def _making(folder: Path) -> Path:
    """A fresh temporary sibling of `folder` to make its parts in (renamed into place by _put)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    made = folder.parent / f".{folder.name}.making-{uuid.uuid4().hex[:8]}"
    made.mkdir()
    return made


def move_out(staged: layout.IndexFiles, fingerprint: str, model_name: str,
             cache: Path | None = None) -> dict[str, Any]:
    """At the end of a by-reference build: move the staged index's model parts to their shared folder (or drop them,
    when an earlier build put the same parts there) and return what the manifest records of them."""
    _settle_reranker_info(staged, model_name)
    parts = _records(staged)
    key = _key(fingerprint, parts)
    folder = parts_root(cache) / key
    moving = [staged.root / name for name in layout.MODEL_PARTS if (staged.root / name).exists()]
    if _complete(folder, parts):
        for path in moving:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        return {"key": key, "parts": parts}
    try:
        made = _making(folder)
    except OSError as exc:
        raise SearchkitError(f"--shared-model keeps the model's parts in {folder.parent}, which cannot be written "
                             f"({exc}); set XDG_CACHE_HOME to a writable folder or build without --shared-model") from exc
    for path in moving:
        os.replace(path, made / path.name)
    _put(made, folder)
    return {"key": key, "parts": parts}


def _stats(model_dir: Path) -> list[list[Any]]:
    return [[str(path.relative_to(model_dir)), *stat_stamp(path.stat())] for path in fingerprint_files(model_dir)]


def _fingerprint(model_dir: Path, cache: Path | None) -> str:
    """model_dir's fingerprint, not hashed again while its files are as they were when it was last hashed
    (SEEN_MODELS)."""
    seen = parts_root(cache) / SEEN_MODELS
    stats, known = _stats(model_dir), layout.read_stamp(seen)
    where = str(model_dir.resolve())
    if isinstance(known.get(where), dict) and known[where].get("stats") == stats:
        return str(known[where]["fingerprint"])
    found = model_fingerprint(model_dir)
    try:
        seen.parent.mkdir(parents=True, exist_ok=True)
    except OSError:  # a cache that cannot be written: hashed on every load, as before
        return found
    layout.write_stamp(seen, {**known, where: {"stats": stats, "fingerprint": found}})
    return found


def _rebuild(root: Path) -> str:
    return f"rebuild it with `searchkit build-index CATALOG --out {root} --shared-model`"


def model_for(manifest: Manifest, root: Path, given: str | Path | None = None, cache: Path | None = None) -> Path:
    """The model folder a by-reference index reads: `given`, else the installed model, else the one its build read;
    refused unless it has the index's fingerprint."""
    expected = manifest.model.fingerprint
    rebuild = _rebuild(root)
    if given is not None:
        if _fingerprint(Path(given), cache) != expected:
            raise IndexMismatchError(f"{root} was built with model {manifest.model.name!r} (fingerprint "
                                     f"{expected[:12]}), not with {given}; pass that model or {rebuild}")
        return Path(given)
    seen = []
    source = Path(manifest.model.source) if manifest.model.source else None
    for candidate in dict.fromkeys(c for c in (shipped_model_dir(), source) if c is not None):
        if not layout.is_model_folder(candidate):
            continue
        found = _fingerprint(candidate, cache)
        if found == expected:
            return candidate
        seen.append(f"{candidate} (fingerprint {found[:12]})")
    raise IndexMismatchError(
        f"{root} refers to the model {manifest.model.name!r} (fingerprint {expected[:12]}), and the model installed "
        f"here is {', '.join(seen) or 'none'}: install the model it was built with, pass --model DIR, or {rebuild}")


def make_parts(model_dir: Path, manifest: Manifest, root: Path, cache: Path | None = None) -> Path:
    """Make a by-reference index's model parts from `model_dir` as its build did, into their shared folder; refused
    when any part differs from the manifest's record (another searchkit or onnxruntime quantised differently)."""
    from .graphs import export_graphs, write_query_tower  # the build's graph code (and pandas): not on a cold query
    from .reranker import install

    folder = parts_folder(manifest, cache)
    wanted = manifest.model.parts
    made = layout.IndexFiles(_making(folder))
    try:
        layout.copy_model(model_dir, made, leave_out=(layout.RERANKER_DIR,))
        if layout.ONNX_FILE in wanted:
            export_graphs(model_dir, manifest.model.fingerprint, made, cache)
            if layout.ONNX_INT8_FILE not in wanted:
                made.onnx_int8.unlink(missing_ok=True)
        tower = tower_info(model_dir)
        if tower is not None and layout.query_tower_file(manifest) in wanted:
            write_query_tower(made, manifest.model.fingerprint, tower, cache)
        own = reranker_dir(model_dir)
        if own is not None and layout.has_reranker(manifest):
            install(own, made, cache)
            _settle_reranker_info(made, manifest.model.name)
        records = _records(made)
        differ = sorted(n for n in set(records) | set(wanted) if records.get(n) != wanted.get(n))
        if differ:
            raise IndexMismatchError(
                f"{root}: the model parts made from {model_dir} differ from those the index was built with "
                f"({', '.join(differ[:3])}); {_rebuild(root)}")
        _put(made.root, folder)
        return folder
    finally:
        shutil.rmtree(made.root, ignore_errors=True)


def attach(files: layout.IndexFiles, manifest: Manifest, model: str | Path | None = None,
           cache: Path | None = None) -> layout.IndexFiles:
    """`files` with its model parts found: an index's own, or, for a by-reference index, the shared folder of the
    installed model's parts (made when missing)."""
    if not manifest.model.by_reference:
        return files
    model_dir = model_for(manifest, files.root, model, cache)
    folder = parts_folder(manifest, cache)
    if not _complete(folder, manifest.model.parts):
        make_parts(model_dir, manifest, files.root, cache)
    return layout.IndexFiles(files.root, parts=folder)


def index_model(index_dir: str | Path) -> Path:
    """The folder of the model the index at `index_dir` was built with: its own copy, or the installed model it
    refers to."""
    files = layout.IndexFiles(layout.live_dir(Path(index_dir)))
    manifest = layout.read_manifest(files.root)
    return model_for(manifest, files.root) if manifest.model.by_reference else files.model
