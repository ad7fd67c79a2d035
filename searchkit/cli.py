"""The `searchkit` command: parse options, build a config, call the library, format the answer. Nothing else."""

from __future__ import annotations

import functools
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

import click

from .errors import SearchkitError

DEFAULT_INDEX = "indexes/homedepot"
DEFAULT_CATALOG = "catalog/homedepot-products.parquet"
DEFAULT_PAIRS = "catalog/homedepot-pairs.parquet"
BACKENDS = ["auto", "distilled", "onnx-int8", "onnx", "torch"]  # searchkit.loading.BACKENDS (not imported: startup)
BACKEND_HELP = ("Query encoder: the index's distilled query encoder (int8 graph or token table), the whole model's "
                "int8 or fp32 graph, or sentence-transformers; auto takes the first of those the index's build checks "
                "kept.")


def _assignments(text: str, option: str, keys: dict[str, str]) -> dict[str, str]:
    """"id=sku,title=name" as {"product_id": "sku", "title": "name"}, keys mapping each accepted word to a field."""
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not value.strip() or key.strip().lower() not in keys:
            raise click.BadParameter(f"{item!r}: write FIELD=COLUMN with FIELD one of {', '.join(sorted(set(keys)))}",
                                     param_hint=option)
        out[keys[key.strip().lower()]] = value.strip()
    return out


COLUMN_FIELDS = {"id": "product_id", "product_id": "product_id", "title": "title", "brand": "brand",
                 "color": "color", "colour": "color", "description": "description", "bad_numbers": "bad_numbers"}
PAIR_FIELDS = {"query": "query", "id": "product_id", "product_id": "product_id", "relevance": "relevance"}


def columns_option(command):
    """--columns: which of the catalog's columns hold the product fields (the command gets a ColumnMap, `columns`)."""

    @functools.wraps(command)
    def with_columns(*args, columns, **kwargs):
        from .catalog import ColumnMap

        return command(*args, columns=ColumnMap(**_assignments(columns or "", "--columns", COLUMN_FIELDS)), **kwargs)

    return click.option("--columns", default=None, metavar="FIELD=COLUMN,...",
                        help="The catalog's column names where they differ from product_id, title, brand, color, "
                             "description (and the usual aliases), e.g. id=sku,title=name,color=colour; "
                             "bad_numbers=missing reads a numeric column's unreadable values as missing instead of "
                             "refusing the file.")(with_columns)


def pair_options(command):
    """How a rated-pairs file names its columns and grades, for commands that read one: the command gets them as one
    PairFormat, `form`."""

    @functools.wraps(command)
    def with_form(*args, pairs_columns, relevance_scale, labels, **kwargs):
        return command(*args, form=pair_format(pairs_columns, relevance_scale, labels), **kwargs)

    for option in reversed([
        click.option("--pairs-columns", default=None, metavar="FIELD=COLUMN,...",
                     help="The pairs file's column names where they differ from query, product_id, relevance (and "
                          "the usual aliases: search_term, product_uid, label, grade, ...), e.g. query=q,relevance=y."),
        click.option("--relevance-scale", default="1:3", show_default=True,
                     help="LOW:HIGH, the file's lowest and highest numeric grade, mapped onto 1..3 (e.g. 0:2)."),
        click.option("--labels", default=None,
                     help="Text grades mapped onto 1..3, e.g. Exact=3,Substitute=2,Complement=1.5,Irrelevant=1."),
    ]):
        with_form = option(with_form)
    return with_form


def pair_format(pairs_columns: str | None, relevance_scale: str, labels: str | None):
    from .catalog import PairFormat, parse_labels
    from .errors import CatalogError

    low, sep, high = relevance_scale.partition(":")
    try:
        if not sep:
            raise ValueError
        scale = (float(low), float(high))
    except ValueError:
        raise CatalogError(f"--relevance-scale {relevance_scale!r}: write LOW:HIGH, e.g. 0:2") from None
    return PairFormat(**_assignments(pairs_columns or "", "--pairs-columns", PAIR_FIELDS), scale=scale,
                      labels=parse_labels(labels) if labels else ())


def _given(value):
    """A ColumnMap or PairFormat from the options, or None when they said nothing (so a config file's holds)."""
    return None if value == type(value)() else value


def config_option(command):
    return click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                        help="A TOML file of further settings: the fields of this command's config (see docs/"
                             "configuration.md); options given here win.")(command)


