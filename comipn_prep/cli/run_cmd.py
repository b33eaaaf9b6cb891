"""``comipn-prep run ROOT --dataset NAME``: extract-nps, ground and build-dict in order."""

from __future__ import annotations

import click

from ..layout import expand_splits
from .ground_cmd import config_from, echo_summaries, model_input_exits, model_options, safety_options


@click.command()
@click.argument("root", type=click.Path(file_okay=False, path_type=str))
@click.option("--dataset", required=True, help="Folder name under ROOT (twitter2015, ...).")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False, path_type=str),
              help="Write under this folder instead of ROOT (it gets links to ROOT's text and images, so it "
                   "is a whole dataset root); ROOT is then only read.")
@click.option("--split", default="all", show_default=True, help="train, valid (val), test or all.")
@click.option("--np-backend", default="auto", show_default=True, help="extract-nps backend.")
@model_options
@click.option("--force", is_flag=True,
              help="Redo every stage and replace the dicts and crops comipn wrote (never released ones: "
                   "see --replace-foreign).")
@safety_options
@click.option("--limit", default=None, type=click.IntRange(1), help="At most N new images per split.")
def run(root, dataset, out_dir, split, np_backend, force, replace_foreign, allow_missing_images, limit,
        **kwargs) -> None:
    """The whole preprocessing of ROOT/DATASET into the field's layout.

    Every check runs before the first write; a refused run writes nothing. Crops and dicts that comipn
    did not write (such as HVPNeT's released ones) are never replaced without --replace-foreign: use
    --out DIR to keep them and work in a folder of your own."""
    from ..pipeline import run_pipeline

    with model_input_exits():
        result = run_pipeline(root, dataset, out=out_dir, splits=expand_splits(split), config=config_from(kwargs),
                              np_backend=np_backend, force=force, limit=limit, replace_foreign=replace_foreign,
                              allow_missing_images=allow_missing_images)
    click.echo(f"noun phrases: {result.nps_dir}")
    for cov in result.coverage.values():
        click.echo(f"{cov.split}: {cov.present} of {cov.expected} tweet images on disk")
    echo_summaries(result.ground)
    for split_name, path in result.dicts.items():
        click.echo(f"{split_name} dict: {path}")
