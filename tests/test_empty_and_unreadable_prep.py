"""Issue 22, items 4 and 5 on the prep side: a split without tweets is an error (exit 2, naming the file)
for every comipn-prep command that reads it; an image once unreadable is tried again by a resumed run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from comipn_prep.cli import main
from comipn_prep.conll import read_conll
from comipn_prep.grounding.manifest import read_split_manifests
from comipn_prep.layout import DatasetLayout

SAMPLE_ROOT = Path(__file__).resolve().parents[1] / "data" / "sample"
RANDOM = ["--detector", "yolov8n.yaml", "--clip-pretrained", "none", "--conf", "0", "--device", "cpu"]


@pytest.fixture()
def sample(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(SAMPLE_ROOT, root, ignore=shutil.ignore_patterns("*.py", "NOTICE"))
    return root


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("command", ["extract-nps", "stats", "run", "verify"])
def test_an_empty_split_exits_2_naming_the_file(sample, tmp_path, command):
    empty = sample / "sample" / "valid.txt"
    empty.write_text("")
    args = {"extract-nps": ["extract-nps", sample / "sample", "--out", tmp_path / "nps", "--backend", "textblob"],
            "stats": ["stats", sample / "sample"],
            "run": ["run", sample, "--dataset", "sample", *RANDOM],
            "verify": ["verify", sample, "--dataset", "sample"]}[command]
    r = _invoke(*args)
    assert r.exit_code == 2, r.output
    assert f"{empty}: the split holds no tweet" in r.output
    if command == "extract-nps":
        assert not (tmp_path / "nps" / "train.nps.jsonl").exists()  # refused before any split was written
    if command == "run":
        assert not (sample / "sample_aux_images").exists()  # nothing written


def test_ground_on_an_empty_noun_phrase_file_exits_2(sample, tmp_path):
    nps = tmp_path / "nps"
    nps.mkdir()
    (nps / "test.nps.jsonl").write_text("")
    r = _invoke("ground", "--nps", nps, "--images", sample / "sample_images", "--out", tmp_path / "aux",
                "--split", "test", *RANDOM)
    assert r.exit_code == 2, r.output
    assert f"{nps / 'test.nps.jsonl'}: the noun-phrase file holds no tweet" in r.output
    assert not (tmp_path / "aux").exists()


def test_a_resumed_ground_tries_an_unreadable_image_again(sample, tmp_path):
    """Corrupt image -> manifest says unreadable; the image fixed -> the next run grounds it, and the
    manifest says ok, with no row of the old status left (no duplicate)."""
    lay = DatasetLayout(sample, "sample")
    imgid = read_conll(lay.text_path("test")).tweets[0].imgid
    image = lay.images_dir / f"{imgid}.jpg"
    good = image.read_bytes()
    image.write_bytes(b"not a jpeg")
    nps, aux = tmp_path / "nps", tmp_path / "aux"
    assert _invoke("extract-nps", lay.text_dir, "--out", nps, "--split", "test", "--backend", "textblob").exit_code == 0
    ground = ["ground", "--nps", nps, "--images", lay.images_dir, "--out", aux, "--split", "test", *RANDOM]
    first = _invoke(*ground)
    assert first.exit_code == 0, first.output
    rows = read_split_manifests(aux / "test")
    assert set(rows.loc[rows["imgid"] == imgid, "status"]) == {"unreadable"}
    assert "unreadable 1" in first.output
    # still unreadable: tried again, still one row, still counted
    again = _invoke(*ground)
    assert again.exit_code == 0 and "1 images grounded" in again.output and "unreadable 1" in again.output
    rows = read_split_manifests(aux / "test")
    assert (rows["imgid"] == imgid).sum() == 1
    image.write_bytes(good)  # fixed
    fixed = _invoke(*ground)
    assert fixed.exit_code == 0, fixed.output
    assert "1 images grounded" in fixed.output and "unreadable 0" in fixed.output
    rows = read_split_manifests(aux / "test")
    mine = rows[rows["imgid"] == imgid]
    assert set(mine["status"]) == {"ok"} and len(mine) == len(set(mine["crop_file"])) >= 1
    assert not rows.duplicated(["imgid", "crop_file"]).any()
    assert _invoke(*ground).output.count("0 images grounded") == 1  # done now: not tried again


def test_a_run_over_a_still_unreadable_image_stays_a_no_op(sample):
    """Retrying an unreadable image must not make a rerun refuse its own, unchanged dict."""
    lay = DatasetLayout(sample, "sample")
    imgid = read_conll(lay.text_path("test")).tweets[0].imgid
    (lay.images_dir / f"{imgid}.jpg").write_bytes(b"not a jpeg")
    args = ["run", sample, "--dataset", "sample", "--split", "test", *RANDOM]
    r = _invoke(*args)
    assert r.exit_code == 0 and "unreadable 1" in r.output, r.output
    before = torch.load(lay.dict_path("test"), weights_only=True)
    again = _invoke(*args)
    assert again.exit_code == 0, again.output
    assert "unreadable 1" in again.output and torch.load(lay.dict_path("test"), weights_only=True) == before
