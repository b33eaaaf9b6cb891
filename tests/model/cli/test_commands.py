"""comipn-train's subcommand modules: each defines one command, registered under its name (their
behaviour is tested beside the library: tests/model/inference/ for predict, tests/model/saved/ for
export)."""

from __future__ import annotations

from comipn_model.cli import main
from comipn_model.cli.export_cmd import export
from comipn_model.cli.predict_cmd import predict


def test_each_subcommand_module_is_registered_under_its_name():
    assert {name: main.get_command(None, name) for name in main.list_commands(None)} == {"export": export,
                                                                                         "predict": predict}
