"""What an OpenSearch cluster needs to serve an index (`searchkit export opensearch`): the index body, a hybrid search
pipeline and the documents as `_bulk` NDJSON files, each product with its stored vector.

    OUT/index.json                  settings (index.knn, BM25 k1/b as searchkit's, an analyzer for titles) and
                                    mappings: `embedding` a knn_vector of the model's dimension (HNSW on the faiss
                                    engine, inner product over unit vectors: the cluster scores 1 + cosine, which
                                    searchkit.backends.opensearch.cluster reports as the cosine),
                                    `keywords` searchkit's own keyword text (whitespace analyzer: stems, measures and
                                    brand tokens exactly as searchkit writes them, queries included), `title` for
                                    people, brand / color / other columns as keyword or numeric fields for filters
    OUT/pipeline.json               a search pipeline whose normalization-processor combines the BM25 and k-NN clauses
                                    of a hybrid query with searchkit's fusion weights (min-max, arithmetic mean)
    OUT/documents-00000.ndjson.gz   `_bulk` action/document line pairs, `shard_docs` products a file (vectors as the
                                    shortest text that reads back as the same float32, ~4.7 KB each at 384-d)
    OUT/export.json                 what was written: name, dimension, counts, files, the query-side settings

Text columns are also written as searchkit's slugs under `slug.<column>` (keyword fields), so a filter matches there
as it matches locally (case, accents and punctuation ignored). searchkit's own hybrid scales BM25 by its maximum and
adds a product-type list; OpenSearch's processor min-max normalises each clause's top hits, so rankings agree
closely but not exactly (docs/scale.md).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from ...data.products import plain
from ...data.text import BrandMatcher, CachedStemmer, Normaliser, slug
from ...errors import SearchkitError
from ...index import layout
from ...index.ann import stored_vectors
from ...index.texts import product_texts
from ...search.retrieval import Fusion
from ...search.rules import Rules
from ...search.rules import loads as rules_loads
from .names import index_name, slug_columns

KEYWORD_FIELDS = ("brand", "color")


def vector_text(vector: np.ndarray) -> str:
    """A float32 vector as JSON: each value the shortest decimal that reads back as the same float32."""
    return "[" + ",".join(map(str, np.asarray(vector, dtype=np.float32))) + "]"


def _field(values: Any) -> dict[str, Any]:
    """The mapping of an extra catalog column: numbers as double, anything else as an exact keyword."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return {"type": "double"}
    return {"type": "keyword", "ignore_above": 256}


def synonym_lines(rules: Rules, normaliser: Normaliser) -> list[str]:
    """The rules' synonyms as OpenSearch's synonym_graph filter reads them, in searchkit's keyword text (stems):
    "couch, sofa, settee" for a group, "commode => commode, toilet seat" one way."""
    lexical = normaliser.lexical
    out = []
    for group in rules.synonyms:
        stems = [" ".join(lexical.lexical_terms(w)) for w in group.words]
        stems = [s for s in dict.fromkeys(stems) if s]
        if len(stems) > 1:
            out.append(f"{stems[0]} => {', '.join(stems)}" if group.one_way else ", ".join(stems))
    return out


def index_body(manifest: layout.Manifest, products: Any, shards: int, replicas: int,
               synonyms: list[str] | None = None) -> dict[str, Any]:
    bm25 = manifest.index.bm25
    params = manifest.index.params
    properties: dict[str, Any] = {
        "product_id": {"type": "keyword"},
        "title": {"type": "text", "analyzer": "searchkit_title"},
        "keywords": {"type": "text", "analyzer": "whitespace"},
        "description": {"type": "text", "analyzer": "searchkit_title"},
        "embedding": {"type": "knn_vector", "dimension": manifest.dimension,
                      # faiss reads ef_search from here (or the query), not from index.knn.algo_param.ef_search,
                      # which only NMSLIB reads (k-NN IndexUtil.getParametersAtLoading, issue #514)
                      "method": {"name": "hnsw", "engine": "faiss", "space_type": "innerproduct",
                                 "parameters": {"m": int(params.get("m", 32)),
                                                "ef_construction": int(params.get("ef_construction", 200)),
                                                "ef_search": int(params.get("ef_search", 128))}}},
        "slug": {"properties": {c: {"type": "keyword", "ignore_above": 256}
                                for c in slug_columns(manifest.catalog.types)}},
    }
    for column in products.columns:
        if column not in properties:
            properties[column] = {"type": "keyword", "ignore_above": 256} if column in KEYWORD_FIELDS else _field(
                products[column])
    return {
        "settings": {
            "index": {"knn": True, "number_of_shards": shards, "number_of_replicas": replicas,
                      "similarity": {"default": {"type": "BM25", "k1": float(bm25.k1),
                                                 "b": float(bm25.b)}}},
            # titles for people: words split at letter/digit boundaries and stemmed, the closest OpenSearch's
            # analyzers come to searchkit's keyword text (which `keywords` carries exactly)
            "analysis": {"analyzer": {"searchkit_title": {
                "type": "custom", "tokenizer": "standard",
                "filter": ["lowercase", "searchkit_split", "porter_stem"]}},
                "filter": {"searchkit_split": {"type": "word_delimiter_graph", "split_on_numerics": True,
                                               "preserve_original": False}}},
        },
        "mappings": {"properties": properties},
    } if not synonyms else _with_synonyms(manifest, products, shards, replicas, synonyms)


