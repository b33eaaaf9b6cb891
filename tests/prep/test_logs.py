"""comipn_prep.logs: the command lines' logging (our loggers only, undone afterwards) and progress bars."""

from __future__ import annotations

import logging

import pytest

from comipn_prep.logs import PACKAGES, progress_enabled, quiet_transformers, setup_cli_logging


def _state():
    return [(lg.level, lg.propagate, list(lg.handlers)) for lg in map(logging.getLogger, PACKAGES)]


@pytest.mark.parametrize("kwargs, level", [({}, logging.INFO), ({"verbose": True}, logging.DEBUG),
                                           ({"quiet": True}, logging.WARNING),
                                           ({"main_process": False}, logging.WARNING)])
def test_our_loggers_get_one_handler_and_a_level_and_everything_is_undone(kwargs, level, monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    root_before = (logging.getLogger().level, list(logging.getLogger().handlers))
    before = _state()
    restore = setup_cli_logging(**kwargs)
    try:
        restore_again = setup_cli_logging(**kwargs)  # a second set-up replaces the handler, never adds one
        for logger in map(logging.getLogger, PACKAGES):
            ours = [h for h in logger.handlers if getattr(h, "comipn_cli", False)]
            assert len(ours) == 1 and logger.level == level and logger.propagate is False
        assert progress_enabled() is (level != logging.WARNING)  # -q and non-main processes show no bars
        restore_again()
    finally:
        restore()
    assert _state() == before and (logging.getLogger().level, logging.getLogger().handlers) == root_before


def test_tqdm_disable_wins_over_the_command_line(monkeypatch):
    restore = setup_cli_logging()
    try:
        monkeypatch.setenv("TQDM_DISABLE", "1")
        assert not progress_enabled()
        monkeypatch.setenv("TQDM_DISABLE", "0")
        assert progress_enabled()
    finally:
        restore()


def test_quiet_transformers_is_undone_on_the_way_out():
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_info()
    try:
        with quiet_transformers():
            assert hf_logging.get_verbosity() == hf_logging.ERROR and not hf_logging.is_progress_bar_enabled()
        assert hf_logging.get_verbosity() == hf_logging.INFO and hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.set_verbosity(before)
