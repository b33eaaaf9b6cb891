"""``comipn-prep verify ROOT --dataset NAME``: is a dataset folder consistent? exit 0 / 1."""

from __future__ import annotations

import sys

import click

from .errors import bad_input_exits


@click.command()
@click.argument("root", type=click.Path(file_okay=False, path_type=str))
@click.option("--dataset", required=True, help="twitter2015, twitter2017, or your dataset's name.")
@click.option("--no-open", is_flag=True, help="Check that crops exist without decoding them (faster).")
@click.option("--strict", is_flag=True, help="Also fail when text images are missing from the image folder.")
def verify(root, dataset, no_open, strict) -> None:
    """Check text, images, crops and aux dicts of ROOT/DATASET in the field's layout."""
    from ..verify import verify_dataset

    with bad_input_exits():
        report = verify_dataset(root, dataset, check_open=not no_open, strict=strict)
    click.echo(report.format())
    sys.exit(0 if report.ok else 1)
