"""Bad input and unavailable weights in ``comipn-train`` and its subcommands: a clear message and exit
status 2, no traceback (the commands' one rule, beside :mod:`comipn_prep.cli.errors`)."""

from __future__ import annotations

import contextlib
import sys

import click

from comipn_prep.cli.errors import EXIT_BAD_INPUT, bad_input_exits

_UNAVAILABLE = ("WeightsUnavailable", "TextEncoderUnavailable", "ImageLoadError")
_MODEL_FLAGS = "--text-model (a local encoder folder) and --clip-pretrained (a local weights file, or none)"


@contextlib.contextmanager
def fail_fast():
    """Bad input and unavailable weights -> a clear message and exit 2, no traceback."""
    try:
        with bad_input_exits():
            yield
    except Exception as err:  # noqa: BLE001 - only the weights errors are turned into exit 2 here
        if type(err).__name__ in _UNAVAILABLE or isinstance(err, OSError):
            click.echo(f"error: {err}\n(offline? {_MODEL_FLAGS} take local files)", err=True)
            sys.exit(EXIT_BAD_INPUT)
        raise
