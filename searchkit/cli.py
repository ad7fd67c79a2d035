"""The `searchkit` command: parse options, build a config, call the library, format the answer. Nothing else."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from .errors import SearchkitError

DEFAULT_INDEX = "indexes/homedepot"
DEFAULT_CATALOG = "catalog/homedepot-products.parquet"
DEFAULT_PAIRS = "catalog/homedepot-pairs.parquet"


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


def _emit_json(data) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


@main.command("build-index")
@click.argument("catalog", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_CATALOG)
@click.option("--model", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Model folder (default: the fine-tuned model in models/, else base all-MiniLM-L6-v2).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_INDEX, show_default=True,
              help="Index folder to write (replaced atomically).")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=64, show_default=True)
@click.option("--device", default=None, help="Encoding device: cpu, cuda, cuda:1 (default: cuda when present).")
@click.option("--index-type", type=click.Choice(["auto", "flat", "hnsw"]), default="auto", show_default=True,
              help="flat = exact search; hnsw = approximate, for large catalogs; auto picks by size.")
@click.option("--id-column", default="product_id", show_default=True)
@click.option("--title-column", default="title", show_default=True)
@click.option("--brand-column", default="brand", show_default=True)
@click.option("--color-column", default="color", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def build_index_cmd(catalog, model, out, batch_size, device, index_type, id_column, title_column, brand_column,
                    color_column, as_json):
    """Embed every product of CATALOG (parquet or CSV) into a FAISS index."""
    from .catalog import ColumnMap
    from .index import IndexConfig, build_index

    config = IndexConfig(batch_size=batch_size, device=device, index_type=index_type, progress=sys.stderr.isatty())
    columns = ColumnMap(product_id=id_column, title=title_column, brand=brand_column, color=color_column)
    manifest = build_index(catalog, out, model=model, config=config, columns=columns)
    if as_json:
        _emit_json(manifest.__dict__)
    else:
        click.echo(f"indexed {manifest.rows} products from {catalog} into {out} "
                   f"({manifest.index['type']}, {manifest.dimension}-d, model {manifest.model['name']}, "
                   f"{manifest.build_seconds:.1f} s)")


def _format_table(hits) -> str:
    lines = [f"{'rank':>4}  {'score':>6}  {'id':<10}  {'brand':<20}  title"]
    for hit in hits:
        brand = str(hit.fields.get("brand") or "")[:20]
        title = str(hit.fields.get("title") or "")[:90]
        lines.append(f"{hit.rank:>4}  {hit.score:6.3f}  {hit.product_id:<10}  {brand:<20}  {title}")
    return "\n".join(lines)


@main.command("query")
@click.argument("text")
@click.option("-k", "k", type=click.IntRange(1, 10_000), default=10, show_default=True, help="How many products.")
@click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_INDEX,
              show_default=True, envvar="SEARCHKIT_INDEX")
@click.option("--model", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Refuse to run unless the index was built with this model.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array of result objects.")
def query_cmd(text, k, index_dir, model, as_json):
    """Search the index for TEXT and print ranked products with cosine scores."""
    from .search import Searcher, check_query

    check_query(text)
    searcher = Searcher.from_dir(index_dir, model=model)
    hits = searcher.search(text, k=k)
    if as_json:
        _emit_json([h.to_dict() for h in hits])
    else:
        click.echo(_format_table(hits))


@main.command("train")
@click.argument("pairs", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_PAIRS)
@click.option("--catalog", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_CATALOG, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Model folder to write (default: models/searchkit-homedepot-RECIPE).")
@click.option("--recipe", type=click.Choice(["seed", "mnrl", "cosent"]), default="mnrl", show_default=True)
@click.option("--base-model", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Model to start from (default: base all-MiniLM-L6-v2).")
@click.option("--epochs", type=float, default=None, help="Default: the recipe's.")
@click.option("--batch-size", type=click.IntRange(2, 4096), default=None, help="Default: the recipe's.")
@click.option("--lr", type=float, default=None, help="Learning rate (default: the recipe's).")
@click.option("--max-steps", type=int, default=-1, help="Stop after this many optimiser steps (-1: full epochs).")
@click.option("--eval-steps", type=click.IntRange(1), default=250, show_default=True)
@click.option("--save-steps", type=click.IntRange(1), default=250, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--device", default=None, help="cpu, cuda (default: cuda when present).")
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in OUT/checkpoints.")
def train_cmd(pairs, catalog, out, recipe, base_model, epochs, batch_size, lr, max_steps, eval_steps, save_steps,
              seed, device, resume):
    """Fine-tune all-MiniLM-L6-v2 on rated query-product PAIRS (split by query, seeded)."""
    from .train import TrainConfig, train

    config = TrainConfig(
        pairs=pairs, catalog=catalog, out=out or Path(f"models/searchkit-homedepot-{recipe}"), recipe=recipe,
        base_model=base_model, epochs=epochs, batch_size=batch_size, lr=lr, max_steps=max_steps,
        eval_steps=eval_steps, save_steps=save_steps, seed=seed, device=device, resume=resume,
        progress=sys.stderr.isatty(),
    )
    path = train(config)
    click.echo(f"saved model to {path}")


if __name__ == "__main__":
    main()
