"""``comipn-prep run ROOT --dataset NAME``: extract-nps, ground and build-dict in order."""

from __future__ import annotations

import click

from ..layout import expand_splits
from .ground_cmd import config_from, echo_summaries, model_input_exits, model_options


@click.command()
@click.argument("root", type=click.Path(file_okay=False, path_type=str))
@click.option("--dataset", required=True, help="Folder name under ROOT (twitter2015, ...).")
@click.option("--split", default="all", show_default=True, help="train, valid (val), test or all.")
@click.option("--np-backend", default="auto", show_default=True, help="extract-nps backend.")
@model_options
@click.option("--force", is_flag=True, help="Redo every stage and replace existing dicts.")
@click.option("--limit", default=None, type=click.IntRange(1), help="At most N new images per split.")
def run(root, dataset, split, np_backend, force, limit, **kwargs) -> None:
    """The whole preprocessing of ROOT/DATASET into the field's layout."""
    from ..pipeline import run_pipeline

    with model_input_exits():
        result = run_pipeline(root, dataset, splits=expand_splits(split), config=config_from(kwargs),
                              np_backend=np_backend, force=force, limit=limit)
    click.echo(f"noun phrases: {result.nps_dir}")
    echo_summaries(result.ground)
    for split_name, path in result.dicts.items():
        click.echo(f"{split_name} dict: {path}")
