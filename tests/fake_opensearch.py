"""A small OpenSearch on loopback for tests: the REST endpoints searchkit uses, checked against OpenSearch's documented
API (request methods, paths, bodies) and answered as OpenSearch answers them.

Endpoints: GET / ; HEAD/PUT/DELETE /{index} ; PUT /_search/pipeline/{id} ; POST /_bulk ; POST /{index}/_refresh ;
GET /{index}/_doc/{id} ; GET|POST /{index}/_search (queries: match, bool with must/filter, knn with filter, hybrid
with a normalization-processor pipeline; filters: term, terms, range). Scores as OpenSearch computes them: BM25 as
Lucene's (idf ln(1 + (N - n + 0.5) / (n + 0.5)), tf / (tf + k1 (1 - b + b dl / avgdl))) with the index's k1 and b,
k-NN inner product on the faiss engine as 1 + ip (ip >= 0) or 1 / (1 - ip), hybrid scores min-max normalised per
clause over that clause's own hits and combined by the weighted arithmetic mean. Every request is recorded.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np


class Problem(Exception):
    def __init__(self, status: int, kind: str, reason: str):
        super().__init__(reason)
        self.status, self.kind, self.reason = status, kind, reason


def _check_index_body(body: dict) -> None:
    settings, properties = body.get("settings", {}).get("index", {}), body.get("mappings", {}).get("properties", {})
    if settings.get("knn") is not True:
        raise Problem(400, "illegal_argument_exception", "index.knn must be true for knn_vector fields")
    for name, field in properties.items():
        if field.get("type") == "knn_vector":
            method = field.get("method", {})
            if not isinstance(field.get("dimension"), int) or not 1 <= field["dimension"] <= 16000:
                raise Problem(400, "mapper_parsing_exception", f"[{name}] dimension must be an integer 1..16000")
            if method.get("engine") not in ("faiss", "lucene", "nmslib") or method.get("name") not in ("hnsw", "ivf"):
                raise Problem(400, "mapper_parsing_exception", f"[{name}] unknown method {method}")
            if method.get("space_type") not in ("innerproduct", "l2", "cosinesimil"):
                raise Problem(400, "mapper_parsing_exception", f"[{name}] unknown space_type")
        elif field.get("type") not in ("keyword", "text", "double", "long", "float", "boolean"):
            raise Problem(400, "mapper_parsing_exception", f"[{name}] unknown type {field.get('type')}")


def _check_pipeline(body: dict) -> list[float]:
    processors = body.get("phase_results_processors")
    if not isinstance(processors, list) or len(processors) != 1 or "normalization-processor" not in processors[0]:
        raise Problem(400, "parse_exception", "expected one normalization-processor in phase_results_processors")
    processor = processors[0]["normalization-processor"]
    if processor.get("normalization", {}).get("technique") not in ("min_max", "l2"):
        raise Problem(400, "illegal_argument_exception", "normalization technique must be min_max or l2")
    combination = processor.get("combination", {})
    weights = combination.get("parameters", {}).get("weights", [])
    if combination.get("technique") != "arithmetic_mean" or abs(sum(weights) - 1.0) > 1e-6:
        raise Problem(400, "illegal_argument_exception", "arithmetic_mean weights must add up to 1.0")
    return weights


class Index:
    def __init__(self, body: dict):
        _check_index_body(body)
        self.body = body
        self.properties = body["mappings"]["properties"]
        similarity = body["settings"]["index"].get("similarity", {}).get("default", {})
        self.k1, self.b = float(similarity.get("k1", 1.2)), float(similarity.get("b", 0.75))
        self.docs: dict[str, dict] = {}

    def add(self, doc_id: str, doc: dict) -> None:
        for name, value in doc.items():
            field = self.properties.get(name)
            if field is None:
                continue  # dynamic fields: kept, not indexed for search
            if field["type"] == "knn_vector" and (not isinstance(value, list) or len(value) != field["dimension"]):
                raise Problem(400, "mapper_parsing_exception",
                              f"Vector dimension mismatch. Expected: {field['dimension']}, Given: "
                              f"{len(value) if isinstance(value, list) else value!r}")
            if field["type"] == "double" and value is not None and not isinstance(value, (int, float)):
                raise Problem(400, "mapper_parsing_exception", f"failed to parse field [{name}] of type [double]")
        self.docs[doc_id] = doc

    # -- queries -------------------------------------------------------------------------------------------------

    def passes(self, doc: dict, clauses: list[dict]) -> bool:
        for clause in clauses:
            (kind, spec), = clause.items()
            (name, wanted), = spec.items()
            value = doc.get(name)
            if kind == "term" and value != wanted:
                return False
            if kind == "terms" and value not in wanted:
                return False
            if kind == "range" and (value is None or not all(
                    {"gte": value >= v, "lte": value <= v, "gt": value > v, "lt": value < v}[op]
                    for op, v in wanted.items())):
                return False
            if kind == "bool":
                if not self.passes(doc, spec.get("filter", [])):
                    return False
        return True

    def bm25(self, field: str, text: str, ids: list[str]) -> dict[str, float]:
        analysed = {i: str(self.docs[i].get(field) or "").split() for i in self.docs}  # whitespace analyzer
        n_docs = len(analysed)
        avgdl = sum(len(t) for t in analysed.values()) / max(n_docs, 1)
        frequency = Counter(w for t in analysed.values() for w in set(t))
        scores = {}
        for doc_id in ids:
            tokens, score = analysed[doc_id], 0.0
            counts = Counter(tokens)
            for word in text.split():
                tf = counts.get(word, 0)
                if tf:
                    idf = math.log(1 + (n_docs - frequency[word] + 0.5) / (frequency[word] + 0.5))
                    score += idf * tf / (tf + self.k1 * (1 - self.b + self.b * len(tokens) / avgdl))
            if score > 0:
                scores[doc_id] = score
        return scores

    def run(self, query: dict, size: int) -> dict[str, float]:
        (kind, spec), = query.items()
        if kind == "match":
            (field, text), = spec.items()
            return self.bm25(field, text if isinstance(text, str) else text["query"], list(self.docs))
        if kind == "bool":
            ids = [i for i, d in self.docs.items() if self.passes(d, spec.get("filter", []))]
            scores: dict[str, float] = {}
            for must in spec.get("must", []):
                (field, text), = must["match"].items()
                scores = self.bm25(field, text, ids)
            return scores
        if kind == "knn":
            (field, spec), = spec.items()
            vector = np.asarray(spec["vector"], dtype=np.float64)
            where = [spec["filter"]] if "filter" in spec else []
            ids = [i for i, d in self.docs.items() if self.passes(d, where)]
            ip = {i: float(np.dot(self.docs[i][field], vector)) for i in ids}
            top = sorted(ip, key=lambda i: -ip[i])[:int(spec["k"])]
            return {i: (1 + ip[i]) if ip[i] >= 0 else 1 / (1 - ip[i]) for i in top}
        raise Problem(400, "parsing_exception", f"unknown query [{kind}]")

    def search(self, body: dict, weights: list[float] | None) -> list[tuple[str, float]]:
        size = int(body.get("size", 10))
        query = body["query"]
        if "hybrid" in query:
            if weights is None:
                raise Problem(400, "illegal_state_exception", "hybrid query requires a search pipeline with a "
                                                                "normalization-processor")
            clauses = query["hybrid"]["queries"]
            if len(weights) != len(clauses):
                raise Problem(400, "illegal_argument_exception", "number of weights must match number of queries")
            combined: dict[str, float] = {}
            for weight, clause in zip(weights, clauses):
                scores = self.run(clause, size)
                if not scores:
                    continue
                low, high = min(scores.values()), max(scores.values())
                for doc_id, score in scores.items():
                    normal = (score - low) / (high - low) if high > low else 1.0
                    combined[doc_id] = combined.get(doc_id, 0.0) + weight * normal
            scores = {i: s / sum(weights) for i, s in combined.items()}
        else:
            scores = self.run(query, size)
        return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:size]


class FakeOpenSearch:
    def __init__(self):
        self.indices: dict[str, Index] = {}
        self.pipelines: dict[str, list[float]] = {}
        self.requests: list[tuple[str, str, object]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenSearch:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, method: str, path: str, query: dict, raw: bytes) -> tuple[int, object]:
        parts = [p for p in path.split("/") if p]
        body = json.loads(raw) if raw and not path.endswith("_bulk") else None
        with self.lock:
            self.requests.append((method, path, body if body is not None else raw.decode()[:200]))
            if not parts:
                return 200, {"name": "fake", "cluster_name": "fake", "version": {"number": "2.19.0",
                                                                                   "distribution": "opensearch"}}
            if parts[:2] == ["_search", "pipeline"] and method == "PUT":
                self.pipelines[parts[2]] = _check_pipeline(body or {})
                return 200, {"acknowledged": True}
            if parts == ["_bulk"] and method in ("POST", "PUT"):
                return 200, self.bulk(raw.decode())
            name = parts[0]
            if len(parts) == 1:
                if method == "HEAD":
                    return (200 if name in self.indices else 404), None
                if method == "PUT":
                    if name in self.indices:
                        raise Problem(400, "resource_already_exists_exception", f"index [{name}] already exists")
                    self.indices[name] = Index(body or {})
                    return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}
                if method == "DELETE":
                    self.indices.pop(name, None)
                    return 200, {"acknowledged": True}
            index = self.indices.get(name)
            if index is None:
                raise Problem(404, "index_not_found_exception", f"no such index [{name}]")
            if parts[1] == "_refresh" and method == "POST":
                return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
            if parts[1] == "_doc" and method == "GET":
                doc = index.docs.get(parts[2])
                if doc is None:
                    return 404, {"_index": name, "_id": parts[2], "found": False}
                return 200, {"_index": name, "_id": parts[2], "found": True, "_source": doc}
            if parts[1] == "_search" and method in ("GET", "POST"):
                pipeline = query.get("search_pipeline", [None])[0]
                if pipeline is not None and pipeline not in self.pipelines:
                    raise Problem(404, "resource_not_found_exception", f"pipeline [{pipeline}] not found")
                hits = index.search(body or {}, self.pipelines.get(pipeline))
                excludes = set((body or {}).get("_source", {}).get("excludes", []))
                return 200, {"took": 1, "timed_out": False, "hits": {
                    "total": {"value": len(hits), "relation": "eq"}, "max_score": hits[0][1] if hits else None,
                    "hits": [{"_index": name, "_id": i, "_score": s,
                              "_source": {k: v for k, v in index.docs[i].items() if k not in excludes}}
                             for i, s in hits]}}
        raise Problem(405, "method_not_allowed", f"{method} {path}")

    def bulk(self, text: str) -> dict:
        lines = [line for line in text.split("\n") if line.strip()]
        items, errors = [], False
        for action_line, doc_line in zip(lines[::2], lines[1::2]):
            (op, meta), = json.loads(action_line).items()
            index = self.indices.get(meta["_index"])
            try:
                if op != "index" or index is None:
                    raise Problem(404, "index_not_found_exception", f"no such index [{meta['_index']}]")
                index.add(str(meta["_id"]), json.loads(doc_line))
                items.append({op: {"_index": meta["_index"], "_id": meta["_id"], "status": 201, "result": "created"}})
            except Problem as problem:
                errors = True
                items.append({op: {"_index": meta["_index"], "_id": meta["_id"], "status": problem.status,
                                   "error": {"type": problem.kind, "reason": problem.reason}}})
        return {"took": 1, "errors": errors, "items": items}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                url = urlparse(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    status, answer = fake.handle(self.command, url.path, parse_qs(url.query), raw)
                except Problem as problem:
                    status, answer = problem.status, {"error": {"type": problem.kind, "reason": problem.reason},
                                                      "status": problem.status}
                data = b"" if answer is None else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

            def log_message(self, *args) -> None:
                pass

        return Handler
