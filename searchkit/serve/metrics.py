"""The server's counters in Prometheus' text format (`GET /metrics`): requests and their latency by endpoint and mode,
searches that matched nothing, errors, searches answered from memory, the cross-encoder's pairs read and remembered,
the index's version and rows, and reloads. One process (`create_app`, `serve` with one worker): one registry per app,
never the process-wide default, so two apps in one process count apart. Several workers (`serve --workers N`): the
CLI names a folder in PROMETHEUS_MULTIPROC_DIR before the workers start, each worker writes its values there, and
whichever worker answers `/metrics` sums them all (prometheus_client's multiprocess mode), so a scrape sees the whole
server."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# latency buckets around a search's milliseconds and a rerank's tens of milliseconds
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own setting, read when it is imported


class Metrics:
    def __init__(self, holder: Any):
        self.holder = holder
        self.shared = bool(os.environ.get(MULTIPROCESS))
        # in multiprocess mode values live in the shared folder; the metrics join no registry, a scrape collects them
        registry = None if self.shared else CollectorRegistry(auto_describe=True)
        self.registry = registry
        self.requests = Counter("searchkit_requests", "HTTP requests answered, by endpoint, mode and status",
                                ("endpoint", "mode", "status"), registry=registry)
        self.latency = Histogram("searchkit_request_seconds", "Time to answer a request, by endpoint and mode",
                                 ("endpoint", "mode"), buckets=BUCKETS, registry=registry)
        self.no_match = Counter("searchkit_no_match", "Searches nothing in the catalog matched closely", ("mode",),
                                registry=registry)
        self.errors = Counter("searchkit_errors", "Requests answered with an error (4xx, 5xx), by endpoint",
                              ("endpoint", "status"), registry=registry)
        self.version = Gauge("searchkit_index_version", "The served index's version (1 as built, +1 per update)",
                             registry=registry, multiprocess_mode="max")
        self.rows = Gauge("searchkit_index_rows", "Products in the served index", registry=registry,
                          multiprocess_mode="max")
        self.rerank_pairs = Counter("searchkit_rerank_pairs", "Query-product pairs mode rerank scored: read by the "
                                    "cross-encoder, or remembered from an earlier search", ("source",),
                                    registry=registry)
        self.answers = Counter("searchkit_search_answers", "/search answers: searched, or remembered from an earlier "
                               "identical request (searchkit.serve.answers)", ("source",), registry=registry)
        self.reloads = Gauge("searchkit_reloads", "Index and rules reloads since the server started (the most of "
                             "any worker)", registry=registry, multiprocess_mode="max")

    def observe(self, endpoint: str, mode: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, mode, str(status)).inc()
        self.latency.labels(endpoint, mode).observe(seconds)
        if status >= 400:
            self.errors.labels(endpoint, str(status)).inc()

    def count_pairs(self, searcher: Any) -> None:
        """Have the searcher's cross-encoder (when it has one) report the pairs it reads and remembers."""
        reranker = getattr(searcher, "reranker", None)
        if reranker is not None and getattr(reranker, "on_pairs", False) is None:
            reranker.on_pairs = self.pairs

    def pairs(self, read: int, remembered: int) -> None:
        self.rerank_pairs.labels("read").inc(read)
        self.rerank_pairs.labels("remembered").inc(remembered)

    def text(self) -> bytes:
        manifest = self.holder.searcher.manifest
        self.version.set(manifest.catalog.version)
        self.rows.set(manifest.rows)
        self.reloads.set(self.holder.reloads)
        if self.registry is not None:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        scrape = CollectorRegistry()
        multiprocess.MultiProcessCollector(scrape)
        return generate_latest(scrape)
