"""comipn-train export: an HF-style folder (config.json, model.safetensors, tokenizer, model card) that loads
with no pickle at all and tags exactly like the checkpoint it came from."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from comipn_prep.conll import read_conll
from comipn_model import Tagger
from comipn_model.saved import run_folder as rf
from comipn_model.cli import main
from comipn_model.saved.export import export_model

RAW = ["Elon Musk visits Paris today", "RT @SpaceX : Falcon 9 lifts off from Cape Canaveral", "so happy"]


@pytest.fixture(scope="module")
def models(tmp_path_factory, make_tiny_encoder, train_text_only, make_checkpoint):
    base = tmp_path_factory.mktemp("export")
    encoder = make_tiny_encoder(base / "encoder")
    run = train_text_only(base, encoder)
    out = base / "exported"
    result = CliRunner().invoke(main, ["export", "--load-path", str(run / rf.BEST), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return {"base": base, "encoder": encoder, "run": run, "exported": out,
            "all": make_checkpoint(base / "all" / "best.pt", encoder, separate_path_encoders=True)}


def test_folder_contents(models, random_grounding):
    out, run = models["exported"], models["run"]
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors", "text_encoder"]
    assert not [p for p in out.rglob("*") if p.suffix in (".pt", ".pth", ".bin", ".pkl")]
    config = json.loads((out / "config.json").read_text())
    saved = json.loads((run / rf.CONFIG).read_text())["model"]
    assert config["format"] == "comipn-tagger" and config["format_version"] == 1
    assert config["labels"] == saved["labels"] == config["model"]["labels"]
    assert {k: v for k, v in config["model"].items()} == \
        {k: v for k, v in saved.items() if k not in ("text_model", "random_init")}
    # the grounding settings recorded by comipn-prep beside the training data travelled with the model
    assert config["grounding"] == {k: v for k, v in random_grounding.items()}
    assert torch.load(run / rf.BEST, weights_only=True)["prep"]["grounding"] == config["grounding"]
    encoder = out / "text_encoder"
    assert (encoder / "config.json").is_file() and (encoder / "tokenizer.json").is_file()
    # the model card carries the run's dev and test figures
    card = (out / "README.md").read_text()
    report = json.loads((run / rf.TEST_REPORT).read_text())
    assert card.startswith("---\n")
    assert f"{100 * report['overall']['f1']:.2f}" in card and f"{100 * report['dev_f1']:.2f}" in card
    assert f"test ({report['tweets']} tweets)" in card


def test_card_metadata_parses_and_lists_the_reported_test_figures(models):
    """The card's YAML is what the Hub reads: model-index with the run's own test precision / recall / F1
    (and dev F1), the dataset and split; the encoder (a local folder) by its folder name, no base_model."""
    from huggingface_hub import ModelCard, metadata_load

    out, run = models["exported"], models["run"]
    report = json.loads((run / rf.TEST_REPORT).read_text())
    meta = metadata_load(out / "README.md")
    card = ModelCard.load(out / "README.md")
    assert card.data.to_dict() == meta
    assert meta["pipeline_tag"] == "token-classification" and meta["library_name"] == "comipn"
    assert meta["datasets"] == ["twitter2017"] and meta["metrics"] == ["seqeval"] and meta["license"] == "unknown"
    assert "base_model" not in meta
    (index,) = meta["model-index"]
    found = {}
    for result in index["results"]:
        assert result["task"]["type"] == "token-classification"
        assert result["dataset"]["type"] == "twitter2017"
        for metric in result["metrics"]:
            found[result["dataset"]["split"], metric["type"]] = metric["value"]
    overall = report["overall"]
    assert found == {("test", "f1"): overall["f1"], ("test", "precision"): overall["precision"],
                     ("test", "recall"): overall["recall"], ("validation", "f1"): report["dev_f1"]}
    assert card.data.eval_results[0].metric_value == overall["f1"]
    text = card.text
    assert f"`{models['encoder'].name} (a local folder)`" in text and str(models["encoder"]) not in text
    labels = json.loads((out / "config.json").read_text())["labels"]
    types = list(dict.fromkeys(label[2:] for label in labels if label != "O"))
    assert f"tweets ({', '.join(types)})" in text and "reads no image" in text


def test_card_of_a_hub_encoder_a_run_without_crops_and_its_own_labels():
    from huggingface_hub import ModelCard

    from comipn_model.saved.exported import model_card

    data = {"model": {"labels": ["O", "B-PER", "I-PER", "B-GPE", "I-GPE"], "aux_k": 0, "use_prompt": True,
                      "clip_model": "ViT-B-32", "clip_pretrained": "openai"},
            "labels": ["O", "B-PER", "I-PER", "B-GPE", "I-GPE"], "comipn_version": "0", "license": "apache-2.0",
            "training": {"text_model": "bert-base-uncased", "dataset": "twitter2015", "dev_f1": 0.7, "epoch": 3}}
    card = ModelCard(model_card(data))
    assert card.data.base_model == "bert-base-uncased" and card.data.license == "apache-2.0"
    assert "tweets (PER, GPE)" in card.text and "no object crops" in card.text and "3 crops" not in card.text
    # no test report: the dev figure alone, still a valid model-index
    assert [(r.dataset_split, r.metric_type, r.metric_value) for r in card.data.eval_results] == \
        [("validation", "f1", 0.7)]
    data["model"].update(aux_k=2, use_dynamic_matching=True, matching_tower="/somewhere/private/dinov2-small")
    card = model_card(data)
    assert "2 object crops per tweet" in card and "`dinov2-small (a local folder)`" in card and "private" not in card


def test_round_trip_gives_the_checkpoints_tags(models):
    run, out = models["run"], models["exported"]
    config = json.loads((run / rf.CONFIG).read_text())
    tweets = [t.tokens for t in read_conll(Path(config["data_root"]) / "twitter2017" / "test.txt").tweets]
    want = Tagger.from_pretrained(run / rf.BEST, device="cpu")(tweets + RAW)
    got = Tagger.from_pretrained(out, device="cpu")(tweets + RAW)
    assert [r.tags for r in got] == [r.tags for r in want]
    assert [r.entities for r in got] == [r.entities for r in want]  # scores, offsets and words too
    assert sum(len(r.entities) for r in got) > 0 and all(e["score"] is not None for r in got for e in r.entities)


def test_round_trip_with_images_and_grounding(models, tmp_path, picture):
    """All switches, separate path encoders: the exported folder grounds and tags like best.pt."""
    out = tmp_path / "all"
    assert export_model(models["all"], out) == out
    images = [picture(seed=5), picture(tmp_path / "p.jpg", seed=6), None]
    want = Tagger.from_pretrained(models["all"], device="cpu")(RAW, images=images)
    got = Tagger.from_pretrained(out, device="cpu")(RAW, images=images)
    assert [r.tags for r in got] == [r.tags for r in want]
    assert [r.crops for r in got] == [r.crops for r in want] and any(r.crops for r in got)


def test_loads_without_any_pickle(models, monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("something was unpickled")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    tagger = Tagger.from_pretrained(models["exported"], device="cpu")
    assert len(tagger(RAW)) == 3
    with pytest.raises(ValueError, match="something was unpickled"):  # the guard works: best.pt needs torch.load
        Tagger.from_pretrained(models["run"] / rf.BEST, device="cpu")


def one_error_line(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in output, output
    return errors[0]


def test_tensors_that_do_not_fit_the_config_exit_2(models, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(models["exported"], bad)
    config = json.loads((bad / "config.json").read_text())
    config["model"]["labels"] = config["model"]["labels"][:5]  # the weights have 9 labels' emissions
    config["labels"] = config["model"]["labels"]
    (bad / "config.json").write_text(json.dumps(config))
    tweets = tmp_path / "t.txt"
    tweets.write_text("Elon Musk visits Paris today\n")
    result = CliRunner().invoke(main, ["predict", "--load-path", str(bad), "--input", str(tweets),
                                       "--out", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 2
    line = one_error_line(result.output)
    assert "model.safetensors" in line or str(bad) in line
    assert re.search(r"do not fit the model config .*emission\.weight: \[9, 32\] in the file, \[5, 32\]", line)
    assert not (tmp_path / "o.jsonl").exists()
    # a folder from a newer format, and a damaged weights file
    config["format_version"] = 99
    (bad / "config.json").write_text(json.dumps(config))
    result = CliRunner().invoke(main, ["export", "--load-path", str(bad), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "format 99" in one_error_line(result.output)
    shutil.copyfile(models["exported"] / "config.json", bad / "config.json")
    (bad / "model.safetensors").write_bytes(b"\0" * 64)
    with pytest.raises(ValueError, match="model.safetensors: not readable safetensors"):
        Tagger.from_pretrained(bad, device="cpu")


def test_export_never_overwrites_without_force(models, tmp_path):
    out = tmp_path / "mine"
    args = ["export", "--load-path", str(models["run"]), "--out", str(out)]
    assert CliRunner().invoke(main, args).exit_code == 0
    (out / "notes.txt").write_text("keep")
    before = (out / "config.json").read_bytes()
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "earlier export" in one_error_line(result.output)
    assert "--force" in one_error_line(result.output) and (out / "config.json").read_bytes() == before
    result = CliRunner().invoke(main, args + ["--force"])
    assert result.exit_code == 0, result.output
    # --force replaces the export's own entries; a file the user put beside them stays
    assert (out / "model.safetensors").is_file() and (out / "notes.txt").read_text() == "keep"


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def test_export_never_writes_into_a_run_folder_even_with_force(models, tmp_path):
    """export --out RUN --force replaced the run's training config.json (then --resume failed) and wrote
    its README.md and text_encoder/ into the run."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(models["run"], run)
    before = _snapshot(run)
    for extra in ([], ["--force"]):
        result = CliRunner().invoke(main, ["export", "--load-path", str(run), "--out", str(run), *extra])
        assert result.exit_code == 2, result.output
        line = one_error_line(result.output)
        assert "training run folder" in line and "best.pt" in line and "nothing was written" in line
        assert _snapshot(run) == before
    # the run's config still reads as a training config
    assert "format" not in json.loads((run / rf.CONFIG).read_text())


