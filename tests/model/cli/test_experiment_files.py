"""Experiments as files (`comipn-train --config exp.toml`, comipn_model.training.experiment_file and
comipn_model.cli.config_option) and the ablation in one command (`comipn-train ablate`,
comipn_model.training.ablation and .ablation_table)."""

from __future__ import annotations

import csv
import json
import shutil
import statistics

import pytest
from click.testing import CliRunner

from comipn_model.cli import main
from comipn_model.cli.ablate_cmd import DEFAULT_ROWS
from comipn_model.cli.config_option import FILE_KEY
from comipn_model.cli.train_cmd import build_config
from comipn_model.saved import run_folder as rf
from comipn_model.training import ablation, ablation_table
from comipn_model.training.compare import almost_stochastic_order
from comipn_model.training.experiment_file import ExperimentFileError, read_experiment_file

RECIPE_TOML = """# a recipe
preset = "cpu-small"
batch-size = 4
lr = 1e-3
warmup_ratio = 0.1
use-prompt = false
region_weight = 0.5
seeds = [1, 2]
"""
RECIPE_YAML = """# a recipe
preset: cpu-small
batch-size: 4
lr: 0.001
warmup_ratio: 0.1
use-prompt: false
region_weight: 0.5
seeds: [1, 2]
"""
RECIPE_ARGS = ["--preset", "cpu-small", "--batch-size", "4", "--lr", "1e-3", "--warmup-ratio", "0.1",
               "--no-use-prompt", "--region-weight", "0.5", "--seeds", "1,2"]


def resolved(args: list[str]) -> dict:
    """The TrainConfig ``comipn-train ARGS`` would train, as a dict (less the experiment file's name)."""
    ctx = main.make_context("comipn-train", args)
    data = build_config(ctx, ctx.params).to_dict()
    data.pop("config_file")
    return data


@pytest.mark.parametrize("suffix,text", [(".toml", RECIPE_TOML), (".yaml", RECIPE_YAML)])
def test_a_file_and_the_command_line_resolve_to_the_same_config(tmp_path, suffix, text):
    path = tmp_path / f"exp{suffix}"
    path.write_text(text)
    common = ["--data-root", "d", "--dataset", "twitter2017", "--run-dir", "r"]
    from_file = resolved(["--config", str(path), *common])
    assert from_file == resolved([*RECIPE_ARGS, *common])
    # What the file sets beats the preset (cpu-small: batch 16, lr 5e-5), as an option given on the command line
    assert (from_file["batch_size"], from_file["lr"], from_file["seeds"]) == (4, 1e-3, [1, 2])
    assert from_file["model"]["use_prompt"] is False and from_file["epochs"] == 4  # the preset's, not set
    assert from_file["model"]["region_weight"] == 0.5
    # The command line wins over the file.
    over = resolved(["--config", str(path), *common, "--batch-size", "2", "--use-prompt"])
    assert over["batch_size"] == 2 and over["model"]["use_prompt"] is True
    ctx = main.make_context("comipn-train", ["--config", str(path), *common])
    assert build_config(ctx, ctx.params).config_file == str(path.absolute())
    read = ctx.meta[FILE_KEY]  # the file as read, each option with its line
    assert read.values["batch_size"] == 4 and read.lines["batch_size"] == 3 and read.lines["seeds"] == 8


@pytest.mark.parametrize("suffix,text,where,message", [
    (".toml", 'preset = "cpu-small"\n\nbatchsize = 4\n', 3, "'batchsize' is not an option of comipn-train "
     "(did you mean batch-size?)"),
    (".toml", 'epochs = "many"\n', 1, "--epochs: 'many' is not a valid integer"),
    (".toml", 'lr = 1e-3\nuse-prompt = "no"\n', 2, "--use-prompt is a switch: true or false"),
    (".toml", 'lr = 1e-3\n[model]\nprompt-len = 3\n', 2, "'model' is a table"),
    (".toml", 'lr = 1e-3\nlr = 2e-3\n', 2, "not valid TOML"),
    (".toml", 'batch-size = 4\nbatch_size = 8\n', 2, "'batch_size' is given twice (also at line 1)"),
    (".toml", 'seeds = "1,x"\n', 1, "--seeds: '1,x': seeds separated by commas"),
    (".yaml", "lr: 0.001\nepochs: [\n", 3, "not valid YAML"),
    (".yaml", "lr: 0.001\nverbos: true\n", 2, "'verbos' is not an option of comipn-train (did you mean verbose?)"),
    (".yaml", "- lr\n", 1, "a mapping of comipn-train options"),
])
def test_a_bad_key_or_value_is_refused_with_the_file_and_line(tmp_path, suffix, text, where, message):
    path = tmp_path / f"exp{suffix}"
    path.write_text(text)
    result = CliRunner().invoke(main, ["--config", str(path), "--data-root", "d", "--dataset", "x"],
                                prog_name="comipn-train")
    assert result.exit_code == 2
    output = " ".join(result.output.split())  # click wraps long messages
    assert f"{path}:{where}:" in output and message in output, result.output


