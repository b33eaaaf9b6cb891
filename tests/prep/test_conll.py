from __future__ import annotations


import pytest

from comipn_prep.conll import (ConllFormatError, Tweet, entity_spans, format_conll, normalise_label,
                               parse_conll, read_conll, write_conll)
from comipn_prep.layout import DatasetLayout, canonical_split, crop_name, expand_splits

REAL_FILES = [f"{d}/{s}.txt" for d in ("twitter2015", "twitter2017") for s in ("train", "valid", "test")]


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_files_round_trip_byte_for_byte(twitter_data, tmp_path, name):
    src = twitter_data / name
    data = read_conll(src)
    out = tmp_path / "out.txt"
    write_conll(out, data)
    assert out.read_bytes() == src.read_bytes()


def test_real_file_facts(twitter_data):
    t15 = read_conll(twitter_data / "twitter2015/train.txt")
    assert len(t15) == 4000 and not t15.final_blank_line
    first = t15.tweets[0]
    assert first.imgid == "1015799" and first.line == 1
    assert first.tokens[8:10] == ["George", "Zimmerman"]
    assert first.labels[8:10] == ["B-PER", "I-PER"]
    # OTHER is read as MISC but written back as OTHER.
    other = next(t for t in t15 if "B-OTHER" in t.raw_labels)
    assert "B-MISC" in other.labels and "B-OTHER" not in other.labels
    t17 = read_conll(twitter_data / "twitter2017/train.txt")
    assert len(t17) == 3373 and t17.final_blank_line


def test_orphan_i_tags_are_kept_and_counted_as_entities(twitter_data):
    orphans = 0
    for split in ("train", "valid", "test"):
        for tweet in read_conll(twitter_data / f"twitter2015/{split}.txt"):
            prev = "O"
            for label in tweet.labels:
                if label.startswith("I-") and prev[2:] != label[2:]:
                    orphans += 1
                prev = label
    assert orphans == 186 + 53 + 135
    assert entity_spans(["O", "I-PER", "I-PER", "B-LOC", "I-ORG"]) == [("PER", 1, 3), ("LOC", 3, 4), ("ORG", 4, 5)]


def test_crlf_and_bom_are_accepted_and_kept(tmp_path):
    text = "\ufeffIMGID:1\r\nHello\tO\r\nParis\tB-LOC\r\n\r\nIMGID:2\r\nBob\tB-PER\r\n"
    data = parse_conll(text)
    assert [t.tokens for t in data] == [["Hello", "Paris"], ["Bob"]]
    assert data.newline == "\r\n" and data.bom and not data.final_blank_line
    assert format_conll(data.tweets, newline=data.newline, final_blank_line=False, bom=True) == text


def test_unlabelled_input_for_prediction():
    data = parse_conll("IMGID:9\nHello\nLondon\n", labeled=None)
    assert data.tweets[0].tokens == ["Hello", "London"] and data.tweets[0].labels is None
    assert format_conll(data.tweets) == "IMGID:9\nHello\nLondon\n\n"


@pytest.mark.parametrize("text,line,message", [
    ("IMGID:1\nHello O\n", 2, "no tab"),
    ("IMGID:1\nHello\tB-FOO\n", 2, "not BIO"),
    ("IMGID:1\nHello\tb-per\n", 2, "not BIO"),
    ("Hello\tO\nIMGID:1\nx\tO\n", 1, "before any IMGID"),
    ("IMGID:1\n\nIMGID:2\nx\tO\n", 1, "IMGID:1 has no tokens"),
    ("IMGID:1\nx\tO\n\nIMGID:1\ny\tO\n", 4, "duplicate IMGID 1 (first at line 1)"),
    ("IMGID:1\nx\tO\tO\n", 2, "one tab"),
    ("IMGID:1\nx\tO\nIMGID:2\n", 3, "IMGID:2 has no tokens"),
])
def test_bad_input_is_reported_with_path_and_line(text, line, message):
    with pytest.raises(ConllFormatError) as info:
        parse_conll(text, path="bad.txt")
    first = info.value.problems[0]
    assert (first.path, first.line) == ("bad.txt", line)
    assert message in first.message
    assert str(info.value).startswith(f"bad.txt:{line}: ")


def test_every_problem_is_listed():
    with pytest.raises(ConllFormatError) as info:
        parse_conll("IMGID:1\na\tX\nb\tY\n", path="f.txt")
    assert [p.line for p in info.value.problems] == [2, 3]


def test_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("IMGID:1\nok\tO\ncaf\xe9\tO\n".encode("latin-1"))
    with pytest.raises(ConllFormatError, match=r"latin1.txt:3: not UTF-8"):
        read_conll(path)


def test_tokens_are_never_stripped():
    data = parse_conll("IMGID:1\n\xa0\tO\n x \tO\n")
    assert data.tweets[0].tokens == ["\xa0", " x "]


def test_write_is_atomic_and_replaces(tmp_path):
    out = tmp_path / "a.txt"
    write_conll(out, [Tweet("1", ["a"], ["O"])])
    write_conll(out, [Tweet("2", ["b"], ["B-PER"])])
    assert out.read_text() == "IMGID:2\nb\tB-PER\n\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_labels_and_layout():
    assert normalise_label("I-OTHER") == "I-MISC" and normalise_label("O") == "O"
    layout = DatasetLayout("/d", "twitter2015")
    assert str(layout.text_path("val")) == "/d/twitter2015/valid.txt"
    assert str(layout.dict_path("valid")) == "/d/twitter2015/twitter2015_val_dict.pth"
    assert str(layout.crops_dir("valid")) == "/d/twitter2015_aux_images/val/crops"
    assert str(layout.images_dir) == "/d/twitter2015_images"
    assert crop_name("17", 2) == "17_pred_yolo_crop_2.png"
    assert canonical_split("dev") == "valid" and expand_splits("all") == ["train", "valid", "test"]
    with pytest.raises(ValueError, match="unknown split"):
        canonical_split("eval")


def test_image_lookup_order(tmp_path):
    layout = DatasetLayout(tmp_path, "ds")
    layout.images_dir.mkdir()
    assert layout.image_path("5") is None
    (layout.images_dir / "5.png").write_bytes(b"x")
    assert layout.image_path("5").name == "5.png"
    (layout.images_dir / "5.jpg").write_bytes(b"x")
    assert layout.image_path("5").name == "5.jpg"
