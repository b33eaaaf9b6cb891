"""HVPNeT's released layout is never damaged: every file is hashed before and after each command.

Without --replace-foreign, `run`, `ground` and `build-dict` refuse the released crops and dicts before
the first write (exit 2, one line naming the folder and the way out), even with --force; `run --out`
works in a folder of its own; missing images stop `run` (exit 2 with counts) unless allowed.
"""

from __future__ import annotations

import os

import pytest
import torch
from click.testing import CliRunner

from comipn_prep.cli import main
from comipn_prep.grounding.manifest import rows_to_frame, write_manifest
from comipn_prep.layout import DatasetLayout, crop_name
from comipn_prep.output_guard import claim_crop_folders, foreign_crops, is_comipn_dict

RANDOM = ["--detector", "yolov8n.yaml", "--clip-pretrained", "none", "--conf", "0", "--device", "cpu"]
NAME = "twitter2017"


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture()
def released(tmp_path, make_released_layout):
    return make_released_layout(tmp_path / "released", tweets_per_split=3)


@pytest.mark.parametrize("extra", [[], ["--force"]])
def test_run_on_released_layout_refuses_before_any_write(released, extra):
    before = released.snapshot()
    r = _invoke("run", released.data_root, "--dataset", NAME, *RANDOM, *extra)
    assert r.exit_code == 2, r.output
    line = _one_error_line(r)
    assert str(released.layout.crops_dir("train")) in line
    assert "--out DIR" in line and "--replace-foreign" in line
    assert released.snapshot() == before  # no byte changed, no file appeared (not even nps/ or manifests)


def test_run_refused_for_weights_writes_nothing_in_its_folder_either(released, tmp_path):
    before = released.snapshot()
    out = tmp_path / "work"
    r = _invoke("run", released.data_root, "--dataset", NAME, "--out", out, "--device", "cpu")  # no yolov8n.pt here
    assert r.exit_code == 2 and "--detector" in r.output
    assert released.snapshot() == before and not out.exists()


def test_run_refuses_released_dicts_even_without_crops(released):
    for split in ("train", "valid", "test"):
        for path in released.layout.crops_dir(split).iterdir():
            path.unlink()
    before = released.snapshot()
    r = _invoke("run", released.data_root, "--dataset", NAME, *RANDOM, "--force")
    assert r.exit_code == 2
    line = _one_error_line(r)
    assert "twitter2017_train_dict.pth: an aux dict comipn did not write" in line and "--replace-foreign" in line
    assert released.snapshot() == before


def test_run_in_its_own_folder_leaves_every_released_byte(released, tmp_path):
    before = released.snapshot()
    out = tmp_path / "work"
    r = _invoke("run", released.data_root, "--dataset", NAME, "--out", out, *RANDOM)
    assert r.exit_code == 0, r.output
    assert released.snapshot() == before
    mine = DatasetLayout(out, NAME)
    for split in ("train", "valid", "test"):
        d = torch.load(mine.dict_path(split), weights_only=True)
        assert set(d) == {f"{i}.jpg" for i in released.imgids(split)}
        assert mine.text_path(split).read_bytes() == released.layout.text_path(split).read_bytes()
    assert is_comipn_dict(mine.dict_path("train"))
    # The folder is a whole dataset root: verify reads it as it is; a rerun is a no-op.
    assert _invoke("verify", out, "--dataset", NAME).exit_code == 0
    again = _invoke("run", released.data_root, "--dataset", NAME, "--out", out, *RANDOM)
    assert again.exit_code == 0 and "0 images grounded" in again.output
    assert released.snapshot() == before


def test_replace_foreign_is_the_explicit_way_to_overwrite(released):
    r = _invoke("run", released.data_root, "--dataset", NAME, "--split", "test", *RANDOM, "--replace-foreign")
    assert r.exit_code == 0, r.output
    lay = released.layout
    d = torch.load(lay.dict_path("test"), weights_only=True)
    assert is_comipn_dict(lay.dict_path("test")) and all(len(v) <= 3 for v in d.values())
    # The other splits were not asked for: still the released ones.
    assert not is_comipn_dict(lay.dict_path("train"))


def test_ground_into_released_aux_folder_is_refused(released, tmp_path):
    nps = tmp_path / "nps"
    assert _invoke("extract-nps", released.layout.text_dir, "--out", nps, "--backend", "textblob").exit_code == 0
    before = released.snapshot()
    for extra in ([], ["--force"]):
        r = _invoke("ground", "--nps", nps, "--images", released.layout.images_dir, "--out",
                    released.layout.aux_dir, *RANDOM, *extra)
        assert r.exit_code == 2, r.output
        line = _one_error_line(r)
        assert str(released.layout.crops_dir("train")) in line and "--out AUX_DIR" in line
    assert released.snapshot() == before


