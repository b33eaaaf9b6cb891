"""``comipn-prep import-gmner SRC ROOT``: the Twitter-GMNER release in the field's layout."""

from __future__ import annotations

import json

import click

from ..gmner_import import ImportOptions, format_summary, import_gmner
from .errors import bad_input_exits


@click.command("import-gmner")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=str))
@click.argument("root", type=click.Path(file_okay=False, path_type=str))
@click.option("--dataset", "name", default="twitter-gmner", show_default=True,
              help="The dataset's name under ROOT (ROOT/NAME/, ROOT/NAME_images/).")
@click.option("--images", "images", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=str),
              help="A folder of the tweets' images (<imgid>.jpg); give it once per folder (the Twitter-2015 and "
                   "Twitter-2017 image folders): each id takes the first that holds it.")
@click.option("--copy", "copy_images", is_flag=True, help="Copy the images instead of linking to them.")
@click.option("--force", is_flag=True, help="Replace the text and boxes of a dataset already laid out there.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON instead of a table.")
def import_gmner_command(src, root, name, images, copy_images, force, as_json) -> None:
    """Lay the Twitter-GMNER release SRC (txt/{train,dev,test}.txt and xml/<imgid>.xml) out under ROOT as
    dataset NAME: ROOT/NAME/{train,valid,test}.txt (the same bytes), ROOT/NAME/xml/ (the gold boxes, for
    comipn-train evaluate-gmner ... ROOT/NAME) and ROOT/NAME_images/ (links to the images, or copies).

    Then extract-nps, ground, build-dict and comipn-train run on ROOT --dataset NAME as on Twitter-2015.
    Everything is read and checked before the first write (bad text: file:line; bad XML: file and line or
    element; exit 2)."""
    with bad_input_exits():
        summary = import_gmner(ImportOptions(src=src, root=root, name=name, images=list(images),
                                             copy_images=copy_images, force=force))
    click.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))
