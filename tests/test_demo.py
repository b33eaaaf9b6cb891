"""bin/demo end to end on the embedded sample, offline, with small settings (the same steps as the
README's first command: prep run, verify, preview, train with every switch on, test F1, predict)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from comipn_prep.conll import read_conll
from comipn_prep.layout import SPLITS, DatasetLayout

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "bin" / "demo"
SAMPLE = REPO / "data" / "sample"


def run_demo(*args: str, timeout: int = 1500) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    # --no-setup: the demo uses this interpreter's environment instead of setting up .venv.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(["bash", str(DEMO), "--no-setup", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    before = snapshot(SAMPLE)
    proc = run_demo("--out", str(out), "--offline", "--epochs", "1", "--clip-model", "ViT-S-32",
                    "--limit", "4")
    assert proc.returncode == 0, f"bin/demo failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
    return out, proc, before


def test_demo_prints_test_f1_and_paths(demo_run):
    out, proc, _ = demo_run
    m = re.search(r"test F1\s+([0-9.]+)", proc.stdout)
    assert m, proc.stdout
    report = json.loads((out / "run" / "test_report.json").read_text())
    assert float(m.group(1)) == pytest.approx(report["overall"]["f1"], abs=5e-5)
    assert report["overall"]["support"] == 15  # the sample's test entities
    for label in ("preview", "run folder", "aux dicts", "crops", "new tweet tagged"):
        assert re.search(rf"^\s+{label}", proc.stdout, flags=re.M), f"{label!r} not listed"
    # The offline fallback is announced once, in one line.
    assert len(re.findall(r"RANDOM weights", proc.stderr + proc.stdout)) >= 1
    assert len(re.findall(r"^comipn demo: OFFLINE", proc.stderr, flags=re.M)) == 1


def test_demo_outputs_follow_the_layout(demo_run):
    out, _, _ = demo_run
    layout = DatasetLayout(out / "data", "sample")
    crops_total = 0
    for split in SPLITS:
        imgids = [t.imgid for t in read_conll(layout.text_path(split))]
        aux = torch.load(layout.dict_path(split), weights_only=True)
        assert isinstance(aux, dict)
        assert set(aux) <= {f"{i}.jpg" for i in imgids}
        for image_name, crops in aux.items():
            assert len(crops) <= 3
            for name in crops:
                assert name.startswith(image_name[:-4] + "_pred_yolo_crop_")
                assert (layout.crops_dir(split) / name).is_file()
            crops_total += len(crops)
        # the deliberately absent image has no crop
        assert not aux.get("9100012.jpg")
    assert crops_total > 0, "the random-weight detector proposed no box at all"
    with Image.open(out / "preview.png") as im:
        assert im.format == "PNG" and im.width > 100 and im.height > 100
    config = json.loads((out / "run" / "config.json").read_text())
    model = config["model"]
    assert model["use_prompt"] and model["use_dynamic_matching"] and model["use_contrastive"]
    assert model["aux_k"] == 3 and config["preset"] == "cpu-small"


def test_demo_tags_the_new_tweet(demo_run):
    out, _, _ = demo_run
    rows = [json.loads(line) for line in (out / "new_tweet.jsonl").read_text().splitlines() if line.strip()]
    assert len(rows) == 1
    row = rows[0]
    tweet = read_conll(out / "new_tweet.txt", labeled=False).tweets[0]
    assert row["tokens"] == tweet.tokens and len(row["tags"]) == len(tweet.tokens)
    assert all(t == "O" or re.fullmatch(r"[BI]-(PER|LOC|ORG|MISC)", t) for t in row["tags"])


def test_demo_never_writes_into_data(demo_run):
    _, _, before = demo_run
    assert snapshot(SAMPLE) == before


def test_demo_refuses_to_replace_without_force(demo_run, tmp_path):
    out, _, _ = demo_run
    proc = run_demo("--out", str(out), "--offline", timeout=120)
    assert proc.returncode == 2 and "--force" in proc.stderr
    assert (out / "run" / "test_report.json").is_file()  # left alone
    stranger = tmp_path / "mine"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("keep me")
    proc = run_demo("--out", str(stranger), "--force", "--offline", timeout=120)
    assert proc.returncode == 2 and "not a demo output folder" in proc.stderr
    assert (stranger / "notes.txt").read_text() == "keep me"
    proc = run_demo("--out", str(REPO / "data" / "demo-here"), "--offline", timeout=120)
    assert proc.returncode == 2 and not (REPO / "data" / "demo-here").exists()


def test_demo_ends_with_a_raw_tweet_tagged_by_tagger(demo_run):
    """The last step tags a raw tweet and its picture through comipn_model.Tagger, grounding it with the
    settings the demo's prep run recorded, and prints the entities."""
    from comipn_prep.nps.tokenize import tokenize_tweet
    from comipn_model import Tagger

    out, proc, _ = demo_run
    assert re.search(r"^\s+Tagger entities\s+\S", proc.stdout.rstrip().splitlines()[-1]), proc.stdout[-2000:]
    saved = json.loads((out / "raw_tweet.json").read_text())
    assert saved["tokens"] == tokenize_tweet(saved["text"]) and len(saved["tags"]) == len(saved["tokens"])
    printed = "; ".join(f"{e['word']} ({e['entity_group']}, {e['score']:.2f})" for e in saved["entities"]) or "none"
    assert f"Tagger entities   {printed}" in proc.stdout
    assert all(saved["text"][e["start"]:e["end"]] == e["word"] for e in saved["entities"])
    assert 1 <= len(saved["crops"]) <= 3  # the random-weight detector at the recorded --conf proposes boxes
    tagger = Tagger.from_pretrained(out / "run", device="cpu")
    grounding = tagger.grounding_config()
    assert (grounding.detector, grounding.clip_model, grounding.clip_pretrained) == ("yolov8n.yaml", "ViT-S-32", None)
    again = tagger([saved["text"]], images=[saved["image"]])[0]
    assert (again.tags, again.crops) == (saved["tags"], saved["crops"])
