"""Issue 22, items 1 and 7: nothing named inside a model's files runs code, a Hub id is fetched only when
asked for, and a model reference says whether it was read as a path or as a Hub id.

The payload is harmless: unpickling it writes a marker file, so a test proves the pickle never ran by
the marker's absence."""

from __future__ import annotations

import json
import pathlib
import re
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from comipn_prep.conll import read_conll, write_conll
from comipn_prep.layout import DatasetLayout
from comipn_prep.weights import WeightsUnavailable
from comipn_model import Tagger
from comipn_model.cli import main
from comipn_model.saved.export import export_model
from comipn_model.saved.loader import resolve_source
from comipn_model.data.prep_record import read_prep_record


class Payload:
    """Unpickled, it writes ``marker`` (what a stranger's pickle could do with any file)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.write_text, (pathlib.Path(self.marker), "ran")


def payload_file(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": Payload(marker)}, path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory, make_tiny_encoder, make_checkpoint):
    base = tmp_path_factory.mktemp("trust")
    encoder = make_tiny_encoder(base / "encoder")
    checkpoint = make_checkpoint(base / "all" / "best.pt", encoder)  # uses images; grounding recorded
    exported = export_model(checkpoint, base / "exported")
    return {"base": base, "encoder": encoder, "checkpoint": checkpoint, "exported": exported}


def stranger_folder(models, where: Path, detector: str) -> Path:
    """An exported model as a stranger would hand it over, its config naming ``detector``."""
    folder = where / "stranger"
    shutil.copytree(models["exported"], folder)
    config = json.loads((folder / "config.json").read_text())
    config["grounding"]["detector"] = detector
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def one_tweet(picture):
    """``one_tweet(where)``: ``where/t.jsonl``, one tweet whose picture is ``where/photo.jpg``."""
    def write(where: Path) -> Path:
        picture(where / "photo.jpg", seed=1)
        path = where / "t.jsonl"
        path.write_text(json.dumps({"text": "Elon Musk visits Paris today", "image": "photo.jpg"}) + "\n")
        return path

    return write


def predict(*args: str):
    return CliRunner().invoke(main, ["predict", "--device", "cpu", *args])


def test_exported_config_detector_is_not_unpickled_by_predict(models, tmp_path, monkeypatch, one_tweet):
    """The issue's row: `predict --load-path stranger` ran the pickle named in stranger/config.json."""
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "marker"
    folder = stranger_folder(models, tmp_path, "stranger/yolo.pt")  # relative, as the issue had it
    payload_file(folder / "yolo.pt", marker)
    result = predict("--load-path", "stranger", "--input", str(one_tweet(tmp_path)), "--out", "o.jsonl")
    assert not marker.exists(), "the pickle named in config.json ran"
    assert result.exit_code == 2, result.output
    assert str(folder / "config.json") in result.output and "grounding.detector" in result.output
    assert "--trust-detector" in result.output and "--detector PATH" in result.output
    assert not (tmp_path / "o.jsonl").exists()
    # the user's own detector: runs, and still nothing of the stranger's file is read
    result = predict("--load-path", "stranger", "--input", str(one_tweet(tmp_path)), "--out", "o.jsonl",
                     "--detector", "yolov8n.yaml")
    assert result.exit_code == 0, result.output
    assert not marker.exists() and len((tmp_path / "o.jsonl").read_text().splitlines()) == 1


