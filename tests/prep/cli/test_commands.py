"""comipn-prep's command modules: each defines one command, registered under its name; comipn_prep.cli.errors
turns bad input into one `error:` line and exit 2. (Each command's behaviour is tested beside its library
module: tests/prep/test_aux_dicts.py for build-dict, tests/prep/nps/test_extract.py for extract-nps, ...)"""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from comipn_prep.cli import main
from comipn_prep.cli.build_dict_cmd import build_dict
from comipn_prep.cli.errors import EXIT_BAD_INPUT, bad_input_exits
from comipn_prep.cli.extract_nps_cmd import extract_nps_command
from comipn_prep.cli.ground_cmd import ground
from comipn_prep.cli.import_gmner_cmd import import_gmner_command
from comipn_prep.cli.preview_cmd import preview
from comipn_prep.cli.run_cmd import run
from comipn_prep.cli.stats_cmd import stats
from comipn_prep.cli.verify_cmd import verify
from comipn_prep.conll import ConllFormatError, Problem

COMMANDS = {"build-dict": build_dict, "extract-nps": extract_nps_command, "ground": ground, "preview": preview,
            "run": run, "stats": stats, "verify": verify, "import-gmner": import_gmner_command}


def test_each_command_module_is_registered_under_its_name():
    assert {name: main.get_command(None, name) for name in main.list_commands(None)} == COMMANDS


@pytest.mark.parametrize("error", [ConllFormatError([Problem("a.txt", 3, "expected 'token<TAB>label'")]),
                                   FileNotFoundError("b.txt: no such file"), FileExistsError("c: exists"),
                                   ValueError("--top-k must be 1 to 3")])
def test_bad_input_is_one_error_line_and_exit_2(error):
    @click.command()
    def fails():
        with bad_input_exits():
            raise error

    result = CliRunner().invoke(fails, [])
    assert result.exit_code == EXIT_BAD_INPUT == 2 and isinstance(result.exception, SystemExit)
    assert result.stderr == f"error: {error}\n" and result.stdout == ""


def test_any_other_error_is_a_bug_and_goes_through():
    with pytest.raises(KeyError):
        with bad_input_exits():
            raise KeyError("a bug, not bad input: its traceback is wanted")
