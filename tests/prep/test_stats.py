"""comipn_prep.stats: counts per split (the `comipn-prep stats` command is tested in tests/prep/cli/)."""

from __future__ import annotations

import pytest

from comipn_prep.conll import ENTITY_TYPES, Tweet, write_conll
from comipn_prep.stats import dataset_stats, format_stats_table

TWEETS = [Tweet("1", ["Ann", "Lee", "in", "Rome"], ["B-PER", "I-PER", "O", "B-LOC"]),
          Tweet("2", ["the", "UN", "rocks"], ["O", "I-ORG", "O"]),  # an orphan I- starts no counted entity
          Tweet("3", ["again", "Rome"], ["O", "B-LOC"])]


def _dataset(base):
    text = base / "tw"
    for split in ("train", "valid", "test"):
        write_conll(text / f"{split}.txt", TWEETS if split == "train" else TWEETS[:1])
    return text


def test_counts_per_split_and_images_looked_up_beside_the_text(tmp_path):
    text = _dataset(tmp_path)
    train = dataset_stats(text)["train"]
    sha, known, warnings = train.pop("sha256"), train.pop("known_as"), train.pop("warnings")
    assert train == {"tweets": 3, "tokens": 9, "image_ids": 3, "images_on_disk": None,
                     "entities": {"PER": 1, "LOC": 2, "ORG": 0, "MISC": 0}}
    assert len(sha) == 64 and known is None and warnings == []  # the splits' warnings are test's
    (tmp_path / "tw_images").mkdir()  # the field's <name>_images beside the text folder
    (tmp_path / "tw_images" / "2.png").write_bytes(b"x")  # any image suffix counts
    assert dataset_stats(text)["train"]["images_on_disk"] == 1
    assert dataset_stats(text, tmp_path / "nowhere")["train"]["images_on_disk"] == 0


def test_table_has_a_row_per_split_and_a_dash_when_no_image_folder_was_looked_at(tmp_path):
    table = format_stats_table(dataset_stats(_dataset(tmp_path))).splitlines()
    assert table[0].split() == ["split", "tweets", "tokens", "image_ids", "on_disk", *ENTITY_TYPES, "entities"]
    assert [row.split() for row in table[1:4]] == [["train", "3", "9", "3", "-", "1", "2", "0", "0", "3"],
                                                  ["valid", "1", "4", "1", "-", "1", "1", "0", "0", "2"],
                                                  ["test", "1", "4", "1", "-", "1", "1", "0", "0", "2"]]
    assert [row.split()[:2] for row in table[4:]] == [["train.txt", "sha256"], ["valid.txt", "sha256"],
                                                      ["test.txt", "sha256"]]
    assert table[4].endswith("not a version comipn knows")


def test_a_missing_or_empty_split_is_refused(tmp_path):
    text = _dataset(tmp_path)
    (text / "valid.txt").write_text("")
    with pytest.raises(ValueError, match="valid.txt: the split holds no tweet"):
        dataset_stats(text)
    (text / "test.txt").unlink()
    with pytest.raises(FileNotFoundError, match="missing test.txt"):
        dataset_stats(text)
