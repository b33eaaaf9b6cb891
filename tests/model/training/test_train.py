"""comipn-train end to end on a tiny random BERT (2 layers, hidden 32, MiniLM's tokenizer) and real tweets:
the run folder, resume to the same result, only-test, predict, the optimizer's groups, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from comipn_prep.conll import read_conll
from comipn_prep.layout import DatasetLayout, crop_name
from comipn_model.saved import run_folder as rf
from comipn_model.cli import main
from comipn_model.network.config import CoMIPNConfig
from comipn_model.training.metrics import report
from comipn_model.training.config import TrainConfig
from comipn_model.training.evaluate import only_test
from comipn_model.training.optim import check_param_groups
from comipn_model.training.loop import train


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, make_tiny_encoder, make_root):
    base = tmp_path_factory.mktemp("tiny")
    return {"encoder": str(make_tiny_encoder(base / "encoder")), "root": make_root(base / "root")}


def tiny_config(tiny, run_dir: Path, **model) -> TrainConfig:
    model = {"use_prompt": False, "use_dynamic_matching": False, "use_contrastive": False, **model}
    return TrainConfig(data_root=str(tiny["root"]), dataset="twitter2017", run_dir=str(run_dir),
                       model=CoMIPNConfig(text_model=tiny["encoder"], random_init=True, **model),
                       epochs=2, batch_size=4, lr=1e-3, warmup_ratio=0.1, device="cpu")


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory, train_with_cli):
    """One CLI run shared by the tests that only read its folder."""
    return train_with_cli(tiny, tmp_path_factory.mktemp("runs") / "run")


def test_help_shows_training_options_and_predict():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for option in ("--data-root", "--dataset", "--preset", "--resume", "--only-test", "--max-steps",
                   "--amp / --no-amp", "--use-prompt", "--aux-k", "predict"):
        assert option in result.output


def test_run_folder_contents(trained, tiny):
    files = {p.name for p in trained.iterdir()}
    assert {rf.CONFIG, rf.METRICS, rf.BEST, rf.LAST, rf.TEST_REPORT, rf.TEST_PREDICTIONS, rf.CURVES} <= files
    config = TrainConfig.from_dict(json.loads((trained / rf.CONFIG).read_text()))
    assert config.model.text_model == tiny["encoder"] and config.epochs == 2 and config.batch_size == 4
    rows = [json.loads(line) for line in (trained / rf.METRICS).read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for row in rows:
        assert row["train_loss"] > 0 and row["seconds"] > 0 and row["tweets_per_s"] > 0
        assert 0 <= row["dev_precision"] <= 1 and 0 <= row["dev_recall"] <= 1 and 0 <= row["dev_f1"] <= 1
    # checkpoints: plain tensors and primitives
    last = torch.load(trained / rf.LAST, weights_only=True)
    assert {"model", "optimizer", "scheduler", "rng", "epoch"} <= set(last) and last["epoch"] == 2
    best = torch.load(trained / rf.BEST, weights_only=True)
    test_report = json.loads((trained / rf.TEST_REPORT).read_text())
    # the chosen checkpoint is the first epoch with the best dev F1, and test was scored on it
    f1s = [r["dev_f1"] for r in rows]
    assert best["epoch"] == test_report["epoch"] == f1s.index(max(f1s)) + 1
    # the report is seqeval's reading of the predictions file (token, gold, predicted)
    gold, pred, tweets = [], [], 0
    for block in (trained / rf.TEST_PREDICTIONS).read_text().strip("\n").split("\n\n"):
        lines = block.split("\n")
        assert lines[0].startswith("IMGID:")
        cols = [line.split("\t") for line in lines[1:]]
        assert all(len(c) == 3 for c in cols)
        gold.append([c[1] for c in cols])
        pred.append([c[2] for c in cols])
        tweets += 1
    assert tweets == 12
    assert report(gold, pred)["overall"] == test_report["overall"]
    assert set(test_report["per_type"]) <= {"PER", "LOC", "ORG", "MISC"}
    assert (trained / rf.CURVES).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_existing_run_is_not_overwritten(trained, tiny, tiny_args):
    before = {p.name: p.stat().st_mtime_ns for p in trained.iterdir()}
    result = CliRunner().invoke(main, tiny_args(tiny, trained))
    assert result.exit_code == 2 and "--force" in result.output
    assert {p.name: p.stat().st_mtime_ns for p in trained.iterdir()} == before


def test_resume_continues_to_the_same_result(tiny, tmp_path):
    whole = train(tiny_config(tiny, tmp_path / "whole"))
    # "Kill" in the middle of epoch 2 (4 batches per epoch), then resume from the command line.
    cut = train(tiny_config(tiny, tmp_path / "cut"), stop_after_steps=6)
    assert cut.stopped and not (tmp_path / "cut" / rf.TEST_REPORT).exists()
    assert torch.load(tmp_path / "cut" / rf.LAST, weights_only=True)["batches_done"] == 2
    result = CliRunner().invoke(main, ["--run-dir", str(tmp_path / "cut"), "--resume", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    a = [json.loads(x) for x in (tmp_path / "whole" / rf.METRICS).read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "cut" / rf.METRICS).read_text().splitlines()]
    for key in ("epoch", "train_loss", "dev_precision", "dev_recall", "dev_f1"):
        assert [r[key] for r in a] == [r[key] for r in b], key
    wa = torch.load(tmp_path / "whole" / rf.LAST, weights_only=True)["model"]
    wb = torch.load(tmp_path / "cut" / rf.LAST, weights_only=True)["model"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ra = json.loads((tmp_path / "whole" / rf.TEST_REPORT).read_text())
    rb = json.loads((tmp_path / "cut" / rf.TEST_REPORT).read_text())
    assert ra["overall"] == rb["overall"] and ra["epoch"] == rb["epoch"] == whole.best_epoch


def test_ctrl_c_mid_epoch_then_the_printed_resume_command_gives_the_same_run(tiny, tmp_path, monkeypatch, tiny_args):
    """A real SIGINT during step 7 (epoch 2, batch 3 of 4): exit 130, last.pt at step 7, and the command
    it prints continues to exactly the uninterrupted run."""
    import os
    import shlex
    import signal

    from comipn_model.training import loop as training

    whole = tmp_path / "whole"
    assert CliRunner().invoke(main, tiny_args(tiny, whole)).exit_code == 0
    original, count = training.train_step, {"n": 0}

    def step_then_ctrl_c(*args, **kwargs):
        loss = original(*args, **kwargs)
        count["n"] += 1
        if count["n"] == 7:
            os.kill(os.getpid(), signal.SIGINT)
        return loss

    monkeypatch.setattr(training, "train_step", step_then_ctrl_c)
    cut = tmp_path / "cut"
    result = CliRunner().invoke(main, tiny_args(tiny, cut))
    assert result.exit_code == 130, result.output
    assert "Aborted" not in result.output and "stopped at step 7 (epoch 2, batch 3 of 4)" in result.output
    last = torch.load(cut / rf.LAST, weights_only=True)
    assert (last["global_step"], last["epoch"], last["batches_done"]) == (7, 1, 3)
    assert [r["epoch"] for r in rf.RunFolder(cut).read_metrics()] == [1]
    command = next(line for line in result.output.splitlines() if line.startswith("resume with: "))
    argv = shlex.split(command[len("resume with: "):])
    assert argv[0] == "comipn-train"
    monkeypatch.setattr(training, "train_step", original)
    result = CliRunner().invoke(main, argv[1:])
    assert result.exit_code == 0, result.output
    a, b = rf.RunFolder(whole).read_metrics(), rf.RunFolder(cut).read_metrics()
    for key in ("epoch", "train_loss", "dev_precision", "dev_recall", "dev_f1"):
        assert [r[key] for r in a] == [r[key] for r in b], key
    wa = torch.load(whole / rf.LAST, weights_only=True)["model"]
    wb = torch.load(cut / rf.LAST, weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert json.loads((whole / rf.TEST_REPORT).read_text())["overall"] == \
        json.loads((cut / rf.TEST_REPORT).read_text())["overall"]


def test_max_steps_caps_training(tiny, tmp_path):
    result = train(tiny_config(tiny, tmp_path / "run").__class__(
        **{**tiny_config(tiny, tmp_path / "run").__dict__, "max_steps": 3}))
    assert result.global_step == 3 and result.test is not None
    rows = rf.RunFolder(tmp_path / "run").read_metrics()
    assert len(rows) == 1  # stopped inside epoch 1, which was still scored on dev


def test_only_test_scores_a_checkpoint(trained, tiny, tmp_path):
    out = tmp_path / "only"
    result = CliRunner().invoke(main, ["--data-root", str(tiny["root"]), "--dataset", "twitter2017",
                                       "--only-test", "--load-path", str(trained / rf.BEST), "--run-dir", str(out),
                                       "--device", "cpu"])
    assert result.exit_code == 0, result.output
    again = json.loads((out / rf.TEST_REPORT).read_text())
    original = json.loads((trained / rf.TEST_REPORT).read_text())
    assert again["overall"] == original["overall"] and again["per_type"] == original["per_type"]
    assert (out / rf.TEST_PREDICTIONS).read_text() == (trained / rf.TEST_PREDICTIONS).read_text()
    result = CliRunner().invoke(main, ["--data-root", str(tiny["root"]), "--dataset", "twitter2017",
                                       "--only-test", "--load-path", str(trained / rf.BEST), "--run-dir", str(out)])
    assert result.exit_code == 2 and "--force" in result.output
    # the library function behind --only-test returns the report it writes
    cfg = TrainConfig(data_root=str(tiny["root"]), dataset="twitter2017", run_dir=str(out), device="cpu")
    with pytest.raises(FileExistsError, match="--force"):
        only_test(cfg, trained / rf.BEST)
    assert only_test(cfg, trained / rf.BEST, force=True) == again


def test_predict_conll_and_jsonl(trained, tiny, tmp_path):
    test = read_conll(tiny["root"] / "twitter2017" / "test.txt").tweets
    unlabelled = tmp_path / "new.txt"
    unlabelled.write_text("".join(f"IMGID:{t.imgid}\n" + "".join(w + "\n" for w in t.tokens) + "\n" for t in test))
    expected = [line.split("\t")[2] for line in (trained / rf.TEST_PREDICTIONS).read_text().splitlines()
                if "\t" in line]
    runner = CliRunner()
    out = tmp_path / "tagged.txt"
    result = runner.invoke(main, ["predict", "--load-path", str(trained / rf.BEST), "--input", str(unlabelled),
                                  "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in out.read_text().splitlines() if line and not line.startswith("IMGID:")]
    assert [r[0] for r in rows] == [w for t in test for w in t.tokens]
    assert [r[1] for r in rows] == expected  # same tags as the test scoring of that checkpoint
    jsonl = tmp_path / "tagged.jsonl"
    result = runner.invoke(main, ["predict", "--load-path", str(trained / rf.BEST), "--input",
                                  str(tiny["root"] / "twitter2017" / "test.txt"), "--out", str(jsonl)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["imgid"] for r in records] == [t.imgid for t in test]
    assert [tag for r in records for tag in r["tags"]] == expected
    assert all(r["gold"] == t.labels for r, t in zip(records, test))
    for r in records:
        for ent in r["entities"]:
            assert r["tags"][ent["token_start"]] == f"B-{ent['entity_group']}"
            assert ent["word"] == " ".join(r["tokens"][ent["token_start"]:ent["token_end"]])  # tokens given: joined
            assert 0 < ent["score"] <= 1
    # never overwrites without --force
    result = runner.invoke(main, ["predict", "--load-path", str(trained / rf.BEST), "--input", str(unlabelled),
                                  "--out", str(out)])
    assert result.exit_code == 2 and "--force" in result.output


def test_bad_input_exits_2(tiny, tmp_path, tiny_args):
    runner = CliRunner()
    missing = runner.invoke(main, tiny_args(tiny, tmp_path / "a")[:2] + [str(tmp_path / "nowhere")] +
                            tiny_args(tiny, tmp_path / "a")[2:])
    assert missing.exit_code == 2 and "nowhere" in missing.output
    args = tiny_args(tiny, tmp_path / "b")
    args[args.index("--text-model") + 1] = str(tmp_path / "no-such-model")
    no_model = runner.invoke(main, args)
    assert no_model.exit_code == 2 and "--text-model" in no_model.output
    bad_ckpt = tmp_path / "bad.pt"
    bad_ckpt.write_bytes(b"garbage")
    result = runner.invoke(main, ["predict", "--load-path", str(bad_ckpt), "--input",
                                  str(tiny["root"] / "twitter2017" / "test.txt"), "--out", str(tmp_path / "o.txt")])
    assert result.exit_code == 2 and "bad.pt" in result.output


def test_every_trainable_parameter_in_one_group():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    params = list(model.parameters())
    check_param_groups(model, {"new": params[:2], "crf": params[2:]})
    with pytest.raises(AssertionError, match="missing"):
        check_param_groups(model, {"new": params[:2]})
    with pytest.raises(AssertionError, match="both"):
        check_param_groups(model, {"new": params, "crf": params[:1]})


def test_all_switches_with_and_without_images(tiny, tmp_path, caplog):
    """Every switch on: with no image on disk everything is masked; with a few synthetic images and
    crops the cached features reach the model (the tower runs once per image, never in epoch 2)."""
    run = tiny_config(tiny, tmp_path / "masked", use_prompt=True, use_dynamic_matching=True,
                      use_contrastive=True, clip_model="ViT-S-32", clip_pretrained=None)
    run.epochs = 1
    run.allow_missing_images = True  # without it, a dataset with no image on disk is refused (exit 2)
    with caplog.at_level("WARNING", logger="comipn_model"):
        assert train(run).test is not None
    missing = [r.getMessage() for r in caplog.records if "missing on disk" in r.getMessage()]
    assert len(missing) == 1 and "train: 16 of 16 images" in missing[0] and "test: 12 of 12" in missing[0]
    # Masking is exact: with every image missing, all switches on trains and scores like text-only.
    text_only = tiny_config(tiny, tmp_path / "text-only")
    text_only.epochs = 1
    train(text_only)
    masked_rows = (tmp_path / "masked" / rf.METRICS).read_text().splitlines()
    text_rows = (tmp_path / "text-only" / rf.METRICS).read_text().splitlines()
    keys = ("train_loss", "dev_f1", "dev_precision", "dev_recall")
    assert [{k: json.loads(r)[k] for k in keys} for r in masked_rows] == \
        [{k: json.loads(r)[k] for k in keys} for r in text_rows]
    masked_report = json.loads((tmp_path / "masked" / rf.TEST_REPORT).read_text())
    text_report = json.loads((tmp_path / "text-only" / rf.TEST_REPORT).read_text())
    assert masked_report["overall"] == text_report["overall"]
    root = tmp_path / "root"
    shutil.copytree(tiny["root"], root)
    layout = DatasetLayout(root, "twitter2017")
    layout.images_dir.mkdir()
    train_tweets = read_conll(layout.text_path("train")).tweets
    for i, t in enumerate(train_tweets[:6]):
        Image.new("RGB", (64, 48), (30 * i, 40, 90)).save(layout.images_dir / f"{t.imgid}.jpg")
    layout.crops_dir("train").mkdir(parents=True)
    Image.new("RGB", (20, 20), (200, 10, 10)).save(layout.crops_dir("train") / crop_name(train_tweets[0].imgid, 0))
    torch.save({train_tweets[0].image_name: [crop_name(train_tweets[0].imgid, 0)]}, layout.dict_path("train"))
    imaged = tiny_config(tiny, tmp_path / "imaged", use_prompt=True, use_dynamic_matching=True,
                         use_contrastive=True, clip_model="ViT-S-32", clip_pretrained=None)
    imaged.data_root = str(root)
    imaged.feature_cache = str(tmp_path / "cache")
    imaged.allow_missing_images = True  # 6 of 16 train images: under the half needed without it
    result = train(imaged)
    assert result.test is not None
    cached = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert len(cached) == 7  # 6 distinct images + 1 crop, each computed and stored once
    # The features' standardisation was fitted on those 7 training pictures and saved with the model.
    state = torch.load(tmp_path / "imaged" / rf.BEST, weights_only=True)["model"]
    assert int(state["visual_norm.images_seen"]) == 7
    assert state["visual_norm.cls_mean"].abs().sum() > 0 and (state["visual_norm.cls_std"] > 0).all()


def test_the_paper_recipe_file_trains_with_the_paper_preset(tiny, tmp_path, repo_root):
    """configs/twitter2017-paper.toml (was bin/run_twitter17.sh): the paper preset and the dataset from the
    file, the data root and the rest on the command line, which wins over the file."""
    from click.testing import CliRunner

    from comipn_model.cli import main

    recipe = repo_root / "configs" / "twitter2017-paper.toml"
    result = CliRunner().invoke(main, ["--config", str(recipe), "--data-root", str(tiny["root"]), "--text-model",
                                       tiny["encoder"], "--random-init", "--text-only", "--epochs", "1", "--device",
                                       "cpu", "--run-dir", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / rf.CONFIG).read_text())
    assert config["preset"] == "paper" and config["batch_size"] == 8 and config["lr"] == 3e-5
    assert config["dataset"] == "twitter2017" and config["device"] == "cpu"
    assert config["epochs"] == 1 and config["model"]["text_model"] == tiny["encoder"]
    assert (tmp_path / "run" / rf.TEST_REPORT).is_file()
    assert (tmp_path / "run" / "experiment.toml").read_text() == recipe.read_text()


def test_every_recipe_file_resolves(repo_root):
    """Each file in configs/ is a valid experiment: known options of valid values, a preset or recipe."""
    from comipn_model.cli import main
    from comipn_model.cli.train_cmd import build_config

    recipes = sorted((repo_root / "configs").glob("*.toml"))
    assert len(recipes) >= 5
    presets = set()
    for recipe in recipes:
        ctx = main.make_context("comipn-train", ["--config", str(recipe), "--data-root", "ROOT"])
        cfg = build_config(ctx, ctx.params)
        assert cfg.dataset in ("twitter2015", "twitter2017") and cfg.config_file == str(recipe), recipe
        presets.add(cfg.preset)
    assert {"paper", "cpu-small", "roberta-large", "xlm-roberta-large"} <= presets
