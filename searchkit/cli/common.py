"""What the commands share: default paths, option decorators, the error-to-one-line command class, progress lines."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import click

from ..errors import SearchkitError

DEFAULT_INDEX = "indexes/homedepot"
# the bundled data as CSV, which every install reads (parquet needs pyarrow: searchkit[parquet]); the same rows as
# the .parquet files training reads (tests/test_catalog.py)
DEFAULT_CATALOG = "catalog/homedepot-products.csv.gz"
DEFAULT_PAIRS = "catalog/homedepot-pairs.csv.gz"
MODE_NAMES = ["dense", "lexical", "hybrid", "rerank"]  # searchkit.search.results.Mode (not imported: startup)
# searchkit.search.loading.BACKENDS (not imported: the CLI starts without the query path)
BACKENDS = ["auto", "query-tower", "onnx-int8", "onnx", "torch"]
BACKEND_HELP = ("Query encoder: the index's query tower (int8 graph or token table), the whole model's "
                "int8 or fp32 graph, or sentence-transformers; auto takes the first of those the index's build checks "
                "kept.")


def assignments(text: str, option: str, keys: dict[str, str]) -> dict[str, str]:
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
                 "color": "color", "colour": "color", "description": "description", "price": "price",
                 "bad_numbers": "bad_numbers"}
PAIR_FIELDS = {"query": "query", "id": "product_id", "product_id": "product_id", "relevance": "relevance"}


def columns_option(command):
    """--columns: which of the catalog's columns hold the product fields (the command gets a ColumnMap, `columns`)."""

    @functools.wraps(command)
    def with_columns(*args, columns, **kwargs):
        from ..data.catalog import ColumnMap

        return command(*args, columns=ColumnMap(**assignments(columns or "", "--columns", COLUMN_FIELDS)), **kwargs)

    return click.option("--columns", default=None, metavar="FIELD=COLUMN,...",
                        help="The catalog's column names where they differ from product_id, title, brand, color, "
                             "description, price (and the usual aliases), e.g. id=sku,title=name,color=colour; "
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
    from ..data.catalog import PairFormat, parse_labels
    from ..errors import CatalogError

    low, sep, high = relevance_scale.partition(":")
    try:
        if not sep:
            raise ValueError
        scale = (float(low), float(high))
    except ValueError:
        raise CatalogError(f"--relevance-scale {relevance_scale!r}: write LOW:HIGH, e.g. 0:2") from None
    return PairFormat(**assignments(pairs_columns or "", "--pairs-columns", PAIR_FIELDS), scale=scale,
                      labels=parse_labels(labels) if labels else ())


def given(value):
    """A ColumnMap or PairFormat from the options, or None when they said nothing (so a config file's holds)."""
    return None if value == type(value)() else value


def config_option(command):
    return click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                        help="A TOML file of further settings: the fields of this command's config (see docs/"
                             "configuration.md); options given here win.")(command)


class Command(click.Command):
    """Turns the library's typed errors into one clear line and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SearchkitError as exc:
            raise click.ClickException(str(exc)) from exc


class Group(click.Group):
    command_class = Command


def progress_lines(on: bool) -> None:
    """Long work says how far it got, a line at a time on stderr (also where no progress bar can be drawn: make, CI,
    logs)."""
    progress = logging.getLogger("searchkit.progress")
    if on and not any(isinstance(h, EchoHandler) for h in progress.handlers):
        handler = EchoHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        progress.addHandler(handler)
        progress.setLevel(logging.INFO)
        progress.propagate = False


class EchoHandler(logging.Handler):
    """Log records as lines on the current stderr (click's, so a test runner's capture sees them too)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(self.format(record), err=True)


def emit_json(data) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))
