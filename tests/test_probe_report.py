"""tests/bench/bench_probe.py --report WORK: the probes' table, read from the run folders the product wrote
(``seeds.json`` of ``comipn-train --seeds``, ``compare-to-text.json`` of ``comipn-train compare``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from comipn_model.saved.run_folder import TEST_REPORT
from comipn_model.training.seeds import SEEDS_SUMMARY, seed_folder, summarise

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "bench" / "bench_probe.py"


def _multi_seed_run(run_dir: Path, test_f1: dict[int, float]) -> None:
    """A multi-seed folder as ``comipn-train --seeds`` leaves it: each seed's test report, then the
    product's own ``seeds.json``."""
    for seed, f1 in test_f1.items():
        folder = seed_folder(run_dir, seed)
        folder.mkdir(parents=True)
        (folder / TEST_REPORT).write_text(json.dumps({"epoch": 3, "dev_f1": f1 + 0.02,
                                                      "overall": {"f1": f1, "precision": f1, "recall": f1}}))
    (run_dir / SEEDS_SUMMARY).write_text(json.dumps(summarise(run_dir, sorted(test_f1))))


def _comparison(run_dir: Path, differences: list[float], p: float, eps_min: float) -> None:
    mean = sum(differences) / len(differences)
    (run_dir / "compare-to-text.json").write_text(json.dumps({
        "bootstrap": {"difference": mean, "p_value": p},
        "per_seed": [{"name": f"seed-{k}", "difference": d} for k, d in enumerate(differences, 1)],
        "seeds": {"n": len(differences), "mean_difference": mean, "sd": 0.005, "se": 0.0029},
        "aso": {"eps_min": eps_min}}))


def _table(*args: str) -> dict[tuple[str, str], list[str]]:
    r = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = {}
    for line in r.stdout.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[(cells[0], cells[1])] = cells[2:]
    return rows


def test_report_reads_the_seeds_and_comparisons_of_each_run_folder(tmp_path):
    runs = tmp_path / "runs"
    _multi_seed_run(runs / "both-text", {1: 0.70, 2: 0.72, 3: 0.66})
    _multi_seed_run(runs / "both-prompt", {1: 0.73, 2: 0.76, 3: 0.70})
    _comparison(runs / "both-prompt", [0.03, 0.04, 0.04], p=0.0123, eps_min=0.0)
    _multi_seed_run(runs / "shuffled-all", {1: 0.70, 2: 0.71})  # trained, not yet compared
    rows = _table("--report", str(tmp_path), "--variants", "both,shuffled", "--configs", "text,prompt,all")
    assert rows[("both", "text")] == ["3", "69.3 +- 3.1", "70.0 / 72.0 / 66.0", "", "", "", ""]
    assert rows[("both", "prompt")] == ["3", "73.0 +- 3.0", "73.0 / 76.0 / 70.0", "+3.7 +- 0.3", "+3.0 / +4.0 / +4.0",
                                        "0.0123", "0.00"]
    assert rows[("shuffled", "all")][:3] == ["2", "70.5 +- 0.7", "70.0 / 71.0"]
    assert rows[("shuffled", "all")][3:] == ["", "", "", ""]
    assert ("both", "all") not in rows  # asked for, never run: no row


def test_report_of_a_tag_reads_the_tagged_folders_against_the_untagged_text_only(tmp_path):
    runs = tmp_path / "runs"
    _multi_seed_run(runs / "both-text", {1: 0.70, 2: 0.72})
    _multi_seed_run(runs / "both-matching", {1: 0.60, 2: 0.60})
    _multi_seed_run(runs / "both-matching-gated", {1: 0.75, 2: 0.77})
    _comparison(runs / "both-matching-gated", [0.05, 0.05], p=0.0001, eps_min=0.0)
    rows = _table("--report", str(tmp_path), "--variants", "both", "--configs", "text,matching", "--tag", "gated")
    assert rows[("both", "text")][:2] == ["2", "71.0 +- 1.4"]
    assert rows[("both", "matching (gated)")][:2] == ["2", "76.0 +- 1.4"]
    assert rows[("both", "matching (gated)")][3] == "+5.0 +- 0.3"
