"""comipn_model.Tagger: raw tweets (and pictures) in, tags and entities out, in one call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from comipn_prep.conll import read_conll
from comipn_prep.images import ImageLoadError
from comipn_prep.nps.tokenize import tokenize_tweet
from comipn_prep.weights import WeightsUnavailable
from comipn_model import Tagger
from comipn_model.saved import run_folder as rf

RAW = ["Elon Musk visits Paris today", "RT @SpaceX : Falcon 9 lifts off from Cape Canaveral with NASA's DSCOVR",
       "so happy"]


@pytest.fixture(scope="module")
def models(tmp_path_factory, make_tiny_encoder, train_text_only, make_checkpoint):
    base = tmp_path_factory.mktemp("tagger")
    encoder = make_tiny_encoder(base / "encoder")
    return {"base": base, "encoder": encoder, "run": train_text_only(base, encoder),
            "all": make_checkpoint(base / "all" / "best.pt", encoder)}


@pytest.fixture(scope="module")
def all_switches(models):
    return Tagger.from_pretrained(models["all"], device="cpu")


def test_tokenizer_splits_like_the_twitter_datasets():
    assert tokenize_tweet("RT @jack: NASA's #SpaceX launch http://t.co/Rk2bQ0aZ :)") == \
        ["RT", "@jack", ":", "NASA", "'s", "#SpaceX", "launch", "http://t.co/Rk2bQ0aZ", ":)"]
    assert tokenize_tweet("Elon Musk visits Paris today") == ["Elon", "Musk", "visits", "Paris", "today"]
    assert tokenize_tweet("   ") == []


def test_same_tags_as_the_training_run(models):
    """The run's own test predictions (test_predictions.txt) are what the Tagger gives on those tweets,
    loaded from the run folder or its best.pt."""
    run = models["run"]
    expected = [[line.split("\t")[2] for line in block.splitlines()[1:]]
                for block in (run / rf.TEST_PREDICTIONS).read_text().strip("\n").split("\n\n")]
    config = json.loads((run / rf.CONFIG).read_text())
    tweets = read_conll(Path(config["data_root"]) / "twitter2017" / "test.txt").tweets
    for source in (run, run / rf.BEST):
        results = Tagger.from_pretrained(source, device="cpu")([t.tokens for t in tweets])
        assert [r.tags for r in results] == expected
        assert [r.tokens for r in results] == [t.tokens for t in tweets]


def test_raw_tweets_give_tokens_tags_and_entities(models):
    tagger = Tagger.from_pretrained(models["run"], device="cpu")
    results = tagger(RAW + [""], batch_size=2)
    assert [r.tokens for r in results] == [tokenize_tweet(t) for t in RAW] + [[]]
    for r in results:
        assert len(r.tags) == len(r.tokens) and r.crops == []
        spans = [(e["token_start"], e["token_end"]) for e in r.entities]
        assert spans == sorted(spans)
        for e in r.entities:
            assert r.tags[e["token_start"]] == f"B-{e['entity_group']}"
            assert e["word"] == r.text[e["start"]:e["end"]]
            assert r.offsets[e["token_start"]][0] == e["start"] and r.offsets[e["token_end"] - 1][1] == e["end"]
    # input order, whatever the batching (tweets are sorted by sub-token count inside)
    assert [r.tags for r in tagger(RAW[::-1], batch_size=1)] == [r.tags for r in results[:3]][::-1]
    assert tagger([["Elon", "Musk"]])[0].tokens == ["Elon", "Musk"]


def test_text_only_never_loads_yolo_or_clip(models, tmp_path, picture):
    """A text-only model given pictures reads none of them and imports neither ultralytics nor open_clip."""
    image = picture(tmp_path / "a.jpg")
    code = f"""
import sys
from comipn_model import Tagger
tagger = Tagger.from_pretrained({str(models['run'])!r}, device="cpu")
out = tagger(["Elon Musk visits Paris today", "hello"], images=[{str(image)!r}, "no/such/file.jpg"])
assert len(out) == 2 and out[0].crops == []
loaded = [m for m in ("ultralytics", "open_clip") if m in sys.modules]
assert not loaded, loaded
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_all_switches_ground_raw_pictures_on_the_fly(all_switches, tmp_path, monkeypatch, picture):
    """YOLO + CLIP (the recorded random-weight settings) choose crops; the picture and its crops reach
    the model as visual features; a tweet without a picture is masked."""
    seen = []
    emissions = all_switches.model.emissions
    monkeypatch.setattr(all_switches.model, "emissions", lambda batch: seen.append(batch.visual) or emissions(batch))
    images = [picture(seed=1), picture(tmp_path / "b.jpg", seed=2), None]
    results = all_switches(RAW, images=images, batch_size=8)
    assert len(seen) == 1 and seen[0] is not None
    mask = seen[0].mask  # rows in sub-token count order: "so happy" (no image) first
    sub_tokens = [len(t.input_ids) for t in all_switches.batcher.tokenise([tokenize_tweet(t) for t in RAW])]
    lengths = sorted(range(3), key=sub_tokens.__getitem__)
    for row, i in enumerate(lengths):
        assert bool(mask[row, 0]) == (images[i] is not None)
        assert int(mask[row, 1:].sum()) == len(results[i].crops)
    for r in results[:2]:
        assert 1 <= len(r.crops) <= all_switches.config.aux_k
        assert len(r.crop_images) == len(r.crops)
        for crop, im in zip(r.crops, r.crop_images):
            x1, y1, x2, y2 = crop["box"]
            assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480
            assert im.size == (x2 - x1, y2 - y1)
            assert crop["phrase"] == "" or crop["phrase"] in RAW[results.index(r)]
    assert results[2].crops == []
    # tagged alone, a tweet gets the same crops and tags as in a batch
    same = all_switches([RAW[1]], images=[tmp_path / "b.jpg"])[0]
    assert same.crops == results[1].crops and same.tags == results[1].tags


