"""Issue 22, item 9: one writer per folder.

Two ``comipn-prep ground`` runs on one ``--out`` and shard, or two ``comipn-train`` runs on one
``--run-dir``, both used to exit 0 with their output mixed. Now each command holds its folder's lock
for the whole run; a second process exits 2 at once, naming the folder and the holder's pid and host.
The holder here is a real second process (started with the library's own function), so the lock is
the one the OS arbitrates between processes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from comipn_prep.cli import main as prep_main

RANDOM = ["--detector", "yolov8n.yaml", "--clip-pretrained", "none", "--conf", "0", "--device", "cpu"]


def _names_the_holder(output: str, folder: Path, holder) -> bool:
    return str(folder) in output and f"pid {holder.pid}" in output and socket.gethostname() in output


def _nps(folder: Path, imgids) -> None:
    from comipn_prep.nps.io import NounPhrase, TweetNPs, write_nps_jsonl

    write_nps_jsonl(folder / "train.nps.jsonl",
                    [TweetNPs(i, ["a", "red", "car"], [NounPhrase(1, 3, "red car")]) for i in imgids])


def _images(folder: Path, imgids) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, i in enumerate(imgids):
        Image.new("RGB", (96, 64), (40 * k % 255, 90, 160)).save(folder / f"{i}.jpg")


def test_ground_refuses_a_shard_another_process_is_grounding(tmp_path, lock_holder):
    ids = ["101", "102", "103", "104"]
    _nps(tmp_path / "nps", ids)
    _images(tmp_path / "img", ids)
    out = tmp_path / "aux"
    args = ["ground", "--nps", str(tmp_path / "nps"), "--images", str(tmp_path / "img"), "--out", str(out),
            "--split", "train", *RANDOM]
    holder = lock_holder(out, ".comipn.shard-1-of-2.lock")  # a process grounding shard 1/2 into out
    r = CliRunner().invoke(prep_main, args + ["--shard", "1/2"])
    assert r.exit_code == 2, r.output
    assert _names_the_holder(r.output, out, holder)
    assert not (out / "train").exists()  # refused before anything was written
    # Another shard of the same job array runs beside it.
    r = CliRunner().invoke(prep_main, args + ["--shard", "0/2", "--max-candidates", "2"])
    assert r.exit_code == 0, r.output
    assert (out / "train" / "manifest.shard-0-of-2.csv").is_file()


def test_run_and_extract_nps_refuse_a_folder_in_use(tmp_path, lock_holder):
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "d" / "train.txt").write_text("IMGID:1\nParis\tB-LOC\n\n", encoding="utf-8")
    _images(root / "d_images", ["1"])
    holder = lock_holder(root / "d_aux_images")
    r = CliRunner().invoke(prep_main, ["run", str(root), "--dataset", "d", "--split", "train", *RANDOM])
    assert r.exit_code == 2 and _names_the_holder(r.output, root / "d_aux_images", holder), r.output
    holder = lock_holder(tmp_path / "nps")
    r = CliRunner().invoke(prep_main, ["extract-nps", str(root / "d"), "--out", str(tmp_path / "nps"),
                                       "--split", "train", "--backend", "textblob"])
    assert r.exit_code == 2 and _names_the_holder(r.output, tmp_path / "nps", holder), r.output
    assert not (tmp_path / "nps" / "train.nps.jsonl").exists()


def test_build_dict_lists_each_crop_once_whatever_the_manifests_hold(tmp_path, caplog):
    from comipn_prep.aux_dicts import build_dicts
    from comipn_prep.grounding.manifest import rows_to_frame, write_manifest
    from comipn_prep.layout import crop_name

    crops = tmp_path / "aux" / "train" / "crops"
    crops.mkdir(parents=True)
    rows = []
    for imgid in ("1", "2"):
        for rank in (0, 1, 2):
            rows.append({"imgid": imgid, "status": "ok", "crop_file": crop_name(imgid, rank), "rank": rank})
            Image.new("RGB", (2, 2)).save(crops / crop_name(imgid, rank))
    rows.append({"imgid": "3", "status": "no_boxes", "crop_file": "", "rank": None})
    # Two runs appended the same rows (the second's after the first's).
    write_manifest(tmp_path / "aux" / "train" / "manifest.csv", rows_to_frame(rows + rows))
    with caplog.at_level("WARNING"):
        paths = build_dicts(tmp_path / "aux", "d", tmp_path / "t", ["train"])
    d = torch.load(paths["train"], weights_only=True)
    assert d == {"1.jpg": [crop_name("1", r) for r in range(3)], "2.jpg": [crop_name("2", r) for r in range(3)],
                 "3.jpg": []}
    assert json.loads(paths["train"].with_suffix(".json").read_text()) == d
    assert "more than once" in caplog.text


def test_build_dict_refuses_a_folder_in_use(tmp_path, lock_holder):
    (tmp_path / "aux" / "train" / "crops").mkdir(parents=True)
    (tmp_path / "t").mkdir()
    holder = lock_holder(tmp_path / "t")
    args = ["build-dict", "--aux", str(tmp_path / "aux"), "--dataset", "d", "--out", str(tmp_path / "t"),
            "--split", "train"]
    r = CliRunner().invoke(prep_main, args)
    assert r.exit_code == 2 and _names_the_holder(r.output, tmp_path / "t", holder), r.output
    assert not (tmp_path / "t" / "d_train_dict.pth").exists()


def test_a_killed_holders_lock_is_taken_over(tmp_path, lock_holder):
    from comipn_prep.folder_lock import FolderBusyError, hold_folder

    folder = tmp_path / "out"
    holder = lock_holder(folder)
    with pytest.raises(FolderBusyError):
        with hold_folder(folder):
            pass
    holder.stop(signal.SIGKILL)  # no cleanup runs: the lock file and its .holder sidecar stay behind
    assert (folder / ".comipn.lock").exists()
    with hold_folder(folder) as lock_path:
        info = json.loads(lock_path.with_name(lock_path.name + ".holder").read_text())
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
    # And a command takes it over too.
    (tmp_path / "aux" / "train" / "crops").mkdir(parents=True)
    r = CliRunner().invoke(prep_main, ["build-dict", "--aux", str(tmp_path / "aux"), "--dataset", "d", "--out",
                                       str(folder), "--split", "train"])
    assert r.exit_code == 0, r.output


def test_a_refused_lock_leaves_no_folder_behind(tmp_path):
    from comipn_prep.folder_lock import hold_folder

    with pytest.raises(RuntimeError):
        with hold_folder(tmp_path / "a" / "b"):
            raise RuntimeError("a check failed")
    assert not (tmp_path / "a").exists()
    with hold_folder(tmp_path / "a" / "b") as lock:
        (tmp_path / "a" / "b" / "out.txt").write_text("x")
    assert (tmp_path / "a" / "b" / "out.txt").is_file() and not lock.exists()  # no lock file left


def test_train_refuses_a_run_folder_in_use_before_loading_a_model(tmp_path, lock_holder, make_tiny_encoder, make_root,
                                                                  tiny_args, monkeypatch):
    from comipn_model.training import loop as training
    from comipn_model.cli import main as train_main

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded although the run folder is in use")

    monkeypatch.setattr(training, "build_model", refuse)
    tiny = {"encoder": str(make_tiny_encoder(tmp_path / "encoder")), "root": make_root(tmp_path / "root")}
    run_dir = tmp_path / "run"
    holder = lock_holder(run_dir)  # another `comipn-train --run-dir run` training now
    for extra in ([], ["--force"]):
        r = CliRunner().invoke(train_main, tiny_args(tiny, run_dir, *extra))
        assert r.exit_code == 2, r.output
        assert _names_the_holder(r.output, run_dir, holder) and "run folder" in r.output
    assert {p.name for p in run_dir.iterdir()} == {".comipn.lock", ".comipn.lock.holder"}  # the holder's
