"""``--config FILE``: a command's options from an experiment file (TOML or YAML), under the command line.

The file's values become the command's defaults (click's ``default_map``), so an option given on the
command line wins, and an option set in the file counts as given (it beats a preset, as on the command
line). Every key must be one of the command's options and its value of that option's type; a bad one is
refused as ``FILE:LINE: ...`` before anything runs.
"""

from __future__ import annotations

import difflib

import click

from comipn_model.training.experiment_file import ExperimentFileError, read_experiment_file

# Options about the program itself, not about a run.
NOT_IN_FILES = {"config", "help", "version"}
FILE_KEY = "comipn_config_file"  # ctx.meta: the experiment file read, for the run folder to keep


def _file_options(command: click.Command) -> dict[str, click.Parameter]:
    return {p.name: p for p in command.params if isinstance(p, click.Option) and p.name not in NOT_IN_FILES}


def _as_command_line_value(param: click.Parameter, value):
    """A file value as the option would receive it: a list of seeds is written ``1,2,3``; a count, ``5``."""
    if param.name == "seeds":
        if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return ",".join(map(str, value)) + ("," if len(value) == 1 else "")
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return value


def _checked(ctx: click.Context, param: click.Option, value, where: str, key: str):
    flag = "--" + key.replace("_", "-")
    if param.is_flag and not isinstance(value, bool):
        raise click.BadParameter(f"{where}: {flag} is a switch: true or false, got {value!r}")
    if isinstance(value, (list, dict)) and param.name != "seeds":
        raise click.BadParameter(f"{where}: {flag} takes one value, got {value!r}")
    value = _as_command_line_value(param, value)
    try:
        cast = param.type_cast_value(ctx, value)
        if param.callback is not None:
            param.callback(ctx, param, cast)
    except click.BadParameter as err:
        raise click.BadParameter(f"{where}: {flag}: {err.message}") from None
    return value


def load_config_file(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The ``--config`` callback (eager: it runs before the other options are read)."""
    if value is None or ctx.resilient_parsing:
        return value
    try:
        experiment = read_experiment_file(value)
    except (ExperimentFileError, OSError) as err:
        raise click.BadParameter(str(err)) from None
    options = _file_options(ctx.command)
    defaults = {}
    for name, raw in experiment.values.items():
        where = experiment.where(name)
        if name not in options:
            near = difflib.get_close_matches(name, list(options), n=1)
            hint = f" (did you mean {near[0].replace('_', '-')}?)" if near else ""
            raise click.BadParameter(f"{where}: {name.replace('_', '-')!r} is not an option of "
                                     f"{ctx.command_path}{hint}; see {ctx.command_path} --help")
        defaults[name] = _checked(ctx, options[name], raw, where, name)
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    ctx.meta[FILE_KEY] = experiment
    return value


def config_option(command):
    """The ``--config FILE`` option (first of all options: its file fills in the others' defaults)."""
    return click.option("--config", "config", type=click.Path(exists=True, dir_okay=False), is_eager=True,
                        expose_value=True, callback=load_config_file, metavar="FILE",
                        help="Options from an experiment file (TOML, or YAML): the options' names as keys "
                             "(batch-size = 16); the command line wins over the file.")(command)