class _Command(click.Command):
    """Turns the library's typed errors into one clear line and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SearchkitError as exc:
            raise click.ClickException(str(exc)) from exc


class _Group(click.Group):
    command_class = _Command


@click.group(cls=_Group)
@click.version_option(package_name="searchkit")
@click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr.")
def main(verbose: bool) -> None:
    """Semantic product search: build an index of a catalog, then query it."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _progress_lines(on: bool) -> None:
    """Long work says how far it got, a line at a time on stderr (also where no progress bar can be drawn: make, CI,
    logs)."""
    progress = logging.getLogger("searchkit.progress")
    if on and not any(isinstance(h, _EchoHandler) for h in progress.handlers):
        handler = _EchoHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        progress.addHandler(handler)
        progress.setLevel(logging.INFO)
        progress.propagate = False


class _EchoHandler(logging.Handler):
    """Log records as lines on the current stderr (click's, so a test runner's capture sees them too)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(self.format(record), err=True)


def _emit_json(data) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


@main.command("build-index")
@click.argument("catalog", type=click.Path(path_type=Path), default=DEFAULT_CATALOG)
@click.option("--model", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Model folder (default: the fine-tuned searchkit-homedepot model).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Index folder to write, replaced atomically (default: indexes/<the catalog's name>).")
@click.option("--device", default=None, help="Encoding device: cpu, cuda, cuda:1 (default: cuda when present).")
@click.option("--reranker", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Cross-encoder folder for mode rerank (default: the model's reranker/ when it has one).")
@columns_option
@click.option("--if-stale", is_flag=True, help="Do nothing when OUT already holds an intact index of this catalog "
              "built with this model.")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="Encode on a Ray cluster: 'local' starts one here, else the address ray.init takes.")
@click.option("--workers", type=click.IntRange(1), default=None, help="With --ray: embedding actors (default 2).")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def build_index_cmd(catalog, model, out, device, reranker, columns, if_stale, ray_address, workers, config_file,
                    as_json):
    """Embed every product of CATALOG (a parquet or CSV file, or a folder or glob of parquet shards) into a FAISS
    index beside a BM25 index.

    Further settings (index_type, target_recall, batch_size, bulk, bm25_k1, bm25_b, query_tower, reranker) come from
    --config FILE."""
    from .configfile import load_config
    from .index import IndexConfig, build_index, default_out, indexed_catalog, staleness

    config = load_config(IndexConfig, config_file, device=device, progress=sys.stderr.isatty() or None,
                         ray=ray_address, workers=workers)
    _progress_lines(True)
    other = indexed_catalog(out or default_out(catalog))
    if other is not None and Path(other).name != Path(catalog).name:
        if out is None:
            raise click.UsageError(f"{default_out(catalog)} holds the index of another catalog ({other}); give "
                                   "--out to build elsewhere, or to replace it")
        click.echo(f"replacing the index of {other} in {out}", err=True)
    out = out or default_out(catalog)
    if reranker is not None and not config.reranker:
        raise click.UsageError("give --reranker or `reranker = false` in the config, not both")
    if if_stale and Path(catalog).exists():
        if not Path(out).exists():
            click.echo(f"building {out} from {catalog}", err=True)
        elif (reason := staleness(out, catalog, model)) is None:
            click.echo(f"{out} is up to date with {catalog}", err=True)
            return
        else:
            click.echo(f"rebuilding {out}: {reason}", err=True)
    manifest = build_index(catalog, out, model=model, config=config, columns=columns, reranker=reranker)
    if as_json:
        _emit_json(manifest.__dict__)
    else:
        renamed = {f: s for f, s in (manifest.catalog.get("sources") or {}).items() if f != s}
        types = manifest.catalog.get("types") or {}
        click.echo("columns read: " + ", ".join(f"{c}{' <- ' + renamed[c] if c in renamed else ''} ({t})"
                                                for c, t in types.items())
                   + (" (filters take either name)" if renamed else ""))
        reused = manifest.catalog.get("reused_embeddings", 0)
        click.echo(f"indexed {manifest.rows} products from {catalog} into {out} "
                   f"({manifest.index['type']}, {manifest.dimension}-d, model {manifest.model['name']}, "
                   f"{manifest.build_seconds:.1f} s" + (f"; {reused} embeddings reused, {manifest.rows - reused} "
                                                        "embedded" if reused else "") + ")")


def _format_table(hits) -> str:
    from html import unescape

    lines = [f"{'rank':>4}  {'score':>7}  {'cosine':>6}  {'id':<10}  {'brand':<20}  title"]
    for hit in hits:
        brand = str(hit.fields.get("brand") or "")[:20]
        title = str(hit.fields.get("title") or "")[:80]
        if hit.highlight is not None:
            title = unescape(hit.highlight.replace("<mark>", "[").replace("</mark>", "]"))[:90]
        if hit.rules:
            title += f"  ({'; '.join(hit.rules)})"
        lines.append(f"{hit.rank:>4}  {hit.score:7.3f}  {hit.cosine:6.3f}  {hit.product_id:<10}  {brand:<20}  {title}")
    return "\n".join(lines)


@main.command("query")
@click.argument("text")
@click.option("-k", "k", type=click.IntRange(1, 100), default=10, show_default=True,
              help="How many products (at most 100, as over HTTP).")
@click.option("--page", type=click.IntRange(1), default=1, show_default=True,
              help="Which page of k results (page 2 of k 10 is ranks 11-20).")
@click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_INDEX,
              show_default=True, envvar="SEARCHKIT_INDEX")
@click.option("--mode", type=click.Choice(["dense", "lexical", "hybrid", "rerank"]), default=None,
              help="Retrieval mode (default: hybrid, chosen by measurement; rerank: hybrid, then the index's "
              "cross-encoder reorders the top 30, tens of milliseconds more).")
@click.option("--filter", "filters", multiple=True, metavar="COLUMN=VALUE",
              help="Keep products whose COLUMN matches: brand=kohler, color=white,biscuit, price=10..50. Repeatable.")
@click.option("--sort", default=None, metavar="[-]COLUMN",
              help="Order the 100 most relevant products by a column: price, -price (descending).")
@click.option("--facets", is_flag=True, help="Also count brands and colours among the 100 most relevant products.")
@click.option("--highlight", is_flag=True, help="Mark the query's words in each title [like this].")
@click.option("--explain", is_flag=True, help="Say why each product matched (dense, lexical, matched terms, rules; "
              "in mode rerank, the estimated relevance on the raters' 1-3 scale when the index has a fit).")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True, help=BACKEND_HELP)
@click.option("--json", "as_json", is_flag=True, help="One JSON object: what the search made of the query, and the "
              "results (and facets).")
def query_cmd(text, k, page, index_dir, mode, filters, sort, facets, highlight, explain, backend, as_json):
    """Search the index for TEXT and print ranked products with cosine scores."""
    from .filters import merge_filters
    from .search import DEFAULT_MODE, Searcher, check_query

    check_query(text)
    wanted = merge_filters(list(filters)) or None
    searcher = Searcher.from_dir(index_dir, backend=backend, mmap=True)  # one query: map the big files
    mode = mode or DEFAULT_MODE
    window = {"offset": (page - 1) * k, "sort": sort, "highlight": highlight}
    if facets:
        hits, counts = searcher.search_with_facets(text, k=k, mode=mode, filters=wanted, explain=explain, **window)
    else:
        hits, counts = searcher.search(text, k=k, mode=mode, filters=wanted, explain=explain, **window), None
    if as_json:
        body = {"query": text, **hits.summary(), "mode": mode, "page": page, "sort": sort,
                "results": [h.to_dict() for h in hits]}
        _emit_json({**body, "facets": counts} if facets else body)
        return
    if hits.corrections:
        click.echo(f"showing results for: {hits.searched_as} ("
                   + ", ".join(f"{typed} -> {fixed}" for typed, fixed in hits.corrections) + ")")
    if hits.did_you_mean:
        click.echo(f"did you mean: {hits.did_you_mean}")
    if hits.redirect:
        click.echo(f"redirect: {hits.redirect}")
    if hits.no_match:
        click.echo(f"no products match {text!r}" + ("; related products:" if hits else ""))
    if hits:
        click.echo(_format_table(hits))
    elif not hits.no_match:
        click.echo(f"no results on page {page}")
    if explain:
        for hit in hits:
            why = hit.explain
            graded = f", relevance {why['relevance']:.2f} of 3" if "relevance" in why else ""
            ruled = f", {'; '.join(why['rules'])}" if why.get("rules") else ""
            click.echo(f"  #{hit.rank} {hit.product_id}: dense {why['dense']:.3f}, lexical {why['lexical'] or 0:.2f}, "
                       f"matched {' '.join(why['matched_terms']) or '-'}{graded}{ruled}")
    if counts:
        for column, values in counts.items():
            click.echo(f"{column}: " + ", ".join(f"{v} ({n})" for v, n in values[:10]))


@main.command("rules")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              envvar="SEARCHKIT_INDEX", help="The index to change (or SEARCHKIT_INDEX): a write names its target.")
@click.option("--show", is_flag=True, help="Print the rules in force and change nothing.")
@click.option("--remove", is_flag=True, help="Remove the index's rules.")
@click.option("--json", "as_json", is_flag=True)
def rules_cmd(file, index_dir, show, remove, as_json):
    """Install FILE (TOML: synonyms, pinned and hidden products, boosts, signals, demotion; see the README) as the
    index's rules, validated whole and swapped in atomically; a running server picks them up within seconds."""
    from . import store
    from .rules import NO_RULES, describe, install, loads

    if sum([file is not None, show, remove]) != 1:
        raise click.UsageError("give a rules FILE, --show or --remove")
    if show:
        text = store.read_rules_text(store.live_dir(index_dir))
        if not (index_dir / store.MANIFEST).is_file() and text is None:
            store.read_manifest(index_dir)  # a folder that is no index says so
        rules = loads(text) if text else NO_RULES
    else:
        rules = install(index_dir, None if remove else file)
    if as_json:
        _emit_json(rules.to_dict())
        return
    if not show:
        click.echo(f"{index_dir}: rules removed" if remove else f"{index_dir}: rules from {file} installed")
    click.echo(describe(rules))


