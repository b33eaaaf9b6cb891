"""comipn_model.training.seeds and `comipn-train --seeds`: one run per seed, resumable between seeds and
inside one, then seeds.json with mean and sd; compare reads the seed folders."""

from __future__ import annotations

import json
import shutil
import statistics

import pytest
from click.testing import CliRunner

from comipn_model.cli import main
from comipn_model.cli.option_types import parse_seeds
from comipn_model.network.config import CoMIPNConfig
from comipn_model.saved import run_folder as rf
from comipn_model.training import seeds as seeds_module
from comipn_model.training.config import TrainConfig
from comipn_model.training.seeds import SEEDS_SUMMARY, format_summary, train_seeds


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, make_tiny_encoder, make_root):
    base = tmp_path_factory.mktemp("seeds")
    return {"encoder": str(make_tiny_encoder(base / "encoder")), "root": make_root(base / "root", sizes=(12, 8, 8))}


def config(tiny, run_dir, seeds) -> TrainConfig:
    model = CoMIPNConfig(text_model=tiny["encoder"], random_init=True, use_prompt=False, use_dynamic_matching=False,
                         use_contrastive=False)
    return TrainConfig(data_root=str(tiny["root"]), dataset="twitter2017", run_dir=str(run_dir), model=model,
                       epochs=2, batch_size=4, lr=1e-3, warmup_ratio=0.1, device="cpu", seeds=seeds)


def test_seeds_are_a_list_or_a_count():
    assert parse_seeds("1,2,7") == [1, 2, 7] and parse_seeds("3") == [1, 2, 3] and parse_seeds(None) is None
    with pytest.raises(ValueError, match="--seeds must be distinct"):
        TrainConfig(data_root="d", dataset="x", run_dir="r", seeds=[1, 1])


def test_one_run_per_seed_then_the_summary_and_a_kill_resumes_where_it_was(tiny, tmp_path, monkeypatch):
    whole = train_seeds(config(tiny, tmp_path / "whole", [1, 2, 3]))
    summary = whole.summary
    tests = [row["test"]["f1"] for row in summary["per_seed"]]
    assert [row["seed"] for row in summary["per_seed"]] == [1, 2, 3]
    assert summary["test_f1"]["mean"] == pytest.approx(statistics.fmean(tests))
    assert summary["test_f1"]["sd"] == pytest.approx(statistics.stdev(tests))
    assert (summary["test_f1"]["min"], summary["test_f1"]["max"]) == (min(tests), max(tests))
    for seed in (1, 2, 3):
        child = json.loads((tmp_path / "whole" / f"seed-{seed}" / rf.CONFIG).read_text())
        assert child["seed"] == seed and child["seeds"] is None
    assert json.loads((tmp_path / "whole" / SEEDS_SUMMARY).read_text()) == summary
    assert "test F1" in format_summary(summary)

    # A run killed between seeds 1 and 2: seed 1 scored (as in the whole run), nothing of 2 and 3.
    shutil.copytree(tmp_path / "whole" / "seed-1", tmp_path / "cut" / "seed-1")
    # Resumed, then killed again at seed 2's first step: seed 2 has last.pt, seed 3 nothing.
    stopped = train_seeds(config(tiny, tmp_path / "cut", [1, 2, 3]), resume=True, stop_after_steps=1)
    assert stopped.stopped is not None and stopped.stopped.run_dir == tmp_path / "cut" / "seed-2"
    assert (tmp_path / "cut" / "seed-2" / rf.LAST).is_file() and not (tmp_path / "cut" / "seed-3").exists()

    calls = []
    real_train = seeds_module.train
    monkeypatch.setattr(seeds_module, "train", lambda cfg, **kw: calls.append((cfg.seed, kw["resume"])) or
                        real_train(cfg, **kw))
    resumed = train_seeds(config(tiny, tmp_path / "cut", [1, 2, 3]), resume=True)
    assert calls == [(2, True), (3, False)]  # seed 1 skipped, seed 2 continued from last.pt, seed 3 started
    assert resumed.summary == summary  # the same numbers as the run that was never stopped


def test_the_command_trains_the_seeds_resumes_them_compare_reads_them_and_resume_adds_seeds(tiny, tmp_path):
    args = ["--data-root", str(tiny["root"]), "--dataset", "twitter2017", "--text-model", tiny["encoder"],
            "--random-init", "--text-only", "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--seeds", "2"]
    first = CliRunner().invoke(main, args + ["--run-dir", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    assert "test F1" in first.output and "2 seeds" in first.output
    again = CliRunner().invoke(main, args + ["--run-dir", str(tmp_path / "a")])
    assert again.exit_code == 2 and "pass --resume to continue that run or --force" in again.output
    resumed = CliRunner().invoke(main, ["--run-dir", str(tmp_path / "a"), "--resume"])
    assert resumed.exit_code == 0, resumed.output  # everything scored: the summary again
    assert json.loads((tmp_path / "a" / SEEDS_SUMMARY).read_text())["seeds"] == [1, 2]
    other = CliRunner().invoke(main, args + ["--run-dir", str(tmp_path / "b"), "--lr", "1e-4"])
    assert other.exit_code == 0, other.output
    result = CliRunner().invoke(main, ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--resamples", "200",
                                       "--aso-iterations", "200", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [row["name"] for row in data["per_seed"]] == ["seed-1", "seed-2"] and data["seeds"]["n"] == 2

    # More seeds for a finished run: --resume --seeds adds them, and never drops one.
    first_seed = (tmp_path / "a" / "seed-1" / rf.TEST_REPORT).stat().st_mtime_ns
    fewer = CliRunner().invoke(main, ["--run-dir", str(tmp_path / "a"), "--resume", "--seeds", "2,3"])
    assert fewer.exit_code == 2 and "leaves out seed(s) 1" in fewer.output and "can only add seeds" in fewer.output
    more = CliRunner().invoke(main, ["--run-dir", str(tmp_path / "a"), "--resume", "--seeds", "3"])
    assert more.exit_code == 0, more.output  # seed 3 added; 1 and 2 kept as they were
    assert json.loads((tmp_path / "a" / SEEDS_SUMMARY).read_text())["seeds"] == [1, 2, 3]
    assert json.loads((tmp_path / "a" / rf.CONFIG).read_text())["seeds"] == [1, 2, 3]
    assert (tmp_path / "a" / "seed-1" / rf.TEST_REPORT).stat().st_mtime_ns == first_seed
    assert "3 seeds" in more.output
