from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from comipn_prep.cli import main

README_TABLE = {  # data/README.md
    "twitter2015": {"train": (4000, 6166), "valid": (1000, 1541), "test": (3257, 5072)},
    "twitter2017": {"train": (3373, 6049), "valid": (723, 1324), "test": (723, 1351)},
}


def test_stats_json_matches_data_readme(twitter_data):
    for dataset, splits in README_TABLE.items():
        result = CliRunner().invoke(main, ["stats", str(twitter_data / dataset), "--json"])
        assert result.exit_code == 0, result.output
        stats = json.loads(result.output)
        for split, (tweets, entities) in splits.items():
            assert stats[split]["tweets"] == tweets
            assert sum(stats[split]["entities"].values()) == entities
            assert stats[split]["image_ids"] == tweets
            assert stats[split]["images_on_disk"] is None  # data/ ships no images: nothing to count
    stats15 = json.loads(CliRunner().invoke(main, ["stats", str(twitter_data / "twitter2015"), "--json"]).output)
    assert stats15["train"]["entities"] == {"PER": 2217, "LOC": 2091, "ORG": 927, "MISC": 931}


def test_stats_table(twitter_data):
    result = CliRunner().invoke(main, ["stats", str(twitter_data / "twitter2017")])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["split", "tweets", "tokens", "image_ids", "on_disk", "PER", "LOC", "ORG", "MISC",
                                "entities"]
    train = lines[1].split()
    assert train[0] == "train" and train[1] == "3373" and train[3] == "3373" and train[4] == "-"
    assert train[-1] == "6049"


def test_images_on_disk_are_counted_apart_from_the_ids_in_the_text(tmp_path, twitter_data):
    from comipn_prep.conll import read_conll, write_conll

    text = tmp_path / "tw"
    text.mkdir()
    for split in ("train", "valid", "test"):
        write_conll(text / f"{split}.txt", read_conll(twitter_data / "twitter2017" / f"{split}.txt").tweets[:5])
    (tmp_path / "tw_images").mkdir()
    for tweet in read_conll(text / "train.txt").tweets[:2]:
        (tmp_path / "tw_images" / f"{tweet.imgid}.jpg").write_bytes(b"x")
    stats = json.loads(CliRunner().invoke(main, ["stats", str(text), "--json"]).output)
    assert (stats["train"]["image_ids"], stats["train"]["images_on_disk"]) == (5, 2)
    assert (stats["test"]["image_ids"], stats["test"]["images_on_disk"]) == (5, 0)
    other = tmp_path / "elsewhere"
    other.mkdir()
    stats = json.loads(CliRunner().invoke(main, ["stats", str(text), "--images", str(other), "--json"]).output)
    assert stats["train"]["images_on_disk"] == 0
    table = CliRunner().invoke(main, ["stats", str(text)]).output.splitlines()
    assert table[1].split()[3:5] == ["5", "2"]


def test_bad_file_exits_2_with_path_and_line(tmp_path):
    for split in ("train", "valid", "test"):
        (tmp_path / f"{split}.txt").write_text("IMGID:1\nok\tO\n")
    (tmp_path / "valid.txt").write_text("IMGID:1\nok\tO\nbad line\n")
    result = CliRunner().invoke(main, ["stats", str(tmp_path)])
    assert result.exit_code == 2
    assert f"{tmp_path / 'valid.txt'}:3: expected 'token<TAB>label'" in result.output


def test_missing_split_exits_2(tmp_path):
    result = CliRunner().invoke(main, ["stats", str(tmp_path)])
    assert result.exit_code == 2 and "missing train.txt" in result.output


def test_console_scripts_installed():
    bindir = Path(sys.executable).parent
    for script in ("comipn-prep", "comipn-train"):
        proc = subprocess.run([str(bindir / script), "--help"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert "Usage:" in proc.stdout
