"""build-dict: manifests (and shards) -> the field's aux dicts, loadable with weights_only=True."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from comipn_prep.aux_dicts import build_dicts, split_dict
from comipn_prep.cli import main
from comipn_prep.grounding.manifest import rows_to_frame, write_manifest
from comipn_prep.layout import crop_name


def _row(imgid, status="ok", rank=None):
    row = {"imgid": imgid, "status": status, "random_weights": True, "detector": "d", "clip_model": "c"}
    if rank is not None:
        row.update(crop_file=crop_name(imgid, rank), rank=rank, x1=0, y1=0, x2=2, y2=2, phrase="p",
                   clip_score=0.5 - rank / 10, det_score=0.1)
    return row


def _aux(tmp_path, split_folder, rows, manifest="manifest.csv"):
    crops = tmp_path / "aux" / split_folder / "crops"
    crops.mkdir(parents=True, exist_ok=True)
    for r in rows:
        if r.get("crop_file"):
            Image.new("RGB", (2, 2)).save(crops / r["crop_file"])
    write_manifest(tmp_path / "aux" / split_folder / manifest, rows_to_frame(rows))


def test_dict_from_manifest_in_rank_order(tmp_path):
    # Rows deliberately out of rank order; an imgid with a leading zero stays a string.
    _aux(tmp_path, "train", [_row("0042", rank=1), _row("0042", rank=0), _row("7", "no_boxes"),
                             _row("8", "missing"), _row("9", "unreadable"), _row("5", rank=0)])
    paths = build_dicts(tmp_path / "aux", "twitter2015", tmp_path / "text", ["train"])
    d = torch.load(paths["train"], weights_only=True)
    assert d == {"0042.jpg": ["0042_pred_yolo_crop_0.png", "0042_pred_yolo_crop_1.png"], "7.jpg": [],
                 "5.jpg": ["5_pred_yolo_crop_0.png"]}
    assert paths["train"].name == "twitter2015_train_dict.pth"
    assert json.loads(paths["train"].with_suffix(".json").read_text()) == d
    # A plain dict: even the strictest unpickler needs no class from us.
    with open(paths["train"], "rb") as fh:
        assert torch.load(fh, weights_only=True) == d
    assert b"comipn" not in paths["train"].read_bytes()


def test_val_split_name_and_refusal_without_force(tmp_path):
    _aux(tmp_path, "val", [_row("1", rank=0)])
    build_dicts(tmp_path / "aux", "twitter2017", tmp_path / "text", ["valid"])
    target = tmp_path / "text" / "twitter2017_val_dict.pth"
    before = target.read_bytes()
    _aux(tmp_path, "val", [_row("1", rank=0), _row("2", rank=0)])
    with pytest.raises(FileExistsError, match="--force"):
        build_dicts(tmp_path / "aux", "twitter2017", tmp_path / "text", ["valid"])
    assert target.read_bytes() == before
    build_dicts(tmp_path / "aux", "twitter2017", tmp_path / "text", ["valid"], force=True)
    assert set(torch.load(target, weights_only=True)) == {"1.jpg", "2.jpg"}


def test_identical_rebuild_is_a_no_op_when_asked(tmp_path):
    _aux(tmp_path, "test", [_row("1", rank=0)])
    build_dicts(tmp_path / "aux", "x", tmp_path / "text", ["test"])
    build_dicts(tmp_path / "aux", "x", tmp_path / "text", ["test"], skip_identical=True)
    _aux(tmp_path, "test", [_row("1", rank=0), _row("3", rank=0)])
    with pytest.raises(FileExistsError):
        build_dicts(tmp_path / "aux", "x", tmp_path / "text", ["test"], skip_identical=True)


def test_shard_manifests_merge_and_rerun_wins(tmp_path):
    _aux(tmp_path, "train", [_row("1", rank=0), _row("3", "no_boxes")], "manifest.shard-0-of-2.csv")
    _aux(tmp_path, "train", [_row("2", rank=0), _row("2", rank=1)], "manifest.shard-1-of-2.csv")
    d = split_dict(tmp_path / "aux" / "train")
    assert d == {"1.jpg": ["1_pred_yolo_crop_0.png"], "3.jpg": [],
                 "2.jpg": ["2_pred_yolo_crop_0.png", "2_pred_yolo_crop_1.png"]}


def test_listed_crop_missing_on_disk_is_left_out(tmp_path):
    _aux(tmp_path, "train", [_row("1", rank=0), _row("1", rank=1)])
    (tmp_path / "aux" / "train" / "crops" / "1_pred_yolo_crop_1.png").unlink()
    assert split_dict(tmp_path / "aux" / "train") == {"1.jpg": ["1_pred_yolo_crop_0.png"]}


def test_without_manifest_the_crop_names_serve(tmp_path):
    crops = tmp_path / "aux" / "train" / "crops"
    crops.mkdir(parents=True)
    for name in ("9_pred_yolo_crop_10.png", "9_pred_yolo_crop_2.png", "9_pred_yolo_crop_0.png", "notes.txt"):
        (crops / name).write_bytes(b"x")
    assert split_dict(tmp_path / "aux" / "train") == {
        "9.jpg": ["9_pred_yolo_crop_0.png", "9_pred_yolo_crop_2.png", "9_pred_yolo_crop_10.png"]}


def test_cli_build_dict_errors_exit_2(tmp_path):
    r = CliRunner().invoke(main, ["build-dict", "--aux", str(tmp_path / "nope"), "--dataset", "d", "--out",
                                  str(tmp_path / "t")])
    assert r.exit_code == 2 and "nope" in r.output
    (tmp_path / "aux").mkdir()
    r = CliRunner().invoke(main, ["build-dict", "--aux", str(tmp_path / "aux"), "--dataset", "d", "--out",
                                  str(tmp_path / "t"), "--split", "test"])
    assert r.exit_code == 2 and "test" in r.output
    _aux(tmp_path, "test", [_row("1", rank=0)])
    (tmp_path / "aux" / "test" / "manifest.csv").write_text("what,is,this\n1,2,3\n")
    r = CliRunner().invoke(main, ["build-dict", "--aux", str(tmp_path / "aux"), "--dataset", "d", "--out",
                                  str(tmp_path / "t"), "--split", "test"])
    assert r.exit_code == 2 and "manifest.csv" in r.output and "not a grounding manifest" in r.output

