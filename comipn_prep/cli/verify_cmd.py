"""``comipn-prep verify ROOT --dataset NAME``: is a dataset folder consistent? exit 0 / 1 (2: too few images)."""

from __future__ import annotations

import sys

import click

from .errors import EXIT_BAD_INPUT, bad_input_exits


@click.command()
@click.argument("root", type=click.Path(file_okay=False, path_type=str))
@click.option("--dataset", required=True, help="twitter2015, twitter2017, or your dataset's name.")
@click.option("--no-open", is_flag=True, help="Check that images and crops exist without decoding them (faster).")
@click.option("--strict", is_flag=True,
              help="Also fail when tweet images are missing from the image folder (unreadable ones, and "
                   "listed crops missing or unreadable, fail without it).")
@click.option("--allow-missing-images", is_flag=True,
              help="Do not exit 2 when a split has no image on disk, under half of them, or a dict whose keys "
                   "mostly name no image of the split.")
def verify(root, dataset, no_open, strict, allow_missing_images) -> None:
    """Check text, images, crops and aux dicts of ROOT/DATASET in the field's layout.

    Exit 0: consistent; 1: problems (listed), among them any tweet image or crop that does not open;
    2: bad input (a split without tweets), or too few images (see --allow-missing-images). Tweet images
    absent from the image folder are listed, and fail only with --strict."""
    from ..verify import verify_dataset

    with bad_input_exits():
        report = verify_dataset(root, dataset, check_open=not no_open, strict=strict,
                                allow_missing_images=allow_missing_images)
    click.echo(report.format())
    if report.image_errors:
        sys.exit(EXIT_BAD_INPUT)
    sys.exit(0 if report.ok else 1)
