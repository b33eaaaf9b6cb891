"""Grounded MNER scores as the Twitter-GMNER paper defines them: GMNER (span, type and region), MNER (span
and type) and EEG (span and region), each as micro precision / recall / F1 over entities.

A predicted entity counts for GMNER when a gold entity of its tweet has exactly its token span and type
and the regions agree: both "none" (not in the picture), or the predicted box overlaps ANY of the gold
entity's boxes with IoU strictly above 0.5. MNER drops the region, EEG the type. Precision divides by
the predicted entities, recall by the gold ones. IoU is taken on continuous pixel coordinates
(``(x2 - x1) * (y2 - y1)``, no +1). A tweet's entities are keyed by span, as the reference scorer keys
them (a BIO tagging has one entity per span).

Predictions come from ``comipn-train predict`` JSONL (each entity's ``token_start`` / ``token_end``,
``entity_group`` and ``box``: ``[x1, y1, x2, y2]`` or null / absent for "none") or from a run folder's
``test_predictions.txt`` (tags only: every region "none"). Gold is a GMNER-shaped folder
(:mod:`comipn_prep.gmner`). Every gold tweet needs a prediction with the same tokens, and the other way round.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from comipn_prep.conll import entity_spans, normalise_label
from comipn_prep.gmner import GroundedEntity, read_gmner_split
from comipn_prep.grounding.selection import iou
from comipn_prep.jsonl import json_lines

from comipn_model.saved import run_folder as rf

log = logging.getLogger(__name__)

IOU_THRESHOLD = 0.5  # a region matches above this, strictly
TASKS = ("GMNER", "MNER", "EEG")

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class PredictedEntity:
    type: str
    start: int  # token span, end exclusive
    end: int
    box: Box | None = None  # None: "not in the picture"
    box_score: float | None = None  # the linker's score of its best crop (predict JSONL), if any
    linker: str | None = None  # the linker that gave the region (predict JSONL "box_linker")


@dataclass(frozen=True)
class Counts:
    """Matched, predicted and gold entities of one task, and P / R / F1 from them (0 where undefined)."""

    correct: int
    predicted: int
    gold: int

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.correct / self.gold if self.gold else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1, "correct": self.correct,
                "predicted": self.predicted, "gold": self.gold}


def region_matches(box: Sequence[float] | None, gold_boxes: Sequence[Sequence[float]]) -> bool:
    """Both "none", or IoU strictly above 0.5 with any one of the gold boxes."""
    if box is None:
        return not gold_boxes
    return any(iou(box, g) > IOU_THRESHOLD for g in gold_boxes)


def score(gold: Mapping[str, Sequence[GroundedEntity]],
          predicted: Mapping[str, Sequence[PredictedEntity]]) -> dict[str, Counts]:
    """``{"GMNER": Counts, "MNER": ..., "EEG": ...}`` over the tweets of ``gold`` (by id); a tweet
    missing from ``predicted`` has no predicted entity."""
    correct = dict.fromkeys(TASKS, 0)
    n_pred = n_gold = 0
    for tweet_id, gold_entities in gold.items():
        by_span = {(g.start, g.end): g for g in gold_entities}
        preds = {(p.start, p.end): p for p in predicted.get(tweet_id, ())}
        n_gold += len(by_span)
        n_pred += len(preds)
        for span, p in preds.items():
            g = by_span.get(span)
            if g is None:
                continue
            same_type = p.type == g.type
            same_region = region_matches(p.box, g.boxes)
            correct["MNER"] += same_type
            correct["EEG"] += same_region
            correct["GMNER"] += same_type and same_region
    return {task: Counts(correct[task], n_pred, n_gold) for task in TASKS}


@dataclass
class PredictedTweet:
    tokens: list[str] | None
    entities: list[PredictedEntity]
    where: str  # file:line, for messages


def _box(value, where: str) -> Box | None:
    if value is None:
        return None
    ok = isinstance(value, list) and len(value) == 4 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if not ok or value[2] < value[0] or value[3] < value[1]:
        raise ValueError(f"{where}: \"box\" must be null or [x1, y1, x2, y2] (numbers, x1 <= x2, y1 <= y2), "
                         f"found {json.dumps(value)}")
    return tuple(float(v) for v in value)


def read_predict_jsonl(path: Path) -> dict[str, PredictedTweet]:
    """``comipn-train predict`` JSONL: tweets by ``imgid`` (else ``id``), each entity's span, type and box."""
    tweets: dict[str, PredictedTweet] = {}
    boxes = 0
    for _, where, obj in json_lines(path):
        if not isinstance(obj, dict) or not isinstance(obj.get("entities"), list):
            raise ValueError(f"{where}: expected a predict JSONL object with \"entities\" (a list)")
        tweet_id = str(obj.get("imgid", obj.get("id")))
        if tweet_id in tweets:
            raise ValueError(f"{where}: tweet {tweet_id} again (first at {tweets[tweet_id].where})")
        entities = []
        for k, ent in enumerate(obj["entities"]):
            at = f"{where}: entity {k}"
            try:
                start, end, etype = ent["token_start"], ent["token_end"], ent["entity_group"]
            except (TypeError, KeyError) as err:
                raise ValueError(f"{at}: needs \"token_start\", \"token_end\" and \"entity_group\" ({err})") from None
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end):
                raise ValueError(f"{at}: \"token_start\" / \"token_end\" must be integers, 0 <= start < end")
            box = _box(ent.get("box"), at)
            boxes += box is not None
            box_score = ent.get("box_score")
            if box_score is not None and (not isinstance(box_score, (int, float)) or isinstance(box_score, bool)):
                raise ValueError(f"{at}: \"box_score\" must be a number or null")
            entities.append(PredictedEntity(str(etype), start, end, box, box_score, ent.get("box_linker")))
        tokens = obj.get("tokens")
        tweets[tweet_id] = PredictedTweet(tokens if isinstance(tokens, list) else None, entities, where)
    if tweets and not boxes:
        log.warning("%s: no entity carries a \"box\": every predicted region is \"none\"", path)
    return tweets


