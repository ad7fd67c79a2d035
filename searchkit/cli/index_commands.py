"""Commands that build and keep an index: build-index, rules, update, calibrate."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import SearchkitError
from .common import (
    DEFAULT_CATALOG,
    DEFAULT_PAIRS,
    Command,
    columns_option,
    config_option,
    emit_json,
    pair_options,
    progress_lines,
)


@click.command("build-index", cls=Command)
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
@click.option("--shared-model", is_flag=True, default=None,
              help="Refer to the installed model by its fingerprint instead of copying it into the index (its graphs "
                   "are kept once, in the graph cache, for every index built this way).")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def build_index_cmd(catalog, model, out, device, reranker, columns, if_stale, ray_address, workers, shared_model,
                    config_file, as_json):
    """Embed every product of CATALOG (a parquet or CSV file, or a folder or glob of parquet shards) into a FAISS
    index beside a BM25 index.

    Further settings (index_type, target_recall, batch_size, bulk, bm25_k1, bm25_b, query_tower, reranker) come from
    --config FILE."""
    from ..config import load_config
    from ..index.build import IndexConfig, build_index, default_out, indexed_catalog, staleness

    config = load_config(IndexConfig, config_file, device=device, progress=sys.stderr.isatty() or None,
                         ray=ray_address, workers=workers, shared_model=shared_model)
    progress_lines(True)
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
        elif (reason := staleness(out, catalog, model, shared=config.shared_model)) is None:
            click.echo(f"{out} is up to date with {catalog}", err=True)
            return
        else:
            click.echo(f"rebuilding {out}: {reason}", err=True)
    manifest = build_index(catalog, out, model=model, config=config, columns=columns, reranker=reranker)
    if as_json:
        emit_json(manifest.to_dict())
    else:
        renamed = {f: s for f, s in manifest.catalog.sources.items() if f != s}
        types = manifest.catalog.types
        click.echo("columns read: " + ", ".join(f"{c}{' <- ' + renamed[c] if c in renamed else ''} ({t})"
                                                for c, t in types.items())
                   + (" (filters take either name)" if renamed else ""))
        reused = manifest.catalog.reused_embeddings
        click.echo(f"indexed {manifest.rows} products from {catalog} into {out} "
                   f"({manifest.index.type}, {manifest.dimension}-d, model {manifest.model.name}, "
                   f"{manifest.build_seconds:.1f} s" + (f"; {reused} embeddings reused, {manifest.rows - reused} "
                                                        "embedded" if reused else "")
                   + ("; the model by reference" if manifest.model.by_reference else "") + ")")


@click.command("rules", cls=Command)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              envvar="SEARCHKIT_INDEX", help="The index to change (or SEARCHKIT_INDEX): a write names its target.")
@click.option("--show", is_flag=True, help="Print the rules in force and change nothing.")
@click.option("--remove", is_flag=True, help="Remove the index's rules.")
@click.option("--json", "as_json", is_flag=True)
def rules_cmd(file, index_dir, show, remove, as_json):
    """Install FILE (TOML: synonyms, pinned and hidden products, boosts, signals, demotion; see the README) as the
    index's rules, validated whole and swapped in atomically; a running server picks them up within seconds."""
    from ..index import layout
    from ..search.rules import NO_RULES, describe, install, loads

    if sum([file is not None, show, remove]) != 1:
        raise click.UsageError("give a rules FILE, --show or --remove")
    if show:
        text = layout.read_rules_text(layout.live_dir(index_dir))
        if not (index_dir / layout.MANIFEST).is_file() and text is None:
            layout.read_manifest(index_dir)  # a folder that is no index says so
        rules = loads(text) if text else NO_RULES
    else:
        rules = install(index_dir, None if remove else file)
    if as_json:
        emit_json(rules.to_dict())
        return
    if not show:
        click.echo(f"{index_dir}: rules removed" if remove else f"{index_dir}: rules from {file} installed")
    click.echo(describe(rules))


@click.command("update", cls=Command)
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
    from ..index.update import rollback as roll_back
    from ..index.update import update_index

    if rollback:
        if upsert is not None or delete is not None:
            raise click.UsageError("give --rollback alone")
        manifest = roll_back(index_dir)
        click.echo(f"{index_dir}: back to version {manifest.catalog.version} ({manifest.rows} products, "
                   f"built {manifest.built_at})")
        return
    progress_lines(True)
    report = update_index(index_dir, upsert=upsert, delete=delete, columns=columns)
    if as_json:
        emit_json(report.to_dict())
        return
    click.echo(f"updated {index_dir} to version {report.version}: {report.added} added, {report.changed} changed "
               f"({report.reembedded} embedded), {report.deleted} deleted, {report.unchanged} unchanged; "
               f"{report.rows} products ({report.seconds:.1f} s)")


@click.command("calibrate", cls=Command)
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
    cheapest that reaches --target-recall, and hybrid's dense leg's to the cheapest whose hybrid top 10 keeps that
    share of an exact leg's. Rewrites the manifest and keeps the queries' vectors, which updates calibrate on."""
    from ..eval.calibrate import recalibrate
    from ..eval.selection import sample
    from ..index.ann import hybrid_knob_name, knob_name

    if queries_file is not None:
        try:
            queries = [line.strip() for line in queries_file.read_text().splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise SearchkitError(f"{queries_file}: unreadable ({exc})") from exc
        source = f"queries from {queries_file}"
    else:
        from ..data.catalog import read_pairs
        from ..eval.selection import EvalConfig, select_pairs

        queries = list(dict.fromkeys(select_pairs(read_pairs(pairs, form), EvalConfig(split=split))["query"]))
        source = f"{split} queries of {pairs}"
    queries = sample(queries, max_queries, seed=0)
    manifest = recalibrate(index_dir, queries, target_recall, source=f"{source} ({len(queries)})")
    meta = manifest.index.to_dict()
    if as_json:
        emit_json(meta)
        return
    knob = knob_name(meta["type"])
    curve = ", ".join(f"{v}: {r}" for v, r in meta["calibration"]["curve"].items())
    click.echo(f"{index_dir}: {knob} {meta['params'][knob]} (recall@10 {meta['recall@10_sample']} on "
               f"{meta['calibration']['queries']} queries, target {target_recall}); curve {curve}")
    hybrid = meta["calibration"].get("hybrid_curve")
    if hybrid:
        leg = meta["params"].get(hybrid_knob_name(meta["type"]), meta["params"][knob])
        click.echo(f"hybrid's dense leg: {knob} {leg} (its hybrid top 10 against an exact leg's: "
                   f"{', '.join(f'{v}: {r}' for v, r in hybrid.items())})")
