"""comipn_model.version: one version, pyproject's, for the package, its command and exported models."""

from __future__ import annotations

import re

from click.testing import CliRunner

import comipn_model
from comipn_model.cli import main
from comipn_model.version import __version__


def test_the_version_is_pyprojects_and_the_command_says_it(repo_root):
    # A regex, not tomllib: the project supports Python 3.10.
    project = (repo_root / "pyproject.toml").read_text(encoding="utf-8").split("[project]", 1)[1].split("\n[", 1)[0]
    assert [__version__] == re.findall(r'^version = "([^"]+)"$', project, flags=re.M)
    assert comipn_model.__version__ is __version__
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output == f"comipn-train, version {__version__}\n"
