"""comipn_prep.fingerprints: which files a result was computed on (sha256, the released version they
match) and the splits' warnings (valid or train the same file as test, or sharing its tweets)."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from click.testing import CliRunner

from comipn_prep.cli import main
from comipn_prep.conll import read_conll
from comipn_prep.fingerprints import KNOWN_FILES, describe_file, fingerprint, shared_share, split_warnings


@pytest.mark.parametrize("name", ["twitter2015/train.txt", "twitter2015/valid.txt", "twitter2015/test.txt",
                                  "twitter2017/train.txt", "twitter2017/valid.txt", "twitter2017/test.txt"])
def test_the_shipped_umt_files_are_recognised(twitter_data, name):
    info = describe_file(twitter_data / name)
    assert info["sha256"] == hashlib.sha256((twitter_data / name).read_bytes()).hexdigest()
    assert info["known_as"] == f"UMT original {name}"


def test_a_changed_file_is_no_known_version(twitter_data, tmp_path):
    changed = tmp_path / "test.txt"
    changed.write_bytes((twitter_data / "twitter2017" / "test.txt").read_bytes().replace(b"B-PER", b"B-ORG", 1))
    info = describe_file(changed)
    assert info["known_as"] is None and info["sha256"] not in KNOWN_FILES


def test_the_real_splits_raise_no_warning(twitter_data):
    for dataset in ("twitter2015", "twitter2017"):
        paths = {s: twitter_data / dataset / f"{s}.txt" for s in ("train", "valid", "test")}
        result = fingerprint(paths, tweets={s: read_conll(p).tweets for s, p in paths.items()})
        assert result["warnings"] == [], dataset


def test_a_test_file_that_is_a_copy_of_valid_is_named(twitter_data, tmp_path):
    for split in ("train", "valid"):
        shutil.copy(twitter_data / "twitter2017" / f"{split}.txt", tmp_path / f"{split}.txt")
    shutil.copy(twitter_data / "twitter2017" / "valid.txt", tmp_path / "test.txt")  # PGIM #15's mistake
    paths = {s: tmp_path / f"{s}.txt" for s in ("train", "valid", "test")}
    (warning,) = fingerprint(paths)["warnings"]
    assert warning.startswith("valid.txt and test.txt are the same file (sha256 41b5db90cb32")


def test_tweets_shared_between_splits_over_five_percent_are_named(twitter_data):
    valid = read_conll(twitter_data / "twitter2017" / "valid.txt").tweets
    test = read_conll(twitter_data / "twitter2017" / "test.txt").tweets
    files = {"valid": {"sha256": "a"}, "test": {"sha256": "b"}}
    leaky = test[:650] + valid[:73]  # 73 of 723 test tweets (10.1%) are dev tweets
    assert shared_share(valid, leaky) == pytest.approx(73 / 723)
    (warning,) = split_warnings(files, {"valid": valid, "test": leaky})
    assert warning == "10.1% of test.txt's tweets are also in valid.txt (over 5%): test is not held out"
    assert split_warnings(files, {"valid": valid, "test": test[:700] + valid[:23]}) == []  # 3.2%: under


def test_stats_names_each_file_and_warns_about_a_duplicated_split(twitter_data, tmp_path):
    for split in ("train", "valid"):
        shutil.copy(twitter_data / "twitter2017" / f"{split}.txt", tmp_path / f"{split}.txt")
    shutil.copy(twitter_data / "twitter2017" / "valid.txt", tmp_path / "test.txt")
    result = CliRunner().invoke(main, ["stats", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["train"]["known_as"] == "UMT original twitter2017/train.txt"
    assert stats["test"]["sha256"] == stats["valid"]["sha256"]
    assert stats["test"]["warnings"] == [w for w in stats["test"]["warnings"] if "same file" in w] != []
    assert "valid.txt and test.txt are the same file" in result.stderr
    table = CliRunner().invoke(main, ["stats", str(twitter_data / "twitter2015")]).stdout.splitlines()
    assert table[-1].split()[:2] == ["test.txt", "sha256"] and table[-1].endswith("UMT original twitter2015/test.txt")
