"""The grounding stage end to end, offline: YOLOv8n and CLIP ViT-B/32 architectures with random weights,
real tweets from data/twitter2015, images drawn here with Pillow."""

from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from comipn_prep.aux_dicts import build_dicts
from comipn_prep.cli import main
from comipn_prep.conll import entity_spans, read_conll
from comipn_prep.grounding.driver import GroundConfig, Grounder, ground_split, load_item
from comipn_prep.grounding.nps_input import GroundItem
from comipn_prep.grounding.shards import Shard
from comipn_prep.grounding.manifest import read_manifest
from comipn_prep.grounding.detector import Detections, Detector
from comipn_prep.grounding.manifest import (COLUMNS, ManifestAppender, committed_path, read_split_manifests,
                                           write_manifest)
from comipn_prep.weights import WeightsUnavailable, load_clip, load_yolo

CFG = dict(detector="yolov8n.yaml", clip_pretrained="none", conf=0.0, max_candidates=6, batch_size=3,
           crop_batch=8, top_k=3)


@pytest.fixture(scope="module")
def grounder() -> Grounder:
    torch.manual_seed(0)
    return Grounder.from_config(GroundConfig(device="cpu", **CFG))


@pytest.fixture(scope="module")
def tweets(twitter_data):
    """Real tweets with their gold entity texts as the 'noun phrases' (some tweets have none)."""
    conll = read_conll(twitter_data / "twitter2015" / "train.txt")
    items = []
    without = [t for t in conll.tweets if not entity_spans(t.labels)][:2]
    for t in conll.tweets[:6] + without:
        phrases = list(dict.fromkeys(" ".join(t.tokens[s:e]) for _, s, e in entity_spans(t.labels)))
        items.append(GroundItem(t.imgid, phrases))
    assert any(i.phrases for i in items) and any(not i.phrases for i in items)
    return items


@pytest.fixture(scope="module")
def picture(ellipses_picture):
    """``picture(seed, size=(320, 240))``: 4 ellipses on noise."""
    def draw(seed: int, size=(320, 240)) -> Image.Image:
        return ellipses_picture(seed, size, count=4, max_extent=(120, 100))

    return draw


