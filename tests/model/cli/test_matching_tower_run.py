"""--matching-tower end to end on the embedded sample: a 1-epoch run whose dynamic matching reads a tiny
random-weight DINOv2's patches, then --only-test, resume, the Tagger, predict and export all following
the tower recorded in the run (offline)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from comipn_model.cli import main
from comipn_model.inference.tagger import Tagger
from comipn_model.network.matching_tower import MatchingTower
from comipn_model.network.vision import FeatureCache, VisionTower
from comipn_model.saved import run_folder as rf
from comipn_model.training.config import resume_config
from comipn_prep.conll import read_conll
from comipn_prep.weights import WeightsUnavailable


def invoke(args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def dino_run(tmp_path_factory, make_tiny_encoder, make_matching_tower, sample_root):
    base = tmp_path_factory.mktemp("dino-run")
    encoder, tower = make_tiny_encoder(base / "encoder"), make_matching_tower(base / "dino")
    result = invoke(["--data-root", sample_root, "--dataset", "sample", "--text-model", encoder, "--random-init",
                     "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--clip-model", "ViT-S-32",
                     "--clip-pretrained", "none", "--no-use-prompt", "--no-use-contrastive", "--aux-k", "0",
                     "--matching-tower", tower, "--feature-cache", base / "cache", "--run-dir", base / "run",
                     "--no-progress"])
    assert result.exit_code == 0, result.output
    tweets = read_conll(sample_root / "sample" / "test.txt").tweets
    images = [sample_root / "sample_images" / t.image_name for t in tweets]
    return {"base": base, "tower": tower, "run": base / "run", "encoder": encoder, "tweets": tweets,
            "images": [p if p.is_file() else None for p in images]}


def test_the_run_records_and_caches_the_tower(dino_run, sample_root):
    run, tower = dino_run["run"], dino_run["tower"]
    assert json.loads((run / rf.CONFIG).read_text())["model"]["matching_tower"] == str(tower)
    state = torch.load(run / rf.BEST, weights_only=True)
    assert state["model_config"]["matching_tower"] == str(tower)
    # Matching's projection takes the tower's width (32), the class tokens stay CLIP's (ViT-S-32: 384).
    assert state["model"]["matching.patch_proj.weight"].shape[1] == 32
    assert state["model"]["visual_norm.patch_mean"].shape == (32,)
    assert state["model"]["visual_norm.cls_mean"].shape == (12, 384)
    # Every picture has one CLIP entry and one tower entry, each under its own key.
    pictures = sorted((sample_root / "sample_images").glob("*.jpg"))
    clip = FeatureCache(dino_run["base"] / "cache", VisionTower("ViT-S-32", None))
    dino = FeatureCache(dino_run["base"] / "cache", MatchingTower(str(tower)))
    entries = {p.stem for p in (dino_run["base"] / "cache").rglob("*.safetensors")}
    assert entries == {c.key(p.read_bytes()) for p in pictures for c in (clip, dino)}
    assert len(entries) == 2 * len(pictures)


def test_only_test_and_resume_follow_the_tower(dino_run, sample_root, tmp_path):
    run = dino_run["run"]
    assert resume_config(run).model.matching_tower == str(dino_run["tower"])
    result = invoke(["--data-root", sample_root, "--dataset", "sample", "--only-test", "--load-path", run / rf.BEST,
                     "--device", "cpu", "--feature-cache", dino_run["base"] / "cache", "--run-dir", tmp_path / "t"])
    assert result.exit_code == 0, result.output
    scored = json.loads((tmp_path / "t" / rf.TEST_REPORT).read_text())["overall"]
    assert scored == json.loads((run / rf.TEST_REPORT).read_text())["overall"]
    # The checkpoint's tower given again is no conflict; another one is.
    same = invoke(["--data-root", sample_root, "--dataset", "sample", "--only-test", "--load-path", run / rf.BEST,
                   "--device", "cpu", "--matching-tower", dino_run["tower"], "--run-dir", tmp_path / "t", "--force",
                   "--feature-cache", dino_run["base"] / "cache"])
    assert same.exit_code == 0, same.output
    # A resumed run (here: one epoch more) builds the same network and reads the same tower's cached patches.
    resumed = tmp_path / "resumed"
    shutil.copytree(run, resumed)
    result = invoke(["--run-dir", resumed, "--resume", "--epochs", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert len((resumed / rf.METRICS).read_text().splitlines()) == 2
    assert torch.load(resumed / rf.LAST, weights_only=True)["model_config"]["matching_tower"] == str(dino_run["tower"])
    other = invoke(["--data-root", sample_root, "--dataset", "sample", "--only-test", "--load-path", run / rf.BEST,
                    "--device", "cpu", "--matching-tower", tmp_path, "--run-dir", tmp_path / "t2"])
    assert other.exit_code != 0 and "--matching-tower" in other.output and "the checkpoint has" in other.output


def test_tagger_predict_and_export_follow_the_tower(dino_run, tmp_path, monkeypatch):
    tweets, images = dino_run["tweets"], dino_run["images"]
    tokens = [t.tokens for t in tweets]
    tagger = Tagger.from_pretrained(dino_run["run"], device="cpu", feature_cache=tmp_path / "cache")
    feats = tagger._features([images[0]])[0]
    assert feats.cls.shape == (12, 384) and feats.patches.shape == (16, 32)  # CLIP's class tokens, DINO's patches
    want = [r.tags for r in tagger(tokens, images=images)]
    assert any(r is not None for r in images)
    dino_key = FeatureCache(tmp_path / "cache", MatchingTower(str(dino_run["tower"]))).key(images[0].read_bytes())
    assert list((tmp_path / "cache").rglob(f"{dino_key}.safetensors"))  # the Tagger cached the tower's patches
    out = tmp_path / "exported"
    result = invoke(["export", "--load-path", dino_run["run"], "--out", out])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["model"]["matching_tower"] == str(dino_run["tower"])
    assert [r.tags for r in Tagger.from_pretrained(out, device="cpu")(tokens, images=images)] == want
    lines = [json.dumps({"tokens": t, "image": str(i)} if i else {"tokens": t}) for t, i in zip(tokens, images)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    result = invoke(["predict", "--load-path", out, "--input", tmp_path / "in.jsonl", "--out", tmp_path / "o.jsonl",
                     "--device", "cpu"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r["tags"] for r in rows] == want and rows[0]["image_used"] is True
    # A moved tower: given by the caller it loads from its new place; a missing one says what to pass.
    moved = tmp_path / "moved-dino"
    shutil.copytree(dino_run["tower"], moved)
    moved_tags = Tagger.from_pretrained(out, device="cpu", matching_tower=str(moved))(tokens, images=images)
    assert [r.tags for r in moved_tags] == want
    with pytest.raises(WeightsUnavailable, match="--matching-tower"):
        Tagger.from_pretrained(out, device="cpu", matching_tower=str(tmp_path / "nowhere"))
    monkeypatch.chdir(tmp_path)  # a relative folder given by the user is recorded as an absolute path
    result = invoke(["export", "--load-path", out, "--out", tmp_path / "moved-export",
                     "--matching-tower", "moved-dino"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "moved-export" / "config.json").read_text())["model"]["matching_tower"] == str(moved)
    result = invoke(["predict", "--load-path", out, "--input", tmp_path / "in.jsonl", "--out", tmp_path / "x.jsonl",
                     "--device", "cpu", "--matching-tower", Path(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "--matching-tower" in result.output


def test_a_tower_that_cannot_be_had_stops_before_any_work(sample_root, make_tiny_encoder, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder = make_tiny_encoder(tmp_path / "encoder")
    common = ["--data-root", sample_root, "--dataset", "sample", "--text-model", encoder, "--random-init",
              "--device", "cpu", "--clip-model", "ViT-S-32", "--clip-pretrained", "none"]
    for tower, said in ((tmp_path / "no-dino", "no such folder"), ("nobody-has/this-dino", "not in the local cache")):
        result = invoke([*common, "--matching-tower", tower, "--run-dir", tmp_path / "run"])
        assert result.exit_code == 2, result.output
        assert said in result.output and "--matching-tower" in result.output
        assert not (tmp_path / "run" / rf.CONFIG).exists()
    # Without dynamic matching the tower is not used: said, and left out of the run's config.
    result = invoke([*common, "--matching-tower", tmp_path / "no-dino", "--no-use-dynamic-matching", "--epochs", "1",
                     "--no-use-prompt", "--no-use-contrastive", "--run-dir", tmp_path / "text"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "text" / rf.CONFIG).read_text())["model"]["matching_tower"] is None
