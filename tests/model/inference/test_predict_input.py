"""comipn-train predict takes raw tweets: plain text (one per line), JSONL ({"text" | "tokens", "image"}) and
CoNLL as before; output keeps the input's order and ids; pictures are grounded on the fly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from comipn_prep.conll import read_conll, write_conll
from comipn_prep.layout import crop_name
from comipn_prep.nps.tokenize import tokenize_tweet
from comipn_model import Tagger
from comipn_model.cli import main
from comipn_model.inference.predict import detect_input_format


@pytest.fixture(scope="module")
def models(tmp_path_factory, text_and_image_checkpoints):
    return text_and_image_checkpoints(tmp_path_factory.mktemp("predict-input"))


def predict(*args: str):
    return CliRunner().invoke(main, ["predict", "--device", "cpu", *args])


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_plain_text_tweet(models, tmp_path):
    """Issue 12's row: a plain-text tweet failed with `raw.txt:1: token before any IMGID`."""
    raw = tmp_path / "raw.txt"
    raw.write_text("Elon Musk visits Paris today\n")
    result = predict("--load-path", str(models["text"]), "--input", str(raw), "--out", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 0, result.output
    (row,) = read_jsonl(tmp_path / "o.jsonl")
    assert row["id"] == "1" and row["tokens"] == ["Elon", "Musk", "visits", "Paris", "today"]
    assert len(row["tags"]) == 5
    tagger = Tagger.from_pretrained(models["text"], device="cpu")
    assert row["tags"] == tagger(["Elon Musk visits Paris today"])[0].tags


def test_plain_text_keeps_order_and_line_ids(models, tmp_path):
    lines = ["RT @jack : NASA's launch #SpaceX http://t.co/x", "", "Elon Musk visits Paris today", "   ", "hi"]
    raw = tmp_path / "tweets.txt"
    raw.write_text("\n".join(lines) + "\n")
    out = tmp_path / "tagged.txt"
    result = predict("--load-path", str(models["text"]), "--input", str(raw), "--out", str(out))
    assert result.exit_code == 0, result.output
    tagged = read_conll(out, labeled=True).tweets  # token, predicted tag
    assert [t.imgid for t in tagged] == ["1", "3", "5"]  # blank lines are skipped, line numbers kept
    assert [t.tokens for t in tagged] == [tokenize_tweet(lines[i]) for i in (0, 2, 4)]
    expected = Tagger.from_pretrained(models["text"], device="cpu")([lines[i] for i in (0, 2, 4)])
    assert [t.raw_labels for t in tagged] == [r.tags for r in expected]


def test_jsonl_text_and_tokens_rows(models, tmp_path):
    rows = [{"id": "a1", "text": "Elon Musk visits Paris today"}, {"tokens": ["NASA", "launches", "DSCOVR"]},
            {"id": 7, "text": "so happy", "image": "not/read/by/text-only.jpg"}]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    result = predict("--load-path", str(models["text"]), "--input", str(src), "--out", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 0, result.output
    out = read_jsonl(tmp_path / "o.jsonl")
    assert [r["id"] for r in out] == ["a1", "2", "7"]
    assert out[1]["tokens"] == ["NASA", "launches", "DSCOVR"] and "crops" not in out[0]
    expected = Tagger.from_pretrained(models["text"], device="cpu")(
        ["Elon Musk visits Paris today", ["NASA", "launches", "DSCOVR"], "so happy"])
    assert [r["tags"] for r in out] == [r.tags for r in expected]
    assert [r["entities"] for r in out] == [r.entities for r in expected]


@pytest.mark.parametrize("line, message", [
    ("{not json", "in.jsonl:2: not valid JSON"),
    ('["a list"]', "in.jsonl:2: each line must be a JSON object"),
    ('{"text": "a", "tokens": ["a"]}', 'in.jsonl:2: give exactly one of "text"'),
    ('{"tokens": "Elon Musk"}', 'in.jsonl:2: "tokens" must be a list of strings'),
    ('{"text": "hi", "image": "missing.jpg"}', "in.jsonl:2: image missing.jpg: no such file"),
])
def test_bad_jsonl_rows_exit_2(models, tmp_path, line, message):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "fine"}\n' + line + "\n")
    result = predict("--load-path", str(models["all"]), "--input", str(src), "--out", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_jsonl_pictures_are_grounded_on_the_fly(models, tmp_path, picture):
    pics = tmp_path / "pics"
    picture(pics / "one.jpg", seed=1)
    picture(pics / "two.jpg", seed=2)
    rows = [{"id": "t1", "text": "Elon Musk visits Paris today", "image": "one.jpg"},
            {"id": "t2", "text": "no picture here"},
            {"id": "t3", "text": "Falcon 9 lifts off from Cape Canaveral", "image": str(pics / "two.jpg")}]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "o.jsonl"
    result = predict("--load-path", str(models["all"]), "--input", str(src), "--images-dir", str(pics),
                     "--out", str(out))
    assert result.exit_code == 0, result.output
    tagged = read_jsonl(out)
    assert [r["id"] for r in tagged] == ["t1", "t2", "t3"]
    assert tagged[0]["image"] == str(pics / "one.jpg") and tagged[1]["image"] is None
    assert tagged[0]["crops"] and tagged[2]["crops"] and tagged[1]["crops"] == []
    assert all(set(c) >= {"box", "phrase", "clip_score", "det_score"} for c in tagged[0]["crops"])
    # the same as the Python API on the same tweets and pictures
    expected = Tagger.from_pretrained(models["all"], device="cpu")(
        [r["text"] for r in rows], images=[pics / "one.jpg", None, pics / "two.jpg"])
    assert [r["tags"] for r in tagged] == [r.tags for r in expected]
    assert [r["crops"] for r in tagged] == [r.crops for r in expected]
    # an image that cannot be decoded names its input line
    (pics / "two.jpg").write_bytes(b"garbage")
    result = predict("--load-path", str(models["all"]), "--input", str(src), "--images-dir", str(pics),
                     "--out", str(tmp_path / "o2.jsonl"))
    assert result.exit_code == 2 and "in.jsonl:3: image" in result.output and "unreadable" in result.output


def test_conll_with_prepared_crops_matches_the_tagger(models, tmp_path, picture, sample_root):
    """Prepared input as today (CoNLL + images + aux dict + crops): the grounder is never needed, and the
    tags are the Tagger's on the same files."""
    tweets = read_conll(sample_root / "sample" / "test.txt").tweets[:4]
    conll = tmp_path / "test.txt"
    write_conll(conll, tweets)
    images, crops = tmp_path / "images", tmp_path / "crops"
    aux = {}
    for i, t in enumerate(tweets[:3]):
        picture(images / f"{t.imgid}.jpg", seed=i)
        names = [crop_name(t.imgid, k) for k in range(i + 1)]
        for k, name in enumerate(names):
            picture(crops / name, seed=100 + 10 * i + k, size=(96, 64))
        aux[t.image_name] = names
    aux[tweets[1].image_name].append(crop_name(tweets[1].imgid, 7))  # listed but missing: masked
    torch.save(aux, tmp_path / "dict.pth")
    out = tmp_path / "o.jsonl"
    result = predict("--load-path", str(models["all"]), "--input", str(conll), "--images-dir", str(images),
                     "--aux-dict", str(tmp_path / "dict.pth"), "--crops-dir", str(crops),
                     "--feature-cache", str(tmp_path / "fc"), "--detector", "no/such/detector.pt", "--out", str(out))
    assert result.exit_code == 0, result.output
    tagged = read_jsonl(out)
    assert [r["imgid"] for r in tagged] == [t.imgid for t in tweets]
    assert [r["gold"] for r in tagged] == [t.labels for t in tweets]
    assert [len(r["crops"]) for r in tagged] == [1, 3, 3, 0]
    assert tagged[1]["crops"][2] == {"file": None, "used": False, "reason": "missing"}  # the missing crop's slot
    assert all(c["used"] for r in tagged for c in r["crops"] if c["file"] is not None)
    assert [r["image_used"] for r in tagged] == [True, True, True, False]
    assert tagged[3]["reason"].startswith(f"missing: {tweets[3].imgid}.jpg not in")
    expected = Tagger.from_pretrained(models["all"], device="cpu")(
        [t.tokens for t in tweets], images=[images / f"{t.imgid}.jpg" for t in tweets[:3]] + [None],
        crops=[[crops / n if (crops / n).is_file() else None for n in aux[t.image_name]][:3] for t in tweets[:3]]
        + [[]])
    assert [r["tags"] for r in tagged] == [r.tags for r in expected]


def test_input_format_detection(tmp_path):
    cases = {"a.jsonl": '{"text": "x"}\n', "b.txt": "\n\nIMGID:1\nword\tO\n", "c.txt": "Elon Musk\n",
             "d.conll": "word\tO\n", "e.txt": ""}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
    assert [detect_input_format(tmp_path / n) for n in cases] == ["jsonl", "conll", "text", "conll", "text"]


def test_jsonl_entities_have_offsets_scores_and_marginals(models, tmp_path):
    """Each entity's start/end index the row's "text" as written (``&amp;``, runs of spaces); scores on by
    default, --no-scores nulls them, --marginals adds per-token probabilities (JSONL only)."""
    texts = ["Tom &amp; Jerry  visit   NASA's HQ in New York", "  Elon Musk &gt; Paris  ", "so happy"]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    out = tmp_path / "o.jsonl"
    result = predict("--load-path", str(models["text"]), "--input", str(src), "--out", str(out), "--marginals")
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out)
    tagger = Tagger.from_pretrained(models["text"], device="cpu")
    expected = tagger(texts, marginals=True)
    assert [r["text"] for r in rows] == texts
    assert [r["entities"] for r in rows] == [r.entities for r in expected]
    assert [r["marginals"] for r in rows] == [r.marginals for r in expected]
    for row in rows:
        for e in row["entities"]:
            assert row["text"][e["start"]:e["end"]] == e["word"] and 0 < e["score"] <= 1
        assert all(sum(p.values()) == pytest.approx(1, abs=1e-6) for p in row["marginals"])
    result = predict("--load-path", str(models["text"]), "--input", str(src), "--out", str(out), "--force",
                     "--no-scores")
    assert result.exit_code == 0, result.output
    assert all(e["score"] is None and "marginals" not in r for r in read_jsonl(out) for e in r["entities"])
    result = predict("--load-path", str(models["text"]), "--input", str(src), "--out", str(tmp_path / "o.txt"),
                     "--marginals")
    assert result.exit_code == 2 and "--marginals needs JSONL output" in result.output