def test_build_dict_never_replaces_released_dicts_without_the_flag(released, tmp_path):
    aux = tmp_path / "aux"
    rows = [{"imgid": i, "status": "no_boxes"} for i in released.imgids("valid")]
    (aux / "val" / "crops").mkdir(parents=True)
    write_manifest(aux / "val" / "manifest.csv", rows_to_frame(rows))
    before = released.snapshot()
    for extra in ([], ["--force"]):
        r = _invoke("build-dict", "--aux", aux, "--dataset", NAME, "--out", released.layout.text_dir,
                    "--split", "valid", *extra)
        assert r.exit_code == 2 and "--replace-foreign" in _one_error_line(r)
    assert released.snapshot() == before
    r = _invoke("build-dict", "--aux", aux, "--dataset", NAME, "--out", released.layout.text_dir, "--split",
                "valid", "--replace-foreign")
    assert r.exit_code == 0
    assert torch.load(released.layout.dict_path("valid"), weights_only=True) == {
        f"{i}.jpg": [] for i in released.imgids("valid")}


def test_verify_accepts_the_released_layout(released):
    r = _invoke("verify", released.data_root, "--dataset", NAME)
    assert r.exit_code == 0 and "consistent" in r.output


@pytest.mark.parametrize("missing,expected", [(3, "only 0 of 3"), (2, "only 1 of 3")])
def test_run_with_too_few_images_exits_2_and_runs_with_the_flag(tmp_path, make_released_layout, missing, expected):
    released = make_released_layout(tmp_path / "released", tweets_per_split=3, missing_images=missing)
    before = released.snapshot()
    out = tmp_path / "work"
    r = _invoke("run", released.data_root, "--dataset", NAME, "--out", out, "--split", "test", *RANDOM)
    assert r.exit_code == 2
    line = _one_error_line(r)
    assert expected in line and "missing e.g." in line and "--allow-missing-images" in line
    assert released.snapshot() == before and not out.exists()
    if missing == 3:  # the flag lets it run (the missing images get "missing" rows and no dict key)
        r = _invoke("run", released.data_root, "--dataset", NAME, "--out", out, "--split", "test", *RANDOM,
                    "--allow-missing-images")
        assert r.exit_code == 0, r.output
        assert "0 of 3 tweet images on disk" in r.output and "missing 3" in r.output
        assert released.snapshot() == before


def test_crops_of_a_killed_batch_are_comipns_own(tmp_path):
    split_dir = tmp_path / "aux" / "train"
    crops = split_dir / "crops"
    crops.mkdir(parents=True)
    (crops / crop_name("9", 0)).write_bytes(b"released")  # there before comipn came
    os.utime(crops / crop_name("9", 0), ns=(1, 1))
    assert [p.name for p in foreign_crops(split_dir)] == [crop_name("9", 0)]  # no marker: foreign
    claim_crop_folders([split_dir])  # what --replace-foreign (or an empty folder) leads to
    (crops / crop_name("5", 0)).write_bytes(b"x")  # then a kill before the batch's manifest rows
    assert [p.name for p in foreign_crops(split_dir)] == [crop_name("9", 0)]  # 5 is comipn's, 9 still not
    write_manifest(split_dir / "manifest.csv", rows_to_frame([{"imgid": "5", "status": "no_boxes"}]))
    assert [p.name for p in foreign_crops(split_dir)] == [crop_name("5", 0), crop_name("9", 0)]  # 5 done
    (crops / ".x.png.tmp-1").write_bytes(b"")  # an interrupted atomic write is ignored
    assert len(foreign_crops(split_dir)) == 2


def test_ground_with_too_few_images_exits_2_and_runs_with_the_flag(released, tmp_path):
    nps = tmp_path / "nps"
    assert _invoke("extract-nps", released.layout.text_dir, "--out", nps, "--backend", "textblob",
                   "--split", "test").exit_code == 0
    empty = tmp_path / "no_images"
    empty.mkdir()
    aux = tmp_path / "aux"
    r = _invoke("ground", "--nps", nps, "--images", empty, "--out", aux, "--split", "test", *RANDOM)
    assert r.exit_code == 2
    line = _one_error_line(r)
    assert "test: only 0 of 3 tweet images" in line and "--allow-missing-images" in line
    assert not aux.exists()
    r = _invoke("ground", "--nps", nps, "--images", empty, "--out", aux, "--split", "test", *RANDOM,
                "--allow-missing-images")
    assert r.exit_code == 0 and "missing 3" in r.output


def test_run_without_the_device_asked_for_writes_nothing(released, tmp_path, monkeypatch):
    import torch.cuda

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a machine with a GPU
    before = released.snapshot()
    out = tmp_path / "work"
    r = _invoke("run", released.data_root, "--dataset", NAME, "--out", out, *RANDOM[:-2], "--device", "cuda")
    assert r.exit_code == 2 and "no CUDA device" in _one_error_line(r)
    assert released.snapshot() == before and not out.exists()


def test_out_holding_other_text_is_refused(released, tmp_path):
    out = tmp_path / "work"
    (out / NAME).mkdir(parents=True)
    (out / NAME / "train.txt").write_text("IMGID:1\nx\tO\n")
    before = released.snapshot()
    r = _invoke("run", released.data_root, "--dataset", NAME, "--out", out, *RANDOM)
    assert r.exit_code == 2 and "give --out a folder of its own" in _one_error_line(r)
    assert released.snapshot() == before and sorted(p.name for p in out.rglob("*")) == ["train.txt", NAME]
