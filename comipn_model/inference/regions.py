"""Where each entity is in the picture: a box (one of the tweet's crops) or "none", linked after tagging.

Two linkers score every crop of the tweet that has a box (``[x1, y1, x2, y2]`` in the original image's
pixels: what grounding chose on the fly, or the row of grounding's ``manifest.csv`` for a prepared crop):

- ``matching``: the trained model's own relevance of each word to each crop
  (:meth:`comipn_model.network.model.CoMIPN.word_image_relevance`): its region head's probability when it
  was trained with a region weight (:mod:`comipn_model.network.region_head`), else dynamic matching's best
  cosine of the word to the crop's patches; averaged over the entity's words; scores in [0, 1].
- ``clip``: CLIP's cosine between ``"a photo of <entity text>"`` (the grounding prompt) and the crop, with
  the grounding's CLIP model; scores in [-1, 1].
- ``largest``: a baseline that reads neither text nor crop: the largest crop (its area in pixels).

The best-scoring crop gives the entity's ``box`` and ``box_score``; below the "none" threshold the entity
is not in the picture (``box`` null, ``box_score`` still the best crop's, ``box_reason`` why). A crop
without a recorded box (the field's released crops carry none) is never a candidate: when no crop has
one, ``box`` is null and ``box_reason`` says so, rather than a guess. The threshold is chosen on dev
(``comipn-train evaluate-gmner --choose-none-threshold``) and saved with the run as ``regions.json``
(:mod:`comipn_model.saved.regions_record`), which :class:`~comipn_model.inference.tagger.Tagger` reads.
"""

from __future__ import annotations

from typing import Sequence

NO_CROP = "no crop of the picture to link to"
# The default linker ("auto") on a model it cannot link with: every entity still says so.
NO_REGION_HEAD = ("no region linker: the model has no region head (train with --region-weight on data with gold "
                  "boxes, or name a linker: matching, clip or largest)")
TEXT_ONLY = "a text-only model reads no picture"
NO_BOX = ("its crops carry no box (crops not made by comipn-prep ground, such as the field's released ones, "
          "record none)")


def pooled_scores(word_scores: Sequence[Sequence[float]], start: int, end: int) -> list[float]:
    """Per crop, the mean of its score over the entity's words ``start:end`` (``word_scores[w][c]``)."""
    rows = [word_scores[w] for w in range(start, min(end, len(word_scores)))]
    if not rows:
        return []
    return [sum(row[c] for row in rows) / len(rows) for c in range(len(rows[0]))]


def box_area(box: Sequence[float] | None) -> float:
    """The ``largest`` baseline's score: the box's area in pixels (0 for none)."""
    return 0.0 if box is None else float(max(box[2] - box[0], 0) * max(box[3] - box[1], 0))


def link(scores: Sequence[float], crops: Sequence[dict], threshold: float | None) -> dict:
    """``{"box", "box_score"[, "box_reason"]}`` of one entity from its ``scores`` (one per crop, in the
    order of ``crops``); a crop is a candidate when it was used and has a ``"box"``. ``threshold`` None:
    the best candidate always (no "none")."""
    if not crops:
        return {"box": None, "box_score": None, "box_reason": NO_CROP}
    candidates = [(s, c["box"]) for s, c in zip(scores, crops) if c.get("box") is not None and c.get("used", True)]
    if not candidates:
        return {"box": None, "box_score": None, "box_reason": NO_BOX}
    score, box = max(candidates, key=lambda sb: sb[0])
    score = round(float(score), 6)
    if threshold is not None and score < threshold:
        return {"box": None, "box_score": score,
                "box_reason": f"not in the picture: the best crop scores {score:g}, below the none threshold "
                              f"{threshold:g}"}
    return {"box": [float(v) for v in box], "box_score": score}