def test_an_experiment_file_of_another_kind_is_refused(tmp_path):
    path = tmp_path / "exp.json"
    path.write_text("{}")
    with pytest.raises(ExperimentFileError, match="ends in .toml, .yaml or .yml"):
        read_experiment_file(path)
    assert read_experiment_file(_write(tmp_path / "empty.yaml", "")).values == {}


def _write(path, text):
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, make_tiny_encoder, make_root):
    base = tmp_path_factory.mktemp("ablate")
    return {"encoder": str(make_tiny_encoder(base / "encoder")), "root": make_root(base / "root", sizes=(12, 8, 8)),
            "cache": str(base / "cache")}


def experiment(tiny, path, **more) -> str:
    """A tiny recipe: random tiny encoder and CLIP, 2 epochs, no images on disk (the visual rows mask them)."""
    values = {"data-root": str(tiny["root"]), "dataset": "twitter2017", "text-model": tiny["encoder"],
              "random-init": True, "epochs": 2, "batch-size": 4, "lr": 5e-3, "warmup-ratio": 0.1, "device": "cpu",
              "clip-model": "ViT-S-32", "clip-pretrained": "none", "allow-missing-images": True,
              "feature-cache": tiny["cache"], **more}
    lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path.write_text("# the tiny recipe\n" + "\n".join(lines) + "\n")
    return str(path)


