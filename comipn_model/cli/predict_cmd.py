"""``comipn-train predict``: tag new tweets with a saved checkpoint."""

from __future__ import annotations

import click

from . import _fail_fast


@click.command()
@click.option("--load-path", required=True, type=click.Path(dir_okay=False), help="Checkpoint (best.pt).")
@click.option("--input", "input_", required=True, type=click.Path(dir_okay=False),
              help="CoNLL file (IMGID lines; tokens with or without gold labels).")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Output file: CoNLL (token, [gold,] predicted) or JSONL (.jsonl).")
@click.option("--format", "fmt", type=click.Choice(["conll", "jsonl"]), help="Default: from --out's suffix.")
@click.option("--text-model", help="Folder with the encoder's config and tokenizer, if moved since training.")
@click.option("--images-dir", type=click.Path(file_okay=False), help="Folder of <imgid>.jpg (optional).")
@click.option("--aux-dict", type=click.Path(dir_okay=False), help="Aux dict of the crops (optional).")
@click.option("--crops-dir", type=click.Path(file_okay=False), help="Folder of the crops (optional).")
@click.option("--feature-cache", type=click.Path(file_okay=False), help="Cache of visual features.")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--force", is_flag=True, help="Overwrite --out.")
def predict(load_path, input_, out, fmt, text_model, images_dir, aux_dict, crops_dir, feature_cache, batch_size,
            device, force) -> None:
    """Tag new tweets with a saved checkpoint (images optional)."""
    from ..predict import PredictOptions, predict_file

    with _fail_fast():
        n = predict_file(PredictOptions(load_path=load_path, input=input_, out=out, fmt=fmt, text_model=text_model,
                                        images_dir=images_dir, aux_dict=aux_dict, crops_dir=crops_dir,
                                        feature_cache=feature_cache, batch_size=batch_size, device=device,
                                        force=force))
    click.echo(f"tagged {n} tweets -> {out}")
