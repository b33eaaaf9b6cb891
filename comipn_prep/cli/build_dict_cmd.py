"""``comipn-prep build-dict``: the field's per-split aux dicts from the grounding output."""

from __future__ import annotations

import click

from ..layout import expand_splits
from .errors import bad_input_exits


@click.command("build-dict")
@click.option("--aux", "aux_dir", required=True, type=click.Path(file_okay=False, path_type=str),
              help="AUX_DIR written by ground.")
@click.option("--dataset", required=True, help="Dataset name used in the file names (twitter2015, ...).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=str),
              help="TEXT_DIR: the dicts go beside the text files.")
@click.option("--split", default="all", show_default=True, help="train, valid (val), test or all.")
@click.option("--force", is_flag=True, help="Replace dicts comipn wrote (not released ones: see --replace-foreign).")
@click.option("--replace-foreign", is_flag=True,
              help="Replace dicts comipn did not write (e.g. HVPNeT's released ones).")
def build_dict(aux_dir, dataset, out_dir, split, force, replace_foreign) -> None:
    """Write TEXT_DIR/<dataset>_{train,val,test}_dict.pth (+ .json twins).

    A dict already there that comipn did not write is never replaced without --replace-foreign."""
    from ..aux_dicts import build_dicts

    with bad_input_exits():
        paths = build_dicts(aux_dir, dataset, out_dir, expand_splits(split), force=force,
                            replace_foreign=replace_foreign, way_out="another --out")
    for split_name, path in paths.items():
        click.echo(f"{split_name}: {path}")
