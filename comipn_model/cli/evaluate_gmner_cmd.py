"""`comipn-train evaluate-gmner`: grounded-MNER scores (GMNER, MNER, EEG) of predictions against a
Twitter-GMNER-shaped gold folder."""

from __future__ import annotations

import json

import click

from comipn_model.cli.errors import fail_fast


@click.command("evaluate-gmner")
@click.argument("predictions", type=click.Path(exists=True))
@click.argument("gold", type=click.Path(exists=True, file_okay=False))
@click.option("--split", default="test", show_default=True, help="The gold split: train, dev (valid) or test.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@click.option("--choose-none-threshold", "choose", is_flag=True,
              help="Instead of scoring: the region linker's \"none\" threshold that gets most regions of the correctly "
                   "tagged entities right (PREDICTIONS: predict JSONL of dev with --linker and --none-threshold -inf).")
@click.option("--save-to", type=click.Path(exists=True, file_okay=False),
              help="With --choose-none-threshold: write it to this run (or exported) folder as regions.json, "
                   "where Tagger and predict read it.")
def evaluate_gmner(predictions, gold, split, as_json, choose, save_to) -> None:
    """Score PREDICTIONS against GOLD as the Twitter-GMNER paper does: GMNER (span, type and region),
    MNER (span and type) and EEG (span and region) precision, recall and F1.

    \b
    PREDICTIONS: comipn-train predict JSONL (entities with "box": [x1, y1, x2, y2] or null), a tagged
                 CoNLL file, or a run folder (its test_predictions.txt: tags only, every region "none").
    GOLD:        a GMNER-shaped folder: txt/{train,dev,test}.txt + xml/<imgid>.xml (the release), or a
                 dataset laid out by comipn-prep import-gmner (ROOT/NAME: {train,valid,test}.txt + xml/).

    A region matches when both are "none", or when the predicted box has IoU strictly above 0.5 with any
    gold box of the entity. Every gold tweet needs a prediction with the same tokens (exit 2 otherwise)."""
    from comipn_model.training.gmner_scores import choose_none_threshold, evaluate, format_scores

    with fail_fast():
        if save_to and not choose:
            raise ValueError("--save-to saves a chosen threshold: give --choose-none-threshold too")
        if choose:
            from comipn_model.saved.regions_record import write_regions

            chosen = choose_none_threshold(predictions, gold, split)
            if save_to:
                chosen["saved"] = str(write_regions(save_to, **{k: v for k, v in chosen.items()}))
            click.echo(json.dumps(chosen, indent=2) if as_json else
                       f"linker {chosen['linker']}: none threshold {chosen['none_threshold']} "
                       f"({chosen['regions_right']} of {chosen['entities']} regions right on {split}; "
                       f"never none: {chosen['regions_right_never_none']})"
                       + (f"; saved to {chosen['saved']}" if save_to else ""))
            return
        result = evaluate(predictions, gold, split)
    click.echo(json.dumps(result, indent=2) if as_json else format_scores(result))
