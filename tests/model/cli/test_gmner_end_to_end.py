"""A Twitter-GMNER-shaped release through the whole tool chain from the command line: import-gmner, run
(extract-nps, ground, build-dict; random-weight YOLO and CLIP), verify, one epoch of comipn-train with every
visual switch on (a tiny random encoder), predict on the test split with its crops, and evaluate-gmner."""

from __future__ import annotations

import json

from click.testing import CliRunner

from comipn_model.cli import main as train_main
from comipn_prep.cli import main as prep_main
from comipn_prep.gmner import read_gmner_split
from comipn_prep.layout import DatasetLayout

# random-weight YOLO and CLIP; one image a split (grounding dominates the test's time)
RANDOM_GROUNDING = ["--detector", "yolov8n.yaml", "--clip-model", "ViT-S-32", "--clip-pretrained", "none",
                    "--conf", "0", "--max-candidates", "4", "--limit", "1", "--device", "cpu"]


def _ok(result):
    assert result.exit_code == 0, result.output[-3000:]
    return result


def test_release_to_scores_from_the_command_line(tmp_path, make_gmner_release, make_tiny_encoder):
    src, images = make_gmner_release(tmp_path / "download", sizes=(4, 3, 3))
    root = tmp_path / "root"
    lay = DatasetLayout(root, "gmner")
    _ok(CliRunner().invoke(prep_main, ["import-gmner", str(src), str(root), "--dataset", "gmner",
                                       "--images", str(images)]))
    _ok(CliRunner().invoke(prep_main, ["run", str(root), "--dataset", "gmner", *RANDOM_GROUNDING]))
    _ok(CliRunner().invoke(prep_main, ["verify", str(root), "--dataset", "gmner"]))
    assert all(lay.dict_path(split).is_file() for split in ("train", "valid", "test"))

    encoder = make_tiny_encoder(tmp_path / "encoder")
    run_dir = tmp_path / "run"
    _ok(CliRunner().invoke(train_main, [
        "--data-root", str(root), "--dataset", "gmner", "--text-model", str(encoder), "--random-init",
        "--clip-model", "ViT-S-32", "--clip-pretrained", "none", "--epochs", "1", "--batch-size", "4",
        "--device", "cpu", "--run-dir", str(run_dir), "--feature-cache", str(tmp_path / "cache")]))
    assert json.loads((run_dir / "test_report.json").read_text())["tweets"] == 3

    def predict(split: str, *options: str) -> tuple:
        out = tmp_path / f"{split}{len(options)}.jsonl"
        _ok(CliRunner().invoke(train_main, [
            "predict", "--load-path", str(run_dir), "--input", str(lay.text_path(split)), "--out", str(out),
            "--images-dir", str(lay.images_dir), "--aux-dict", str(lay.dict_path(split)),
            "--crops-dir", str(lay.crops_dir(split)), "--feature-cache", str(tmp_path / "cache"), "--device", "cpu",
            *options]))
        return out, [json.loads(line) for line in out.read_text().splitlines()]

    out, rows = predict("test")
    assert len(rows) == 3 and all(row["image_used"] for row in rows)

    result = _ok(CliRunner().invoke(train_main, ["evaluate-gmner", str(out), str(lay.text_dir), "--json"]))
    scores = json.loads(result.stdout)
    gold = read_gmner_split(lay.text_dir, "test")
    assert scores["tweets"] == 3 and scores["gold_entities"] == sum(len(t.entities) for t in gold.tweets.values())
    # Without regions on entities every predicted region is "none": a GMNER hit is an MNER hit whose gold
    # entity is not in the picture, and EEG counts the predicted spans whose gold is not in the picture.
    gold_by_span = {(i, e.start, e.end): e for i, t in gold.tweets.items() for e in t.entities}
    mner = gmner = eeg = 0
    for row in rows:
        for ent in row["entities"]:
            g = gold_by_span.get((row["imgid"], ent["token_start"], ent["token_end"]))
            if g is not None:
                mner += g.type == ent["entity_group"]
                gmner += g.type == ent["entity_group"] and not g.boxes
                eeg += not g.boxes
    assert [scores["scores"][t]["correct"] for t in ("GMNER", "MNER", "EEG")] == [gmner, mner, eeg]
    assert scores["scores"]["MNER"]["predicted"] == sum(len(row["entities"]) for row in rows)

    # regions: the model's own matching links entities to crops (boxes from grounding's manifest.csv); the
    # "none" threshold is chosen on dev and saved with the run, where predict finds it
    dev_out, dev_rows = predict("valid", "--linker", "matching", "--none-threshold", "-inf")
    assert all(set(e) >= {"box", "box_score", "box_linker"} for row in dev_rows for e in row["entities"])
    chosen = json.loads(_ok(CliRunner().invoke(train_main, [
        "evaluate-gmner", str(dev_out), str(lay.text_dir), "--split", "dev", "--choose-none-threshold",
        "--save-to", str(run_dir), "--json"])).stdout)
    assert json.loads((run_dir / "regions.json").read_text())["none_threshold"] == chosen["none_threshold"]
    out, rows = predict("test", "--linker", "matching")
    threshold = chosen["none_threshold"]
    for row in rows:
        for e in row["entities"]:
            if e["box"] is not None:  # one of the tweet's crops' boxes, at or above the threshold
                assert e["box"] in [c["box"] for c in row["crops"]]
                assert threshold is None or e["box_score"] >= threshold
            else:
                assert e["box_reason"]
    result = _ok(CliRunner().invoke(train_main, ["evaluate-gmner", str(out), str(lay.text_dir), "--json"]))
    boxed = sum(e["box"] is not None for r in rows for e in r["entities"])
    assert json.loads(result.stdout)["predicted_with_box"] == boxed

    # the region loss (--region-weight): trained on the imported xml/ and grounding's manifest.csv; recorded in
    # the run's config.json, and predict's default linker (auto) is then the model's region head
    headed = tmp_path / "run-regions"
    _ok(CliRunner().invoke(train_main, [
        "--data-root", str(root), "--dataset", "gmner", "--text-model", str(encoder), "--random-init",
        "--clip-model", "ViT-S-32", "--clip-pretrained", "none", "--epochs", "1", "--batch-size", "4",
        "--device", "cpu", "--run-dir", str(headed), "--feature-cache", str(tmp_path / "cache"),
        "--region-weight", "1"]))
    assert json.loads((headed / "config.json").read_text())["model"]["region_weight"] == 1.0
    run_dir = headed
    out, rows = predict("test", "--none-threshold", "-inf", "--force")
    entities = [e for row in rows for e in row["entities"]]
    assert all(e["box_linker"] == "matching" for e in entities)
    assert all(e["box"] in [c["box"] for c in row["crops"]] for row in rows for e in row["entities"]
               if any(c.get("box") for c in row["crops"]))