@main.command("update")
@click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              envvar="SEARCHKIT_INDEX", help="The index to change (or SEARCHKIT_INDEX): a write names its target.")
@click.option("--upsert", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A catalog file (read as build-index reads one): new ids are added, known ids replaced.")
@click.option("--delete", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Product ids to remove: a text file, one id per line, or a parquet/CSV file with the id column.")
@columns_option
@click.option("--rollback", is_flag=True, help="Put back the version the last update replaced.")
@click.option("--json", "as_json", is_flag=True)
def update_cmd(index_dir, upsert, delete, columns, rollback, as_json):
    """Upsert and delete products in an index without a full rebuild: only new products and those whose embedded
    text changed are embedded; the new version is swapped in atomically (a running server picks it up)."""
    from .update import rollback as roll_back
    from .update import update_index

    if rollback:
        if upsert is not None or delete is not None:
            raise click.UsageError("give --rollback alone")
        manifest = roll_back(index_dir)
        click.echo(f"{index_dir}: back to version {manifest.catalog.get('version', 1)} ({manifest.rows} products, "
                   f"built {manifest.built_at})")
        return
    _progress_lines(True)
    report = update_index(index_dir, upsert=upsert, delete=delete, columns=columns)
    if as_json:
        _emit_json(report.to_dict())
        return
    click.echo(f"updated {index_dir} to version {report.version}: {report.added} added, {report.changed} changed "
               f"({report.reembedded} embedded), {report.deleted} deleted, {report.unchanged} unchanged; "
               f"{report.rows} products ({report.seconds:.1f} s)")


@main.group("export", cls=_Group)
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
@click.option("--docs-per-file", type=click.IntRange(1), default=10_000, show_default=True)
def export_opensearch_cmd(index_dir, out, name, shards, replicas, docs_per_file):
    """The index body (k-NN on the faiss engine, BM25 as searchkit's), a hybrid search pipeline with searchkit's
    fusion weights, and every product with its stored vector as _bulk NDJSON files."""
    from .opensearch_export import export_opensearch

    summary = export_opensearch(index_dir, out, name=name, shards=shards, replicas=replicas,
                                shard_docs=docs_per_file)
    click.echo(f"wrote {summary['documents']} documents ({summary['dimension']}-d vectors) in "
               f"{len(summary['files'])} file(s), the index body and the pipeline {summary['pipeline']} to {out}")


@main.group("push", cls=_Group)
def push_group() -> None:
    """Load an index into an engine that serves it past one machine."""


@push_group.command("opensearch")
@click.option("--url", required=True, help="The cluster, e.g. https://user:pass@search.example.com:9200.")
@click.option("--name", default=None, help="Index name there (default: the export's name).")
@click.option("--export", "export_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="A folder `searchkit export opensearch` wrote.")
@click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Or an index folder, exported on the way.")
def push_opensearch_cmd(url, name, export_dir, index_dir):
    """Create the index and its hybrid search pipeline on an OpenSearch cluster and load every product."""
    from .opensearch import push_opensearch

    if export_dir is None and index_dir is None:
        index_dir = Path(DEFAULT_INDEX)
    result = push_opensearch(url, export_dir=export_dir, index_dir=index_dir, name=name,
                             progress=sys.stderr.isatty())
    click.echo(f"loaded {result['documents']} documents into {result['name']} on {url} (pipeline "
               f"{result['pipeline']})")


@main.command("calibrate")
@click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              envvar="SEARCHKIT_INDEX", help="The index to change (or SEARCHKIT_INDEX): a write names its target.")
@click.option("--queries", "queries_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A text file of shopper queries, one per line (e.g. a query log). Default: the bundled pairs' "
                   "validation queries.")
@click.option("--pairs", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_PAIRS, show_default=True,
              help="Without --queries: take the queries of this pairs file's --split.")
@click.option("--split", type=click.Choice(["val", "train", "test", "all"]), default="val", show_default=True)
@click.option("--target-recall", type=click.FloatRange(0.5, 1.0), default=0.98, show_default=True,
              help="Recall@10 against exact search that the chosen search effort must reach.")
@click.option("--max-queries", type=click.IntRange(1), default=1000, show_default=True)
@pair_options
@click.option("--json", "as_json", is_flag=True)
def calibrate_cmd(index_dir, queries_file, pairs, split, target_recall, max_queries, form, as_json):
    """Measure an approximate index's recall on real queries and set its search effort (efSearch / nprobe) to the
    cheapest that reaches --target-recall; rewrites the manifest only."""
    from .ann import knob_name
    from .evaluate import sample
    from .recalibration import recalibrate

    if queries_file is not None:
        try:
            queries = [line.strip() for line in queries_file.read_text().splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise SearchkitError(f"{queries_file}: unreadable ({exc})") from exc
        source = f"queries from {queries_file}"
    else:
        from .catalog import read_pairs
        from .evaluate import EvalConfig, select_pairs

        queries = list(dict.fromkeys(select_pairs(read_pairs(pairs, form), EvalConfig(split=split))["query"]))
        source = f"{split} queries of {pairs}"
    queries = sample(queries, max_queries, seed=0)
    manifest = recalibrate(index_dir, queries, target_recall, source=f"{source} ({len(queries)})")
    meta = manifest.index
    if as_json:
        _emit_json(meta)
        return
    knob = knob_name(meta["type"])
    curve = ", ".join(f"{v}: {r}" for v, r in meta["calibration"]["curve"].items())
    click.echo(f"{index_dir}: {knob} {meta['params'][knob]} (recall@10 {meta['recall@10_sample']} on "
               f"{meta['calibration']['queries']} queries, target {target_recall}); curve {curve}")


@main.command("evaluate")
@click.argument("pairs", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_PAIRS)
@click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_INDEX,
              show_default=True)
@click.option("--split", type=click.Choice(["auto", "test", "val", "train", "all"]), default="auto",
              show_default=True,
              help="Which query split of PAIRS to measure on (split by query, seeded). auto: test when PAIRS shares "
                   "queries with the training or validation split of the pairs the models learnt from (the bundled "
                   "pairs, or those the model's card names), else all of PAIRS.")
@click.option("--max-queries", type=click.IntRange(1), default=None,
              help="Measure a seeded random sample of this many of the split's queries.")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True, help=BACKEND_HELP)
@click.option("--model", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Measure this model folder instead of an index: embed --catalog in memory, exact search.")
@click.option("--catalog", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_CATALOG, show_default=True,
              help="With --model: the catalog to embed.")
@click.option("--device", default=None, help="With --model: cpu, cuda (default: cuda when present).")
@pair_options
@click.option("--json", "as_json", is_flag=True)
def evaluate_cmd(pairs, index_dir, split, max_queries, backend, model, catalog, device, form, as_json):
    """Measure the index on rated PAIRS: Spearman/Pearson over pairs, NDCG@10/MRR@10/Recall over the catalog."""
    from . import store
    from .catalog import read_pairs
    from .encoder import read_model_info
    from .evaluate import EvalConfig, check_query_split, choose_split, evaluate, training_files
    from .search import Searcher

    rated = read_pairs(pairs, form)
    reason = None
    card = read_model_info(model if model is not None else store.IndexFiles(index_dir).model)
    check_query_split(card, str(model if model is not None else index_dir))
    seed = int((card.get("split") or {}).get("seed", 42))  # split as the model was trained (the default seed 42)
    if split == "auto":
        split, reason = choose_split(rated, training_files(card, [Path(DEFAULT_PAIRS)]), seed)

    if model is not None:
        from click.core import ParameterSource

        from .evaluate import in_memory_searcher

        if click.get_current_context().get_parameter_source("index_dir") != ParameterSource.DEFAULT:
            raise click.UsageError("give --index or --model, not both")

        searcher, index_dir = in_memory_searcher(catalog, model, device=device), model
    else:
        searcher = Searcher.from_dir(index_dir, backend=backend, encode_threads=None)
    report = evaluate(searcher, rated, EvalConfig(split=split, seed=seed, max_queries=max_queries))
    if reason:
        report["split_reason"] = reason
    if as_json:
        _emit_json(report)
        return
    p = report["pairs"]
    click.echo(f"{index_dir} (model {report['index']['model']}), split {split}: {report['queries']} queries, "
               f"{p['pairs']} pairs")
    if reason:
        click.echo(f"split {split}: {pairs}: {reason}")
    click.echo(f"pairs: spearman {p['spearman']:.4f}  pearson {p['pearson']:.4f}  (cosine vs label)")
    if "reranker_pairs" in report:
        r = report["reranker_pairs"]
        click.echo(f"pairs: spearman {r['spearman']:.4f}  pearson {r['pearson']:.4f}  (reranker score vs label)")
    if "relevance_pairs" in report:
        r = report["relevance_pairs"]
        click.echo(f"pairs: spearman {r['spearman']:.4f}  pearson {r['pearson']:.4f}  rmse {r['rmse']:.4f}  "
                   "(relevance estimate vs label)")
    elif "relevance_unavailable" in report:
        click.echo(f"pairs: no relevance estimate ({report['relevance_unavailable']})")
    click.echo(f"{'mode':<8} {'ndcg@10':>8} {'mrr@10':>8} {'r@10':>8} {'r@100':>8} {'judged':>8} {'ndcg@10j':>8}")
    for mode, m in report["retrieval"].items():
        click.echo(f"{mode:<8} {m['ndcg@10']:8.4f} {m['mrr@10']:8.4f} {m['recall@10']:8.4f} {m['recall@100']:8.4f} "
                   f"{m['judged@10']:8.4f} {m['ndcg@10_judged']:8.4f}")
    click.echo("judged: share of the top 10 that raters judged; ndcg@10j: NDCG@10 over judged products only "
               "(unjudged removed from the ranking)")


@main.command("fit-relevance")
@click.argument("pairs", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_PAIRS)
@click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_INDEX,
              show_default=True, help="An index with a reranker: its cosine, BM25 and cross-encoder are the signals.")
@click.option("--split", type=click.Choice(["val", "train", "all"]), default="val", show_default=True,
              help="Which query split of PAIRS to fit on (val: queries the models were not trained on).")
@click.option("--seed", type=int, default=42, show_default=True, help="Split seed (as used in training).")
@click.option("--reranker", "reranker_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The reranker folder to keep the fit in (default: the one the index was built from).")
@pair_options
@click.option("--json", "as_json", is_flag=True)
def fit_relevance_cmd(pairs, index_dir, split, seed, reranker_dir, form, as_json):
    """Fit the graded relevance estimate (1-3) on rated PAIRS; rebuild the index to use it."""
    from .fit_relevance import RelevanceFitConfig, fit_relevance

    path, report = fit_relevance(RelevanceFitConfig(index=index_dir, pairs=pairs, split=split, seed=seed,
                                                    reranker=reranker_dir, pair_format=form))
    if as_json:
        _emit_json({"written": str(path), **report})
        return
    click.echo(f"{report['queries']} queries, {report['pairs']} pairs of the {split} split; fit written to {path}")
    for name in ("cosine", "cross_encoder", "grader", "in_sample", "cross_validated"):
        if name not in report:
            continue
        r = report[name]
        rmse = f"  rmse {r['rmse']:.4f}" if "rmse" in r else ""
        click.echo(f"{name:<16} spearman {r['spearman']:.4f}  pearson {r['pearson']:.4f}{rmse}")
    click.echo(f"rebuild the index to use it: searchkit build-index CATALOG --out {index_dir} --if-stale")


@main.command("serve")
@click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_INDEX,
              show_default=True, envvar="SEARCHKIT_INDEX")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes, each with its own copy of the index in memory.")
