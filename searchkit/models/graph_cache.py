"""Graphs made once per set of weights: the ONNX export of an embedder and its int8 copy, a query tower's
int8 graph, a cross-encoder's and a grader's int8 graphs. Each is kept in a user cache folder under the fingerprint of
the weights it came from, so every build after the first copies it instead of exporting again (exporting imports
torch and takes seconds; a cached build of a small catalog imports no torch at all).

The cache lives in $XDG_CACHE_HOME/searchkit/graphs (default ~/.cache/searchkit/graphs), or the folder a build's
config names; a graph is written to a temporary name and renamed into place, so concurrent builds never read half a
file. Deleting the folder is always safe. Where it cannot be written, graphs are made afresh for each build."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

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
