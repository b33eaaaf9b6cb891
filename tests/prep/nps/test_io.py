"""The .nps.jsonl format: round trip, atomic write, clear path:line errors."""

from __future__ import annotations

import json

import pytest

from comipn_prep.nps.io import NounPhrase, NPFormatError, TweetNPs, read_nps_jsonl, write_nps_jsonl


def _items():
    return [
        TweetNPs("1015799", ["Me", "and", "George", "Zimmerman", "😀"], [NounPhrase(2, 4, "George Zimmerman")]),
        TweetNPs("17_06_2932", ["#", "NBA", ":", "Kawhi", "Leonard"],
                 [NounPhrase(1, 2, "NBA"), NounPhrase(3, 5, "Kawhi Leonard")]),
        TweetNPs("empty", [], []),
    ]


def test_round_trip_keeps_everything(tmp_path):
    path = tmp_path / "train.nps.jsonl"
    write_nps_jsonl(path, _items())
    assert read_nps_jsonl(path) == _items()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    first = json.loads(lines[0])
    assert first == {"imgid": "1015799", "tokens": ["Me", "and", "George", "Zimmerman", "😀"],
                     "nps": [{"start": 2, "end": 4, "text": "George Zimmerman"}]}
    assert "😀" in lines[0]  # UTF-8, not \u escapes
    assert [p.name for p in tmp_path.iterdir()] == ["train.nps.jsonl"]  # no temp file left


def test_write_replaces_atomically(tmp_path):
    path = tmp_path / "x.nps.jsonl"
    write_nps_jsonl(path, _items())
    write_nps_jsonl(path, _items()[:1])
    assert len(read_nps_jsonl(path)) == 1


@pytest.mark.parametrize("line, message", [
    ("{not json", "not valid JSON"),
    ('["a list"]', "expected a JSON object"),
    ('{"imgid": "1", "tokens": ["a"]}', "missing key(s) nps"),
    ('{"imgid": 1, "tokens": ["a"], "nps": []}', "'imgid' must be a string"),
    ('{"imgid": "1", "tokens": ["a"], "nps": [{"start": 0, "end": 2, "text": "a b"}]}', "outside the tweet"),
    ('{"imgid": "1", "tokens": ["a", "b"], "nps": [{"start": 0, "end": 2, "text": "a b"}, '
     '{"start": 1, "end": 2, "text": "b"}]}', "overlaps"),
    ('{"imgid": "1", "tokens": ["a"], "nps": [{"start": 0, "end": 1}]}', "start, end and text"),
])
def test_bad_line_names_path_and_line(tmp_path, line, message):
    path = tmp_path / "bad.nps.jsonl"
    good = json.dumps(_items()[0].to_dict())
    path.write_text(good + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(NPFormatError) as err:
        read_nps_jsonl(path)
    assert f"{path}:2:" in str(err.value)
    assert message in str(err.value)
