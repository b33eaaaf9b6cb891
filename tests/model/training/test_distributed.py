"""Where a run executes (comipn_model.training.distributed): alone, it is rank 0 of 1; under torchrun the
same command runs as 2 CPU processes, gloo, DistributedSampler, only rank 0 writing.

With dropout 0 and half the batch per process, 2 processes compute the gradient of the same 8 tweets
as one process with batch 8 (the sampler hands rank r every other index of the same permutation), so
train loss and dev F1 must agree up to float noise.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import numpy as np
import torch

from comipn_model.saved import run_folder as rf
from comipn_model.network.config import CoMIPNConfig
from comipn_model.training.config import TrainConfig
from comipn_model.training.distributed import Dist, init_distributed, seed_everything
from comipn_model.training.loop import train


def test_one_process_is_rank_0_of_1_and_joins_no_group(monkeypatch):
    """Without torchrun (no WORLD_SIZE) a run is its own main process: no process group, no collective."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    alone = init_distributed("cpu")
    assert alone == Dist(rank=0, world_size=1, local_rank=0) and alone.main and not alone.enabled
    assert not torch.distributed.is_initialized()
    assert alone.any(True) is True and alone.any(False) is False  # its own flag: nobody else to ask
    alone.barrier()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert init_distributed("cpu") == alone


def test_seed_everything_seeds_python_numpy_and_torch():
    def draws():
        return random.random(), float(np.random.rand()), torch.rand(3).tolist()

    seed_everything(7)
    first = draws()
    seed_everything(7)
    assert draws() == first
    seed_everything(8)
    assert all(a != b for a, b in zip(draws(), first))


def test_torchrun_two_processes_match_one(tmp_path, make_root, make_tiny_encoder):
    encoder = str(make_tiny_encoder(tmp_path / "encoder", dropout=0.0))
    root = make_root(tmp_path / "root", sizes=(32, 16, 16))
    common = dict(data_root=str(root), dataset="twitter2017", epochs=2, lr=1e-3, warmup_ratio=0.1, device="cpu",
                  model=CoMIPNConfig(text_model=encoder, random_init=True, use_prompt=False,
                                     use_dynamic_matching=False, use_contrastive=False, dropout=0.0))
    single = train(TrainConfig(run_dir=str(tmp_path / "one"), batch_size=8, **common))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "comipn_model.cli", "--data-root", str(root), "--dataset", "twitter2017",
           "--text-model", encoder, "--random-init", "--text-only", "--dropout", "0", "--epochs", "2",
           "--batch-size", "4", "--lr", "1e-3", "--warmup-ratio", "0.1", "--device", "cpu",
           "--run-dir", str(tmp_path / "two")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    assert_two_processes_match_one(tmp_path, single)
    # only rank 0 wrote: the run's files and nothing else (no per-rank copies or temp files)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        [rf.CONFIG, rf.DATA, rf.METRICS, rf.BEST, rf.LAST, rf.TEST_REPORT, rf.TEST_PREDICTIONS, rf.CURVES])
    assert proc.stdout.count("test F1") == 1


def _draw_images(root, names=("train", "valid", "test")) -> None:
    """A picture per tweet (its colour from its id) and one crop for every third train tweet."""
    import torch
    from PIL import Image

    from comipn_prep.conll import read_conll
    from comipn_prep.layout import DatasetLayout, crop_name

    layout = DatasetLayout(root, "twitter2017")
    layout.images_dir.mkdir(parents=True, exist_ok=True)
    for split in names:
        crops = {}
        for i, tweet in enumerate(read_conll(layout.text_path(split)).tweets):
            tone = abs(hash(tweet.imgid)) % 200
            Image.new("RGB", (48, 40), (tone, 255 - tone, (7 * i) % 255)).save(layout.images_dir / tweet.image_name)
            if split == "train" and i % 3 == 0:
                layout.crops_dir(split).mkdir(parents=True, exist_ok=True)
                crop = layout.crops_dir(split) / crop_name(tweet.imgid, 0)
                Image.new("RGB", (20, 24), (255 - tone, 30, tone)).save(crop)
                crops[tweet.image_name] = [crop_name(tweet.imgid, 0)]
        if crops:
            torch.save(crops, layout.dict_path(split))


def test_torchrun_two_processes_match_one_with_images(tmp_path, make_root, make_tiny_encoder):
    """Prompts and dynamic matching on, every tweet with its picture: per-example computations, so 2
    processes x 4 tweets give the gradient of the same 8 tweets as 1 process. (InfoNCE is left off:
    its in-batch negatives are the tweets on the same process, so it differs by design under DDP.)"""
    encoder = str(make_tiny_encoder(tmp_path / "encoder", dropout=0.0))
    root = make_root(tmp_path / "root", sizes=(24, 8, 8))
    _draw_images(root)
    cache = tmp_path / "features"
    common = dict(data_root=str(root), dataset="twitter2017", epochs=2, lr=1e-3, warmup_ratio=0.1, device="cpu",
                  feature_cache=str(cache),
                  model=CoMIPNConfig(text_model=encoder, random_init=True, use_prompt=True, use_dynamic_matching=True,
                                     use_contrastive=False, dropout=0.0, clip_model="ViT-S-32", clip_pretrained=None))
    single = train(TrainConfig(run_dir=str(tmp_path / "one"), batch_size=8, **common))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "comipn_model.cli", "--data-root", str(root), "--dataset", "twitter2017",
           "--text-model", encoder, "--random-init", "--no-use-contrastive", "--clip-model", "ViT-S-32",
           "--clip-pretrained", "none", "--feature-cache", str(cache), "--dropout", "0", "--epochs", "2",
           "--batch-size", "4", "--lr", "1e-3", "--warmup-ratio", "0.1", "--device", "cpu",
           "--run-dir", str(tmp_path / "two")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    assert_two_processes_match_one(tmp_path, single)


def assert_two_processes_match_one(tmp_path, single) -> None:
    """The torchrun run in ``two/`` trained like the one-process run in ``one/``: same losses per epoch
    (up to float rounding), dev and test F1 within 2 points."""
    one = rf.RunFolder(tmp_path / "one").read_metrics()
    two = rf.RunFolder(tmp_path / "two").read_metrics()
    assert [r["epoch"] for r in two] == [1, 2]
    for a, b in zip(one, two):
        assert abs(a["train_loss"] - b["train_loss"]) <= 1e-3 * max(1.0, abs(a["train_loss"]))
        assert abs(a["dev_f1"] - b["dev_f1"]) <= 0.02
    report_two = json.loads((tmp_path / "two" / rf.TEST_REPORT).read_text())
    assert abs(report_two["overall"]["f1"] - single.test["overall"]["f1"]) <= 0.02