@pytest.fixture(scope="module")
def write_images(picture):
    """``write_images(folder, items, sizes=None)``: a picture ``<imgid>.jpg`` for each item in ``folder``."""
    def write(folder: Path, items, sizes=None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for k, it in enumerate(items):
            size = sizes[k % len(sizes)] if sizes else (320, 240)
            picture(k, size).save(folder / f"{it.imgid}.jpg", quality=92)

    return write


def _crops_of(df):
    return [(r.imgid, r.status, r.crop_file, r.x1, r.y1, r.x2, r.y2, r.phrase) for r in df.itertuples()]


# -- weights ---------------------------------------------------------------------------------------------
def test_offline_names_fail_fast_naming_the_flag(tmp_path):
    with pytest.raises(WeightsUnavailable, match="--detector"):
        load_yolo("yolov8n.pt")
    with pytest.raises(WeightsUnavailable, match="--detector"):
        load_yolo(str(tmp_path / "mine.pt"))
    with pytest.raises(WeightsUnavailable, match="--clip-pretrained"):
        load_clip("ViT-B-32", "openai")
    with pytest.raises(WeightsUnavailable, match="--clip-pretrained"):
        load_clip("ViT-B-32", str(tmp_path / "clip.bin"))


def test_local_clip_weights_file_loads(tmp_path, grounder):
    sd = grounder.matcher.model.state_dict()
    torch.save(sd, tmp_path / "clip.pt")
    bundle = load_clip("ViT-B-32", str(tmp_path / "clip.pt"))
    assert not bundle.random_weights and bundle.weights_id.startswith("ViT-B-32:sha256-")  # by content
    key = "visual.conv1.weight"
    assert torch.equal(bundle.model.state_dict()[key], sd[key])
    assert not any(p.requires_grad for p in bundle.model.parameters()) and not bundle.model.training
    (tmp_path / "clip.pt").unlink()  # 600 MB: do not keep it among pytest's kept tmp dirs


def test_random_weights_are_flagged_and_reproducible(grounder):
    assert grounder.random_weights and grounder.detector_id == "yolov8n:random"
    assert grounder.clip_id == "ViT-B-32:random"
    torch.manual_seed(123)
    again = Grounder.from_config(GroundConfig(device="cpu", **CFG))
    assert torch.equal(again.matcher.model.visual.conv1.weight, grounder.matcher.model.visual.conv1.weight)
    for a, b in zip(again.detector.model.model.parameters(), grounder.detector.model.model.parameters()):
        assert torch.equal(a, b)


# -- CLIP text ------------------------------------------------------------------------------------------
def test_truncated_text_encoding_equals_full_context(grounder):
    m = grounder.matcher
    phrases = ["Kentucky", "a very long phrase about the New York Yankees and their stadium", "EU"]
    ours = m.encode_phrases(phrases)
    with torch.inference_mode():
        full = m.model.encode_text(m.bundle.tokenizer([m.prompt.format(p) for p in phrases]))
    full = torch.nn.functional.normalize(full.float(), dim=-1).numpy()
    assert np.abs(ours - full).max() < 1e-5
    assert set(phrases) <= set(m._cache)  # cached for the next image


def test_phrase_cache_keeps_the_most_recently_used_phrases_only(grounder):
    from comipn_prep.grounding.clip_matcher import ClipMatcher

    m = grounder.matcher
    small = ClipMatcher(m.bundle, device=m.device, prompt=m.prompt, cache_size=3)
    first = small.encode_phrases(["a", "b", "c", "d"])  # one call larger than the cache: still answered
    assert list(small._cache) == ["b", "c", "d"]
    again = small.encode_phrases(["b", "e"])  # "b" used again, "e" new: "c" is the least recent
    assert list(small._cache) == ["d", "b", "e"]
    assert np.allclose(again[0], first[1], atol=1e-6)
    assert np.allclose(small.encode_phrases(["a"])[0], first[0], atol=1e-6)  # evicted, recomputed alike


# -- batched = naive --------------------------------------------------------------------------------------
def test_batched_equals_naive(tmp_path, grounder, tweets, write_images):
    write_images(tmp_path / "img", tweets, sizes=[(320, 240), (320, 240), (200, 300)])
    loaded = [load_item(tmp_path / "img", it) for it in tweets]
    batched = []
    for k in range(0, len(loaded), 3):
        batched += grounder.ground_batch(loaded[k:k + 3])
    naive = [grounder.ground_one(b) for b in loaded]
    assert sum(len(r.selected) for r in naive) > len(naive)  # some images keep several crops
    for a, b in zip(batched, naive):
        assert (a.imgid, a.status) == (b.imgid, b.status)
        assert [(s.rank, s.box, s.phrase) for s in a.selected] == [(s.rank, s.box, s.phrase) for s in b.selected]
        for sa, sb in zip(a.selected, b.selected):
            both_nan = math.isnan(sa.clip_score) and math.isnan(sb.clip_score)
            assert both_nan or abs(sa.clip_score - sb.clip_score) < 1e-4
            assert sa.det_score == pytest.approx(sb.det_score, rel=1e-5)
        for ca, cb in zip(a.crops, b.crops):
            assert np.array_equal(np.asarray(ca), np.asarray(cb))


def test_detector_batches_give_the_boxes_of_single_calls(grounder, picture):
    """A batch groups equal-sized images (ultralytics pads them as it pads a lone image)."""
    ims = [picture(k, size) for k, size in enumerate([(320, 240), (320, 240), (200, 300), (320, 240)])]
    single = grounder.detector  # on CPU: one image per call
    assert single.max_batch == 1
    batched = Detector(single.model, conf=single.conf, max_candidates=single.max_candidates, max_batch=8)
    for a, b in zip(single.detect(ims), batched.detect(ims)):
        assert a.boxes.shape == b.boxes.shape and len(a.boxes) > 0
        assert np.allclose(a.boxes, b.boxes, atol=1e-2) and np.allclose(a.scores, b.scores, rtol=1e-3)


def test_crops_are_the_boxes_of_the_image(tmp_path, grounder, tweets, write_images):
    write_images(tmp_path / "img", tweets[:3])
    s = ground_split(grounder, tweets[:3], tmp_path / "img", tmp_path / "aux", "valid", progress=False)
    df = read_manifest(Path(s.manifest))
    assert Path(s.manifest) == tmp_path / "aux" / "val" / "manifest.csv"
    for r in df[df.status == "ok"].itertuples():
        crop = Image.open(tmp_path / "aux" / "val" / "crops" / r.crop_file)
        src = Image.open(tmp_path / "img" / f"{r.imgid}.jpg").convert("RGB")
        assert np.array_equal(np.asarray(crop), np.asarray(src.crop((r.x1, r.y1, r.x2, r.y2))))
        assert r.crop_file == f"{r.imgid}_pred_yolo_crop_{r.rank}.png"
        assert r.random_weights and r.detector == "yolov8n:random" and r.clip_model == "ViT-B-32:random"


# -- fake detector: zero-area boxes, no boxes --------------------------------------------------------------
class _FixedDetector:
    def __init__(self, boxes):
        self.boxes = np.array(boxes, dtype=float).reshape(-1, 4)

    def detect(self, images):
        return [Detections(self.boxes.copy(), np.linspace(0.9, 0.1, len(self.boxes))) for _ in images]


def test_zero_area_and_no_boxes(tmp_path, grounder, picture):
    picture(1).save(tmp_path / "a.jpg")
    item = GroundItem("a", ["a dog"])
    loaded = load_item(tmp_path, item)
    g = Grounder(_FixedDetector([[5, 5, 5, 50], [10, 10, 60, 10.2], [7, 7, 7, 7]]), grounder.matcher,
                 grounder.config, "fixed", "clip", True)
    r = g.ground_one(loaded)
    assert r.status == "ok" and [s.box for s in r.selected] == [(10, 10, 60, 11)]  # only the one with area
    g0 = Grounder(_FixedDetector([[3, 3, 3, 9]]), grounder.matcher, grounder.config, "fixed", "clip", True)
    r0 = g0.ground_batch([loaded])[0]
    assert r0.status == "no_boxes" and r0.selected == [] and r0.crops == []


# -- odd images -------------------------------------------------------------------------------------------
def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0\0\0\0"))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


def test_odd_images_never_stop_the_run(tmp_path, grounder, picture):
    img = tmp_path / "img"
    img.mkdir()
    base = picture(3, (160, 120))
    base.convert("L").save(img / "gray.jpg")
    base.convert("CMYK").save(img / "cmyk.jpg")
    base.convert("P").save(img / "pal.png")
    base.convert("RGBA").save(img / "rgba.png")
    Image.fromarray((np.asarray(base.convert("L")).astype(np.uint16) * 257)).save(img / "deep.png")
    exif = Image.Exif()
    exif[0x0112] = 8
    base.save(img / "rot.jpeg", exif=exif)
    base.save(img / "anim.gif", save_all=True, append_images=[picture(4, (160, 120))])
    Image.new("RGB", (1, 1), (9, 9, 9)).save(img / "tiny.jpg")
    (img / "trunc.jpg").write_bytes((img / "gray.jpg").read_bytes()[:300])
    (img / "bomb.png").write_bytes(_png_claiming(30000, 30000))
    names = ["gray", "cmyk", "pal", "rgba", "deep", "rot", "anim", "tiny", "trunc", "bomb", "absent"]
    items = [GroundItem(n, ["a thing"] if k % 2 else []) for k, n in enumerate(names)]
    s = ground_split(grounder, items, img, tmp_path / "aux", "train", progress=False)
    df = read_manifest(Path(s.manifest))
    status = df.drop_duplicates("imgid").set_index("imgid")["status"].to_dict()
    assert status["trunc"] == "unreadable" and status["bomb"] == "too_large" and status["absent"] == "missing"
    assert all(status[n] in ("ok", "no_boxes") for n in names[:8])
    assert status["tiny"] == "ok"  # a 1x1 image still gets its one pixel box
    assert s.statuses == {"ok": 8, "no_boxes": 0, "missing": 1, "unreadable": 1, "too_large": 1}
    rot = df[(df.imgid == "rot")].iloc[0]
    assert (rot.image_width, rot.image_height) == (120, 160)  # EXIF orientation respected


# -- resume, crash safety, force, shards ------------------------------------------------------------------
def test_resume_after_limit_and_after_a_kill(tmp_path, grounder, tweets, monkeypatch, write_images):
    write_images(tmp_path / "img", tweets)
    ref = ground_split(grounder, tweets, tmp_path / "img", tmp_path / "ref", "test", progress=False)
    ref_df = read_manifest(Path(ref.manifest))

    s1 = ground_split(grounder, tweets, tmp_path / "img", tmp_path / "aux", "test", limit=2, progress=False)
    assert s1.processed == 2
    # A kill after the second batch's crops are written but before its rows are appended.
    real_append = ManifestAppender.append
    calls = {"n": 0}

    def dying_append(self, rows):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        real_append(self, rows)

    monkeypatch.setattr(ManifestAppender, "append", dying_append)
    with pytest.raises(KeyboardInterrupt):
        ground_split(grounder, tweets, tmp_path / "img", tmp_path / "aux", "test", progress=False)
    monkeypatch.setattr(ManifestAppender, "append", real_append)
    mid = read_manifest(tmp_path / "aux" / "test" / "manifest.csv")
    assert mid.imgid.nunique() == 2 + 3  # the limit run + one full batch; the dying batch left no rows
    crops = tmp_path / "aux" / "test" / "crops"
    assert all((crops / f).is_file() for f in mid.crop_file if f)
    assert not list(crops.glob(".*tmp*"))  # no half-written PNG

    s3 = ground_split(grounder, tweets, tmp_path / "img", tmp_path / "aux", "test", progress=False)
    assert s3.skipped == 5 and s3.processed == len(tweets) - 5
    final = read_manifest(Path(s3.manifest))
    key = lambda df: sorted(_crops_of(df), key=str)  # noqa: E731
    assert key(final) == key(ref_df)
    s4 = ground_split(grounder, tweets, tmp_path / "img", tmp_path / "aux", "test", progress=False)
    assert s4.processed == 0 and s4.skipped == len(tweets)


def _rows(imgids, crops=2):
    rows = []
    for imgid in imgids:
        for rank in range(crops):
            rows.append({"imgid": imgid, "status": "ok", "crop_file": f"{imgid}_pred_yolo_crop_{rank}.png",
                         "rank": rank, "x1": 1, "y1": 2, "x2": 30, "y2": 40, "phrase": "a b", "clip_score": 0.25,
                         "det_score": 0.5, "image_width": 64, "image_height": 48, "detector": "d",
                         "clip_model": "c", "random_weights": True})
    return rows


def test_manifest_appends_survive_a_torn_write(tmp_path):
    path = tmp_path / "manifest.csv"
    m = ManifestAppender(path)
    m.append(_rows(["1", "2"]))
    inode = path.stat().st_ino
    m.append(_rows(["3"]))
    assert path.stat().st_ino == inode  # appended in place, not rewritten
    committed = path.read_bytes()
    # A kill in the middle of the next append: half its bytes reach the file, the length is not committed.
    with open(path, "ab") as fh:
        fh.write(b"4,ok,4_pred_yolo_crop_0.png,0,1,2,3")
    assert committed_path(path).is_file()
    assert list(read_manifest(path).imgid.unique()) == ["1", "2", "3"]  # the torn tail is not read
    again = ManifestAppender(path)  # the resume
    assert path.read_bytes() == committed and list(again.existing.imgid.unique()) == ["1", "2", "3"]
    again.append(_rows(["4"]))
    again.close()
    assert not committed_path(path).exists()
    raw = pd.read_csv(path, dtype={"imgid": str})  # a plain CSV again, without our reader's help
    assert list(raw.imgid) == ["1", "1", "2", "2", "3", "3", "4", "4"] and list(raw.columns) == list(COLUMNS)


def test_manifest_of_another_layout_is_normalised_and_a_stale_sidecar_ignored(tmp_path):
    path = tmp_path / "manifest.csv"
    pd.DataFrame(_rows(["7"]))[["imgid", "status", "crop_file", "rank"]].to_csv(path, index=False)
    m = ManifestAppender(path)
    m.append(_rows(["8"]))
    m.close()
    df = read_manifest(path)
    assert list(df.imgid) == ["7", "7", "8", "8"] and df.x1.isna().tolist() == [True, True, False, False]
    # A sidecar left from before the file was replaced names another inode: the whole file is valid.
    write_manifest(path, df)
    committed_path(path).write_text(f"10 {path.stat().st_ino + 1}\n")
    assert list(read_manifest(path).imgid) == ["7", "7", "8", "8"]


def test_force_redoes_and_removes_stale_crops(tmp_path, grounder, tweets, write_images):
    write_images(tmp_path / "img", tweets[:2])
    ground_split(grounder, tweets[:2], tmp_path / "img", tmp_path / "aux", "train", progress=False)
    stale = tmp_path / "aux" / "train" / "crops" / f"{tweets[0].imgid}_pred_yolo_crop_7.png"
    Image.new("RGB", (2, 2)).save(stale)
    s = ground_split(grounder, tweets[:2], tmp_path / "img", tmp_path / "aux", "train", force=True, limit=1,
                     progress=False)
    assert s.processed == 1 and s.skipped == 0 and not stale.exists()
    df = read_manifest(Path(s.manifest))
    assert df.imgid.nunique() == 2 and len(df) == len(df.drop_duplicates(["imgid", "rank"]))  # no duplicate rows


def test_shards_merge_into_one_dict(tmp_path, grounder, tweets, write_images):
    write_images(tmp_path / "img", tweets)
    for i in range(2):
        ground_split(grounder, tweets, tmp_path / "img", tmp_path / "aux", "train", shard=Shard(i, 2),
                     progress=False)
    split_dir = tmp_path / "aux" / "train"
    assert sorted(p.name for p in split_dir.glob("manifest*.csv")) == [
        "manifest.shard-0-of-2.csv", "manifest.shard-1-of-2.csv"]
    merged = read_split_manifests(split_dir)
    assert sorted(merged.imgid.unique()) == sorted(t.imgid for t in tweets)
    build_dicts(tmp_path / "aux", "tw", tmp_path / "text", ["train"])
    d = torch.load(tmp_path / "text" / "tw_train_dict.pth", weights_only=True)
    assert set(d) == {f"{t.imgid}.jpg" for t in tweets}
    for key, crops in d.items():
        assert crops == [f"{key[:-4]}_pred_yolo_crop_{n}.png" for n in range(len(crops))]


# -- CLI --------------------------------------------------------------------------------------------------
def _nps_file(folder: Path, split: str, items) -> None:
    """An extract-nps file whose NPs are the items' phrases (tokens: the phrases one after another)."""
    from comipn_prep.nps.io import NounPhrase, TweetNPs, write_nps_jsonl

    out = []
    for it in items:
        tokens, nps = ["RT"], []
        for p in it.phrases:
            words = p.split()
            nps.append(NounPhrase(len(tokens), len(tokens) + len(words), p))
            tokens += words
        out.append(TweetNPs(it.imgid, tokens, nps))
    write_nps_jsonl(folder / f"{split}.nps.jsonl", out)


def test_cli_offline_default_weights_exit_2(tmp_path, tweets):
    _nps_file(tmp_path / "nps", "train", tweets[:1])
    (tmp_path / "img").mkdir()  # no image: allowed below, so that the weights are what fails
    r = CliRunner().invoke(main, ["ground", "--nps", str(tmp_path / "nps"), "--images", str(tmp_path / "img"),
                                  "--out", str(tmp_path / "aux"), "--split", "train", "--allow-missing-images"])
    assert r.exit_code == 2 and "--detector" in r.output and "local" in r.output
    r = CliRunner().invoke(main, ["ground", "--nps", str(tmp_path / "nps"), "--images", str(tmp_path / "img"),
                                  "--out", str(tmp_path / "aux"), "--split", "train", "--detector", "yolov8n.yaml",
                                  "--allow-missing-images"])
    assert r.exit_code == 2 and "--clip-pretrained" in r.output
    r = CliRunner().invoke(main, ["ground", "--nps", str(tmp_path / "nps"), "--images", str(tmp_path / "img"),
                                  "--out", str(tmp_path / "aux"), "--split", "test"])
    assert r.exit_code == 2 and "test.nps.jsonl" in r.output
    if not torch.cuda.is_available():
        r = CliRunner().invoke(main, ["ground", "--nps", str(tmp_path / "nps"), "--images", str(tmp_path / "img"),
                                      "--out", str(tmp_path / "aux"), "--split", "train", "--device", "cuda",
                                      "--allow-missing-images"])
        assert r.exit_code == 2 and "CUDA" in r.output


def test_cli_ground_then_build_dict(tmp_path, tweets, write_images):
    _nps_file(tmp_path / "nps", "valid", tweets[:3])
    write_images(tmp_path / "img", tweets[:2])  # the third image is missing
    args = ["ground", "--nps", str(tmp_path / "nps"), "--images", str(tmp_path / "img"), "--out",
            str(tmp_path / "aux"), "--split", "val", "--detector", "yolov8n.yaml", "--clip-pretrained", "none",
            "--conf", "0.0", "--max-candidates", "5", "--device", "cpu"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "missing 1" in r.output and "RANDOM" in r.output
    df = read_manifest(tmp_path / "aux" / "val" / "manifest.csv")
    assert set(df.imgid) == {t.imgid for t in tweets[:3]} and df.random_weights.all()
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "0 images grounded (3 already done)" in r.output
    bd = ["build-dict", "--aux", str(tmp_path / "aux"), "--dataset", "twitter2015", "--out", str(tmp_path / "t"),
          "--split", "valid"]
    assert CliRunner().invoke(main, bd).exit_code == 0
    d = torch.load(tmp_path / "t" / "twitter2015_val_dict.pth", weights_only=True)
    assert set(d) == {f"{t.imgid}.jpg" for t in tweets[:2]}
    assert json.loads((tmp_path / "t" / "twitter2015_val_dict.json").read_text()) == d
    r = CliRunner().invoke(main, bd)
    assert r.exit_code == 2 and "--force" in r.output
    assert CliRunner().invoke(main, bd + ["--force"]).exit_code == 0


def test_cli_ground_input_path_tensor_then_the_default_path_resumes(tmp_path, tweets, write_images,
                                                                    random_grounding):
    """--input-path tensor writes the manifest the default path reads: a rerun without it has nothing to do."""
    _nps_file(tmp_path / "nps", "valid", tweets[:3])
    write_images(tmp_path / "img", tweets[:2])  # the third image is missing
    args = ["ground", "--nps", str(tmp_path / "nps"), "--images", str(tmp_path / "img"), "--out",
            str(tmp_path / "aux"), "--split", "val", "--detector", "yolov8n.yaml", "--clip-model",
            random_grounding["clip_model"], "--clip-pretrained", "none", "--conf", "0.0", "--max-candidates", "3",
            "--device", "cpu"]
    r = CliRunner().invoke(main, args + ["--input-path", "tensor"])
    assert r.exit_code == 0, r.output
    assert "missing 1" in r.output and "3 images grounded (0 already done)" in r.output
    assert json.loads((tmp_path / "aux" / "ground_run.json").read_text())["config"]["input_path"] == "tensor"
    df = read_manifest(tmp_path / "aux" / "val" / "manifest.csv")
    assert set(df.imgid) == {t.imgid for t in tweets[:3]} and (df.crop_file != "").sum() > 0
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "0 images grounded (3 already done)" in r.output, r.output


def test_cli_ground_under_torchrun_shards_by_process(tmp_path, tweets, write_images):
    """Two processes under torchrun (CPU): each grounds its share into its own manifest, exactly the
    manifests of --shard 0/2 and 1/2, so a later --shard run resumes from them."""
    import os
    import subprocess
    import sys

    _nps_file(tmp_path / "nps", "valid", tweets[:4])
    write_images(tmp_path / "img", tweets[:4])
    model = ["--detector", "yolov8n.yaml", "--clip-pretrained", "none", "--conf", "0.0", "--max-candidates", "3",
             "--device", "cpu", "--threads", "1"]
    args = ["ground", "--nps", str(tmp_path / "nps"), "--images", str(tmp_path / "img"), "--out",
            str(tmp_path / "aux"), "--split", "val", *model]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "YOLO_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "comipn_prep.cli", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    split_dir = tmp_path / "aux" / "val"
    assert sorted(p.name for p in split_dir.glob("manifest*.csv")) == [
        "manifest.shard-0-of-2.csv", "manifest.shard-1-of-2.csv"]
    for i in range(2):
        df = read_manifest(split_dir / f"manifest.shard-{i}-of-2.csv")
        assert set(df.imgid) == {t.imgid for t in tweets[i:4:2]}
    assert sorted(read_split_manifests(split_dir).imgid.unique()) == sorted(t.imgid for t in tweets[:4])
    r = CliRunner().invoke(main, args + ["--shard", "1/2"])  # one process: shard 1/2 is done already
    assert r.exit_code == 0 and "0 images grounded (2 already done)" in r.output, r.output


def test_detecting_leaves_torch_threads_as_they_were(grounder, picture):
    """ultralytics sets torch's threads to cpu_count - 1 (capped at 8) on a CPU predict: on 2 cores the
    rest of the process (CLIP, the tower, the tagger) ran on one thread after the first detection."""
    from ultralytics.utils import NUM_THREADS

    before = torch.get_num_threads()
    wanted = NUM_THREADS + 1  # whatever the machine, not what ultralytics would set
    torch.set_num_threads(wanted)
    try:
        grounder.detector.detect([picture(7)])
        assert torch.get_num_threads() == wanted
    finally:
        torch.set_num_threads(before)


def test_random_clip_weights_load_without_open_clips_root_warning(caplog):
    """open_clip warns "No pretrained weights loaded" on the root logger for the random weights the user
    asked for; the build is quiet, and the root logger is left as it was."""
    import logging

    from comipn_prep.weights import load_clip

    root_filters = list(logging.getLogger().filters)
    with caplog.at_level(logging.INFO):
        bundle = load_clip("ViT-B-32", None)
        logging.getLogger().warning("a root warning of the application's own")
    assert bundle.random_weights
    assert not [r for r in caplog.records if "open_clip" in r.pathname]
    assert any(r.getMessage() == "a root warning of the application's own" for r in caplog.records)
    assert any("random weights" in r.getMessage() for r in caplog.records if r.name == "comipn_prep.weights")
    assert logging.getLogger().filters == root_filters
