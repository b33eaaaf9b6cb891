"""``comipn-train ablate``: the ablation table of an experiment file in one command (runs, then tables)."""

from __future__ import annotations

import logging
import shlex
import sys
import time

import click

from comipn_model.cli.errors import fail_fast
from comipn_model.cli.option_types import parse_seeds

log = logging.getLogger("comipn_model.cli")

DEFAULT_ROWS = "full,text-only,no-prompt,no-matching,no-contrastive,prompt,matching,contrastive"


def base_config(group: click.Command, info_name: str, config_file: str, extra: tuple[str, ...]):
    """The experiment's TrainConfig exactly as ``comipn-train --config FILE EXTRA...`` resolves it."""
    from comipn_model.cli.train_cmd import build_config

    sub = group.make_context(info_name, ["--config", config_file, *extra])
    opts = sub.params
    if not opts["data_root"] or not opts["dataset"]:
        raise click.UsageError(f"{config_file}: the experiment needs data-root and dataset (in the file, or after "
                               f"-- on the command line)")
    with fail_fast():
        return build_config(sub, opts)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), required=True, metavar="FILE",
              help="The experiment file (TOML or YAML, comipn-train's options); its switches are set per row.")
@click.option("--seeds", metavar="LIST|N", help="Seeds of every row (1,2,3; or N: 1 to N). [default: the file's seeds]")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Folder of the ablation: OUT/<row>/seed-<k>/ and the tables.")
@click.option("--rows", default=DEFAULT_ROWS, show_default=True,
              help="The rows, in the table's order: full, text-only, no-<idea> (removed), <idea> (alone); "
                   "the ideas: prompt, matching, contrastive.")
@click.option("--baseline", default="full", show_default=True, help="The row the others are compared with.")
@click.option("--dry-run", is_flag=True, help="List the runs the ablation would make (and which are done); run nothing.")
@click.option("--resamples", type=click.IntRange(100), default=10_000, show_default=True,
              help="Bootstrap resamplings of the test tweets per comparison.")
@click.option("--bootstrap-seed", type=int, default=0, show_default=True, help="Seed of the resampling.")
@click.argument("extra", nargs=-1, type=click.UNPROCESSED, metavar="[-- COMIPN-TRAIN OPTIONS...]")
@click.pass_context
def ablate(ctx, config_file, seeds, out, rows, baseline, dry_run, resamples, bootstrap_seed, extra) -> None:
    """Run the ablation of an experiment: the full model, text-only, each idea removed and each idea alone,
    every row at every seed (one feature cache), then the table as OUT/ablation.md, .tex (booktabs), .csv,
    ablation-table.json and ablation.png.

    Resumable: run the same command again after a kill; finished rows and seeds are kept, the row that
    stopped goes on where it was. Options after -- are comipn-train options over the file's (-- --epochs 2).

    \b
    comipn-train ablate --config configs/probe-cpu-small.toml --seeds 5 --out runs/ablation --dry-run
    comipn-train ablate --config configs/probe-cpu-small.toml --seeds 5 --out runs/ablation
    """
    from comipn_model.training import ablation, ablation_table

    with fail_fast():
        names = ablation.parse_rows(rows)
        if baseline not in names:
            raise ValueError(f"--baseline {baseline} is not among --rows ({', '.join(names)})")
    base = base_config(ctx.parent.command, ctx.parent.info_name or "comipn-train", config_file, extra)
    chosen = parse_seeds(seeds) if seeds is not None else base.seeds
    with fail_fast():
        planned = ablation.plan(base, names, chosen or [], out)
    if dry_run:
        click.echo("\n".join(ablation.describe(planned)))
        runs = sum(len(row.cfg.seeds) for row in planned if row.state != "done")
        click.echo(f"{len(planned)} rows x {len(chosen)} seeds; rows left to run: "
                   f"{sum(row.state != 'done' for row in planned)} (at most {runs} runs)")
        return
    started = time.monotonic()
    command = ["comipn-train", *sys.argv[1:]]  # the same call again resumes it
    try:
        with fail_fast():
            ablation.write_record(out, base, planned, baseline)
            stopped = ablation.run(planned)
    except KeyboardInterrupt:
        click.echo(f"interrupted; run the same command again to resume: {shlex.join(command)}", err=True)
        sys.exit(130)
    if stopped is not None:
        from comipn_model.training.signals import exit_code

        click.echo(f"stopped in {stopped.stopped.run_dir}; run the same command again to resume: "
                   f"{shlex.join(command)}", err=True)
        sys.exit(exit_code(stopped.stopped.signal))
    with fail_fast():
        table = ablation_table.collect(planned, baseline, resamples=resamples, seed=bootstrap_seed)
        written = ablation_table.write(table, out)
    click.echo(ablation_table.to_markdown(table))
    click.echo("-> " + ", ".join(str(path) for path in written.values()))
    log.info("ablation: %d rows x %d seeds in %.1f min (this call)", len(planned), len(chosen),
             (time.monotonic() - started) / 60)
