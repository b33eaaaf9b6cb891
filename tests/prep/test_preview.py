"""preview: the contact sheet draws each kept box (made-up manifest, images drawn here)."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner
from PIL import Image

from comipn_prep.cli import main
from comipn_prep.grounding.manifest import rows_to_frame, write_manifest
from comipn_prep.preview import COLOURS, contact_sheet


def _setup(tmp_path, n_images=3):
    img = tmp_path / "img"
    img.mkdir()
    rows = []
    for k in range(n_images):
        Image.new("RGB", (200, 100), (128, 128, 128)).save(img / f"{k}.jpg")
        rows.append({"imgid": str(k), "status": "ok", "crop_file": f"{k}_pred_yolo_crop_0.png", "rank": 0,
                     "x1": 20, "y1": 30, "x2": 120, "y2": 90, "phrase": "Kevin Durant", "clip_score": 0.31,
                     "det_score": 0.5})
    rows.append({"imgid": "gone", "status": "missing"})
    (tmp_path / "aux" / "train").mkdir(parents=True)
    write_manifest(tmp_path / "aux" / "train" / "manifest.csv", rows_to_frame(rows))
    return img


def test_sheet_has_one_tile_per_image_and_the_box(tmp_path):
    img = _setup(tmp_path)
    sheet = contact_sheet(tmp_path / "aux", img, "train", n=16, cell=200)
    # 3 tiles -> 2 columns x 2 rows of 200 x (200 + caption)
    assert sheet.size == (400, 2 * 214)
    a = np.asarray(sheet).astype(int)
    # Tile 0: image scaled 1.0, centred vertically (offset 50) under a 14-px caption; box left edge at x=20.
    y_mid = 14 + 50 + 60
    assert tuple(a[y_mid, 20]) == COLOURS[0]
    assert tuple(a[y_mid, 60]) == (128, 128, 128)  # inside the box: the picture
    assert (np.abs(a[14 + 50 + 31:14 + 50 + 43, 22:120] - np.array(COLOURS[0])).sum(-1) == 0).any()  # label bg


def test_n_limits_tiles(tmp_path):
    img = _setup(tmp_path, 5)
    assert contact_sheet(tmp_path / "aux", img, "train", n=1, cell=64).size == (64, 78)


def test_cli_preview_writes_and_refuses_overwrite(tmp_path):
    img = _setup(tmp_path)
    out = tmp_path / "sheet.png"
    args = ["preview", str(tmp_path / "aux"), "--images", str(img), "--split", "train", "--n", "2", "--out", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and Image.open(out).size[0] > 0
    before = out.read_bytes()
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and "--force" in r.output and out.read_bytes() == before
    assert CliRunner().invoke(main, args + ["--force"]).exit_code == 0


def test_no_manifest_exits_2(tmp_path):
    r = CliRunner().invoke(main, ["preview", str(tmp_path), "--images", str(tmp_path), "--out",
                                  str(tmp_path / "s.png")])
    assert r.exit_code == 2 and "manifest" in r.output


def test_entity_regions_are_drawn_from_predict_jsonl(tmp_path):
    import json

    img = tmp_path / "img"
    img.mkdir()
    Image.new("RGB", (200, 100), (128, 128, 128)).save(img / "t1.jpg")
    Image.new("RGB", (200, 100), (128, 128, 128)).save(img / "t3.jpg")
    rows = [{"id": "t1", "imgid": "t1", "text": "Kevin Durant in Oakland", "entities": [
                {"entity_group": "PER", "word": "Kevin Durant", "box": [20, 30, 120, 90], "box_score": 0.8},
                {"entity_group": "LOC", "word": "Oakland", "box": None, "box_score": 0.1}]},
            {"id": "t2", "imgid": "t2", "text": "no region", "entities": [{"entity_group": "PER", "box": None}]},
            {"id": "t3", "imgid": "t3", "text": "x", "entities": [
                {"entity_group": "ORG", "word": "x", "box": [0, 0, 10, 10], "box_score": 0.5}]}]
    pred = tmp_path / "pred.jsonl"
    pred.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "entities.png"
    r = CliRunner().invoke(main, ["preview", "--entities", str(pred), "--images", str(img), "--cell", "200",
                                  "--out", str(out)])
    assert r.exit_code == 0, r.output
    a = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert a.shape[:2] == (214, 400)  # two tweets with a region: t1 and t3
    assert tuple(a[14 + 50 + 60, 20]) == COLOURS[0] and tuple(a[14 + 50 + 60, 60]) == (128, 128, 128)
    r = CliRunner().invoke(main, ["preview", str(tmp_path), "--entities", str(pred), "--out", str(out)])
    assert r.exit_code == 2 and "one of them" in r.output
