"""``comipn-prep``: one click group; each command is a small module over the library."""

from __future__ import annotations

import click

from .. import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="comipn-prep")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.pass_context
def main(ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """Preprocess multimodal NER data: noun phrases, object crops and the field's aux dicts."""
    from ..logs import setup_cli_logging

    # Only the comipn_* loggers: the root logger (open_clip's INFO lines) is left alone.
    ctx.call_on_close(setup_cli_logging(verbose=verbose, quiet=quiet))


def _register() -> None:
    from . import stats_cmd

    main.add_command(stats_cmd.stats)
    from . import extract_nps_cmd

    main.add_command(extract_nps_cmd.extract_nps_command)
    from . import build_dict_cmd, ground_cmd, import_gmner_cmd, preview_cmd, run_cmd, verify_cmd

    main.add_command(ground_cmd.ground)
    main.add_command(build_dict_cmd.build_dict)
    main.add_command(verify_cmd.verify)
    main.add_command(preview_cmd.preview)
    main.add_command(run_cmd.run)
    main.add_command(import_gmner_cmd.import_gmner_command)


_register()