def test_a_run_keeps_its_experiment_file(tiny, tmp_path):
    exp = experiment(tiny, tmp_path / "exp.toml", **{"text-only": True, "run-dir": str(tmp_path / "run")})
    result = CliRunner().invoke(main, ["--config", exp, "-q"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "experiment.toml").read_bytes() == (tmp_path / "exp.toml").read_bytes()
    config = json.loads((tmp_path / "run" / rf.CONFIG).read_text())
    assert config["config_file"] == str(tmp_path / "exp.toml") and config["epochs"] == 2
    assert config["model"]["use_prompt"] is False and (tmp_path / "run" / rf.TEST_REPORT).is_file()


def test_ablate_dry_run_lists_every_row_and_seed(tiny, tmp_path):
    exp = experiment(tiny, tmp_path / "exp.toml")
    result = CliRunner().invoke(main, ["ablate", "--config", exp, "--seeds", "2", "--out", str(tmp_path / "out"),
                                       "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert ablation.parse_rows(DEFAULT_ROWS) == list(ablation.ROWS)  # by default every row, in the table's order
    expected = [(row, seed) for row in ablation.ROWS for seed in (1, 2)]
    assert [tuple(line.split()[:3:2]) for line in lines[:-1]] == [(row, str(seed)) for row, seed in expected]
    assert all(line.split()[3] == "train" for line in lines[:-1]) and "8 rows x 2 seeds" in lines[-1]
    assert not (tmp_path / "out").exists()  # a dry run writes nothing
    # Each row's switches
    base = build_config(*(lambda c: (c, c.params))(main.make_context("comipn-train", ["--config", exp])))
    plan = {row.name: row.cfg.model for row in ablation.plan(base, list(ablation.ROWS), [1], tmp_path / "o")}
    on = {name: tuple(getattr(m, s) for s in ablation.SWITCHES) for name, m in plan.items()}
    assert on == {"full": (True, True, True), "text-only": (False, False, False), "no-prompt": (False, True, True),
                  "no-matching": (True, False, True), "no-contrastive": (True, True, False),
                  "prompt": (True, False, False), "matching": (False, True, False), "contrastive": (False, False, True)}


def test_ablate_resumes_a_killed_ablation_and_its_table_is_the_runs_reports(tiny, tmp_path):
    exp = experiment(tiny, tmp_path / "exp.toml")
    rows = "full,text-only,contrastive"
    args = ["ablate", "--config", exp, "--seeds", "2", "--rows", rows, "--resamples", "200"]
    whole = tmp_path / "whole"
    result = CliRunner().invoke(main, [*args, "--out", str(whole)])
    assert result.exit_code == 0, result.output

    # The table's numbers are the runs' own reports.
    with open(whole / "ablation.csv", newline="") as handle:
        table = {row["row"]: row for row in csv.DictReader(handle)}
    assert list(table) == rows.split(",")
    for name in table:
        f1 = {k: json.loads((whole / name / f"seed-{k}" / rf.TEST_REPORT).read_text())["overall"]["f1"] for k in (1, 2)}
        assert float(table[name]["test_f1_mean"]) == pytest.approx(statistics.fmean(f1.values()))
        assert float(table[name]["test_f1_sd"]) == pytest.approx(statistics.stdev(f1.values()))
        if name != "full":
            full = {k: json.loads((whole / "full" / f"seed-{k}" / rf.TEST_REPORT).read_text())["overall"]["f1"]
                    for k in (1, 2)}
            assert float(table[name]["delta_f1_mean"]) == pytest.approx(statistics.fmean(f1[k] - full[k] for k in (1, 2)))
            assert 0 < float(table[name]["p_value"]) <= 1
            # ASO both ways over the seeds' F1 (bootstrap seed 0, as the table's)
            a, b = [full[k] for k in (1, 2)], [f1[k] for k in (1, 2)]
            assert float(table[name]["aso_eps_min"]) == pytest.approx(almost_stochastic_order(a, b))
            assert float(table[name]["aso_eps_min_baseline"]) == pytest.approx(almost_stochastic_order(b, a))
        else:
            assert table[name]["delta_f1_mean"] == "" and table[name]["p_value"] == ""
    markdown = (whole / "ablation.md").read_text()
    mean = 100 * float(table["contrastive"]["test_f1_mean"])
    assert "contrastive aggregation alone" in markdown and f"{mean:.2f} ±" in markdown
    assert "\\toprule" in (whole / "ablation.tex").read_text() and "\\bottomrule" in (whole / "ablation.tex").read_text()
    assert (whole / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    base = build_config(*(lambda c: (c, c.params))(main.make_context("comipn-train", ["--config", exp])))
    again = ablation_table.collect(ablation.plan(base, rows.split(","), [1, 2], whole), "full", resamples=200)
    assert ablation_table.to_markdown(again) == markdown  # seeded: the same table from the same runs
    record = json.loads((whole / ablation.ABLATION_RECORD).read_text())
    assert [r["name"] for r in record["rows"]] == rows.split(",") and record["seeds"] == [1, 2]

    # Killed inside row 2 (text-only) at seed 2: row 1 done, row 2's seed 1 done, seed 2 at its first step.
    cut = tmp_path / "cut"
    shutil.copytree(whole / "full", cut / "full")
    planned = ablation.plan(base, rows.split(","), [1, 2], cut)
    assert [row.state for row in planned] == ["done", "new", "new"]
    shutil.copytree(whole / "text-only" / "seed-1", cut / "text-only" / "seed-1")
    shutil.copy(whole / "text-only" / rf.CONFIG, cut / "text-only" / rf.CONFIG)
    planned = ablation.plan(base, rows.split(","), [1, 2], cut)
    assert [row.state for row in planned] == ["done", "resume", "new"]
    stopped = ablation.run(planned, stop_after_steps=1)
    assert stopped.stopped.run_dir == cut / "text-only" / "seed-2" and (cut / "text-only" / "seed-2" / rf.LAST).is_file()
    assert not (cut / "contrastive").exists()
    done_before = (cut / "full" / "seed-1" / rf.BEST).stat().st_mtime_ns

    result = CliRunner().invoke(main, [*args, "--out", str(cut)])
    assert result.exit_code == 0, result.output
    assert (cut / "full" / "seed-1" / rf.BEST).stat().st_mtime_ns == done_before  # not trained again
    for name in rows.split(","):
        for k in (1, 2):
            ours = json.loads((cut / name / f"seed-{k}" / rf.TEST_REPORT).read_text())["overall"]
            theirs = json.loads((whole / name / f"seed-{k}" / rf.TEST_REPORT).read_text())["overall"]
            assert ours == pytest.approx(theirs), (name, k)
    again = CliRunner().invoke(main, [*args, "--out", str(cut), "--dry-run"])
    assert again.output.count(" done ") == 6 and "rows left to run: 0" in again.output


def test_a_row_folder_of_another_recipe_is_refused(tiny, tmp_path):
    exp = experiment(tiny, tmp_path / "exp.toml")
    base = build_config(*(lambda c: (c, c.params))(main.make_context("comipn-train", ["--config", exp])))
    other = ablation.row_config(base, "text-only", tmp_path / "out", [1])
    (tmp_path / "out" / "text-only").mkdir(parents=True)
    rf.RunFolder(tmp_path / "out" / "text-only").write_json(rf.CONFIG, {**other.to_dict(), "lr": 0.5})
    with pytest.raises(ValueError, match="was run with another configuration"):
        ablation.plan(base, ["text-only"], [1], tmp_path / "out")
    with pytest.raises(ValueError, match="unknown row"):
        ablation.parse_rows("full,no-images")
