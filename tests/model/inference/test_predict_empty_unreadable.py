"""Issue 22, items 4, 5 and 6 for `comipn-train predict`: an empty input or an --images-dir without the
input's images is an error (exit 2, named); unreadable images and crops are marked as not used; decoding
and JSON errors name file:line, and all input errors come before any model loads."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from comipn_prep.conll import read_conll, write_conll
from comipn_prep.layout import crop_name
from comipn_model.cli import main
from comipn_model.inference.tagger import Tagger


@pytest.fixture(scope="module")
def models(tmp_path_factory, text_and_image_checkpoints):
    return text_and_image_checkpoints(tmp_path_factory.mktemp("predict-empty"))


@pytest.fixture()
def no_model(monkeypatch):
    """Any model load fails the test: input errors must come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(Tagger, "from_pretrained", refuse)


def predict(*args) -> object:
    return CliRunner().invoke(main, ["predict", "--device", "cpu", *[str(a) for a in args]])


def error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


# -- item 6: decoding and JSON errors name file:line, before any model loads ---------------------------
@pytest.mark.parametrize("name, content, message", [
    ("latin1.txt", "hello there\ncaf\u00e9 in Paris\n".encode("latin-1"), "latin1.txt:2: not UTF-8 (byte 0xe9)"),
    ("latin1.jsonl", '{"text": "a"}\n{"text": "caf\u00e9"}\n'.encode("latin-1"), "latin1.jsonl:2: not UTF-8"),
    ("bad.jsonl", b'{"text": "a"}\n{"text": \n', "bad.jsonl:2: not valid JSON"),
    ("fields.jsonl", b'{"text": "a"}\n\n{"txt": "b"}\n', "fields.jsonl:3: give exactly one of"),
])
def test_bad_input_is_named_by_line_before_any_model_loads(tmp_path, no_model, name, content, message):
    src = tmp_path / name
    src.write_bytes(content)
    result = predict("--load-path", tmp_path / "no-such-run" / "best.pt", "--input", src,
                     "--out", tmp_path / "o.jsonl")
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert message in line and "no-such-run" not in line
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize("dict_content, message", [(None, "no such aux dict"),
                                                    ({"1.jpg": "not a list"}, "not a list of strings")])
def test_a_missing_or_malformed_aux_dict_is_named_before_any_model_loads(tmp_path, no_model, dict_content,
                                                                          message, sample_root):
    """--aux-dict naming no file used to tag without any crop, silently; a bad one was named only after
    the model had loaded."""
    aux = tmp_path / "test_dict.pth"
    if dict_content is not None:
        torch.save(dict_content, aux)
    result = predict("--load-path", tmp_path / "no-such-run", "--input", sample_root / "sample" / "test.txt",
                     "--aux-dict", aux, "--out", tmp_path / "o.txt")
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert str(aux) in line and message in line
    assert not (tmp_path / "o.txt").exists()


# -- item 4: empty is an error --------------------------------------------------------------------------
@pytest.mark.parametrize("name, content, fmt", [("empty.txt", "", "auto"), ("blank.txt", "\n  \n\n", "auto"),
                                                ("empty.jsonl", "\n", "auto"), ("empty.conll", "", "conll")])
def test_an_empty_input_exits_2_before_any_model_loads(tmp_path, no_model, name, content, fmt):
    src = tmp_path / name
    src.write_text(content)
    result = predict("--load-path", tmp_path / "no-such-run", "--input", src, "--input-format", fmt,
                     "--out", tmp_path / "o.txt")
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert f"{src}:" in line and "holds no tweet" in line and "--allow-empty" in line
    assert not (tmp_path / "o.txt").exists()


def test_allow_empty_writes_an_empty_output(models, tmp_path):
    src = tmp_path / "shard.txt"
    src.write_text("")
    result = predict("--load-path", models["text"], "--input", src, "--out", tmp_path / "o.jsonl", "--allow-empty")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o.jsonl").read_text() == ""


def test_an_images_dir_without_the_inputs_images_exits_2(models, tmp_path, sample_root):
    tweets = read_conll(sample_root / "sample" / "test.txt").tweets[:4]
    conll = tmp_path / "test.txt"
    write_conll(conll, tweets)
    images = tmp_path / "images"
    images.mkdir()
    args = ["--load-path", models["all"], "--input", conll, "--images-dir", images,
            "--feature-cache", tmp_path / "fc", "--out", tmp_path / "o.jsonl"]
    result = predict(*args)
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert f"{conll}: only 0 of 4 tweet images are on disk in {images}" in line and "--allow-missing-images" in line
    assert not (tmp_path / "o.jsonl").exists()
    allowed = predict(*args, "--allow-missing-images")
    assert allowed.exit_code == 0, allowed.output
    rows = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r["image_used"] for r in rows] == [False] * 4
    assert all(r["reason"] == f"missing: {t.imgid}.jpg not in {images}" for r, t in zip(rows, tweets))


# -- item 5: unreadable images and crops are marked as not used ------------------------------------------
def test_unreadable_image_and_crop_are_marked_not_used(models, tmp_path, picture, sample_root):
    tweets = read_conll(sample_root / "sample" / "test.txt").tweets[:3]
    conll = tmp_path / "test.txt"
    write_conll(conll, tweets)
    images, crops = tmp_path / "images", tmp_path / "crops"
    aux = {}
    for i, t in enumerate(tweets):
        picture(images / f"{t.imgid}.jpg", seed=i)
        aux[t.image_name] = [crop_name(t.imgid, k) for k in range(2)]
        for k, name in enumerate(aux[t.image_name]):
            picture(crops / name, seed=100 + 10 * i + k, size=(96, 64))
    torch.save(aux, tmp_path / "dict.pth")
    bad_image = images / f"{tweets[0].imgid}.jpg"
    bad_crop = crops / aux[tweets[1].image_name][0]
    bad_image.write_bytes(b"not a jpeg")
    bad_crop.write_bytes(b"not a png either")
    args = ["--load-path", models["all"], "--input", conll, "--images-dir", images, "--aux-dict",
            tmp_path / "dict.pth", "--crops-dir", crops, "--feature-cache", tmp_path / "fc"]
    result = predict(*args, "--out", tmp_path / "o.jsonl")
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r["image_used"] for r in rows] == [False, True, True]
    assert rows[0]["reason"].startswith("unreadable: unreadable: ") and "reason" not in rows[1]
    assert [[c["used"] for c in r["crops"]] for r in rows] == [[True, True], [False, True], [True, True]]
    assert rows[1]["crops"][0]["file"] == str(bad_crop) and rows[1]["crops"][0]["reason"].startswith("unreadable")
    # CoNLL output has no room for the marks: one warning per unreadable file, and the count at the end
    result = predict(*args, "--out", tmp_path / "o.txt")
    assert result.exit_code == 0, result.output
    for bad in (bad_image, bad_crop):
        assert result.output.count(f"{bad}: unreadable") == 1, result.output
    assert "2 unreadable image or crop files masked (not used)" in result.output
