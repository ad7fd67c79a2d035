"""searchkit beside the engines a Python shop would install instead, on the same machine, catalog and test-split
queries: build time (catalog file to searchable index, whole process), index size on disk, resident memory while
searching, warm latency p50/p99 (one thread, distinct queries, k = 10), NDCG@10 (whole catalog and judged only) and
Recall@100, and each peer's figures as ratios to searchkit hybrid's.

    python benchmarks/bench_peers.py [--products N] [--queries 300] [--peers bm25s,txtai,lancedb,chroma]

Peers install with `make bench-peers` (their own venv, .venv-peers), never with the README's two commands; a peer that
cannot be imported or fails is named with the reason. The embedding peers embed each product's text as searchkit's
model reads it with that same shipped model (in fp32), each through its own encoding path (sentence-transformers).
Each system runs in its own process (its memory is its own), and so does each of searchkit's modes (a process searching
in mode hybrid never loads the cross-encoder that mode rerank reads). `--products N` takes a slice of the
bundled catalog holding every product the chosen queries' rated pairs name. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command, folder_mb, machine, percentiles  # noqa: E402

PEERS = {"bm25s": "bm25s", "txtai": "txtai", "lancedb": "lancedb", "chroma": "chromadb"}

# Each runner: build an index of CATALOG into OUT (timed by the parent as a whole process), then search QUERIES,
# printing one JSON line {"rss_mb", "latency": {mode: [ms...]}, "ranked": {mode: [[ids]...]}}.
SEARCHKIT_SEARCH = """
import json, sys, time
from searchkit import Searcher, set_search_threads
from common import rss_mb
set_search_threads(1)
searcher = Searcher.from_dir(sys.argv[1])
queries = json.loads(open(sys.argv[2]).read())
out = {"latency": {}, "ranked": {}}
for mode in sys.argv[3:]:  # one mode a process: a hybrid search's memory holds no cross-encoder
    for q in queries[:10]:
        searcher.search(q, k=10, mode=mode)
    times, ranked = [], []
    for q in queries:
        t = time.perf_counter()
        searcher.search(q, k=10, mode=mode)
        times.append((time.perf_counter() - t) * 1000)
        ranked.append([h.product_id for h in searcher.search(q, k=100, mode=mode)])
    out["latency"][mode], out["ranked"][mode] = times, ranked
out["rss_mb"] = rss_mb()
print(json.dumps(out))
"""

BM25S_BUILD = """
import sys
import bm25s, pandas as pd
catalog = pd.read_parquet(sys.argv[1])
texts = (catalog["title"].fillna("") + " " + catalog["brand"].fillna("") + " " + catalog["color"].fillna("")).tolist()
model = bm25s.BM25()
model.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
model.save(sys.argv[2], corpus=catalog["product_id"].astype(str).tolist())
"""

BM25S_SEARCH = """
import json, sys, time
import bm25s
from common import rss_mb
model = bm25s.BM25.load(sys.argv[1], load_corpus=True)
queries = json.loads(open(sys.argv[2]).read())
times, ranked = [], []
for q in queries:
    t = time.perf_counter()
    docs, _ = model.retrieve(bm25s.tokenize([q], stopwords="en", show_progress=False), k=10, show_progress=False)
    times.append((time.perf_counter() - t) * 1000)
    docs, _ = model.retrieve(bm25s.tokenize([q], stopwords="en", show_progress=False), k=100, show_progress=False)
    ranked.append([d["text"] for d in docs[0]])
print(json.dumps({"latency": {"bm25": times}, "ranked": {"bm25": ranked}, "rss_mb": rss_mb()}))
"""


# The embedding peers read what searchkit's model reads (each product's normalised text, each query normalised as
# searchkit normalises it, no spelling fix), embedded by the same shipped model through the peer's own encoding path
# (sentence-transformers); texts.json holds [[product_id, text], ...], queries.json the raw queries, normalised.json
# the normalised ones. Each is built with its defaults; searches run on one thread.
# the shipped weights are fp16, which torch runs slowly on a CPU: the peers get the same model in fp32, as a shop
# embedding with it on CPUs would (written once, outside any build's time)
FP32_MODEL = """
import sys
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(sys.argv[1], device="cpu")
model.float()
model.save(sys.argv[2])
"""

ONE_THREAD = """
import os
import torch
torch.set_num_threads(1)
try:
    import faiss
    faiss.omp_set_num_threads(1)
