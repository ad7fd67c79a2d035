"""The `searchkit` command: parse options, build a config, call the library, format the answer. Nothing else.
One module per command group; each command imports the library it needs when it runs, so `searchkit --help` is quick."""

from __future__ import annotations

import logging
import os

import click

from . import index_commands, opensearch_commands, search_commands, serve_commands, train_commands
from .common import Group


@click.group(cls=Group)
@click.version_option(package_name="searchkit")
@click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr.")
def main(verbose: bool) -> None:
    """Semantic product search: build an index of a catalog, then query it."""
    # the command's process, not the library, decides: never reach the Hugging Face hub, no download bars,
    # no Ray usage reports
    for name, value in (("HF_HUB_OFFLINE", "1"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
                        ("RAY_USAGE_STATS_ENABLED", "0")):
        os.environ.setdefault(name, value)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # bm25s sets its own logger to DEBUG when imported
        handler.addFilter(lambda record: record.levelno >= logging.WARNING or not record.name.startswith("bm25s"))


for _command in (index_commands.build_index_cmd, search_commands.query_cmd, index_commands.rules_cmd,
                 index_commands.update_cmd, opensearch_commands.export_group, opensearch_commands.push_group,
                 index_commands.calibrate_cmd, search_commands.evaluate_cmd, train_commands.fit_relevance_cmd,
                 serve_commands.serve_cmd, serve_commands.judgments_cmd, serve_commands.report_cmd,
                 serve_commands.learn_cmd, train_commands.train_query_tower_cmd, train_commands.train_cmd,
                 train_commands.train_reranker_cmd, train_commands.package_model_cmd, train_commands.distill_alias):
    main.add_command(_command)