def test_prepared_crops_never_load_the_detector(models, tmp_path, monkeypatch, picture):
    from comipn_prep.grounding.driver import Grounder

    def refuse(*_a, **_k):
        raise AssertionError("the grounder was loaded")

    monkeypatch.setattr(Grounder, "from_config", classmethod(refuse))
    tagger = Tagger.from_pretrained(models["all"], device="cpu")
    crops = [picture(tmp_path / f"crop{i}.png", seed=10 + i, size=(64, 96)) for i in range(2)]
    image = picture(tmp_path / "img.jpg", seed=3)
    result = tagger(RAW[:2], images=[image, None], crops=[crops, [crops[1]]])
    assert [c["file"] for c in result[0].crops] == [str(c) for c in crops]
    assert [c["file"] for c in result[1].crops] == [str(crops[1])]
    # the feature cache gives the same tags as features computed in memory
    cached = Tagger.from_pretrained(models["all"], device="cpu", feature_cache=tmp_path / "fc")
    assert [r.tags for r in cached(RAW[:2], images=[image, None], crops=[crops, [crops[1]]])] == \
        [r.tags for r in result]
    assert cached._cache.misses == 3  # three distinct files
    assert [r.tags for r in cached(RAW[:2], images=[image, None], crops=[crops, [crops[1]]])] == \
        [r.tags for r in result]
    assert cached._cache.hits == 4  # crops[1] is used twice


def test_bad_input_gives_clear_errors(models, all_switches, tmp_path, picture):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    with pytest.raises(ImageLoadError, match="broken.jpg: unreadable"):
        all_switches(["hello world"], images=[broken])
    with pytest.raises(FileNotFoundError, match=r"nowhere.jpg \(tweet 2\): no such file"):
        all_switches(["a", "b"], images=[None, tmp_path / "nowhere.jpg"])
    with pytest.raises(ValueError, match="1 images for 2 tweets"):
        all_switches(["a", "b"], images=[None])
    with pytest.raises(TypeError, match="list of tweets"):
        all_switches("one tweet")
    # a missing detector names the setting that takes a local file
    no_detector = Tagger.from_pretrained(models["all"], device="cpu", grounding={"detector": "missing/yolo.pt"})
    with pytest.raises(WeightsUnavailable, match="detector"):
        no_detector(["hello world"], images=[picture()])
    with pytest.raises(ValueError, match="unknown grounding settings"):
        Tagger.from_pretrained(models["all"], device="cpu", grounding={"detectr": "x"}).grounding_config()
    # a checkpoint from another comipn version: one line naming the file
    state = torch.load(models["all"], weights_only=True)
    state["model_config"]["future_switch"] = True
    torch.save(state, tmp_path / "future.pt")
    with pytest.raises(ValueError, match=r"future.pt: a model from another comipn version .*future_switch"):
        Tagger.from_pretrained(tmp_path / "future.pt", device="cpu")
    state = torch.load(models["all"], weights_only=True)
    state["model"]["emission.weight"] = state["model"]["emission.weight"][:, :5]
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other.pt: the weights do not fit the model config .*emission.weight"):
        Tagger.from_pretrained(tmp_path / "other.pt", device="cpu")
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        Tagger.from_pretrained(tmp_path / "none" / "best.pt", device="cpu")


def test_grounding_settings_come_from_training_and_can_be_overridden(all_switches, models):
    config = all_switches.grounding_config()
    assert (config.detector, config.clip_model, config.clip_pretrained, config.conf) == \
        ("yolov8n.yaml", "ViT-S-32", None, 1e-05)
    tagger = Tagger.from_pretrained(models["all"], device="cpu", grounding={"conf": 0.5, "top_k": 1})
    config = tagger.grounding_config()
    assert (config.detector, config.conf, config.top_k) == ("yolov8n.yaml", 0.5, 1)


def test_precision(models):
    fp32 = Tagger.from_pretrained(models["run"], device="cpu", precision="fp32")
    auto = Tagger.from_pretrained(models["run"], device="cpu")  # fp32 on a CPU, as training's evaluation
    bf16 = Tagger.from_pretrained(models["run"], device="cpu", precision="bf16")
    assert [r.tags for r in auto(RAW)] == [r.tags for r in fp32(RAW)]
    dtypes, lengths = [], [len(r.tokens) for r in fp32(RAW)]
    for tagger in (fp32, bf16):
        query = tagger.model.encoder_for("text").encoder.layer[0].attention.self.query
        handle = query.register_forward_hook(lambda _m, _i, out: dtypes.append(out.dtype))
        assert [len(r.tags) for r in tagger(RAW)] == lengths
        handle.remove()
    assert dtypes == [torch.float32, torch.bfloat16]  # bf16 autocast reaches the encoder
    with pytest.raises(ValueError, match="precision must be one of"):
        Tagger.from_pretrained(models["run"], device="cpu", precision="fp8")
