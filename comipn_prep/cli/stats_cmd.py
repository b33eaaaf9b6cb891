"""``comipn-prep stats DATA_DIR``."""

from __future__ import annotations

import json

import click

from ..stats import dataset_stats, format_stats_table
from .errors import bad_input_exits


@click.command()
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def stats(data_dir: str, as_json: bool) -> None:
    """Tweets, tokens, images and entities per type of train.txt / valid.txt / test.txt in DATA_DIR."""
    with bad_input_exits():
        result = dataset_stats(data_dir)
    click.echo(json.dumps(result) if as_json else format_stats_table(result))