def read_tagged_conll(path: Path) -> dict[str, PredictedTweet]:
    """A run folder's ``test_predictions.txt`` (``token<TAB>gold<TAB>predicted``; or ``token<TAB>predicted``
    as ``predict`` writes CoNLL): the predicted entities, every region "none"."""
    from comipn_prep.conll import read_utf8_text

    tweets: dict[str, PredictedTweet] = {}
    current = None
    rows: list[tuple[str, str]] = []

    def close():
        if current is not None:
            tags = [normalise_label(t) for _, t in rows]
            ents = [PredictedEntity(t, s, e) for t, s, e in entity_spans(tags)]
            tweets[current[0]] = PredictedTweet([w for w, _ in rows], ents, current[1])

    for lineno, line in enumerate(read_utf8_text(path).splitlines(), 1):
        if line.startswith("IMGID:"):
            close()
            current, rows = (line[len("IMGID:"):], f"{path}:{lineno}"), []
        elif line.strip():
            cols = line.split("\t")
            if current is None or len(cols) not in (2, 3):
                raise ValueError(f"{path}:{lineno}: expected 'token<TAB>[gold<TAB>]predicted' after an IMGID line")
            rows.append((cols[0], cols[-1]))
    close()
    log.warning("%s: tags only, no regions: every predicted region is \"none\" (GMNER and EEG count only the "
                "entities not in the picture)", path)
    return tweets


def read_predictions(source: str | Path) -> dict[str, PredictedTweet]:
    """Predictions from a predict JSONL file, a tagged CoNLL file, or a run folder (its test predictions)."""
    source = Path(source)
    if source.is_dir():
        path = source / rf.TEST_PREDICTIONS
        if not path.is_file():
            raise FileNotFoundError(f"{source}: no {rf.TEST_PREDICTIONS}: not a scored run folder")
        return read_tagged_conll(path)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such file or folder")
    if source.suffix.lower() in (".jsonl", ".json"):
        return read_predict_jsonl(source)
    return read_tagged_conll(source)


def evaluate(predictions: str | Path, gold_folder: str | Path, split: str = "test") -> dict:
    """Score ``predictions`` against ``split`` of the GMNER-shaped ``gold_folder``: a dict with each task's
    P / R / F1 and counts, and what was read. ValueError when the tweets or their tokens differ."""
    gold = read_gmner_split(gold_folder, split)
    pred = read_predictions(predictions)
    missing = [i for i in gold.tweets if i not in pred]
    extra = [i for i in pred if i not in gold.tweets]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} gold tweets have no prediction (first: IMGID:{missing[0]})")
        if extra:
            parts.append(f"{len(extra)} predicted tweets are not in the gold (first: IMGID:{extra[0]}, "
                         f"{pred[extra[0]].where})")
        raise ValueError(f"{predictions} against {gold.text_path}: " + "; ".join(parts))
    for tweet_id, g in gold.tweets.items():
        p = pred[tweet_id]
        if p.tokens is not None and len(p.tokens) != len(g.tokens):
            raise ValueError(f"{p.where}: IMGID:{tweet_id} has {len(p.tokens)} tokens, the gold "
                             f"{len(g.tokens)} ({gold.text_path}): spans would not line up")
    scores = score({i: t.entities for i, t in gold.tweets.items()}, {i: t.entities for i, t in pred.items()})
    n_boxes = sum(len(e.boxes) for t in gold.tweets.values() for e in t.entities)
    grounded = sum(bool(e.boxes) for t in gold.tweets.values() for e in t.entities)
    return {"predictions": str(predictions), "gold": str(gold.text_path), "split": split,
            "tweets": len(gold.tweets), "gold_entities": scores["GMNER"].gold, "gold_in_picture": grounded,
            "gold_boxes": n_boxes, "unmatched_gold_boxes": len(gold.unmatched),
            "predicted_with_box": sum(e.box is not None for t in pred.values() for e in t.entities),
            "scores": {task: c.to_dict() for task, c in scores.items()}}


