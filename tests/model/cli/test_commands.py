"""comipn-train's subcommand modules: each defines one command, registered under its name (their
behaviour is tested beside the library: tests/model/inference/ for predict, tests/model/saved/ for
export); comipn_model.cli.errors turns bad input and unavailable weights into one `error:` line and
exit 2."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from comipn_prep.weights import WeightsUnavailable
from comipn_model.cli import main
from comipn_model.cli.ablate_cmd import ablate
from comipn_model.cli.compare_cmd import compare
from comipn_model.cli.evaluate_gmner_cmd import evaluate_gmner
from comipn_model.cli.errors import fail_fast
from comipn_model.cli.export_cmd import export
from comipn_model.cli.predict_cmd import predict
from comipn_model.network.text_encoder import TextEncoderUnavailable


def test_each_subcommand_module_is_registered_under_its_name():
    assert {name: main.get_command(None, name) for name in main.list_commands(None)} == {
        "compare": compare, "export": export, "predict": predict, "evaluate-gmner": evaluate_gmner, "ablate": ablate}


@pytest.mark.parametrize("error, says", [
    (WeightsUnavailable("CLIP weights file w.pt does not exist"), "error: CLIP weights file w.pt does not exist"),
    (TextEncoderUnavailable("text encoder enc/: no such folder"), "error: text encoder enc/: no such folder"),
    (ValueError("--epochs 0: must be at least 1"), "error: --epochs 0: must be at least 1"),
])
def test_fail_fast_turns_bad_input_and_unavailable_weights_into_exit_2(error, says):
    @click.command()
    def fails():
        with fail_fast():
            raise error

    result = CliRunner().invoke(fails, [])
    assert result.exit_code == 2 and says in result.output and "Traceback" not in result.output
    if not isinstance(error, ValueError):
        assert "take local files" in result.output  # the weights errors say how to work offline


def test_fail_fast_lets_a_bug_through():
    @click.command()
    def fails():
        with fail_fast():
            raise KeyError("a bug, not bad input")

    result = CliRunner().invoke(fails, [])
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)
