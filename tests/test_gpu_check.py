"""bin/gpu-check: the CPU rehearsal of the GPU script runs every step at toy sizes; a failing or
hanging step is named and ends the run with a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bin" / "gpu-check"


def _run(out: Path, *args: str, timeout: float = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), str(out), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env=env)


def test_cpu_rehearsal_runs_every_step(tmp_path):
    # The original code's step is optional: here without its checkout (test_original_step_... below).
    r = _run(tmp_path, "--device", "cpu", "--tiny", "--original-code", str(tmp_path / "absent"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    steps = report["steps"]
    assert list(steps) == ["facts", "train_step", "train_compiled", "train_300", "ground", "cache_fill",
                           "original_step"]
    assert report["ok"]
    assert steps.pop("original_step")["status"] == "skipped" and report["side_by_side"] is None
    for name, rec in steps.items():
        assert rec["status"] == "ok" and rec["checks"] and all(rec["checks"].values()), name
        assert (tmp_path / rec["log"]).is_file()
    train = steps["train_step"]["figures"]
    for key in ("shared_b2", "shared_b4", "separate_b2", "separate_b4"):
        assert train[key]["tweets_per_s"] > 0 and train[key]["peak_rss_gib"] > 0
    assert train["separate_params"]["total"] > train["shared_params"]["total"]  # one encoder copy per path
    compiled = steps["train_compiled"]["figures"]
    assert compiled["backend"] == "eager" and compiled["b2"]["tweets_per_s"] > 0
    assert compiled["b4"]["batch_shapes"] >= 1
    long = steps["train_300"]["figures"]
    assert long["steps"] == 15 and long["epoch_mean_train_loss"][-1] < long["epoch_mean_train_loss"][0]
    assert long["dev_f1"] is not None
    ground = steps["ground"]["figures"]
    assert ground["crop_pixels_max_level_diff"] == 0 and ground["tensor"]["crops"] > 0
    assert ground["same_as_cpu_images"] == "2/2"
    assert steps["cache_fill"]["figures"]["misses"] == 4
    summary = (tmp_path / "summary.txt").read_text()
    assert "ALL STEPS OK" in summary and all(f"[{n}] ok" in summary for n in steps)


def test_original_step_is_skipped_with_its_reason_where_the_code_is_absent(tmp_path):
    absent = tmp_path / "no-checkout"
    r = _run(tmp_path / "out", "--device", "cpu", "--tiny", "--steps", "original_step", "--original-code", str(absent),
             timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    rec = report["steps"]["original_step"]
    assert rec["status"] == "skipped" and report["ok"] and report["failed_steps"] == []
    assert str(absent) in rec["skipped"] and "--prepare" in rec["skipped"] and "Co-MIPN" in rec["skipped"]
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert "ALL STEPS OK" in summary and "[original_step] skipped" in summary and str(absent) in summary


def test_a_failing_step_is_named_and_a_hanging_one_ended(tmp_path):
    # Asking for CUDA where torch sees none fails the facts step's checks. The GPUs are hidden from the
    # child, so the failure path is checked on a machine that has one too.
    no_gpu = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    r = _run(tmp_path / "a", "--device", "cuda", "--steps", "facts", timeout=300, env=no_gpu)
    assert r.returncode == 1 and "FAILED in step(s): facts" in r.stderr
    rec = json.loads((tmp_path / "a" / "gpu_check.json").read_text())["steps"]["facts"]
    assert rec["status"] == "failed" and rec["checks"]["cuda_available"] is False
    # A step that outruns its timeout is killed (with what it started) and named.
    start = time.perf_counter()
    r = _run(tmp_path / "b", "--device", "cpu", "--tiny", "--steps", "train_step", "--timeout", "3",
             timeout=300)
    assert r.returncode == 1 and "FAILED in step(s): train_step" in r.stderr
    report = json.loads((tmp_path / "b" / "gpu_check.json").read_text())
    assert report["steps"]["train_step"]["status"] == "timeout" and report["failed_steps"] == ["train_step"]
    assert time.perf_counter() - start < 120
    assert "ERROR: no result within 3 s" in (tmp_path / "b" / "summary.txt").read_text()
