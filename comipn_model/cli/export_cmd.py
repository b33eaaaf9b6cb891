"""``comipn-train export``: a trained model as a folder that loads without pickle (Hub file names)."""

from __future__ import annotations

import click

from comipn_model.cli.errors import fail_fast


@click.command()
@click.option("--load-path", required=True, help="best.pt, a run folder, or an exported folder; with --from-hub, "
                                                  "a Hugging Face Hub repository id (owner/name).")
@click.option("--from-hub", is_flag=True,
              help="Read a --load-path that is no local file or folder as a Hub repository id and download it.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="A new or empty folder for config.json, model.safetensors, text_encoder/ and README.md "
                   "(never a run folder).")
@click.option("--text-model", help="Folder with the encoder's config and tokenizer, if moved since training.")
@click.option("--matching-tower", help="Dynamic matching's DINO tower (Hub name or local folder), if moved since "
                                       "training: the export records it instead.")
@click.option("--force", is_flag=True, help="Replace an earlier export in --out (a folder export made; any "
                                           "other non-empty folder is refused).")
@click.option("--license", "license_",
              help="The model card's license, a Hub license id (apache-2.0, mit, other, ...): what the weights may "
                   "be used under, given the encoder's and the training data's terms. Default: an exported "
                   "--load-path's, else unknown.")
def export(load_path, out, text_model, matching_tower, force, from_hub, license_) -> None:
    """Export a trained model: config.json (model config, labels, grounding settings of training),
    model.safetensors, the tokenizer files and a model card with the run's dev/test figures.

    Load it with Tagger.from_pretrained(OUT) or comipn-train predict --load-path OUT."""
    from comipn_model.saved.export import export_model
    from comipn_model.saved.loader import resolve_source

    with fail_fast():
        # Resolved here, so that a Hub id is downloaded only when asked for; export_model gets a local path.
        source = resolve_source(load_path, from_hub=from_hub)
        folder = export_model(source, out, text_model=text_model, force=force, matching_tower=matching_tower,
                              license=license_)
    click.echo(f"exported {load_path} -> {folder}")
