"""Commands around serving: serve, and what its search log feeds (judgments, report, learn)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import (
    DEFAULT_INDEX,
    Command,
    assignments,
    config_option,
    emit_json,
    progress_lines,
)


@click.command("serve", cls=Command)
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
@click.option("--ca-certs", type=click.Path(exists=True, dir_okay=False), default=None,
              help="With --opensearch: a CA bundle for a cluster with a private CA.")
@click.option("--no-verify", is_flag=True, help="With --opensearch: skip TLS certificate checks (a test cluster only).")
@click.option("--log", "log_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep a search log here: every search and every shopper event (POST /events), append-only "
                   "daily files.")
@click.option("--no-admin", is_flag=True, help="Serve without the admin endpoints (/admin, /reload).")
@click.option("--rerank-depth", type=click.IntRange(1), default=None, metavar="N",
              help="In mode rerank, the cross-encoder reads the top N hybrid candidates (default: its own, 30): "
              "fewer answer sooner.")
def serve_cmd(index_dir, host, port, workers, opensearch_url, name, ca_certs, no_verify, log_dir, no_admin,
              rerank_depth):
    """Serve the HTTP JSON API (/search, /products/ID, /health, /reload, /docs) and the search page at /."""
    import os

    import uvicorn

    from ..index import layout
    from ..serve.answers import SETTING, cache_size

    layout.read_manifest(index_dir)  # fail fast, with the reason, before starting workers
    cache_size(os.environ.get(SETTING))  # a bad one named here, not in each worker's traceback
    if rerank_depth is not None and opensearch_url:
        raise click.UsageError("--rerank-depth applies to a local index, not to --opensearch")
    loopback = host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")
    if not loopback and not no_admin and not os.environ.get("SEARCHKIT_ADMIN_KEY"):
        raise click.UsageError(f"serving on {host} (not loopback) with the admin endpoints open: set "
                               "SEARCHKIT_ADMIN_KEY, or give --no-admin")
    os.environ["SEARCHKIT_INDEX"] = str(index_dir)
    if no_admin:
        os.environ["SEARCHKIT_NO_ADMIN"] = "1"
    if log_dir is not None:
        os.environ["SEARCHKIT_LOG"] = str(log_dir)
    if rerank_depth is not None:
        os.environ["SEARCHKIT_RERANK_DEPTH"] = str(rerank_depth)
    if opensearch_url:
        os.environ["SEARCHKIT_OPENSEARCH_URL"] = opensearch_url
        if ca_certs:
            os.environ["SEARCHKIT_OPENSEARCH_CA_CERTS"] = str(Path(ca_certs).resolve())
        if no_verify:
            os.environ["SEARCHKIT_OPENSEARCH_NO_VERIFY"] = "1"
        os.environ["SEARCHKIT_OPENSEARCH_NAME"] = name or Path(index_dir).resolve().name
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # /metrics sums every worker's counts
        import tempfile

        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="searchkit-metrics-")
    click.echo(f"serving {index_dir} on http://{host}:{port}/ ({workers} worker(s))"
               + (f" from OpenSearch {opensearch_url}" if opensearch_url else ""), err=True)
    uvicorn.run("searchkit.serve.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level="warning")


@click.command("judgments", cls=Command)
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
    from ..training.judgments import JudgmentConfig, judgments, read_impressions, write_judgments

    fields = {f: f for f in ("query", "product_id", "position", "clicked", "added_to_cart", "purchased")}
    names = assignments(columns or "", "--columns", fields)
    frame = read_impressions(list(logs), names)
    pairs = judgments(frame, JudgmentConfig(min_impressions=min_impressions))
    write_judgments(pairs, out)
    summary = {"impressions": len(frame), "searches": int(frame["query_id"].nunique()) if "query_id" in frame else None,
               "pairs": len(pairs), "queries": int(pairs["query"].nunique()), "out": str(out)}
    if as_json:
        emit_json(summary)
        return
    click.echo(f"judged {summary['pairs']} pairs of {summary['queries']} queries from {summary['impressions']} "
               f"impressions into {out}")


@click.command("report", cls=Command)
@click.argument("logs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def report_cmd(logs, as_json):
    """What shoppers searched, from `serve --log` folders: searches per day, top queries, queries with no result or
    no match, queries rarely clicked, clicks by position."""
    from ..eval.report import as_text, summarize

    summary = summarize(list(logs))
    if as_json:
        emit_json(summary)
        return
    click.echo(as_text(summary))


@click.command("learn", cls=Command)
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

    from ..config import load_config
    from ..training.embedder import TrainConfig
    from ..training.release import learn

    progress_lines(True)
    with contextlib.redirect_stdout(sys.stderr):  # the trainer prints its progress; stdout stays the answer's
        report = learn(list(logs), index_dir, work=work, dry_run=dry_run, min_impressions=min_impressions,
                       template=load_config(TrainConfig, config_file))
    if as_json:
        emit_json(report)
        return
    verdict = report["verdict"]
    click.echo(f"{report['pairs']} judged pairs, {verdict['queries']} held-out queries: {verdict['reason']}")
    click.echo(f"{index_dir}: rebuilt with the candidate" if report["adopted"] else
               f"{index_dir}: unchanged" + (" (dry run)" if dry_run and verdict["adopt"] else ""))
