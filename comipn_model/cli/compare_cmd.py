"""``comipn-train compare``: B's test F1 against A's, with a paired bootstrap over the test tweets."""

from __future__ import annotations

import json

import click

from comipn_model.cli.errors import fail_fast


@click.command()
@click.argument("result_a", type=click.Path(exists=True, file_okay=False))
@click.argument("result_b", type=click.Path(exists=True, file_okay=False))
@click.option("--resamples", type=click.IntRange(100), default=10_000, show_default=True,
              help="Bootstrap resamplings of the test tweets.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the resampling.")
@click.option("--aso-iterations", type=click.IntRange(100), default=1000, show_default=True,
              help="Bootstrap iterations of Almost Stochastic Order (folders of seeds only).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
def compare(result_a, result_b, resamples, seed, aso_iterations, as_json) -> None:
    """Compare two results on the same test split: RESULT_A and RESULT_B are run folders (test_report.json,
    test_predictions.txt) or folders of run folders, one per seed (seed-1/, seed-2/, ...).

    Prints F1(B) - F1(A), its 95% interval and p-value from a paired bootstrap over the test tweets (every
    seed's tweets pooled, seeds paired by folder name), and for several seeds each seed's difference with
    their mean, sd and standard error, and Almost Stochastic Order (deepsig) over the seeds' test F1.
    Refused (exit 2) when the two were scored on different test files."""
    from comipn_model.training.compare import compare as compare_results
    from comipn_model.training.compare import format_comparison

    with fail_fast():
        result = compare_results(result_a, result_b, resamples=resamples, seed=seed, aso_iterations=aso_iterations)
    click.echo(json.dumps(result, indent=2) if as_json else format_comparison(result))