def _with_synonyms(manifest: layout.Manifest, products: Any, shards: int, replicas: int,
                   synonyms: list[str]) -> dict[str, Any]:
    """The index body with the merchandiser's synonyms applied to `keywords` at search time (a synonym_graph filter
    in the field's search analyzer), so any client's BM25 query finds them as searchkit's does."""
    body = index_body(manifest, products, shards, replicas)
    analysis = body["settings"]["analysis"]
    analysis["filter"]["searchkit_synonyms"] = {"type": "synonym_graph", "synonyms": synonyms}
    analysis["analyzer"]["searchkit_keywords_search"] = {"type": "custom", "tokenizer": "whitespace",
                                                         "filter": ["searchkit_synonyms"]}
    body["mappings"]["properties"]["keywords"]["search_analyzer"] = "searchkit_keywords_search"
    return body


def pipeline_body(fusion: Fusion) -> dict[str, Any]:
    """Weights in the hybrid query's clause order: [BM25 match, k-NN]."""
    return {"description": "searchkit hybrid: BM25 and k-NN scores min-max normalised, weighted as searchkit fuses",
            "phase_results_processors": [{"normalization-processor": {
                "normalization": {"technique": "min_max"},
                "combination": {"technique": "arithmetic_mean",
                                "parameters": {"weights": [round(1 - fusion.alpha, 6), round(fusion.alpha, 6)]}}}}]}


def export_opensearch(index_dir: str | Path, out_dir: str | Path, name: str | None = None, shards: int = 1,
                      replicas: int = 1, shard_docs: int = 1_000) -> dict[str, Any]:
    """Write the index body, search pipeline and `_bulk` files for the index at `index_dir` into `out_dir` (replaced
    atomically); returns the summary it also writes as export.json."""
    if shard_docs < 1 or shards < 1 or replicas < 0:
        raise SearchkitError(f"bad export settings: shards {shards}, replicas {replicas}, docs a file {shard_docs}")
    files = layout.IndexFiles(layout.live_dir(Path(index_dir)))
    manifest = layout.read_manifest(files.root)
    layout.verify_files(files, manifest)
    name = index_name(name or Path(index_dir).resolve().name)
    products = layout.read_products(files, manifest.rows).to_pandas()
    index = layout.read_faiss(files)
    vectors = np.array(stored_vectors(index), dtype=np.float32, copy=True)
    del index
    text = layout.read_text(files)
    normaliser = Normaliser(manifest.text, BrandMatcher.from_names(text.get("brands", [])),
                            CachedStemmer(text.get("stems", {})),
                            keyword_text=manifest.index.bm25.text)
    keywords = product_texts(products, normaliser.lexical)  # each product's BM25 text, as the index built it
    target = Path(out_dir)
    staged = target.parent / f".{target.name}.exporting-{uuid.uuid4().hex[:8]}"
    staged.mkdir(parents=True)
    try:
        rules_text = layout.read_rules_text(files.root)
        synonyms = synonym_lines(rules_loads(rules_text), normaliser) if rules_text else []
        (staged / "index.json").write_text(json.dumps(index_body(manifest, products, shards, replicas, synonyms),
                                                      indent=2))
        fusion = Fusion()
        (staged / "pipeline.json").write_text(json.dumps(pipeline_body(fusion), indent=2))
        written = []
        columns = list(products.columns)
        slugged = slug_columns(manifest.catalog.types)
        for part, first in enumerate(range(0, len(products), shard_docs)):
            path = staged / f"documents-{part:05d}.ndjson.gz"
            with gzip.open(path, "wt", encoding="utf-8") as out:
                for row in range(first, min(first + shard_docs, len(products))):
                    doc = {c: plain(products.iat[row, i]) for i, c in enumerate(columns)}
                    doc["keywords"] = keywords[row]
                    doc["slug"] = {c: slug(str(doc[c])) for c in slugged if doc.get(c) is not None}
                    out.write(json.dumps({"index": {"_index": name, "_id": str(doc["product_id"])}}) + "\n")
                    line = json.dumps(doc, ensure_ascii=False)
                    out.write(f'{line[:-1]}, "embedding": {vector_text(vectors[row])}}}\n')
            written.append(path.name)
        summary = {"name": name, "index": str(index_dir), "documents": len(products), "dimension": manifest.dimension,
                   "model": manifest.model.name, "model_fingerprint": manifest.model.fingerprint,
                   "pipeline": f"{name}-hybrid", "files": written, "fusion_alpha": fusion.alpha,
                   "shards": shards, "replicas": replicas, "slug_columns": slugged,
                   "ef_search": int(manifest.index.params.get("ef_search", 128)),
                   "keyword_text": normaliser.keyword_text, "query_side": "searchkit normalises and embeds queries "
                   "with this index's text settings and query encoder (Searcher.embed)"}
        (staged / "export.json").write_text(json.dumps(summary, indent=2))
        if target.exists():
            aside = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(target, aside)
            os.replace(staged, target)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(staged, target)
        return summary
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
