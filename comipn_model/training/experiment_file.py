"""An experiment as a file (``comipn-train --config exp.toml``): a flat table of ``comipn-train``'s options
by their command-line names, in TOML or YAML, read with the line of every key so that a bad key or value
is reported as ``FILE:LINE``.

Reading only: which keys are options and what their values mean is the command's business
(:mod:`comipn_model.cli`); this module gives the values and where each stands. Nothing in the file runs
code (``tomllib``; YAML through the safe loader).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

SUFFIXES = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}


class ExperimentFileError(ValueError):
    """The file cannot be read as an experiment; the message starts with ``FILE:LINE:`` where known."""


@dataclass
class ExperimentFile:
    """The options of an experiment file: ``values`` by option name (``batch_size``: hyphens read as
    underscores), ``lines`` the line of each, ``text`` the file as given."""

    path: Path
    values: dict[str, object]
    lines: dict[str, int] = field(default_factory=dict)
    text: str = ""

    def where(self, name: str) -> str:
        """``FILE:LINE`` of an option (``FILE`` alone when its line is unknown)."""
        line = self.lines.get(name)
        return f"{self.path}:{line}" if line else str(self.path)


def option_name(key: str) -> str:
    """``batch-size`` and ``batch_size`` name the same option."""
    return key.strip().replace("-", "_")


def read_experiment_file(path: str | Path) -> ExperimentFile:
    """Read ``path`` (``.toml``, ``.yaml`` or ``.yml``): a flat table of options. A nested table, a key
    given twice (in either spelling) or a syntax error is refused with the file and line."""
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ExperimentFileError(f"{path}: an experiment file ends in .toml, .yaml or .yml")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ExperimentFileError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    pairs = _read_toml(path, text) if kind == "toml" else _read_yaml(path, text)
    values: dict[str, object] = {}
    lines: dict[str, int] = {}
    for key, value, line in pairs:
        name = option_name(key)
        if name in values:
            raise ExperimentFileError(f"{path}:{line}: {key!r} is given twice (also at line {lines[name]})")
        if isinstance(value, dict):
            raise ExperimentFileError(f"{path}:{line}: {key!r} is a table; an experiment file is a flat list of "
                                      f"comipn-train options (key = value)")
        values[name] = value
        lines[name] = line
    return ExperimentFile(path, values, lines, text)


def _read_toml(path: Path, text: str) -> list[tuple[str, object, int]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        # tomllib's message ends in "(at line L, column C)"
        found = re.search(r"at line (\d+)", str(err))
        where = f"{path}:{found.group(1)}" if found else str(path)
        raise ExperimentFileError(f"{where}: not valid TOML: {err}") from None
    return [(key, value, _toml_line(text, key)) for key, value in data.items()]


def _toml_line(text: str, key: str) -> int:
    """The line where a top-level TOML key is set (``key =``, quoted or bare) or opens a table (``[key]``)."""
    quoted = re.escape(key)
    pattern = re.compile(rf"""^\s*(?:(?:{quoted}|"{quoted}"|'{quoted}')\s*=|\[\s*(?:{quoted}|"{quoted}")\s*[\].])""")
    for number, line in enumerate(text.splitlines(), 1):
        if pattern.match(line):
            return number
    return 0


def _read_yaml(path: Path, text: str) -> list[tuple[str, object, int]]:
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ExperimentFileError(f"{where}: not valid YAML: {getattr(err, 'problem', err)}") from None
    if root is None:
        return []
    if not isinstance(root, yaml.MappingNode):
        raise ExperimentFileError(f"{path}:{root.start_mark.line + 1}: an experiment file is a mapping of "
                                  f"comipn-train options (key: value)")
    loader = yaml.SafeLoader("")
    pairs = []
    for key_node, value_node in root.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise ExperimentFileError(f"{path}:{line}: the key {key!r} is not an option name")
        pairs.append((key, loader.construct_object(value_node, deep=True), line))
    return pairs
