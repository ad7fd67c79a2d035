"""Commands for OpenSearch: export opensearch, push opensearch."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import (
    DEFAULT_INDEX,
    Group,
)


@click.group("export", cls=Group)
def export_group() -> None:
    """Write an index in the form another engine loads."""


@export_group.command("opensearch")
@click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_INDEX,
              show_default=True, envvar="SEARCHKIT_INDEX")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write: index.json, pipeline.json, documents-*.ndjson.gz, export.json.")
@click.option("--name", default=None, help="The OpenSearch index name (default: the index folder's name).")
@click.option("--shards", type=click.IntRange(1), default=1, show_default=True)
@click.option("--replicas", type=click.IntRange(0), default=1, show_default=True)
@click.option("--docs-per-file", type=click.IntRange(1), default=1_000, show_default=True,
              help="Documents per _bulk file (about 5 MB each at 384-d).")
def export_opensearch_cmd(index_dir, out, name, shards, replicas, docs_per_file):
    """The index body (k-NN on the faiss engine, BM25 as searchkit's), a hybrid search pipeline with searchkit's
    fusion weights, and every product with its stored vector as _bulk NDJSON files."""
    from ..backends.opensearch.export import export_opensearch

    summary = export_opensearch(index_dir, out, name=name, shards=shards, replicas=replicas,
                                shard_docs=docs_per_file)
    click.echo(f"wrote {summary['documents']} documents ({summary['dimension']}-d vectors) in "
               f"{len(summary['files'])} file(s), the index body and the pipeline {summary['pipeline']} to {out}")


@click.group("push", cls=Group)
def push_group() -> None:
    """Load an index into an engine that serves it past one machine."""


@push_group.command("opensearch")
@click.option("--url", required=True, help="The cluster, e.g. https://user:pass@search.example.com:9200.")
@click.option("--name", default=None, help="Index name there (default: the export's name).")
@click.option("--export", "export_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="A folder `searchkit export opensearch` wrote.")
@click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Or an index folder, exported on the way.")
@click.option("--ca-certs", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A CA bundle for a cluster with a private CA (e.g. the demo certificates' root-ca.pem).")
@click.option("--no-verify", is_flag=True, help="Skip TLS certificate checks (a test cluster only).")
@click.option("--max-chunk-mb", type=click.FloatRange(0.1), default=8.0, show_default=True,
              help="The largest _bulk request body, in MiB (managed services refuse more than 10).")
def push_opensearch_cmd(url, name, export_dir, index_dir, ca_certs, no_verify, max_chunk_mb):
    """Create the index and its hybrid search pipeline on an OpenSearch cluster and load every product."""
    from ..backends.opensearch.cluster import Connection, push_opensearch

    if export_dir is None and index_dir is None:
        index_dir = Path(DEFAULT_INDEX)
    result = push_opensearch(url, export_dir=export_dir, index_dir=index_dir, name=name,
                             progress=sys.stderr.isatty(), max_chunk_bytes=int(max_chunk_mb * 1024 * 1024),
                             connection=Connection(ca_certs=ca_certs, verify=not no_verify))
    click.echo(f"loaded {result['documents']} documents into {result['name']} on {url} (pipeline "
               f"{result['pipeline']})")
