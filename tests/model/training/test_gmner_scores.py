"""The grounded-MNER scorer (comipn_model.training.gmner_scores) and `comipn-train evaluate-gmner`, on a
hand-made gold folder whose GMNER / MNER / EEG figures are worked out by hand below."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import pytest
from click.testing import CliRunner

from comipn_prep.gmner import GroundedEntity
from comipn_prep.grounding.selection import iou
from comipn_model.cli import main
from comipn_model.saved.regions_record import read_regions
from comipn_model.training.gmner_scores import (PredictedEntity, best_threshold, read_predictions, region_matches,
                                                score)

SQUARE = (0, 0, 100, 100)
RIGHT = (200, 0, 300, 100)

# Gold, two tweets, five entities:
#   a1  Kevin Durant (PER, two boxes: SQUARE and RIGHT), LeBron James (PER, SQUARE; its XML name is spelled
#       "lebron  james"), Oakland (LOC, none); an extra box "Curry" names no entity.
#   b2  Warriors (ORG, SQUARE), Cavaliers (ORG, none).
GOLD = {"test": [
    ("a1", [("Kevin", "B-PER"), ("Durant", "I-PER"), ("meets", "O"), ("LeBron", "B-PER"), ("James", "I-PER"),
            ("in", "O"), ("Oakland", "B-LOC")],
     [("Kevin Durant", SQUARE), ("Kevin Durant", RIGHT), ("lebron  james", SQUARE), ("Curry", RIGHT)]),
    ("b2", [("Warriors", "B-ORG"), ("beat", "O"), ("Cavaliers", "B-ORG")], [("Warriors", SQUARE)]),
]}

# Predictions, six entities, and what each earns (GMNER / MNER / EEG):
#   Kevin Durant PER, box RIGHT: the second gold box, IoU 1                      -> yes / yes / yes
#   LeBron James PER, box (0, 0, 100, 50): IoU with SQUARE exactly 0.5          -> no  / yes / no
#   Oakland LOC, none; gold none                                                -> yes / yes / yes
#   Warriors PER (wrong type), box SQUARE                                       -> no  / no  / yes
#   Cavaliers ORG, box (0, 0, 50, 50); gold none                                -> no  / yes / no
#   beat MISC, none: no gold entity there                                       -> no  / no  / no
PRED = {
    "a1": [PredictedEntity("PER", 0, 2, RIGHT), PredictedEntity("PER", 3, 5, (0, 0, 100, 50)),
           PredictedEntity("LOC", 6, 7, None)],
    "b2": [PredictedEntity("PER", 0, 1, SQUARE), PredictedEntity("ORG", 2, 3, (0, 0, 50, 50)),
           PredictedEntity("MISC", 1, 2, None)],
}
# correct / predicted / gold, and so P, R and F1 = 2PR / (P + R):
#   GMNER 2 / 6 / 5: P 1/3, R 2/5, F1 (4/15) / (11/15) = 4/11
#   MNER  4 / 6 / 5: P 2/3, R 4/5, F1 (16/15) / (22/15) = 8/11
#   EEG   3 / 6 / 5: P 1/2, R 3/5, F1 (3/5) / (11/10) = 6/11
EXPECTED = {"GMNER": (2, Fraction(1, 3), Fraction(2, 5), Fraction(4, 11)),
            "MNER": (4, Fraction(2, 3), Fraction(4, 5), Fraction(8, 11)),
            "EEG": (3, Fraction(1, 2), Fraction(3, 5), Fraction(6, 11))}


def _gold_entities() -> dict:
    return {"a1": [GroundedEntity("PER", 0, 2, "Kevin Durant", (SQUARE, RIGHT)),
                   GroundedEntity("PER", 3, 5, "LeBron James", (SQUARE,)), GroundedEntity("LOC", 6, 7, "Oakland")],
            "b2": [GroundedEntity("ORG", 0, 1, "Warriors", (SQUARE,)), GroundedEntity("ORG", 2, 3, "Cavaliers")]}


def _check(scores: dict) -> None:
    for task, (correct, p, r, f1) in EXPECTED.items():
        s = scores[task]
        assert (s["correct"], s["predicted"], s["gold"]) == (correct, 6, 5), task
        assert s["precision"] == pytest.approx(float(p)) and s["recall"] == pytest.approx(float(r)), task
        assert s["f1"] == pytest.approx(float(f1)), task


def _write_predictions(path: Path, pred: dict, tokens: dict) -> Path:
    """As `comipn-train predict` writes JSONL for CoNLL input (id and imgid, tokens, entities with box)."""
    lines = []
    for imgid, ents in pred.items():
        lines.append(json.dumps({"id": imgid, "imgid": imgid, "tokens": tokens[imgid], "entities": [
            {"entity_group": e.type, "score": 0.9, "word": "", "start": 0, "end": 0, "token_start": e.start,
             "token_end": e.end, "box": list(e.box) if e.box else None} for e in ents]}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def gold_folder(tmp_path, make_gmner_folder):
    return make_gmner_folder(tmp_path / "gold", GOLD)


@pytest.fixture()
def predictions(tmp_path):
    tokens = {imgid: [t for t, _ in tagged] for imgid, tagged, _ in GOLD["test"]}
    return _write_predictions(tmp_path / "pred.jsonl", PRED, tokens)


def test_iou_and_the_strict_half():
    assert iou(SQUARE, SQUARE) == 1.0 and iou(SQUARE, RIGHT) == 0.0
    assert iou(SQUARE, (0, 0, 100, 50)) == 0.5
    assert not region_matches((0, 0, 100, 50), [SQUARE])  # exactly 0.5: no match
    assert region_matches((0, 0, 100, 51), [SQUARE])  # 0.51
    assert region_matches(RIGHT, [SQUARE, RIGHT])  # any gold box of the entity will do
    assert region_matches(None, []) and not region_matches(None, [SQUARE]) and not region_matches(SQUARE, [])


def test_hand_computed_scores_in_memory():
    _check({task: c.to_dict() for task, c in score(_gold_entities(), PRED).items()})


def test_hand_computed_scores_from_the_command_line(gold_folder, predictions):
    result = CliRunner().invoke(main, ["evaluate-gmner", str(predictions), str(gold_folder), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    _check(out["scores"])
    assert (out["tweets"], out["gold_entities"], out["gold_in_picture"], out["gold_boxes"]) == (2, 5, 3, 4)
    assert out["unmatched_gold_boxes"] == 1  # "Curry"
    table = CliRunner().invoke(main, ["evaluate-gmner", str(predictions), str(gold_folder)])
    assert table.exit_code == 0, table.output
    rows = {line.split()[0]: line.split()[1:4] for line in table.output.splitlines() if line[:5].strip() in EXPECTED}
    assert rows == {task: [f"{100 * float(v):.2f}" for v in exp[1:]] for task, exp in EXPECTED.items()}


def test_a_run_folder_has_tags_only_so_every_region_is_none(tmp_path, gold_folder):
    run = tmp_path / "run"
    run.mkdir()
    # token, gold, predicted: a1 all right; b2 Warriors missed, Cavaliers right
    (run / "test_predictions.txt").write_text(
        "IMGID:a1\nKevin\tB-PER\tB-PER\nDurant\tI-PER\tI-PER\nmeets\tO\tO\nLeBron\tB-PER\tB-PER\nJames\tI-PER\tI-PER\n"
        "in\tO\tO\nOakland\tB-LOC\tB-LOC\n\nIMGID:b2\nWarriors\tB-ORG\tO\nbeat\tO\tO\nCavaliers\tB-ORG\tB-ORG\n\n")
    assert all(e.box is None for t in read_predictions(run).values() for e in t.entities)
    out = json.loads(CliRunner().invoke(main, ["evaluate-gmner", str(run), str(gold_folder), "--json"]).stdout)
    # 4 predicted; MNER all 4 right; GMNER / EEG only where the gold is none too: Oakland and Cavaliers
    assert [out["scores"][t]["correct"] for t in ("GMNER", "MNER", "EEG")] == [2, 4, 2]
    assert out["scores"]["MNER"]["predicted"] == 4 and out["scores"]["MNER"]["recall"] == pytest.approx(4 / 5)


def test_predictions_that_miss_a_tweet_or_differ_in_tokens_exit_2(tmp_path, gold_folder):
    tokens = {imgid: [t for t, _ in tagged] for imgid, tagged, _ in GOLD["test"]}
    only_a = _write_predictions(tmp_path / "a.jsonl", {"a1": PRED["a1"]}, tokens)
    result = CliRunner().invoke(main, ["evaluate-gmner", str(only_a), str(gold_folder)])
    assert result.exit_code == 2 and "1 gold tweets have no prediction (first: IMGID:b2)" in result.output
    short = _write_predictions(tmp_path / "s.jsonl", PRED, {**tokens, "b2": ["Warriors", "beat"]})
    result = CliRunner().invoke(main, ["evaluate-gmner", str(short), str(gold_folder)])
    assert result.exit_code == 2 and f"{short}:2: IMGID:b2 has 2 tokens, the gold 3" in result.output


def test_a_bad_box_in_the_predictions_exits_2_naming_the_line(tmp_path, gold_folder):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"imgid": "a1", "entities": [
        {"entity_group": "PER", "token_start": 0, "token_end": 2, "box": [10, 10, 5, 20]}]}) + "\n")
    result = CliRunner().invoke(main, ["evaluate-gmner", str(bad), str(gold_folder)])
    assert result.exit_code == 2 and f"{bad}:1: entity 0: \"box\" must be null or [x1, y1, x2, y2]" in result.output


def test_bad_gold_xml_exits_2_naming_the_file_and_line(gold_folder, predictions):
    (gold_folder / "xml" / "b2.xml").write_text("<annotation>\n<object><name>Warriors</name>\n</annotation>\n")
    result = CliRunner().invoke(main, ["evaluate-gmner", str(predictions), str(gold_folder)])
    assert result.exit_code == 2 and f"{gold_folder / 'xml' / 'b2.xml'}:3:" in result.output
    assert "not well-formed XML" in result.output and "Traceback" not in result.output


def test_the_none_threshold_that_gets_most_regions_right_by_hand():
    # (best crop's score, its box right, gold none)
    samples = [(0.9, True, False), (0.8, False, True), (0.2, False, True), (0.7, True, False), (None, False, True)]
    # never none: 0.9 and 0.7 right, and the one without a candidate (gold none) -> 3
    # t = 0.7: 0.2 turns none (right) -> 4; t = 0.8: 0.7 turns none (wrong) -> 3; t = 0.9: 0.8 none (right) -> 3
    assert best_threshold(samples) == (0.7, 4)
    assert best_threshold([(0.5, True, False)]) == (None, 1)  # ties go to the lowest: never none
    assert best_threshold([(0.5, False, True)]) == (math.inf, 1)  # always none


def test_choose_none_threshold_from_dev_predictions_and_save_it(tmp_path, gold_folder):
    tokens = {imgid: [t for t, _ in tagged] for imgid, tagged, _ in GOLD["test"]}
    lines = []
    for imgid, ents in {"a1": [(0, 2, "PER", RIGHT, 0.9), (3, 5, "PER", (0, 0, 100, 50), 0.6),
                               (6, 7, "LOC", SQUARE, 0.3)],
                        "b2": [(0, 1, "ORG", SQUARE, 0.8), (2, 3, "ORG", SQUARE, 0.7),
                               (1, 2, "MISC", SQUARE, 0.1)]}.items():
        lines.append(json.dumps({"imgid": imgid, "tokens": tokens[imgid], "entities": [
            {"entity_group": t, "token_start": s, "token_end": e, "box": list(b), "box_score": sc,
             "box_linker": "matching"} for s, e, t, b, sc in ents]}))
    pred = tmp_path / "dev.jsonl"
    pred.write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    run.mkdir()
    result = CliRunner().invoke(main, ["evaluate-gmner", str(pred), str(gold_folder), "--split", "test",
                                       "--choose-none-threshold", "--save-to", str(run), "--json"])
    assert result.exit_code == 0, result.output
    chosen = json.loads(result.stdout)
    # correctly tagged: KD 0.9 right; LeBron 0.6 wrong (IoU 0.5); Oakland 0.3 gold none; Warriors 0.8 right;
    # Cavaliers 0.7 gold none (MISC "beat" is no entity). Never none: 2 right. t = 0.7: Oakland none -> 3,
    # Cavaliers? 0.7 is not below 0.7 -> wrong; t = 0.8: LeBron, Oakland, Cavaliers none -> 2 + 2 = 4 (LeBron's
    # gold has a box: wrong either way); t = 0.9: Warriors none -> 3.
    assert (chosen["none_threshold"], chosen["regions_right"], chosen["regions_right_never_none"]) == (0.8, 4, 2)
    assert chosen["entities"] == 5 and chosen["linker"] == "matching"
    assert read_regions(run)["none_threshold"] == 0.8 and read_regions(run)["split"] == "test"
    result = CliRunner().invoke(main, ["evaluate-gmner", str(pred), str(gold_folder), "--save-to", str(run)])
    assert result.exit_code == 2 and "--choose-none-threshold" in result.output


def test_the_worked_example_of_docs_grounded_md_prints_what_the_page_shows(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)  # the page's command runs from the repository root
    example = ["evaluate-gmner", "docs/examples/gmner/predictions.jsonl", "docs/examples/gmner"]
    result = CliRunner().invoke(main, example)
    assert result.exit_code == 0, result.output
    page = (repo_root / "docs" / "grounded.md").read_text(encoding="utf-8")
    assert f"```text\n{result.stdout}```" in page
    _check(json.loads(CliRunner().invoke(main, [*example, "--json"]).stdout)["scores"])  # the hand count above
