"""tests/bench/bench_probe.py --report: the probe's table from one or more results files, each module
against text-only of the same seeds, with the standard error of that paired difference."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "bench" / "bench_probe.py"


def _write(path: Path, rows: list[tuple[str, str, int, float]]) -> Path:
    path.write_text("".join(json.dumps({"variant": v, "config": c, "seed": s, "test_f1": f1, "prompt_len": 4,
                                        "extra": []}) + "\n" for v, c, s, f1 in rows))
    return path


def _table(*paths: Path) -> dict[tuple[str, str], list[str]]:
    r = subprocess.run([sys.executable, str(SCRIPT), "--report", *map(str, paths)], capture_output=True,
                       text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = {}
    for line in r.stdout.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[(cells[0], cells[1])] = cells[2:]
    return rows


def test_report_pairs_each_module_with_text_only_of_the_same_seeds(tmp_path):
    first = _write(tmp_path / "a.jsonl", [("both", "text", 1, 0.70), ("both", "text", 2, 0.72),
                                          ("both", "prompt", 1, 0.73), ("both", "prompt", 2, 0.74),
                                          ("main", "all", 1, 0.75)])
    # A second seed range, and a rerun of prompt seed 2 that replaces the first file's figure.
    second = _write(tmp_path / "b.jsonl", [("both", "text", 3, 0.66), ("both", "prompt", 3, 0.70),
                                           ("both", "prompt", 2, 0.76), ("main", "all", 7, 0.71)])
    rows = _table(first, second)
    assert rows[("-", "text")][:2] == ["3", "69.3 +- 3.1"]
    # Paired differences 3, 4, 4 points: mean +3.7, sd 0.577, se 0.577 / sqrt(3) = 0.33.
    assert rows[("both", "prompt")] == ["3", "73.0 +- 3.0", "+3.7", "0.3"]
    # Seed 7 has no text-only run: only seed 1 is paired (+5.0), and one pair has no standard error.
    assert rows[("main", "all")] == ["2", "73.0 +- 2.8", "+5.0", ""]


def test_report_without_text_only_falls_back_to_the_plain_table(tmp_path):
    rows = _table(_write(tmp_path / "a.jsonl", [("both", "matching", 1, 0.71), ("both", "matching", 2, 0.73)]))
    assert rows[("both", "matching")] == ["2", "72.0 +- 1.4", "", ""]
