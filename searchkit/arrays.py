"""Arrays read from .npy files, memory-mapped or read whole (numpy only: the query path uses it)."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np


def load_npy(path: str | Path, mmap: bool = False) -> np.ndarray:
    """The array in `path`: mapped read-only when `mmap` (shared between processes through the page cache), else read.

    A mapping comes back as a plain ndarray over the map, which it keeps open: numpy's memmap subclass runs Python code
    (its __getitem__ and __array_finalize__) on every slice and row lookup, and a search makes them by the hundred."""
    array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    return array.view(np.ndarray) if isinstance(array, np.memmap) else array


def is_mapped(array: np.ndarray) -> bool:
    """Whether the array's memory is a file mapping (load_npy with mmap), not memory of this process's own."""
    base: object = array
    while base is not None:
        if isinstance(base, np.memmap | mmap.mmap):
            return True
        base = getattr(base, "base", None)
    return False
