"""A small OpenSearch on loopback for tests: the REST endpoints searchkit uses, checked against OpenSearch's documented
API (request methods, paths, bodies) and answered as a cluster answers them, each behaviour after the OpenSearch
source named beside it (OpenSearch 2.19 / 3.x; k-NN and neural-search plugins of the same versions), so a test fails
where a real cluster would answer differently from what searchkit assumes.

Endpoints: GET / ; HEAD/PUT/DELETE /{index} ; GET /{index}/_settings ; PUT/DELETE /_search/pipeline/{id} ;
POST /_bulk ; POST /{index}/_refresh ; GET /{index}/_doc/{id} ; GET|POST /{index}/_search (queries: match, bool with
must/filter, knn with filter and method_parameters, hybrid with a normalization-processor pipeline; filters: term,
terms, range, on dotted paths). Every request is recorded. `plugins=()` models a cluster without neural-search.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np

MAX_CONTENT_LENGTH = 100 * 1024 * 1024  # http.max_content_length's default (HttpTransportSettings)
MAX_RESULT_WINDOW = 10_000  # index.max_result_window's default (IndexSettings.MAX_RESULT_WINDOW_SETTING)
KNN_MAX_K = 10_000  # k-NN: KNNQueryBuilder.K_MAX
DEFAULT_EF_SEARCH = 100  # k-NN: KNNSettings.INDEX_KNN_DEFAULT_ALGO_PARAM_EF_SEARCH, for faiss when none is given
MIN_SCORE, SINGLE_RESULT_SCORE = 0.001, 1.0  # neural-search: ScoreNormalizationTechnique (min-max)
NAME_FORBIDDEN = set(' "*\\<|,>/?:#+')  # MetadataCreateIndexService.validateIndexOrAliasName


def check_index_name(name: str) -> None:
    """server/src/main/java/org/opensearch/cluster/metadata/MetadataCreateIndexService.java: lower case, none of
    the forbidden characters, not starting with - _ +, not . or .., at most 255 bytes."""
    if name != name.lower():
        raise Problem(400, "invalid_index_name_exception", f"Invalid index name [{name}], must be lowercase")
    if set(name) & NAME_FORBIDDEN or name[:1] in ("-", "_", "+") or name in (".", "..") or len(name.encode()) > 255:
        raise Problem(400, "invalid_index_name_exception", f"Invalid index name [{name}]")


def field_value(doc: dict, path: str):
    """A document's value at a dotted path (`slug.brand`), as Lucene indexes object fields."""
    value = doc
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


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
        elif "properties" in field and field.get("type", "object") == "object":  # an object field: its sub-fields
            _check_index_body({"settings": body["settings"], "mappings": {"properties": field["properties"]}})
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
        self.shards = int(body["settings"]["index"].get("number_of_shards", 1))
        self.docs: dict[str, dict] = {}
        self.graphs: dict[str, tuple] = {}  # knn field -> (faiss HNSW, doc ids), built on first search

    def add(self, doc_id: str, doc: dict) -> None:
        for name, value in doc.items():
            field = self.properties.get(name)
            if field is None:
                continue  # dynamic fields: kept, not indexed for search
            if field.get("type") == "knn_vector" and (not isinstance(value, list) or len(value) != field["dimension"]):
                raise Problem(400, "mapper_parsing_exception",
                              f"Vector dimension mismatch. Expected: {field['dimension']}, Given: "
                              f"{len(value) if isinstance(value, list) else value!r}")
            if field.get("type") == "double" and value is not None and not isinstance(value, (int, float)):
                raise Problem(400, "mapper_parsing_exception", f"failed to parse field [{name}] of type [double]")
        self.docs[doc_id] = doc
        self.graphs.clear()

    # -- queries -------------------------------------------------------------------------------------------------

    def passes(self, doc: dict, clauses: list[dict]) -> bool:
        """term / terms on a keyword field compare exactly (no analysis: TermQuery on the indexed bytes); range on
        numbers; a field the document lacks matches nothing."""
        for clause in clauses:
            (kind, spec), = clause.items()
            if kind == "bool":
                if not self.passes(doc, spec.get("filter", [])):
                    return False
                continue
            (name, wanted), = spec.items()
            value = field_value(doc, name)
            if kind == "term" and value != wanted:
                return False
            if kind == "terms" and value not in wanted:
                return False
            if kind == "range" and (value is None or not all(
                    {"gte": value >= v, "lte": value <= v, "gt": value > v, "lt": value < v}[op]
                    for op, v in wanted.items())):
                return False
        return True

    def bm25(self, field: str, text: str, ids: list[str]) -> dict[str, float]:
        """Lucene's BM25 as OpenSearch configures it: LegacyBM25Similarity (OpenSearch's "BM25" similarity,
        server/src/main/java/org/opensearch/index/similarity/SimilarityProviders.java), whose scores are those of
        BM25Similarity times (1 + k1): idf ln(1 + (N - n + 0.5) / (n + 0.5)) * tf (1 + k1) / (tf + k1 (1 - b + b dl /
        avgdl)), over the whitespace analyzer's tokens."""
        analysed = {i: str(self.docs[i].get(field) or "").split() for i in self.docs}
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
                    score += idf * tf * (1 + self.k1) / (tf + self.k1 * (1 - self.b + self.b * len(tokens) / avgdl))
            if score > 0:
                scores[doc_id] = score
        return scores

    def knn(self, field: str, spec: dict) -> dict[str, float]:
        """The faiss engine's approximate search: HNSW with the mapping's m and ef_construction, searched with the
        query's method_parameters.ef_search, else the mapping's parameters.ef_search, else 100 (k-NN:
        KNNQueryBuilder, IndexUtil.getParametersAtLoading: index.knn.algo_param.ef_search is NMSLIB's alone). A
        filter leaving at most k documents is searched exactly, a broader one walks the graph keeping only what it
        passes (KNNWeight's efficient filtering). Inner product scores come back as 1 + ip for ip > 0 and
        1 / (1 - ip) otherwise (KNNScoringUtil, SpaceType.INNER_PRODUCT)."""
        import faiss

        k = int(spec["k"])
        if not 1 <= k <= KNN_MAX_K:
            raise Problem(400, "illegal_argument_exception", f"[knn] requires k to be in the range (0, {KNN_MAX_K}]")
        parameters = self.properties[field]["method"].get("parameters", {})
        ef_search = int(spec.get("method_parameters", {}).get("ef_search", parameters.get("ef_search",
                                                                                          DEFAULT_EF_SEARCH)))
        vector = np.asarray(spec["vector"], dtype=np.float32)[None, :]
        where = [spec["filter"]] if "filter" in spec else []
        allowed = [i for i, d in self.docs.items() if self.passes(d, where)]
        if field not in self.graphs:
            ids = list(self.docs)
            graph = faiss.IndexHNSWFlat(len(spec["vector"]), int(parameters.get("m", 16)), faiss.METRIC_INNER_PRODUCT)
            graph.hnsw.efConstruction = int(parameters.get("ef_construction", 100))
            graph.add(np.asarray([self.docs[i][field] for i in ids], dtype=np.float32))
            self.graphs[field] = (graph, ids)
        graph, ids = self.graphs[field]
        if where and len(allowed) <= k:
            ip = {i: float(np.dot(self.docs[i][field], vector[0])) for i in allowed}
            top = sorted(ip, key=lambda i: -ip[i])[:k]
        else:
            params = faiss.SearchParametersHNSW(efSearch=max(ef_search, k))
            if where:
                keep = set(allowed)
                bits = np.packbits(np.array([i in keep for i in ids]), bitorder="little")
                params = faiss.SearchParametersHNSW(efSearch=max(ef_search, k), sel=faiss.IDSelectorBitmap(
                    len(ids), faiss.swig_ptr(bits)))
            scores, rows = graph.search(vector, min(k, len(ids)), params=params)
            ip = {ids[r]: float(s) for r, s in zip(rows[0], scores[0]) if r >= 0}
            top = list(ip)
        return {i: (1 + ip[i]) if ip[i] > 0 else 1 / (1 - ip[i]) for i in top}

    def run(self, query: dict) -> dict[str, float]:
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
            return self.knn(field, spec)
        raise Problem(400, "parsing_exception", f"unknown query [{kind}]")

    def search(self, body: dict, weights: list[float] | None) -> list[tuple[str, float]]:
        size, start = int(body.get("size", 10)), int(body.get("from", 0))
        if start + size > MAX_RESULT_WINDOW:  # SearchService.validateSearchContext / DefaultSearchContext
            raise Problem(400, "illegal_argument_exception",
                          f"Result window is too large, from + size must be less than or equal to: "
                          f"[{MAX_RESULT_WINDOW}] but was [{start + size}]")
        query = body["query"]
        if "hybrid" in query:
            scores = self.hybrid(query["hybrid"], weights, start + size)
        else:
            scores = self.run(query)
        return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[start:start + size]

    def hybrid(self, spec: dict, weights: list[float] | None, size: int) -> dict[str, float]:
        """neural-search: each sub-query keeps its top pagination_depth (else from + size) hits
        (HybridCollectorManager); each sub-query's scores are min-max normalised over those hits alone, the lowest
        becoming 0.001 and a lone score 1.0 (ScoreNormalizationTechnique.MIN_MAX); a document missing from a
        sub-query scores 0 there, and the weighted arithmetic mean combines them (ScoreCombiner,
        ArithmeticMeanScoreCombinationTechnique)."""
        if weights is None:
            raise Problem(400, "illegal_state_exception", "hybrid query requires a search pipeline with a "
                                                            "normalization-processor")
        clauses = spec["queries"]
        if len(weights) != len(clauses):
            raise Problem(400, "illegal_argument_exception", "number of weights must match number of queries")
        depth = int(spec.get("pagination_depth", size))
        normalised: list[dict[str, float]] = []
        for clause in clauses:
            top = sorted(self.run(clause).items(), key=lambda kv: (-kv[1], kv[0]))[:depth]
            if not top:
                normalised.append({})
                continue
            low, high = top[-1][1], top[0][1]
            normalised.append({i: SINGLE_RESULT_SCORE if high == low else max((s - low) / (high - low), MIN_SCORE)
                               if s != low else MIN_SCORE for i, s in top})
        docs = set().union(*normalised)
        return {i: sum(w * n.get(i, 0.0) for w, n in zip(weights, normalised)) / sum(weights) for i in docs}


