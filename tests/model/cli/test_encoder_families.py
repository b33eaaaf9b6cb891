"""RoBERTa and XLM-R text encoders end to end, as a user runs them: comipn-train (one epoch on the sample
tweets), --resume, export, the Tagger and predict, each on a tiny random-weight encoder built offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from comipn_prep.conll import read_conll
from comipn_model import Tagger
from comipn_model.cli import main
from comipn_model.saved import run_folder as rf

RAW = ["RT @user : Collins visits Paris today", "so happy"]


@pytest.fixture(scope="module", params=["roberta", "xlm-roberta"])
def run(request, tmp_path_factory, make_tiny_family, sample_root):
    """One epoch, then a resume to a second, of a text-only run on data/sample with the family's encoder."""
    base = tmp_path_factory.mktemp(request.param)
    encoder = make_tiny_family(base / "encoder", request.param)
    run_dir = base / "run"
    args = ["--data-root", str(sample_root), "--dataset", "sample", "--text-model", str(encoder), "--random-init",
            "--epochs", "1", "--batch-size", "8", "--lr", "1e-3", "--device", "cpu", "--run-dir", str(run_dir),
            "--no-use-prompt", "--no-use-dynamic-matching", "--no-use-contrastive"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return {"family": request.param, "encoder": encoder, "run": run_dir, "base": base}


def test_train_resume_export_tagger_and_predict(run, sample_root):
    run_dir = run["run"]
    assert json.loads((run_dir / rf.CONFIG).read_text())["model"]["text_model"] == str(run["encoder"])
    assert (run_dir / rf.TEST_REPORT).is_file()
    result = CliRunner().invoke(main, ["--run-dir", str(run_dir), "--resume", "--epochs", "2"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["epoch"] for line in (run_dir / rf.METRICS).read_text().splitlines()
            if "epoch" in json.loads(line)][-1] == 2

    out = run["base"] / "exported"
    result = CliRunner().invoke(main, ["export", "--load-path", str(run_dir / rf.BEST), "--out", str(out)])
    assert result.exit_code == 0, result.output
    tweets = [t.tokens for t in read_conll(sample_root / "sample" / "test.txt").tweets]
    from_run = Tagger.from_pretrained(run_dir / rf.BEST, device="cpu")
    exported = Tagger.from_pretrained(out, device="cpu")
    assert exported.model.config.max_seq == 128
    assert [t.tags for t in exported(tweets + RAW)] == [t.tags for t in from_run(tweets + RAW)]
    # the exported tokenizer still starts every word with its marker (RoBERTa's was saved without one)
    marker = {"roberta": "Ġ", "xlm-roberta": "▁"}[run["family"]]
    tokenised = exported.batcher.tokenise([["RT", "Collins"]])[0]
    tokens = exported.model.tokenizer.convert_ids_to_tokens(tokenised.input_ids)
    assert tokens[tokenised.word_ids.index(1)].startswith(marker), tokens

    predictions = run["base"] / "predictions.jsonl"
    result = CliRunner().invoke(main, ["predict", "--device", "cpu", "--load-path", str(out), "--input",
                                       str(sample_root / "sample" / "test.txt"), "--out", str(predictions)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in Path(predictions).read_text().splitlines()]
    assert [row["tags"] for row in rows] == [t.tags for t in exported(tweets)]
