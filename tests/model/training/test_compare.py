"""comipn_model.training.compare and `comipn-train compare`: a paired bootstrap over the test tweets,
per-seed differences, and the refusal of results of different test files."""

from __future__ import annotations

import json
import random
import shutil

import pytest
from click.testing import CliRunner

from comipn_prep.conll import read_conll
from comipn_prep.fingerprints import sha256_of
from comipn_model.cli import main
from comipn_model.saved import run_folder as rf
from comipn_model.training.compare import NotComparable, compare, format_comparison, read_result
from comipn_model.training.metrics import overall


@pytest.fixture(scope="module")
def test_split(twitter_data):
    path = twitter_data / "twitter2017" / "test.txt"
    return path, read_conll(path).tweets


def noisy(tweets, keep: float, seed: int) -> list[list[str]]:
    """Predictions that keep each gold tag with probability ``keep`` and put O elsewhere."""
    rng = random.Random(seed)
    return [[tag if rng.random() < keep else "O" for tag in t.labels] for t in tweets]


def write_run(folder, tweets, pred, sha: str):
    """A run folder as training leaves it: the report (with the test file's sha256) and the predictions."""
    run = rf.RunFolder(folder)
    run.path.mkdir(parents=True)
    run.write_json(rf.TEST_REPORT, {"overall": overall([t.labels for t in tweets], pred).to_dict(),
                                    "data": {"splits": {"test": {"sha256": sha}}}})
    run.write_predictions(tweets, pred)
    return folder


def test_identical_results_differ_by_zero_with_p_1(test_split, tmp_path):
    path, tweets = test_split
    a = write_run(tmp_path / "a", tweets, noisy(tweets, 0.8, 1), sha256_of(path))
    shutil.copytree(a, tmp_path / "b")
    result = compare(a, tmp_path / "b", resamples=2000)
    assert result["bootstrap"]["difference"] == 0 and result["bootstrap"]["p_value"] == 1.0
    assert result["bootstrap"]["ci95"] == [0.0, 0.0]


def test_a_large_gap_is_significant_and_the_f1_is_seqevals(test_split, tmp_path):
    path, tweets = test_split
    weak, strong = noisy(tweets, 0.5, 1), noisy(tweets, 0.95, 2)
    a = write_run(tmp_path / "a", tweets, weak, sha256_of(path))
    b = write_run(tmp_path / "b", tweets, strong, sha256_of(path))
    result = compare(a, b, resamples=2000)
    gold = [t.labels for t in tweets]
    assert result["f1_a"] == pytest.approx(overall(gold, weak).f1, abs=1e-12)  # conlleval counts, as training
    assert result["f1_b"] == pytest.approx(overall(gold, strong).f1, abs=1e-12)
    boot = result["bootstrap"]
    assert boot["difference"] > 0.2 and boot["p_value"] < 0.01 and 0 < boot["ci95"][0] < boot["difference"]
    assert boot["tweets"] == len(tweets) == 723


def test_a_small_gap_on_few_tweets_is_not_significant(test_split, tmp_path):
    path, tweets = test_split
    few = tweets[:60]
    a = write_run(tmp_path / "a", few, noisy(few, 0.80, 1), sha256_of(path))
    b = write_run(tmp_path / "b", few, noisy(few, 0.80, 2), sha256_of(path))  # the same model, other noise
    assert compare(a, b, resamples=2000)["bootstrap"]["p_value"] > 0.05


def test_seeds_are_paired_by_name_with_their_mean_sd_and_se(test_split, tmp_path):
    path, tweets = test_split
    for k in (1, 2, 3):
        write_run(tmp_path / "a" / f"seed-{k}", tweets, noisy(tweets, 0.6, k), sha256_of(path))
        write_run(tmp_path / "b" / f"seed-{k}", tweets, noisy(tweets, 0.9, 10 + k), sha256_of(path))
    result = compare(tmp_path / "a", tmp_path / "b", resamples=500, aso_iterations=200)
    assert [row["name"] for row in result["per_seed"]] == ["seed-1", "seed-2", "seed-3"]
    assert result["aso"]["eps_min"] < 0.2  # B's seeds all score higher: B almost stochastically dominates
    assert result["aso"]["eps_min_reverse"] > 0.8  # and A does not dominate B
    assert compare(tmp_path / "b", tmp_path / "a", resamples=100, aso_iterations=200)["aso"]["eps_min"] > 0.8
    assert compare(tmp_path / "a", tmp_path / "a", resamples=100, aso_iterations=200)["aso"]["eps_min"] == 1.0
    diffs = [row["difference"] for row in result["per_seed"]]
    assert result["seeds"]["mean_difference"] == pytest.approx(sum(diffs) / 3)
    assert result["seeds"]["se"] == pytest.approx(result["seeds"]["sd"] / 3 ** 0.5)
    assert result["bootstrap"]["tweets"] == 3 * 723  # every seed's tweets, pooled
    table = format_comparison(result)
    assert "seed-2" in table and "over 3 seeds: B - A" in table and "B almost stochastically dominates A" in table


def test_results_of_different_test_files_are_refused(test_split, tmp_path, twitter_data):
    path, tweets = test_split
    a = write_run(tmp_path / "a", tweets, noisy(tweets, 0.8, 1), sha256_of(path))
    b = write_run(tmp_path / "b", tweets, noisy(tweets, 0.8, 2), sha256_of(twitter_data / "twitter2017" / "valid.txt"))
    with pytest.raises(NotComparable, match="different test files"):
        compare(a, b)
    result = CliRunner().invoke(main, ["compare", str(a), str(b)])
    assert result.exit_code == 2 and "error: the results are of different test files" in result.output
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotComparable, match="neither a scored run folder"):
        read_result(tmp_path / "empty")


def test_the_command_prints_a_table_or_json(test_split, tmp_path):
    path, tweets = test_split
    a = write_run(tmp_path / "a", tweets, noisy(tweets, 0.7, 1), sha256_of(path))
    b = write_run(tmp_path / "b", tweets, noisy(tweets, 0.9, 2), sha256_of(path))
    result = CliRunner().invoke(main, ["compare", str(a), str(b), "--resamples", "500", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["bootstrap"]["resamples"] == 500 and data["test_sha256"] == sha256_of(path)
    table = CliRunner().invoke(main, ["compare", str(a), str(b), "--resamples", "500"]).output
    assert "B - A: +" in table and "paired bootstrap over 723 tweets" in table
