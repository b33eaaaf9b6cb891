"""comipn_prep.jsonl.json_lines: the JSON Lines reader of NP files and predict's input."""

from __future__ import annotations

import pytest

from comipn_prep.jsonl import json_lines


class BadLine(ValueError):
    pass


def test_lines_numbered_blank_ones_skipped_and_a_bom_allowed(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes('\ufeff{"a": 1}\n\n   \n[2, 3]\n"x"'.encode("utf-8"))  # no newline at the end either
    assert list(json_lines(path)) == [(1, f"{path}:1", {"a": 1}), (4, f"{path}:4", [2, 3]), (5, f"{path}:5", "x")]


def test_a_line_that_is_not_json_names_path_line_and_column(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1}\n{"a": }\n{"never": "read"}\n', encoding="utf-8")
    lines = json_lines(path, error=BadLine)
    assert next(lines)[2] == {"a": 1}
    with pytest.raises(BadLine, match=rf"^{path}:2: not valid JSON \(Expecting value at column 7\)$"):
        next(lines)
