"""Issue 22, items 4 and 5 on the prep side: a split without tweets is an error (exit 2, naming the file)
for every comipn-prep command that reads it; an image once unreadable is tried again by a resumed run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from comipn_prep.cli import main
from comipn_prep.conll import read_conll, write_conll
from comipn_prep.grounding.driver import GroundConfig, Grounder, ground_split
from comipn_prep.grounding.nps_input import read_ground_items
from comipn_prep.grounding.manifest import read_split_manifests
from comipn_prep.layout import DatasetLayout

RANDOM = ["--detector", "yolov8n.yaml", "--clip-pretrained", "none", "--conf", "0", "--device", "cpu"]
# The smallest models and one candidate box: fast enough for a test.
SMALL = [*RANDOM, "--clip-model", "ViT-S-32", "--top-k", "1", "--max-candidates", "1"]


@pytest.fixture()
def sample(tmp_path, sample_root):
    root = tmp_path / "root"
    shutil.copytree(sample_root, root, ignore=shutil.ignore_patterns("*.py", "NOTICE"))
    return root


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _two_test_tweets(root: Path) -> DatasetLayout:
    """The sample with a test split of two tweets (grounding them is quick)."""
    lay = DatasetLayout(root, "sample")
    write_conll(lay.text_path("test"), read_conll(lay.text_path("test")).tweets[:2])
    return lay


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
    manifest says ok, with no row of the old status left (no duplicate). One grounder for every run."""
    lay = _two_test_tweets(sample)
    imgid = read_conll(lay.text_path("test")).tweets[0].imgid
    image = lay.images_dir / f"{imgid}.jpg"
    good = image.read_bytes()
    image.write_bytes(b"not a jpeg")
    nps, aux = tmp_path / "nps", tmp_path / "aux"
    assert _invoke("extract-nps", lay.text_dir, "--out", nps, "--split", "test", "--backend", "textblob").exit_code == 0
    items = read_ground_items(nps / "test.nps.jsonl")
    grounder = Grounder.from_config(GroundConfig(detector="yolov8n.yaml", clip_model="ViT-S-32", clip_pretrained=None,
                                                 conf=0, top_k=1, max_candidates=1, device="cpu"))

    def run():
        summary = ground_split(grounder, items, lay.images_dir, aux, "test", progress=False)
        return summary, read_split_manifests(aux / "test")

    first, rows = run()
    assert first.processed == 2 and first.statuses["unreadable"] == 1
    assert set(rows.loc[rows["imgid"] == imgid, "status"]) == {"unreadable"}
    again, rows = run()  # still unreadable: tried again, still one row, still counted
    assert (again.processed, again.skipped, again.statuses["unreadable"]) == (1, 1, 1)
    assert (rows["imgid"] == imgid).sum() == 1
    image.write_bytes(good)  # fixed
    fixed, rows = run()
    assert (fixed.processed, fixed.statuses["unreadable"], fixed.statuses["ok"]) == (1, 0, 2)
    mine = rows[rows["imgid"] == imgid]
    assert set(mine["status"]) == {"ok"} and len(mine) == 1 and mine["crop_file"].iloc[0]
    assert not rows.duplicated(["imgid", "crop_file"]).any()
    assert run()[0].processed == 0  # done now: not tried again


def test_a_run_over_a_still_unreadable_image_stays_a_no_op(sample):
    """Retrying an unreadable image must not make a rerun refuse its own, unchanged dict."""
    lay = _two_test_tweets(sample)
    imgid = read_conll(lay.text_path("test")).tweets[0].imgid
    image = lay.images_dir / f"{imgid}.jpg"
    good = image.read_bytes()
    image.write_bytes(b"not a jpeg")
    args = ["run", sample, "--dataset", "sample", "--split", "test", *SMALL]
    r = _invoke(*args)
    assert r.exit_code == 0 and "unreadable 1" in r.output, r.output
    before = torch.load(lay.dict_path("test"), weights_only=True)
    again = _invoke(*args)
    assert again.exit_code == 0, again.output
    assert "unreadable 1" in again.output and torch.load(lay.dict_path("test"), weights_only=True) == before
    # fixed: the image now opens, so the dict would change -- refused as for any new image, nothing written
    image.write_bytes(good)
    fixed = _invoke(*args)
    assert fixed.exit_code == 2 and "--force" in fixed.output, fixed.output
    assert torch.load(lay.dict_path("test"), weights_only=True) == before