except ImportError:
    pass
"""

TXTAI_BUILD = """
import json, sys
from txtai import Embeddings
texts = json.loads(open(sys.argv[1]).read())
embeddings = Embeddings(path=sys.argv[3], content=True, hybrid=sys.argv[4] == "hybrid", backend="faiss")
embeddings.index([(pid, text, None) for pid, text in texts])
embeddings.save(sys.argv[2])
"""

TXTAI_SEARCH = ONE_THREAD + """
import json, sys, time
from txtai import Embeddings
from common import rss_mb
embeddings = Embeddings()
embeddings.load(sys.argv[1])
queries = json.loads(open(sys.argv[2]).read())
for q in queries[:10]:
    embeddings.search(q, 10)
times, ranked = [], []
for q in queries:
    t = time.perf_counter()
    embeddings.search(q, 10)
    times.append((time.perf_counter() - t) * 1000)
    ranked.append([str(r["id"]) for r in embeddings.search(q, 100)])
print(json.dumps({"latency": {"search": times}, "ranked": {"search": ranked}, "rss_mb": rss_mb()}))
"""

LANCEDB_BUILD = """
import json, sys
import lancedb
from lancedb.embeddings import get_registry
from lancedb.pydantic import LanceModel, Vector
model = get_registry().get("sentence-transformers").create(name=sys.argv[3], device="cpu")
class Product(LanceModel):
    product_id: str
    text: str = model.SourceField()
    vector: Vector(model.ndims()) = model.VectorField()
texts = json.loads(open(sys.argv[1]).read())
table = lancedb.connect(sys.argv[2]).create_table("products", schema=Product)
table.add([{"product_id": pid, "text": text} for pid, text in texts])
table.create_fts_index("text")
"""

LANCEDB_SEARCH = ONE_THREAD + """
import json, sys, time
import lancedb
from common import rss_mb
table = lancedb.connect(sys.argv[1]).open_table("products")
queries = json.loads(open(sys.argv[2]).read())
out = {"latency": {}, "ranked": {}}
for mode in ("hybrid", "vector"):
    for q in queries[:10]:
        table.search(q, query_type=mode).limit(10).to_list()
    times, ranked = [], []
    for q in queries:
        t = time.perf_counter()
        table.search(q, query_type=mode).limit(10).to_list()
        times.append((time.perf_counter() - t) * 1000)
        ranked.append([r["product_id"] for r in table.search(q, query_type=mode).limit(100).to_list()])
    out["latency"][mode], out["ranked"][mode] = times, ranked
out["rss_mb"] = rss_mb()
print(json.dumps(out))
"""

CHROMA_BUILD = """
import json, sys
import chromadb
from chromadb.utils.embedding_functions import SentenceTransformerEmbeddingFunction
texts = json.loads(open(sys.argv[1]).read())
client = chromadb.PersistentClient(path=sys.argv[2])
collection = client.create_collection("products", metadata={"hnsw:space": "cosine"},
                                      embedding_function=SentenceTransformerEmbeddingFunction(sys.argv[3], device="cpu"))
step = client.get_max_batch_size()
for start in range(0, len(texts), step):
    chunk = texts[start:start + step]
    collection.add(ids=[pid for pid, _ in chunk], documents=[text for _, text in chunk])
"""

CHROMA_SEARCH = ONE_THREAD + """
import json, sys, time
import chromadb
from chromadb.utils.embedding_functions import SentenceTransformerEmbeddingFunction
from common import rss_mb
client = chromadb.PersistentClient(path=sys.argv[1])
collection = client.get_collection("products",
                                   embedding_function=SentenceTransformerEmbeddingFunction(sys.argv[3], device="cpu"))
queries = json.loads(open(sys.argv[2]).read())
for q in queries[:10]:
    collection.query(query_texts=[q], n_results=10)
times, ranked = [], []
for q in queries:
    t = time.perf_counter()
    collection.query(query_texts=[q], n_results=10)
    times.append((time.perf_counter() - t) * 1000)
    ranked.append(collection.query(query_texts=[q], n_results=100)["ids"][0])
