"""comipn_prep.pipeline.plan_run: every check of `comipn-prep run` that needs no model, before anything is
written (the command itself is tested in tests/prep/cli/test_run.py)."""

from __future__ import annotations

import shutil

import pytest

from comipn_prep.pipeline import plan_run


def _files(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_a_plan_reads_everything_and_writes_nothing(tmp_path, sample_root):
    root = tmp_path / "root"
    shutil.copytree(sample_root, root)
    before = _files(tmp_path)
    plan = plan_run(root, "sample", out=tmp_path / "out", np_backend="textblob")
    assert _files(tmp_path) == before  # not even --out's folder
    assert plan.splits == ["train", "valid", "test"]
    # the sample lacks one train image on purpose (data/sample/NOTICE)
    assert {s: (c.expected, c.present) for s, c in plan.coverage.items()} == {
        "train": (24, 23), "valid": (8, 8), "test": (8, 8)}
    # --out gets links to the text files and the image folder, so it is a whole dataset root
    assert plan.links == [(tmp_path / "out" / "sample" / f"{s}.txt", root / "sample" / f"{s}.txt")
                          for s in ("train", "valid", "test")] + [(tmp_path / "out" / "sample_images",
                                                                   root / "sample_images")]
    assert plan_run(root, "sample", splits=["dev"], np_backend="textblob").links == []  # in place: none
    assert plan_run(root, "sample", splits=["dev"], np_backend="textblob").splits == ["valid"]


def test_a_missing_text_or_image_folder_is_refused_before_any_write(tmp_path, sample_root):
    root = tmp_path / "root"
    shutil.copytree(sample_root, root)
    (root / "sample" / "test.txt").unlink()
    with pytest.raises(FileNotFoundError, match="test.txt: no such text file"):
        plan_run(root, "sample", out=tmp_path / "out", np_backend="textblob")
    plan_run(root, "sample", out=tmp_path / "out", splits=["train", "valid"], np_backend="textblob")
    shutil.rmtree(root / "sample_images")
    with pytest.raises(FileNotFoundError, match="sample_images: no such image folder"):
        plan_run(root, "sample", out=tmp_path / "out", splits=["train"], np_backend="textblob")
    assert not (tmp_path / "out").exists()
