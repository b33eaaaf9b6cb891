"""``comipn-prep preview``: a contact sheet of kept boxes to look at before training, or of the regions of
tagged entities."""

from __future__ import annotations

import click

from .errors import bad_input_exits


@click.command()
@click.argument("aux_dir", required=False, type=click.Path(file_okay=False, path_type=str))
@click.option("--images", "images_dir", type=click.Path(file_okay=False, path_type=str),
              help="The tweets' images (<imgid>.jpg). Needed with AUX_DIR; with --entities, for rows without "
                   "\"image\".")
@click.option("--entities", type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="Instead of AUX_DIR: a comipn-train predict --linker JSONL; each entity's region is drawn, "
                   "labelled with type, text and box_score.")
@click.option("--split", default="train", show_default=True)
@click.option("--n", default=16, show_default=True, type=click.IntRange(1), help="Images on the sheet.")
@click.option("--cell", default=256, show_default=True, type=click.IntRange(32), help="Tile size in pixels.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=str), help="PNG to write.")
@click.option("--force", is_flag=True, help="Replace an existing sheet.")
def preview(aux_dir, images_dir, split, n, cell, out, force, entities) -> None:
    """Draw each image's kept boxes with phrase and score into one PNG (AUX_DIR: grounding's output, with
    --images); or, with --entities, each tagged entity's region."""
    from ..preview import contact_sheet, entity_sheet, write_sheet

    with bad_input_exits():
        if (aux_dir is None) == (entities is None):
            raise ValueError("give AUX_DIR (grounding's crops) or --entities (tagged regions), one of them")
        if entities is not None:
            sheet = entity_sheet(entities, images_dir, n=n, cell=cell)
        else:
            if images_dir is None:
                raise ValueError("AUX_DIR needs --images (the tweets' image folder)")
            sheet = contact_sheet(aux_dir, images_dir, split, n=n, cell=cell)
        write_sheet(sheet, out, force=force)
    click.echo(f"wrote {out} ({sheet.width}x{sheet.height})")
