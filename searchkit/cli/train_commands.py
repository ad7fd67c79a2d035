"""Commands that train (the [train] extra): train, train-reranker, train-query-tower, fit-relevance."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import click

from ..models.files import RERANKER_INFO
from .common import (
    DEFAULT_CATALOG,
    DEFAULT_INDEX,
    DEFAULT_PAIRS,
    Command,
    columns_option,
    config_option,
    emit_json,
    given,
    pair_options,
)


@click.command("train-query-tower", cls=Command)
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
def train_query_tower_cmd(pairs, model, catalog, columns, layers, titles_only, resume, device, config_file, form):
    """Train the query tower: a shallower encoder (or a token table) that embeds queries as MODEL does, while
    products keep the whole model.

    Further settings (epochs, batch_size, lr, kl_weight, temperature, max_steps, seed, ...) come from --config FILE."""
    from ..config import load_config
    from ..training.query_tower import QueryTowerConfig, train_query_tower

    config = load_config(QueryTowerConfig, config_file, model=model, catalog=catalog, layers=layers, device=device,
                         resume=resume or None, columns=given(columns),
                         pair_format=given(form))
    if titles_only:
        config = replace(config, pairs=None)
    elif pairs is not None:
        config = replace(config, pairs=pairs)
    report = train_query_tower(config)
    after = report["agreement_after"]
    kind = f"{config.layers}-layer" if config.layers else "static (token table)"
    click.echo(f"saved a {kind} query encoder to {config.model}/query_encoder: cosine to the whole model on "
               f"{report['heldout_texts']} held-out texts {after['cosine_mean']:.4f} (min {after['cosine_min']:.4f}); "
               "rebuild the index to use it")


@click.command("train", cls=Command)
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
    from ..config import load_config, read_settings
    from ..training.embedder import TrainConfig, train

    settings = read_settings(config_file)
    recipe = recipe or settings.get("recipe", "mnrl")
    config = load_config(TrainConfig, config_file, pairs=pairs, catalog=catalog, recipe=recipe,
                         out=out or (None if "out" in settings else Path(f"models/searchkit-homedepot-{recipe}")),
                         base_model=base_model, device=device, resume=resume or None,
                         pair_format=given(form),
                         progress=sys.stderr.isatty() or None)
    path = train(config)
    click.echo(f"saved model to {path}")


@click.command("train-reranker", cls=Command)
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
@click.option("--layers", type=click.IntRange(min=1), default=None,
              help="Keep the base model's first N transformer layers: a shallower, faster cross-encoder.")
@config_option
@pair_options
def train_reranker_cmd(pairs, index_dir, out, base_model, device, resume, layers, config_file, form):
    """Train the cross-encoder of mode rerank on rated PAIRS (the training split) and the index's candidates.

    Further settings (epochs, batch_size, lr, negatives, mine_depth, loss, group_size, layers, max_steps, save_steps,
    seed, settings) come from --config FILE."""
    from ..config import load_config
    from ..training.reranker import RerankTrainConfig, train_reranker

    config = load_config(RerankTrainConfig, config_file, index=index_dir, pairs=pairs, out=out, base_model=base_model,
                         device=device, resume=resume or None, layers=layers,
                         pair_format=given(form),
                         progress=sys.stderr.isatty() or None)
    path = train_reranker(config)
    report = json.loads((path / RERANKER_INFO).read_text())["validation"]
    click.echo(f"saved reranker to {path}: validation NDCG@10 {report['ndcg@10_hybrid']:.4f} (hybrid) -> "
               f"{report['ndcg@10_reranked']:.4f} (reranked) on {report['val_queries']} queries; build an index "
               f"with --reranker {path} to use it")


@click.command("fit-relevance", cls=Command)
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
    from ..training.relevance import RelevanceFitConfig, fit_relevance

    path, report = fit_relevance(RelevanceFitConfig(index=index_dir, pairs=pairs, split=split, seed=seed,
                                                    reranker=reranker_dir, pair_format=form))
    if as_json:
        emit_json({"written": str(path), **report})
        return
    click.echo(f"{report['queries']} queries, {report['pairs']} pairs of the {split} split; fit written to {path}")
    for name in ("cosine", "cross_encoder", "grader", "in_sample", "cross_validated"):
        if name not in report:
            continue
        r = report[name]
        rmse = f"  rmse {r['rmse']:.4f}" if "rmse" in r else ""
        click.echo(f"{name:<16} spearman {r['spearman']:.4f}  pearson {r['pearson']:.4f}{rmse}")
    click.echo(f"rebuild the index to use it: searchkit build-index CATALOG --out {index_dir} --if-stale")


@click.command("package-model", cls=Command)
@click.argument("model", type=click.Path(exists=True, file_okay=False, path_type=Path), required=False)
def package_model_cmd(model):
    """Make MODEL (default: the shipped model) buildable where torch is not installed: store the ONNX graph of its
    embedder, reranker and grader without their weights (a few hundred KB each, in their onnx/ folders)."""
    from ..models.encoder import default_model_dir
    from ..training.package import package_model

    for folder in package_model(model or default_model_dir()):
        click.echo(f"{folder}: graph skeleton written")


# the command's earlier name, kept for scripts: the same command under it, hidden from --help
distill_alias = Command("distill", callback=train_query_tower_cmd.callback, params=train_query_tower_cmd.params,
                        help=train_query_tower_cmd.help, hidden=True)
