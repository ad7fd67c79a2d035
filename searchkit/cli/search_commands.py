"""Commands that search an index: query, evaluate."""

from __future__ import annotations

from pathlib import Path

import click

from .common import (
    BACKEND_HELP,
    BACKENDS,
    DEFAULT_CATALOG,
    DEFAULT_INDEX,
    DEFAULT_PAIRS,
    MODE_NAMES,
    Command,
    emit_json,
    pair_options,
)


def _format_table(hits, sort: str | None = None) -> str:
    """The results as a table; with the column a sort ordered them by, else their price, when they have it."""
    from html import unescape

    column = next((c for c in ((sort or "").lstrip("-"), "price") if c and any(
        h.fields.get(c) is not None for h in hits)), None)
    lines = [f"{'rank':>4}  {'score':>7}  {'cosine':>6}  {'id':<10}  {'brand':<20}  "
             + (f"{column[:10]:>10}  " if column else "") + "title"]
    for hit in hits:
        brand = str(hit.fields.get("brand") or "")[:20]
        title = str(hit.fields.get("title") or "")[:80]
        if hit.highlight is not None:
            title = unescape(hit.highlight.replace("<mark>", "[").replace("</mark>", "]"))[:90]
        if hit.rules:
            title += f"  ({'; '.join(hit.rules)})"
        value = hit.fields.get(column) if column else None
        cell = "" if value is None or value != value else (  # NaN: missing
            f"{value:.2f}" if isinstance(value, float) else str(value)[:10])
        lines.append(f"{hit.rank:>4}  {hit.score:7.3f}  {hit.cosine:6.3f}  {hit.product_id:<10}  {brand:<20}  "
                     + (f"{cell:>10}  " if column else "") + title)
    return "\n".join(lines)


@click.command("query", cls=Command)
@click.argument("text")
@click.option("-k", "k", type=click.IntRange(1, 100), default=10, show_default=True,
              help="How many products (at most 100, as over HTTP).")
@click.option("--page", type=click.IntRange(1), default=1, show_default=True,
              help="Which page of k results (page 2 of k 10 is ranks 11-20).")
@click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_INDEX,
              show_default=True, envvar="SEARCHKIT_INDEX")
@click.option("--mode", type=click.Choice(MODE_NAMES), default=None,
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
    from ..search.filters import merge_filters
    from ..search.searcher import DEFAULT_MODE, Searcher, check_query
    from ..search.threads import set_search_threads

    check_query(text)
    wanted = merge_filters(list(filters)) or None
    set_search_threads(1)
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
        emit_json({**body, "facets": counts} if facets else body)
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
        click.echo(_format_table(hits, sort))
    elif not hits.no_match:
        click.echo(f"no results on page {page}")
    if explain:
        for hit in hits:
            why = hit.explain or {}
            graded = f", relevance {why['relevance']:.2f} of 3" if "relevance" in why else ""
            ruled = f", {'; '.join(why['rules'])}" if why.get("rules") else ""
            click.echo(f"  #{hit.rank} {hit.product_id}: dense {why['dense']:.3f}, lexical {why['lexical'] or 0:.2f}, "
                       f"matched {' '.join(why['matched_terms']) or '-'}{graded}{ruled}")
    if counts:
        for column, values in counts.items():
            click.echo(f"{column}: " + ", ".join(f"{v} ({n})" for v, n in values[:10]))


@click.command("evaluate", cls=Command)
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
    from ..data.catalog import read_pairs
    from ..eval.evaluate import evaluate
    from ..eval.selection import EvalConfig, check_query_split, choose_split, training_files
    from ..index.shared import index_model
    from ..models.encoder import read_model_info
    from ..search.searcher import Searcher
    from ..search.threads import set_search_threads

    rated = read_pairs(pairs, form)
    reason = None
    card = read_model_info(model if model is not None else index_model(index_dir))
    check_query_split(card, str(model if model is not None else index_dir))
    seed = int((card.get("split") or {}).get("seed", 42))  # split as the model was trained (the default seed 42)
    if split == "auto":
        split, reason = choose_split(rated, training_files(card, [Path(DEFAULT_PAIRS)]), seed)

    if model is not None:
        from click.core import ParameterSource

        from ..eval.in_memory import in_memory_searcher

        if click.get_current_context().get_parameter_source("index_dir") != ParameterSource.DEFAULT:
            raise click.UsageError("give --index or --model, not both")

        searcher, index_dir = in_memory_searcher(catalog, model, device=device), model
    else:
        set_search_threads(1)
        searcher = Searcher.from_dir(index_dir, backend=backend, encode_threads=None)
    report = evaluate(searcher, rated, EvalConfig(split=split, seed=seed, max_queries=max_queries))
    if reason:
        report["split_reason"] = reason
    if as_json:
        emit_json(report)
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
