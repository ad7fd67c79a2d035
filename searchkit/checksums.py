"""sha256 of files, in blocks (no module here imports pandas or torch: the query path uses it)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def update_with_file(digest, path: str | Path) -> None:
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    update_with_file(digest, path)
    return digest.hexdigest()


def stat_stamp(stat: os.stat_result) -> list[int]:
    """What a stamp of a checked file records: size, modification and change times, inode (any write changes one), so
    that an unchanged file need not be hashed again."""
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
