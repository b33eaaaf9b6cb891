"""Logging and progress set-up shared by the command lines (``comipn-prep``, ``comipn-train``).

Only the project's own loggers (``comipn_*``) get a handler and a level: the root logger is left to
the application, so libraries that log through it (open_clip logs every model build at INFO on the
root logger) stay quiet unless the user configures the root logger himself.
"""

from __future__ import annotations

import contextlib
import logging
import os

PACKAGES = ("comipn_prep", "comipn_model")
FORMAT = "%(levelname)s %(name)s: %(message)s"
_FALSE = ("", "0", "false", "no", "off")

_progress = True  # set by the command line (--no-progress, -q); TQDM_DISABLE always wins


def setup_cli_logging(*, verbose: bool = False, quiet: bool = False, progress: bool = True,
                      main_process: bool = True):
    """Give the ``comipn_*`` loggers one stderr handler (plain text, no colours) and a level:
    DEBUG with ``verbose``, WARNING with ``quiet`` or on a non-main process, else INFO.

    Our records do not propagate to the root logger while the command runs: a library's module-level
    ``logging.warning(...)`` (open_clip does that) gives the root logger a handler of its own, and every
    line would then print twice. Returns a function that undoes all this (a command run inside another
    program, e.g. click's test runner, leaves the loggers as it found them)."""
    global _progress
    level = logging.DEBUG if verbose else logging.WARNING if quiet or not main_process else logging.INFO
    handler = logging.StreamHandler()  # the stderr of this call (click's test runner swaps it)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.comipn_cli = True  # type: ignore[attr-defined] - marks ours, so a second call replaces it
    saved = []
    for name in PACKAGES:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if getattr(h, "comipn_cli", False)]:
            logger.removeHandler(old)
        saved.append((logger, logger.level, logger.propagate))
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    previous_progress = _progress
    _progress = progress and not quiet and main_process
    # Ultralytics prints a banner and a settings notice at import unless told otherwise.
    os.environ.setdefault("YOLO_VERBOSE", "False")

    def restore() -> None:
        global _progress
        for logger, old_level, propagate in saved:
            if handler in logger.handlers:
                logger.removeHandler(handler)
            logger.setLevel(old_level)
            logger.propagate = propagate
        _progress = previous_progress

    return restore


def progress_enabled() -> bool:
    """Whether progress bars are shown: not under ``--no-progress`` / ``-q``, nor ``TQDM_DISABLE=1``."""
    return _progress and os.environ.get("TQDM_DISABLE", "").strip().lower() in _FALSE


def set_progress(enabled: bool) -> None:
    global _progress
    _progress = enabled


@contextlib.contextmanager
def quiet_transformers():
    """transformers at verbosity *error* and without its own progress bars while models load: its
    weight-loading report (ANSI-coloured) and the "Loading weights" bar are noise for a user."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers is a dependency
        yield
        return
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def quiet_open_clip():
    """open_clip logs through the root logger (``logging.warning`` at module level), e.g. "No pretrained
    weights loaded" for random weights the user asked for: drop its records up to WARNING while it
    builds a model. A filter on the root logger for the duration only; its errors still pass."""
    try:
        import open_clip
    except ImportError:  # pragma: no cover - open_clip is a dependency
        yield
        return
    package = os.path.dirname(open_clip.__file__)

    def keep(record: logging.LogRecord) -> bool:
        return record.levelno > logging.WARNING or not record.pathname.startswith(package)

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)