def test_predict_refuses_a_recorded_detector_before_the_network_is_built(models, tmp_path, monkeypatch, one_tweet):
    """Bad input before slow work: an input with pictures to ground meets the refusal before the text
    encoder and the network are built (they took about 7 s for BERT-base)."""
    import comipn_model.inference.tagger as tagger_module

    def refuse(*args, **kwargs):
        raise AssertionError("the network was built before the recorded detector was checked")

    monkeypatch.setattr(tagger_module, "build_network", refuse)
    folder = stranger_folder(models, tmp_path, str(tmp_path / "elsewhere" / "yolo.pt"))
    result = predict("--load-path", str(folder), "--input", str(one_tweet(tmp_path)),
                     "--out", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 2, result.output
    assert "grounding.detector" in result.output and "--trust-detector" in result.output
    # prepared crops need no detector: nothing is refused for it (the network is built: the stand-in fails)
    crops = tmp_path / "crops.jsonl"
    crops.write_text(json.dumps({"text": "Elon Musk", "image": "photo.jpg", "crops": []}) + "\n")
    result = predict("--load-path", str(folder), "--input", str(crops), "--out", str(tmp_path / "o2.jsonl"))
    assert isinstance(result.exception, AssertionError) and "network was built" in str(result.exception)


def test_exported_config_detector_is_not_unpickled_by_the_tagger(models, tmp_path, picture):
    marker = tmp_path / "marker"
    folder = stranger_folder(models, tmp_path, str(tmp_path / "stranger" / "yolo.pt"))
    payload_file(folder / "yolo.pt", marker)
    tagger = Tagger.from_pretrained(folder, device="cpu")
    with pytest.raises(Exception) as err:
        tagger(["Elon Musk visits Paris today"], images=[picture(seed=2)])
    assert not marker.exists(), "the pickle named in config.json ran"
    assert isinstance(err.value, WeightsUnavailable) and isinstance(err.value, ValueError)
    assert re.search(r"config\.json, field grounding\.detector.*trust_detector=True", str(err.value))
    # the caller names the detector: it runs
    own = Tagger.from_pretrained(folder, device="cpu", grounding={"detector": "yolov8n.yaml"})
    assert len(own(["Elon Musk visits Paris today"], images=[picture(seed=2)])[0].tags) == 5
    assert not marker.exists()


def test_trust_detector_opts_in(models, tmp_path, picture):
    """With the opt-in the recorded .pt is loaded as recorded (here a real, random-weight YOLO)."""
    from ultralytics import YOLO

    folder = stranger_folder(models, tmp_path, str(tmp_path / "stranger" / "det.pt"))
    YOLO("yolov8n.yaml").save(folder / "det.pt")
    with pytest.raises(WeightsUnavailable, match="grounding.detector"):
        Tagger.from_pretrained(folder, device="cpu")(["Paris today"], images=[picture(seed=3)])
    trusted = Tagger.from_pretrained(folder, device="cpu", trust_detector=True)
    assert len(trusted(["Paris today"], images=[picture(seed=3)])[0].tags) == 2
    assert trusted._ground().detector_id == "det.pt"


def test_checkpoint_prep_detector_is_not_unpickled(models, tmp_path, random_grounding, one_tweet, make_checkpoint):
    """The same path inside a stranger's best.pt (prep.grounding.detector, read with weights_only)."""
    marker = tmp_path / "marker"
    yolo = payload_file(tmp_path / "elsewhere" / "yolo.pt", marker)
    best = make_checkpoint(tmp_path / "run" / "best.pt", models["encoder"],
                           prep={"grounding": {**random_grounding, "detector": str(yolo)}, "np_backend": "textblob"})
    result = predict("--load-path", str(best.parent), "--input", str(one_tweet(tmp_path)),
                     "--out", str(tmp_path / "o.jsonl"))
    assert not marker.exists(), "the pickle named in best.pt ran"
    assert result.exit_code == 2, result.output
    assert str(best) in result.output and "prep.grounding.detector" in result.output
    assert "--trust-detector" in result.output


def test_dataset_ground_run_detector_does_not_reach_predict(models, tmp_path, twitter_data, monkeypatch,
                                                            random_grounding, one_tweet, make_checkpoint):
    """A dataset's aux/ground_run.json naming `~/../somewhere/yolo.pt`: training copies the record into
    best.pt (built here as training builds it, with read_prep_record: an image model trains slowly), and
    predict must neither expand `~` nor unpickle the file."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    marker = tmp_path / "marker"
    payload_file(tmp_path / "somewhere" / "yolo.pt", marker)  # = ~/../somewhere/yolo.pt
    layout = DatasetLayout(tmp_path / "root", "twitter2017")
    for split in ("train", "valid", "test"):
        write_conll(layout.text_path(split), read_conll(twitter_data / "twitter2017" / f"{split}.txt").tweets[:4])
    layout.aux_dir.mkdir(parents=True)
    record = {"config": {**random_grounding, "detector": "~/../somewhere/yolo.pt"}, "random_weights": True}
    (layout.aux_dir / "ground_run.json").write_text(json.dumps(record))
    prep = read_prep_record(layout)
    assert prep["grounding"]["detector"] == "~/../somewhere/yolo.pt"
    best = make_checkpoint(tmp_path / "run" / "best.pt", models["encoder"], prep=prep)
    result = predict("--load-path", str(best), "--input", str(one_tweet(tmp_path)), "--out", str(tmp_path / "o.jsonl"))
    assert not marker.exists(), "the pickle named in the dataset's ground_run.json ran"
    assert result.exit_code == 2, result.output
    assert "prep.grounding.detector" in result.output and "~/../somewhere/yolo.pt" in result.output


def test_recorded_official_names_never_read_the_current_folder(models, tmp_path, monkeypatch, picture):
    """`yolov8n.pt` and `yolov8n.yaml` recorded by every normal run are ultralytics' names: never a file
    of that name in the current folder (ultralytics itself looks there first)."""
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "marker"
    payload_file(tmp_path / "yolov8n.pt", marker)
    (tmp_path / "yolov8n.yaml").write_text(
        f"activation: __import__('pathlib').Path({str(marker)!r}).write_text('ran') or nn.SiLU()\n"
        "nc: 80\nbackbone: []\nhead: []\n")
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    official = stranger_folder(models, tmp_path / "a", "yolov8n.pt")
    with pytest.raises(Exception) as err:
        Tagger.from_pretrained(official, device="cpu")(["Paris today"], images=[picture(seed=4)])
    assert not marker.exists(), "./yolov8n.pt ran"
    assert isinstance(err.value, WeightsUnavailable) and "not in ultralytics' weights folder" in str(err.value)
    packaged = stranger_folder(models, tmp_path / "b", "yolov8n.yaml")
    tagger = Tagger.from_pretrained(packaged, device="cpu")
    assert len(tagger(["Paris today"], images=[picture(seed=4)])[0].tags) == 2
    assert tagger._ground().detector_id == "yolov8n:random" and not marker.exists()


def test_recorded_clip_weights_are_never_looked_up_from_the_current_folder(models, tmp_path, monkeypatch, one_tweet):
    """The model's own CLIP weights recorded as a relative path: not read from wherever predict runs."""
    monkeypatch.chdir(tmp_path)
    folder = stranger_folder(models, tmp_path, "yolov8n.yaml")
    config = json.loads((folder / "config.json").read_text())
    config["model"]["clip_pretrained"] = "clip.pt"
    (folder / "config.json").write_text(json.dumps(config))
    torch.save({"visual.proj": torch.zeros(1)}, tmp_path / "clip.pt")  # a same-named file in the current folder
    result = predict("--load-path", "stranger", "--input", str(one_tweet(tmp_path)), "--out", "o.jsonl")
    assert result.exit_code == 2, result.output
    assert str(folder / "config.json") in result.output and "model.clip_pretrained" in result.output
    assert "never looked up from the current folder" in result.output and "--clip-pretrained" in result.output
    result = predict("--load-path", "stranger", "--input", str(one_tweet(tmp_path)), "--out", "o.jsonl",
                     "--clip-pretrained", "none")
    assert result.exit_code == 0, result.output


# -- the Hub: --load-path ------------------------------------------------------------------------------
def test_hub_id_is_fetched_only_with_from_hub(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "t.txt").write_text("Elon Musk visits Paris today\n")
    result = predict("--load-path", "someone/tagger", "--input", "t.txt", "--out", "o.jsonl")
    assert result.exit_code == 2, result.output
    assert "someone/tagger: no such local folder" in result.output
    assert "to download the Hugging Face Hub repository someone/tagger pass --from-hub" in result.output
    result = predict("--load-path", "someone/tagger", "--from-hub", "--input", "t.txt", "--out", "o.jsonl")
    assert result.exit_code == 2, result.output
    assert "read as a Hugging Face Hub id" in result.output and "offline" in result.output
    result = CliRunner().invoke(main, ["export", "--load-path", "someone/tagger", "--out", "x"])
    assert result.exit_code == 2 and "pass --from-hub" in result.output, result.output
    # a path that is not there is just that, never a Hub id
    for missing in ("./someone/tagger", "runs/a/best.pt", "~/runs/a"):
        with pytest.raises(FileNotFoundError, match="no such folder") as err:
            resolve_source(missing, from_hub=True)
        assert "Hub" not in str(err.value)


# -- item 7: model names vs paths --------------------------------------------------------------------
def test_train_text_model_mistyped_folder_says_which_it_was(tmp_path, twitter_data, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    layout = DatasetLayout(tmp_path / "root", "twitter2017")
    for split in ("train", "valid", "test"):
        write_conll(layout.text_path(split), read_conll(twitter_data / "twitter2017" / f"{split}.txt").tweets[:8])
    result = CliRunner().invoke(main, [
        "--data-root", str(layout.root), "--dataset", "twitter2017", "--text-model", "models/bert-base-uncased",
        "--epochs", "1", "--device", "cpu", "--run-dir", str(tmp_path / "run"), "--no-use-prompt",
        "--no-use-dynamic-matching", "--no-use-contrastive"])
    assert result.exit_code == 2, result.output
    assert "models/bert-base-uncased: no such local folder" in result.output
    assert str(tmp_path / "models" / "bert-base-uncased") in result.output
    assert "read as a Hugging Face Hub id it is not in the local cache (offline: HF_HUB_OFFLINE=1)" in result.output
    assert not (tmp_path / "run").exists()


def test_predict_text_model_missing_folder_is_no_such_folder(models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "t.txt").write_text("Elon Musk visits Paris today\n")
    for ref, said in (("no-such-dir", "no-such-dir: no such local folder"),
                      ("./no-such-dir", "no-such-dir: no such folder")):
        result = predict("--load-path", str(models["checkpoint"]), "--input", "t.txt", "--out", "o.jsonl",
                         "--text-model", ref)
        assert result.exit_code == 2, result.output
        assert said in result.output and "couldn't connect" not in result.output
        assert "--text-model" in result.output
