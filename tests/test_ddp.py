"""The same command under torchrun: 2 CPU processes, gloo, DistributedSampler, only rank 0 writes.

With dropout 0 and half the batch per process, 2 processes compute the gradient of the same 8 tweets
as one process with batch 8 (the sampler hands rank r every other index of the same permutation), so
train loss and dev F1 must agree up to float noise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from comipn_model import run_folder as rf
from comipn_model.config import CoMIPNConfig
from comipn_model.training import TrainConfig, train

from test_train import make_root, make_tiny_encoder


def test_torchrun_two_processes_match_one(tmp_path, minilm_path, twitter_data):
    encoder = str(make_tiny_encoder(tmp_path / "encoder", minilm_path, dropout=0.0))
    root = make_root(tmp_path / "root", twitter_data, sizes=(32, 16, 16))
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

    one = rf.RunFolder(tmp_path / "one").read_metrics()
    two = rf.RunFolder(tmp_path / "two").read_metrics()
    assert [r["epoch"] for r in two] == [1, 2]
    for a, b in zip(one, two):
        assert abs(a["train_loss"] - b["train_loss"]) <= 1e-3 * max(1.0, abs(a["train_loss"]))
        assert abs(a["dev_f1"] - b["dev_f1"]) <= 0.02
    report_two = json.loads((tmp_path / "two" / rf.TEST_REPORT).read_text())
    assert abs(report_two["overall"]["f1"] - single.test["overall"]["f1"]) <= 0.02
    # only rank 0 wrote: the run's files and nothing else (no per-rank copies or temp files)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        [rf.CONFIG, rf.METRICS, rf.BEST, rf.LAST, rf.TEST_REPORT, rf.TEST_PREDICTIONS, rf.CURVES])
    assert proc.stdout.count("test F1") == 1
