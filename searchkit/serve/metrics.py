"""The server's counters in Prometheus' text format (`GET /metrics`): requests and their latency by endpoint and
mode, searches that matched nothing, errors, the index's version and rows, and reloads. One registry per app (never
the process-wide default), so two apps in one process count apart; with `--workers N` each worker process counts
its own requests, and a scraper sums them."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# latency buckets around a search's milliseconds and a rerank's tens of milliseconds
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self, holder: Any):
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("searchkit_requests", "HTTP requests answered, by endpoint, mode and status",
                                ("endpoint", "mode", "status"), registry=self.registry)
        self.latency = Histogram("searchkit_request_seconds", "Time to answer a request, by endpoint and mode",
                                 ("endpoint", "mode"), buckets=BUCKETS, registry=self.registry)
        self.no_match = Counter("searchkit_no_match", "Searches nothing in the catalog matched closely", ("mode",),
                                registry=self.registry)
        self.errors = Counter("searchkit_errors", "Requests answered with an error (4xx, 5xx), by endpoint",
                              ("endpoint", "status"), registry=self.registry)
        version = Gauge("searchkit_index_version", "The served index's version (1 as built, +1 per update)",
                        registry=self.registry)
        version.set_function(lambda: float(holder.searcher.manifest.catalog.version))
        rows = Gauge("searchkit_index_rows", "Products in the served index", registry=self.registry)
        rows.set_function(lambda: float(holder.searcher.manifest.rows))
        reloads = Gauge("searchkit_reloads", "Index and rules reloads since the server started",
                        registry=self.registry)
        reloads.set_function(lambda: float(holder.reloads))

    def observe(self, endpoint: str, mode: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, mode, str(status)).inc()
        self.latency.labels(endpoint, mode).observe(seconds)
        if status >= 400:
            self.errors.labels(endpoint, str(status)).inc()

    def text(self) -> bytes:
        return generate_latest(self.registry)