print(json.dumps({"latency": {"search": times}, "ranked": {"search": ranked}, "rss_mb": rss_mb()}))
"""


def python(script: str, *args: str) -> tuple[str, float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=3600,
                          cwd=Path(__file__).resolve().parent,
                          env={"PYTHONPATH": f"{ROOT}:{Path(__file__).resolve().parent}", "HF_HUB_OFFLINE": "1",
                               "HF_HUB_DISABLE_PROGRESS_BARS": "1", "PATH": "/usr/bin:/bin",
                               "HOME": tempfile.gettempdir(), "ANONYMIZED_TELEMETRY": "False",
                               # searchkit's graph cache, where the index's model parts are (index.shared)
                               "XDG_CACHE_HOME": os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache"),
                               "TOKENIZERS_PARALLELISM": "false"})
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return done.stdout, time.perf_counter() - started


def shipped_model_dir() -> Path:
    from searchkit.models.encoder import shipped_model_dir as found

    folder = found()
    if folder is None:
        raise SystemExit("the shipped model (models/searchkit-homedepot) is not here; the peers embed with it")
    return Path(folder)


def write_texts(work: Path, catalog, queries: list[str]) -> None:
    """What the embedding peers read: each product's text and each query, normalised as searchkit's model reads
    them (the index just built says how)."""
    from searchkit import Searcher

    normaliser = Searcher.from_dir(work / "searchkit").normaliser
    texts = [[str(pid), normaliser.product(title, brand, color)] for pid, title, brand, color in
             zip(catalog["product_id"], catalog["title"], catalog["brand"], catalog["color"], strict=True)]
    (work / "texts.json").write_text(json.dumps(texts))
    (work / "normalised.json").write_text(json.dumps([normaliser.query(q) for q in queries]))


def quality(ranked: list[list[str]], queries: list[str], pairs) -> dict[str, float]:
    from searchkit.eval.measure import ranked_metrics

    frame = ranked_metrics(dict(zip(queries, ranked, strict=True)), pairs)
    return {name: round(float(frame[name].mean()), 4) for name in ("ndcg@10", "ndcg@10_judged", "recall@100")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=ROOT / "catalog/homedepot-products.parquet")
    parser.add_argument("--pairs", type=Path, default=ROOT / "catalog/homedepot-pairs.parquet")
    parser.add_argument("--products", type=int, default=0, help="a slice of the catalog (0: all of it)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--peers", default="bm25s,txtai,lancedb,chroma")
    args = parser.parse_args()

    import importlib.util

    import pandas as pd

    from searchkit.data.catalog import read_pairs
    from searchkit.data.splits import SplitConfig, split_pairs

    test = split_pairs(read_pairs(args.pairs), SplitConfig(seed=42))["test"]
    queries = sorted(np.random.default_rng(0).choice(sorted(set(test["query"])), size=args.queries,
                                                     replace=False).tolist())
    pairs = test[test["query"].isin(queries)]
    catalog = pd.read_parquet(args.catalog)
    if args.products:
        ids = catalog["product_id"].astype(str)
        rated = ids.isin(set(pairs["product_id"].astype(str)))
        rest = catalog[~rated].sample(n=max(0, args.products - int(rated.sum())), random_state=0)
        catalog = pd.concat([catalog[rated], rest]).reset_index(drop=True)
    rows, skipped = {}, {}
    with tempfile.TemporaryDirectory(prefix="searchkit-peers-") as tmp:
        work = Path(tmp)
        catalog.to_parquet(work / "catalog.parquet", index=False)
        (work / "queries.json").write_text(json.dumps(queries))
        started = time.perf_counter()
        # by reference to the installed model, as each peer loads its model from outside its index
        subprocess.run([str(Path(sys.executable).parent / "searchkit"), "build-index", str(work / "catalog.parquet"),
                        "--out", str(work / "searchkit"), "--shared-model"], check=True, capture_output=True)
        build = time.perf_counter() - started
        for mode in ("hybrid", "dense", "lexical", "rerank"):
            found, _ = python(SEARCHKIT_SEARCH, str(work / "searchkit"), str(work / "queries.json"), mode)
            result = json.loads(found)
            rows[f"searchkit {mode}"] = {"build_s": round(build, 1), "size_mb": folder_mb(work / "searchkit"),
                                         "rss_mb": result["rss_mb"], **percentiles(result["latency"][mode]),
                                         **quality(result["ranked"][mode], queries, pairs)}
        write_texts(work, catalog, queries)
        model = str(work / "model-fp32")
        if any(PEERS[p] != "bm25s" and importlib.util.find_spec(PEERS[p]) for p in args.peers.split(",") if p):
            python(FP32_MODEL, str(shipped_model_dir()), model)

        def row(name: str, folder: Path, build_s: float, result: dict, mode: str) -> None:
            rows[name] = {"build_s": round(build_s, 1), "size_mb": folder_mb(folder), "rss_mb": result["rss_mb"],
                          **percentiles(result["latency"][mode]), **quality(result["ranked"][mode], queries, pairs)}

        for peer in [p for p in args.peers.split(",") if p]:
            if importlib.util.find_spec(PEERS[peer]) is None:
                skipped[peer] = f"{PEERS[peer]} is not installed (`make bench-peers` installs it in .venv-peers)"
                continue
            try:
                if peer == "bm25s":
                    _, build = python(BM25S_BUILD, str(work / "catalog.parquet"), str(work / "bm25s"))
                    found, _ = python(BM25S_SEARCH, str(work / "bm25s"), str(work / "queries.json"))
                    row("bm25s (lexical)", work / "bm25s", build, json.loads(found), "bm25")
                elif peer == "txtai":
                    for kind in ("hybrid", "dense"):
                        folder = work / f"txtai-{kind}"
                        _, build = python(TXTAI_BUILD, str(work / "texts.json"), str(folder), model, kind)
                        found, _ = python(TXTAI_SEARCH, str(folder), str(work / "normalised.json"))
                        row(f"txtai {kind}", folder, build, json.loads(found), "search")
                elif peer == "lancedb":
                    _, build = python(LANCEDB_BUILD, str(work / "texts.json"), str(work / "lancedb"), model)
                    found, _ = python(LANCEDB_SEARCH, str(work / "lancedb"), str(work / "normalised.json"))
                    result = json.loads(found)
                    row("lancedb hybrid", work / "lancedb", build, result, "hybrid")
                    row("lancedb vector", work / "lancedb", build, result, "vector")
                elif peer == "chroma":
                    _, build = python(CHROMA_BUILD, str(work / "texts.json"), str(work / "chroma"), model)
                    found, _ = python(CHROMA_SEARCH, str(work / "chroma"), str(work / "normalised.json"), model)
                    row("chroma", work / "chroma", build, json.loads(found), "search")
            except RuntimeError as exc:  # a peer that fails here is named with its error, the others still run
                skipped[peer] = f"failed: {str(exc).strip().splitlines()[-1][:300]}"
    base = rows["searchkit hybrid"]
    for name, row in rows.items():
        if not name.startswith("searchkit"):
            row["ratio_to_searchkit_hybrid"] = {k: round(row[k] / base[k], 3) for k in
                                                ("build_s", "size_mb", "rss_mb", "p50_ms", "ndcg@10") if base[k]}
    print(f"{'system':<22}{'build s':>9}{'size MB':>9}{'RSS MB':>8}{'p50 ms':>8}{'p99 ms':>8}{'NDCG@10':>9}"
          f"{'judged':>8}{'R@100':>7}")
    for name, row in rows.items():
        print(f"{name:<22}{row['build_s']:>9.1f}{row['size_mb']:>9.1f}{row['rss_mb']:>8.0f}{row['p50_ms']:>8.2f}"
              f"{row['p99_ms']:>8.2f}{row['ndcg@10']:>9.4f}{row['ndcg@10_judged']:>8.4f}{row['recall@100']:>7.4f}")
    for peer, why in skipped.items():
        print(f"{peer}: not run: {why}")
    print(json.dumps({"bench": "peers", "products": len(catalog), "queries": len(queries), "systems": rows,
                      "not_run": skipped, "machine": machine(), "command": command()}))


if __name__ == "__main__":
    main()
