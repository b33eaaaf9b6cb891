"""The run folder's files (comipn_model.saved.run_folder): no overwrite without --force, checkpoints
loadable with weights_only=True that carry the RNG state, metrics.jsonl and the curves."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from PIL import Image

from comipn_model.saved import run_folder as rf


def test_run_folder_refuses_to_overwrite(tmp_path):
    folder = rf.RunFolder(tmp_path / "run")
    folder.prepare(resume=False, force=False)
    folder.write_json(rf.CONFIG, {"a": 1})
    # a lone config.json (a run that never started) does not block a new run
    rf.RunFolder(tmp_path / "run").prepare(resume=False, force=False)
    folder.write_metrics([{"epoch": 1}])
    with pytest.raises(FileExistsError, match="--force"):
        rf.RunFolder(tmp_path / "run").prepare(resume=False, force=False)
    with pytest.raises(FileNotFoundError, match="last.pt"):
        rf.RunFolder(tmp_path / "run").prepare(resume=True, force=False)
    user_file = folder.file("notes.txt")
    user_file.write_text("mine")
    rf.RunFolder(tmp_path / "run").prepare(resume=False, force=True)
    assert not folder.file(rf.CONFIG).exists() and not folder.file(rf.METRICS).exists()
    assert user_file.read_text() == "mine"


def test_checkpoint_round_trip_weights_only_with_rng(tmp_path):
    folder = rf.RunFolder(tmp_path)
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    state = {"model": {"w": torch.randn(3)}, "model_config": {"labels": ["O"]}, "rng": rf.rng_state(),
             "epoch": 2, "partial": {"loss_sum": 1.5}}
    expected = (random.random(), float(np.random.rand()), torch.rand(2))
    folder.save_checkpoint(rf.LAST, state)
    # plain tensors and primitives: loadable with weights_only=True
    loaded = torch.load(folder.file(rf.LAST), weights_only=True)
    assert torch.equal(loaded["model"]["w"], state["model"]["w"]) and loaded["epoch"] == 2
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    rf.set_rng_state(folder.load_checkpoint(rf.LAST)["rng"])
    got = (random.random(), float(np.random.rand()), torch.rand(2))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"nope")
    with pytest.raises(ValueError, match="bad.pt"):
        rf.load_checkpoint(bad)


def test_metrics_jsonl_and_curves(tmp_path):
    folder = rf.RunFolder(tmp_path)
    rows = [{"epoch": 1, "train_loss": 3.0, "dev_f1": 0.4}, {"epoch": 2, "train_loss": 1.0, "dev_f1": 0.6}]
    folder.write_metrics(rows)
    assert folder.read_metrics() == rows
    assert [json.loads(line) for line in folder.file(rf.METRICS).read_text().splitlines()] == rows
    folder.plot_curves(rows)
    with Image.open(folder.file(rf.CURVES)) as im:
        assert im.format == "PNG" and im.size[0] > 100
