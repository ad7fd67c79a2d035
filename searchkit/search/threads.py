"""How many OpenMP threads faiss uses for a search: the application's choice (set_search_threads), applied in each
thread that searches."""

from __future__ import annotations

import threading

_search_threads: int | None = None  # set_search_threads' choice; None: the application made none
_this_thread = threading.local()  # the choice as applied in this thread


def set_search_threads(threads: int) -> None:
    """faiss's OpenMP threads for every search in this process: a process-wide setting, so the application makes it
    (the CLI and the server set one, fastest for single queries and leaving the other cores to concurrent requests;
    docs/speed.md). A library load never changes it. OpenMP keeps the count per thread, so searches apply the choice
    in whichever thread runs them (a server answers in worker threads, not the thread that chose)."""
    import faiss

    global _search_threads
    _search_threads = int(threads)
    faiss.omp_set_num_threads(_search_threads)
    _this_thread.threads = _search_threads


def apply_search_threads() -> None:
    """set_search_threads' choice in the calling thread, once per thread (nothing when the application made none)."""
    wanted = _search_threads
    if wanted is not None and getattr(_this_thread, "threads", None) != wanted:
        import faiss

        faiss.omp_set_num_threads(wanted)
        _this_thread.threads = wanted
