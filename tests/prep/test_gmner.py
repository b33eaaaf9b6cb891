"""Twitter-GMNER gold (comipn_prep.gmner): boxes matched to entities by text (white space and case aside),
several boxes per entity, "none" for an entity without one, names matching no entity kept aside; both the
release's folder shape and the imported one."""

from __future__ import annotations

import shutil

import pytest

from comipn_prep.gmner import GroundedEntity, gmner_paths, read_gmner_split

TWEETS = {"dev": [
    ("16_05_01_6", [("St", "B-LOC"), (".", "I-LOC"), ("Petersberg", "I-LOC"), ("by", "O"), ("Gordeev", "B-PER")],
     [("St. Petersberg", (0, 0, 50, 50)), ("GORDEEV", (10, 10, 20, 20)), ("Gordeev", (30, 30, 40, 40)),
      ("Putin", (1, 1, 2, 2))]),
    ("O_2371", [("Donald", "B-PER"), ("Trump", "I-PER"), ("slams", "O"), ("Donald", "B-PER"), ("Trump", "I-PER")],
     [("Donald Trump", (5, 5, 9, 9))]),
    ("1000046", [("Bieber", "B-OTHER"), ("sings", "O")], None),  # no XML: every entity none
]}


def test_boxes_go_to_the_entities_whose_text_they_name(tmp_path, make_gmner_folder):
    folder = make_gmner_folder(tmp_path / "Twitter10000", TWEETS)
    gold = read_gmner_split(folder, "valid")
    assert gold.text_path == folder / "txt" / "dev.txt" and list(gold.tweets) == ["16_05_01_6", "O_2371", "1000046"]
    assert gold.tweets["16_05_01_6"].entities == [
        GroundedEntity("LOC", 0, 3, "St . Petersberg", ((0, 0, 50, 50),)),
        GroundedEntity("PER", 4, 5, "Gordeev", ((10, 10, 20, 20), (30, 30, 40, 40)))]
    # the same text twice: both take the box
    assert [e.boxes for e in gold.tweets["O_2371"].entities] == [((5, 5, 9, 9),)] * 2
    assert gold.tweets["1000046"].entities == [GroundedEntity("MISC", 0, 1, "Bieber")] and gold.without_xml == 1
    assert len(gold.unmatched) == 1 and "'Putin' names no entity of IMGID:16_05_01_6" in gold.unmatched[0]


def test_the_imported_shape_reads_the_same(tmp_path, make_gmner_folder):
    release = make_gmner_folder(tmp_path / "release", TWEETS)
    ours = tmp_path / "root" / "gmner"
    shutil.copytree(release / "xml", ours / "xml")
    shutil.copyfile(release / "txt" / "dev.txt", ours / "valid.txt")
    assert gmner_paths(ours, "dev") == (ours / "valid.txt", ours / "xml")
    assert read_gmner_split(ours, "valid").tweets == read_gmner_split(release, "dev").tweets


def test_a_folder_of_another_shape_is_named(tmp_path, make_gmner_folder):
    with pytest.raises(FileNotFoundError, match="not a GMNER-shaped folder"):
        gmner_paths(tmp_path, "test")
    folder = make_gmner_folder(tmp_path / "g", TWEETS)
    shutil.rmtree(folder / "xml")
    with pytest.raises(FileNotFoundError, match="no xml/ folder"):
        gmner_paths(folder, "dev")