def test_force_replaces_only_an_earlier_export(models, tmp_path):
    """Any other non-empty folder is refused with --force too: its README.md, text_encoder/ and
    config.json are the user's."""
    out = tmp_path / "project"
    (out / "text_encoder").mkdir(parents=True)
    (out / "text_encoder" / "mine.json").write_text("{}")
    (out / "README.md").write_text("my notes")
    (out / "config.json").write_text('{"learning_rate": 1}')
    before = _snapshot(out)
    result = CliRunner().invoke(main, ["export", "--load-path", str(models["run"]), "--out", str(out), "--force"])
    assert result.exit_code == 2 and "not made by an export" in one_error_line(result.output)
    assert _snapshot(out) == before
    # the Python side follows the same rule
    tagger = Tagger.from_pretrained(models["exported"], device="cpu")
    with pytest.raises(FileExistsError, match="not made by an export"):
        tagger.save_pretrained(out, force=True)
    assert _snapshot(out) == before
    tagger.save_pretrained(tmp_path / "fresh")
    with pytest.raises(FileExistsError, match="earlier export"):
        tagger.save_pretrained(tmp_path / "fresh")
    tagger.save_pretrained(tmp_path / "fresh", force=True)


def test_a_second_export_to_the_same_folder_is_refused_at_once(models, tmp_path, lock_holder):
    """One writer per folder: an export holds its target while it writes (the lock sits beside --out,
    so an empty --out stays empty); a second one to that target exits 2 naming the holder."""
    from comipn_model.saved.exported import export_lock_name

    out = tmp_path / "models" / "sample"
    out.mkdir(parents=True)
    holder = lock_holder(out.parent, export_lock_name(out))  # stopped after the test whatever happens
    result = CliRunner().invoke(main, ["export", "--load-path", str(models["run"]), "--out", str(out)])
    assert result.exit_code == 2 and f"pid {holder.pid}" in one_error_line(result.output)
    assert list(out.iterdir()) == []
    holder.stop()
    result = CliRunner().invoke(main, ["export", "--load-path", str(models["run"]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.parent.iterdir()) == ["sample"]  # the lock went with its holder


def test_hub_conventions(models, tmp_path, monkeypatch):
    """from_pretrained("user/name") downloads the repository with huggingface_hub; push_to_hub uploads the
    exported folder. Offline here: the hub calls are replaced by local stand-ins."""
    import huggingface_hub

    asked = []

    def fake_download(repo_id, allow_patterns=None, **_kw):
        asked.append(repo_id)
        assert allow_patterns == ["config.json", "model.safetensors", "text_encoder/*", "README.md"]
        return str(models["exported"])

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    with pytest.raises(FileNotFoundError, match="pass --from-hub"):  # a Hub id is fetched only when asked for
        Tagger.from_pretrained("someone/comipn-tiny", device="cpu")
    assert asked == []
    tagger = Tagger.from_pretrained("someone/comipn-tiny", device="cpu", from_hub=True)
    assert asked == ["someone/comipn-tiny"] and len(tagger(RAW)) == 3

    uploads = {}

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, private=None, exist_ok=False):
            uploads["repo"] = repo_id

        def upload_folder(self, repo_id, folder_path, commit_message):
            uploads["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            return f"https://huggingface.co/{repo_id}"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert tagger.push_to_hub("someone/comipn-tiny").endswith("someone/comipn-tiny")
    assert uploads == {"repo": "someone/comipn-tiny",
                       "files": ["README.md", "config.json", "model.safetensors", "text_encoder"]}


def test_unknown_repository_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="no-one/no-model: no such local folder .*pass --from-hub"):
        Tagger.from_pretrained("no-one/no-model", device="cpu")
    with pytest.raises(FileNotFoundError, match="no-one/no-model was read as a Hugging Face Hub id .*offline"):
        Tagger.from_pretrained("no-one/no-model", device="cpu", from_hub=True)


def test_prep_record_reads_what_comipn_prep_left(tmp_path, random_grounding):
    """The grounding settings come from ground_run.json (or a shard's record) and the NP chunker from
    nps/summary.json; speed-only settings (device, batch sizes) are left out."""
    from comipn_prep.layout import DatasetLayout
    from comipn_model.data.prep_record import read_prep_record

    layout = DatasetLayout(tmp_path, "twitter2017")
    assert read_prep_record(layout) == {"grounding": None, "np_backend": None}
    (layout.aux_dir / "nps").mkdir(parents=True)
    config = {**random_grounding, "device": "cuda", "batch_size": 64, "threads": 4}
    config.pop("random_weights")
    (layout.aux_dir / "ground_run.shard-0-of-2.json").write_text(json.dumps({"config": config, "random_weights": True}))
    (layout.aux_dir / "nps" / "summary.json").write_text(json.dumps({"backend": "textblob"}))
    record = read_prep_record(layout)
    assert record == {"grounding": random_grounding, "np_backend": "textblob"}
    whole = {**config, "detector": "yolov8s.pt"}
    (layout.aux_dir / "ground_run.json").write_text(json.dumps({"config": whole, "random_weights": False}))
    assert read_prep_record(layout)["grounding"]["detector"] == "yolov8s.pt"  # the whole run's record first
