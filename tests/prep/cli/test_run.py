"""`comipn-prep run` on the sample dataset (data/sample): extract-nps, ground, build-dict, then verify."""

from __future__ import annotations

import shutil

import pytest
import torch
from click.testing import CliRunner

from comipn_prep.cli import main
from comipn_prep.layout import SPLITS, DatasetLayout

RANDOM = ["--detector", "yolov8n.yaml", "--clip-pretrained", "none", "--conf", "0", "--device", "cpu"]


@pytest.fixture()
def sample(tmp_path, sample_root):
    root = tmp_path / "root"
    shutil.copytree(sample_root, root, ignore=shutil.ignore_patterns("*.py", "NOTICE"))
    return root


def _check(root, limit=None):
    lay = DatasetLayout(root, "sample")
    for split in SPLITS:
        d = torch.load(lay.dict_path(split), weights_only=True)
        assert d and all(isinstance(v, list) for v in d.values())
        if limit:
            assert len(d) <= limit
    r = CliRunner().invoke(main, ["verify", str(root), "--dataset", "sample"])
    assert r.exit_code == 0, r.output
    return r


def test_run_with_limit_passes_verify_and_a_changed_dict_needs_force(sample):
    r = CliRunner().invoke(main, ["run", str(sample), "--dataset", "sample", "--limit", "2", *RANDOM])
    assert r.exit_code == 0, r.output
    assert (sample / "sample_aux_images" / "nps" / "train.nps.jsonl").is_file()
    _check(sample, limit=2)
    r2 = CliRunner().invoke(main, ["run", str(sample), "--dataset", "sample", "--limit", "2", "--split", "test",
                                   *RANDOM])
    assert r2.exit_code == 2 and "--force" in r2.output  # 2 more test images: the dict would change


def test_run_offline_without_weights_exits_2(sample):
    r = CliRunner().invoke(main, ["run", str(sample), "--dataset", "sample"])
    assert r.exit_code == 2 and "--detector" in r.output


@pytest.mark.slow
def test_full_run_on_sample_passes_verify(sample):
    r = CliRunner().invoke(main, ["run", str(sample), "--dataset", "sample", *RANDOM])
    assert r.exit_code == 0, r.output
    verify = _check(sample)
    assert "3+ crops" in verify.output
    again = CliRunner().invoke(main, ["run", str(sample), "--dataset", "sample", *RANDOM])
    assert again.exit_code == 0 and "0 images grounded" in again.output
