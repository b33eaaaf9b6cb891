"""``comipn-prep extract-nps DATA_DIR --out OUT_DIR``: the noun phrases of every tweet, one
``<split>.nps.jsonl`` per split."""

from __future__ import annotations

import click

from ..layout import expand_splits
from ..nps.backends import BACKENDS, DEFAULT_SPACY_MODEL
from .errors import bad_input_exits


def format_summary(summary: dict) -> str:
    """One line per split: tweets, NPs, mean length, token share, speed and entity coverage."""
    lines = [f"backend: {summary['backend']} {summary['backend_version']}"]
    rows = list(summary["splits"].items())
    if "all" in summary and len(rows) > 1:
        rows.append(("all", summary["all"]))
    for split, e in rows:
        cov = e.get("coverage")
        cov_text = f"  coverage {100 * cov['coverage']:.2f}%" if cov and cov.get("coverage") is not None else ""
        lines.append(f"{split:<6} {e['tweets']:>6} tweets {e['nps']:>7} NPs  mean length {e['mean_np_length']:.2f}"
                     f"  {100 * e['np_token_share']:.1f}% of tokens  {e['tweets_per_second'] or 0:.0f} tweets/s"
                     f"{cov_text}")
    return "\n".join(lines)


@click.command("extract-nps")
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Folder for <split>.nps.jsonl and summary.json.")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
              help="NP chunker; auto = spacy if its pipeline is installed, else nltk if its tagger data is, "
                   "else textblob (needs no download).")
@click.option("--spacy-model", default=DEFAULT_SPACY_MODEL, show_default=True,
              help="spaCy pipeline: an installed package name or a local pipeline folder.")
@click.option("--nltk-data", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Local folder holding NLTK data (taggers/averaged_perceptron_tagger_eng/).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes; the output is the same for any number.")
@click.option("--split", "split", default="all", show_default=True,
              help="train, valid (or val), test, or all.")
@click.option("--force", is_flag=True, help="Overwrite outputs made from other input or settings.")
def extract_nps_command(data_dir: str, out_dir: str, backend: str, spacy_model: str, nltk_data: str | None,
                        workers: int, split: str, force: bool) -> None:
    """Noun phrases of every tweet of DATA_DIR/<split>.txt, as spans of the tweet's own tokens.

    Writes OUT_DIR/<split>.nps.jsonl (one JSON line per tweet, file order) and OUT_DIR/summary.json
    (sizes, speed and, for labelled input, the share of gold entities lying inside one NP)."""
    from ..folder_lock import hold_folder
    from comipn_prep.nps.extract import extract_nps

    with bad_input_exits(), hold_folder(out_dir, what="noun-phrase folder"):
        splits = expand_splits(split)
        summary = extract_nps(data_dir, out_dir, backend=backend, splits=splits, workers=workers,
                              spacy_model=spacy_model, nltk_data=nltk_data, force=force)
    click.echo(format_summary(summary))
