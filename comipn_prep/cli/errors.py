"""Turn library errors into a clear message and exit status 2 (bad input), the CLI's one rule."""

from __future__ import annotations

import contextlib
import sys

import click

from ..conll import ConllFormatError

EXIT_BAD_INPUT = 2


@contextlib.contextmanager
def bad_input_exits():
    """Report bad-input errors on stderr and exit 2, with no traceback."""
    try:
        yield
    except (ConllFormatError, FileNotFoundError, FileExistsError, ValueError) as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_BAD_INPUT)