@click.option("--opensearch", "opensearch_url", default=None, metavar="URL",
              help="Serve from this OpenSearch cluster (`searchkit push opensearch`); --index then only embeds "
                   "queries.")
@click.option("--name", default=None, help="With --opensearch: the index name there (default: --index's name).")
@click.option("--log", "log_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep a search log here: every search and every shopper event (POST /events), append-only "
                   "daily files.")
@click.option("--no-admin", is_flag=True, help="Serve without the admin endpoints (/admin, /reload).")
def serve_cmd(index_dir, host, port, workers, opensearch_url, name, log_dir, no_admin):
    """Serve the HTTP JSON API (/search, /products/ID, /health, /reload, /docs) and the search page at /."""
    import os

    import uvicorn

    from . import store

    store.read_manifest(index_dir)  # fail fast, with the reason, before starting workers
    loopback = host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")
    if not loopback and not no_admin and not os.environ.get("SEARCHKIT_ADMIN_KEY"):
        raise click.UsageError(f"serving on {host} (not loopback) with the admin endpoints open: set "
                               "SEARCHKIT_ADMIN_KEY, or give --no-admin")
    os.environ["SEARCHKIT_INDEX"] = str(index_dir)
    if no_admin:
        os.environ["SEARCHKIT_NO_ADMIN"] = "1"
    if log_dir is not None:
        os.environ["SEARCHKIT_LOG"] = str(log_dir)
    if opensearch_url:
        os.environ["SEARCHKIT_OPENSEARCH_URL"] = opensearch_url
        os.environ["SEARCHKIT_OPENSEARCH_NAME"] = name or Path(index_dir).resolve().name
    click.echo(f"serving {index_dir} on http://{host}:{port}/ ({workers} worker(s))"
               + (f" from OpenSearch {opensearch_url}" if opensearch_url else ""), err=True)
    uvicorn.run("searchkit.serve:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level="warning")


@main.command("judgments")
@click.argument("logs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The judgments file to write: .csv or .parquet (query, product_id, relevance 1-3, impressions, "
                   "clicks, confidence, attraction, ctr).")
@click.option("--min-impressions", type=click.IntRange(1), default=3, show_default=True,
              help="Leave out pairs shown fewer times than this.")
@click.option("--columns", default=None, metavar="FIELD=COLUMN,...",
              help="An impressions file's column names where they differ from query, product_id, position, clicked, "
                   "added_to_cart, purchased.")
@click.option("--json", "as_json", is_flag=True)
def judgments_cmd(logs, out, min_impressions, columns, as_json):
    """Turn search logs (a `serve --log` folder, or a shop's impression files) into graded judgments with the
    position bias taken out (a position-based click model), for train, train-reranker and evaluate."""
    from .judgments import JudgmentConfig, judgments, read_impressions, write_judgments

    fields = {f: f for f in ("query", "product_id", "position", "clicked", "added_to_cart", "purchased")}
    names = _assignments(columns or "", "--columns", fields)
    frame = read_impressions(list(logs), names)
    pairs = judgments(frame, JudgmentConfig(min_impressions=min_impressions))
    write_judgments(pairs, out)
    summary = {"impressions": len(frame), "searches": int(frame["query_id"].nunique()) if "query_id" in frame else None,
               "pairs": len(pairs), "queries": int(pairs["query"].nunique()), "out": str(out)}
    if as_json:
        _emit_json(summary)
        return
    click.echo(f"judged {summary['pairs']} pairs of {summary['queries']} queries from {summary['impressions']} "
               f"impressions into {out}")


@main.command("report")
@click.argument("logs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def report_cmd(logs, as_json):
    """What shoppers searched, from `serve --log` folders: searches per day, top queries, queries with no result or
    no match, queries rarely clicked, clicks by position."""
    from .report import as_text, summarize

    summary = summarize(list(logs))
    if as_json:
        _emit_json(summary)
        return
    click.echo(as_text(summary))


@main.command("learn")
@click.argument("logs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              envvar="SEARCHKIT_INDEX", help="The index whose model learns (or SEARCHKIT_INDEX): rebuilt when adopted.")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the judgments and the candidate model here (default: a temporary folder).")
@click.option("--min-impressions", type=click.IntRange(1), default=3, show_default=True)
@click.option("--dry-run", is_flag=True, help="Judge, train and measure, but never adopt.")
@config_option
@click.option("--json", "as_json", is_flag=True)
def learn_cmd(logs, index_dir, work, min_impressions, dry_run, config_file, as_json):
    """Learn from shoppers: LOGS (serve --log folders or impression files) into judgments, a candidate embedder
    trained on them from the index's model, measured against it on held-out queries, and adopted (the index rebuilt,
    atomically) only when better beyond the noise.

    Training settings (recipe, max_steps, batch_size, lr, split) come from --config FILE."""
    import contextlib

    from .configfile import load_config
    from .release import learn
    from .training import TrainConfig

    _progress_lines(True)
    with contextlib.redirect_stdout(sys.stderr):  # the trainer prints its progress; stdout stays the answer's
        report = learn(list(logs), index_dir, work=work, dry_run=dry_run, min_impressions=min_impressions,
                       template=load_config(TrainConfig, config_file))
    if as_json:
        _emit_json(report)
        return
    verdict = report["verdict"]
    click.echo(f"{report['pairs']} judged pairs, {verdict['queries']} held-out queries: {verdict['reason']}")
    click.echo(f"{index_dir}: rebuilt with the candidate" if report["adopted"] else
               f"{index_dir}: unchanged" + (" (dry run)" if dry_run and verdict["adopt"] else ""))


@main.command("distill")
@click.argument("pairs", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--model", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The model to distil (default: models/searchkit-homedepot); its query encoder is written to "
                   "MODEL/query_encoder.")
@click.option("--catalog", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"The catalog whose titles and products it learns from (default: {DEFAULT_CATALOG}).")
@columns_option
@click.option("--layers", type=click.IntRange(0), default=None,
              help="Transformer layers of the query encoder (the model's first ones, retrained; default 3); 0: a "
                   "static token table (no transformer at query time).")
@click.option("--titles-only", is_flag=True,
              help="Ignore PAIRS: learn from the catalog's title spans alone (a catalog without rated queries).")
@click.option("--resume", is_flag=True, help="Start from MODEL's current query encoder, not its first layers.")
@click.option("--device", default=None, help="cpu, cuda (default: cuda when present).")
@config_option
@pair_options
def distill_cmd(pairs, model, catalog, columns, layers, titles_only, resume, device, config_file, form):
    """Train a shallower query encoder that embeds queries as MODEL does (products keep the whole model).

    Further settings (epochs, batch_size, lr, kl_weight, temperature, max_steps, seed, ...) come from --config FILE."""
    from .configfile import load_config
    from .distillation import DistillConfig, distill

    config = load_config(DistillConfig, config_file, model=model, catalog=catalog, layers=layers, device=device,
                         resume=resume or None, columns=_given(columns),
                         pair_format=_given(form))
    if titles_only:
        config = replace(config, pairs=None)
    elif pairs is not None:
        config = replace(config, pairs=pairs)
    report = distill(config)
    after = report["agreement_after"]
    kind = f"{config.layers}-layer" if config.layers else "static (token table)"
    click.echo(f"saved a {kind} query encoder to {config.model}/query_encoder: cosine to the whole model on "
               f"{report['heldout_texts']} held-out texts {after['cosine_mean']:.4f} (min {after['cosine_min']:.4f}); "
               "rebuild the index to use it")


@main.command("train")
@click.argument("pairs", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--catalog", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"The catalog the pairs' products come from (default: {DEFAULT_CATALOG}).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Model folder to write (default: models/searchkit-homedepot-RECIPE).")
@click.option("--recipe", type=click.Choice(["seed", "mnrl", "hardneg", "cosent", "multitask", "distil"]), default=None,
              help="Training recipe (default: mnrl).")
@click.option("--base-model", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Model to start from (default: base all-MiniLM-L6-v2).")
@click.option("--device", default=None, help="cpu, cuda (default: cuda when present).")
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in OUT/checkpoints.")
@config_option
@pair_options
def train_cmd(pairs, catalog, out, recipe, base_model, device, resume, config_file, form):
    """Fine-tune all-MiniLM-L6-v2 on rated query-product PAIRS (default: the bundled pairs; split by query, seeded).

    Further settings (epochs, batch_size, lr, max_steps, eval_steps, save_steps, seed, stem, split, and the distil
    recipe's [distil] table: its teacher index, queries, loss) come from --config FILE; `stem = false` trains a model
    that reads whole words. `--recipe distil --resume` reuses the teacher labels and the newest checkpoint."""
    from .configfile import load_config, read_settings
    from .training import TrainConfig, train

    settings = read_settings(config_file)
    recipe = recipe or settings.get("recipe", "mnrl")
    config = load_config(TrainConfig, config_file, pairs=pairs, catalog=catalog, recipe=recipe,
                         out=out or (None if "out" in settings else Path(f"models/searchkit-homedepot-{recipe}")),
                         base_model=base_model, device=device, resume=resume or None,
                         pair_format=_given(form),
                         progress=sys.stderr.isatty() or None)
    path = train(config)
    click.echo(f"saved model to {path}")


@main.command("train-reranker")
@click.argument("pairs", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"The index whose hybrid search supplies the candidates to learn to reorder (default: "
                   f"{DEFAULT_INDEX}).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Reranker folder to write (default: models/searchkit-homedepot-reranker); copy it to "
                   "MODEL/reranker to ship it with a model.")
@click.option("--base-model", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="BERT folder to start from (default: the index's embedder).")
@click.option("--device", default=None, help="cpu, cuda (default: cuda when present).")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoints.")
@config_option
@pair_options
def train_reranker_cmd(pairs, index_dir, out, base_model, device, resume, config_file, form):
    """Train the cross-encoder of mode rerank on rated PAIRS (the training split) and the index's candidates.

    Further settings (epochs, batch_size, lr, negatives, mine_depth, loss, group_size, max_steps, save_steps, seed,
    settings) come from --config FILE."""
    from .configfile import load_config
    from .rerank_training import RerankTrainConfig, train_reranker

    config = load_config(RerankTrainConfig, config_file, index=index_dir, pairs=pairs, out=out, base_model=base_model,
                         device=device, resume=resume or None,
                         pair_format=_given(form),
                         progress=sys.stderr.isatty() or None)
    path = train_reranker(config)
    report = json.loads((path / "reranker.json").read_text())["validation"]
    click.echo(f"saved reranker to {path}: validation NDCG@10 {report['ndcg@10_hybrid']:.4f} (hybrid) -> "
               f"{report['ndcg@10_reranked']:.4f} (reranked) on {report['val_queries']} queries; build an index "
               f"with --reranker {path} to use it")


if __name__ == "__main__":
    main()