def choose_none_threshold(predictions: str | Path, gold_folder: str | Path, split: str = "valid") -> dict:
    """The "none" threshold of a region linker that gets most regions right on ``split`` (dev), from
    predictions made without one (every entity with a candidate crop keeps its best box and its
    ``box_score``). Counted over the correctly tagged entities (span and type): below the threshold an
    entity is "none". Returns the threshold (None: never "none"), the linker, and the regions right before
    and after."""
    gold = read_gmner_split(gold_folder, split)
    pred = read_predictions(predictions)
    samples, linkers = [], set()
    for tweet_id, g in gold.tweets.items():
        by_span = {(e.start, e.end): e for e in g.entities}
        for p in pred.get(tweet_id, PredictedTweet(None, [], "")).entities:
            linkers.add(p.linker)
            e = by_span.get((p.start, p.end))
            if e is None or e.type != p.type:
                continue
            if p.box is None and p.box_score is not None:
                raise ValueError(f"{predictions}: IMGID:{tweet_id}: an entity scored {p.box_score} has no box: "
                                 "the predictions were made with a none threshold; predict dev with "
                                 "--none-threshold -inf (every entity keeps its best crop) to choose one")
            samples.append((p.box_score, p.box is not None and region_matches(p.box, e.boxes), not e.boxes))
    linkers.discard(None)
    if len(linkers) != 1:
        raise ValueError(f"{predictions}: " + ("no entity has a region (\"box_linker\"): predict with --linker"
                                               if not linkers else f"regions of several linkers {sorted(linkers)}"))
    if not samples:
        log.warning("%s: no entity tagged right (span and type) on %s: nothing to choose from; never \"none\"",
                    predictions, split)
    threshold, right = best_threshold(samples)
    never = sum(gold_none if s is None else ok for s, ok, gold_none in samples)
    return {"linker": linkers.pop(), "none_threshold": threshold, "split": split, "gold": str(gold.text_path),
            "entities": len(samples), "regions_right": right, "regions_right_never_none": never}


def best_threshold(samples: Sequence[tuple[float | None, bool, bool]]) -> tuple[float | None, int]:
    """The threshold that gets most regions right, and how many. ``samples``: per entity ``(box_score,
    box_right, gold_none)``: its best crop's score (None: no candidate crop), whether that box matches the
    gold, whether the gold is "none". An entity is "none" when its score is below the threshold. Ties go
    to the lowest; None: never "none"."""
    best_t, best = None, -1
    for t in [None, *sorted({s for s, _, _ in samples if s is not None}), math.inf]:
        right = sum(gold_none if s is None or (t is not None and s < t) else ok for s, ok, gold_none in samples)
        if right > best:
            best_t, best = t, right
    return (None if best_t is None else float(best_t)), best


def format_scores(result: dict) -> str:
    """The result of :func:`evaluate` as a small table (percentages)."""
    lines = [f"{result['predictions']} against {result['gold']}",
             f"{result['tweets']} tweets, {result['gold_entities']} gold entities "
             f"({result['gold_in_picture']} in the picture, {result['gold_boxes']} boxes); "
             f"{result['predicted_with_box']} predicted entities with a box",
             "", f"{'task':<6} {'P':>7} {'R':>7} {'F1':>7} {'correct':>8} {'pred':>6} {'gold':>6}"]
    for task in TASKS:
        s = result["scores"][task]
        lines.append(f"{task:<6} {100 * s['precision']:7.2f} {100 * s['recall']:7.2f} {100 * s['f1']:7.2f} "
                     f"{s['correct']:8d} {s['predicted']:6d} {s['gold']:6d}")
    if result["unmatched_gold_boxes"]:
        lines.append(f"\n{result['unmatched_gold_boxes']} gold boxes name no entity of their tweet (not scored)")
    return "\n".join(lines)