class FakeOpenSearch:
    def __init__(self, plugins: tuple[str, ...] = ("opensearch-knn", "opensearch-neural-search")):
        self.plugins = plugins
        self.indices: dict[str, Index] = {}
        self.pipelines: dict[str, list[float]] = {}
        self.requests: list[tuple[str, str, object]] = []
        self.sizes: list[int] = []  # each request body's bytes
        self.queries: list[dict] = []  # each request's URL parameters
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
        if len(raw) > MAX_CONTENT_LENGTH:  # Netty4HttpServerTransport refuses the body before it is parsed
            raise Problem(413, "content_too_long", f"request body of {len(raw)} bytes is over {MAX_CONTENT_LENGTH}")
        body = json.loads(raw) if raw and not path.endswith("_bulk") else None
        with self.lock:
            self.requests.append((method, path, body if body is not None else raw.decode()[:200]))
            self.sizes.append(len(raw))
            self.queries.append(query)
            if not parts:
                return 200, {"name": "fake", "cluster_name": "fake", "version": {"number": "2.19.0",
                                                                                   "distribution": "opensearch"}}
            if parts[:2] == ["_search", "pipeline"] and method == "PUT":
                if "opensearch-neural-search" not in self.plugins:  # SearchPipelineService: unknown processor type
                    raise Problem(400, "illegal_argument_exception",
                                  "Invalid processor type normalization-processor")
                self.pipelines[parts[2]] = _check_pipeline(body or {})
                return 200, {"acknowledged": True}
            if parts[:2] == ["_search", "pipeline"] and method == "DELETE":
                if self.pipelines.pop(parts[2], None) is None:
                    raise Problem(404, "resource_not_found_exception", f"pipeline [{parts[2]}] is missing")
                return 200, {"acknowledged": True}
            if parts == ["_bulk"] and method in ("POST", "PUT"):
                return 200, self.bulk(raw.decode())
            name = parts[0]
            if len(parts) == 1:
                if method == "HEAD":
                    return (200 if name in self.indices else 404), None
                if method == "PUT":
                    check_index_name(name)
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
            if parts[1] == "_settings" and method == "GET":  # numbers come back as strings
                return 200, {name: {"settings": {"index": {"number_of_shards": str(index.shards)}}}}
            if parts[1] == "_refresh" and method == "POST":
                return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
            if parts[1] == "_doc" and method == "GET":
                doc = index.docs.get(parts[2])
                if doc is None:
                    return 404, {"_index": name, "_id": parts[2], "found": False}
                return 200, {"_index": name, "_id": parts[2], "found": True, "_source": doc}
            if parts[1] == "_search" and method in ("GET", "POST"):
                search_type = query.get("search_type", ["query_then_fetch"])[0]
                if search_type not in ("query_then_fetch", "dfs_query_then_fetch"):
                    raise Problem(400, "illegal_argument_exception", f"No search type for [{search_type}]")
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
