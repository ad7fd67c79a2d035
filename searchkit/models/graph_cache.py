"""Graphs made once per set of weights: the ONNX export of an embedder and its int8 copy, a query tower's
int8 graph, a cross-encoder's and a grader's int8 graphs. Each is kept in a user cache folder under the fingerprint of
the weights it came from, so every build after the first copies it instead of exporting again (exporting imports
torch and takes seconds; a cached build of a small catalog imports no torch at all).

The cache lives in $XDG_CACHE_HOME/searchkit/graphs (default ~/.cache/searchkit/graphs), or the folder a build's
config names; a graph is written to a temporary name and renamed into place, so concurrent builds never read half a
file. Deleting the folder is always safe. Where it cannot be written, graphs are made afresh for each build."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from ..checksums import file_sha256
from ..errors import ModelError
from .files import READY_RECORD, SAFETENSORS_FILE, SKELETON_DIR

log = logging.getLogger(__name__)

# how graphs are made: raised whenever export or quantisation writes other bytes for the same weights, so that a
# cache filled by an earlier searchkit is not copied into indexes that record each graph's checksum
RECIPE = 2

NOT_EXPORTABLE = ".none"  # beside a graph's name: its weights cannot be exported (e.g. not mean-pooled)


def default_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "searchkit" / "graphs"


def graph(root: Path | None, fingerprint: str, name: str, make: Callable[[Path], bool | None], target: Path) -> bool:
    """Write the graph `name` of the weights with this fingerprint to `target`: copied from the cache, else made by
    `make(path)` (which returns False when the weights cannot be exported) and kept in the cache. Returns whether
    `target` was written."""
    folder = (root or default_root()) / f"{fingerprint[:40]}-r{RECIPE}"
    cached = folder / name
    if not cached.is_file() and not (folder / (name + NOT_EXPORTABLE)).is_file():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _make(folder, name, make)
        except OSError as exc:  # a read-only home, a full disk: make it for this build alone
            log.warning("graph cache %s not writable (%s); exporting for this build only", folder, exc)
            with tempfile.TemporaryDirectory() as tmp:
                made = make(Path(tmp) / name) is not False
                if made:
                    shutil.copyfile(Path(tmp) / name, target)
                return made
    if not cached.is_file():
        return False
    shutil.copyfile(cached, target)
    return True


def _make(folder: Path, name: str, make: Callable[[Path], bool | None]) -> None:
    tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        if make(tmp) is False:
            (folder / (name + NOT_EXPORTABLE)).touch()
            return
        os.replace(tmp, folder / name)
        log.info("cached %s in %s", name, folder)
    finally:
        tmp.unlink(missing_ok=True)


# A model distribution may ship a graph made, in place of the weights it was made from (the cross-encoder and grader
# of the base install: 23 MB int8 graphs instead of 45 MB of fp16 weights each). Its record names the graph, its
# sha256, the recipe it was made by and the fingerprint of the weights, which stands for the absent weights.


def ready_record(folder: Path) -> dict | None:
    """The record of the graph a model folder ships made (SKELETON_DIR/READY_RECORD), or None."""
    path = Path(folder) / SKELETON_DIR / READY_RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        return {"graph": str(record["graph"]), "sha256": str(record["sha256"]), "recipe": int(record["recipe"]),
                "fingerprint": str(record["fingerprint"])}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: unreadable ({exc})") from exc


def shipped_fingerprint(folder: Path) -> str | None:
    """The fingerprint a folder without its weights ships for them; None for a folder that has its weights."""
    if (Path(folder) / SAFETENSORS_FILE).is_file():
        return None
    record = ready_record(folder)
    return record["fingerprint"] if record is not None else None


def copy_ready(folder: Path, name: str, target: Path) -> bool:
    """Copy the graph `name` a model folder ships made, in place of its weights, to `target`: True when it has it,
    made by this searchkit's recipe and intact; False when the folder has its weights (the caller makes the graph
    from them, as their fingerprint says)."""
    if (Path(folder) / SAFETENSORS_FILE).is_file():
        return False
    record = ready_record(folder)
    if record is None or record["graph"] != name or record["recipe"] != RECIPE:
        raise ModelError(f"{folder}: no {SAFETENSORS_FILE} and no {name} made by this searchkit (recipe {RECIPE}); "
                         "install the model distribution that goes with this searchkit")
    graph = Path(folder) / SKELETON_DIR / name
    if not graph.is_file() or file_sha256(graph) != record["sha256"]:
        raise ModelError(f"{graph}: missing or not the graph its {READY_RECORD} records; reinstall the model")
    shutil.copyfile(graph, target)
    return True


def ready_or(folder: Path, name: str, make: Callable[[Path], bool | None]) -> Callable[[Path], bool | None]:
    """A graph maker for graph(): the graph `name` the folder ships made (copy_ready), else `make`'s."""
    return lambda path: True if copy_ready(folder, name, path) else make(path)


def ship(folder: Path, out: Path, name: str, fingerprint: str, make: Callable[[Path], bool | None]) -> None:
    """Write the graph `name` of the weights in `folder` (made by `make`) into `out`/SKELETON_DIR with its record:
    `out` is the folder's copy in a distribution being built, which then leaves the weights out."""
    target = Path(out) / SKELETON_DIR
    target.mkdir(parents=True, exist_ok=True)
    if make(target / name) is False:
        raise ModelError(f"{folder}: its {name} cannot be made")
    record = {"graph": name, "sha256": file_sha256(target / name), "recipe": RECIPE, "fingerprint": fingerprint}
    (target / READY_RECORD).write_text(json.dumps(record, indent=1, sort_keys=True))
