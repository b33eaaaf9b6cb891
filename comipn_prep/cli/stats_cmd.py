"""``comipn-prep stats DATA_DIR``: tweets, tokens, images and entities per split, as a table or JSON."""

from __future__ import annotations

import json

import click

from ..stats import dataset_stats, format_stats_table
from .errors import bad_input_exits


@click.command()
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--images", "images_dir", default=None, type=click.Path(file_okay=False, path_type=str),
              help="The tweets' image folder [default: DATA_DIR's <name>_images sibling, when it exists].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def stats(data_dir: str, images_dir: str | None, as_json: bool) -> None:
    """Tweets, tokens, images and entities per type of train.txt / valid.txt / test.txt in DATA_DIR.

    image_ids counts the distinct image ids the text names; on_disk how many of them have a file in
    the image folder ('-' when there is none to look at)."""
    with bad_input_exits():
        result = dataset_stats(data_dir, images_dir)
    click.echo(json.dumps(result) if as_json else format_stats_table(result))
