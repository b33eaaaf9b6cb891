"""``comipn-prep preview``: a contact sheet of kept boxes to look at before training."""

from __future__ import annotations

import click

from .errors import bad_input_exits


@click.command()
@click.argument("aux_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--images", "images_dir", required=True, type=click.Path(file_okay=False, path_type=str))
@click.option("--split", default="train", show_default=True)
@click.option("--n", default=16, show_default=True, type=click.IntRange(1), help="Images on the sheet.")
@click.option("--cell", default=256, show_default=True, type=click.IntRange(32), help="Tile size in pixels.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=str), help="PNG to write.")
@click.option("--force", is_flag=True, help="Replace an existing sheet.")
def preview(aux_dir, images_dir, split, n, cell, out, force) -> None:
    """Draw each image's kept boxes with phrase and score into one PNG."""
    from ..preview import contact_sheet, write_sheet

    with bad_input_exits():
        sheet = contact_sheet(aux_dir, images_dir, split, n=n, cell=cell)
        write_sheet(sheet, out, force=force)
    click.echo(f"wrote {out} ({sheet.width}x{sheet.height})")
