"""Pick the crops of one image: each noun phrase takes its best box, boxes are ranked by score,
near-duplicates (IoU) dropped and the top K kept. Pure numpy, no model."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class Selected:
    """One kept box: rank from 0, box in original pixels, the phrase that chose it and the scores."""

    rank: int
    box: tuple[int, int, int, int]
    phrase: str
    clip_score: float  # NaN when no phrase chose it (no NPs: detector order)
    det_score: float


def pixel_boxes(boxes: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Float xyxy boxes -> integer pixel boxes clipped to the image (outward rounding), and the
    indices of those with non-zero area (zero-area boxes cannot be cropped)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = np.empty(boxes.shape, dtype=np.int64)
    out[:, 0] = np.clip(np.floor(boxes[:, 0]), 0, width)
    out[:, 1] = np.clip(np.floor(boxes[:, 1]), 0, height)
    out[:, 2] = np.clip(np.ceil(boxes[:, 2]), 0, width)
    out[:, 3] = np.clip(np.ceil(boxes[:, 3]), 0, height)
    keep = np.flatnonzero((out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1]))
    return out, keep


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two xyxy boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def select_boxes(boxes: np.ndarray, det_scores: np.ndarray, sims: np.ndarray | None, phrases: list[str],
                 top_k: int = 3, iou_threshold: float = 0.5) -> list[Selected]:
    """Choose up to ``top_k`` boxes.

    ``sims[j, i]``: cosine similarity of phrase ``j`` and box ``i`` (None or no rows: no phrases, the
    detector's most confident boxes serve). A box chosen by several phrases keeps its best score.
    A box whose IoU with a better kept box exceeds ``iou_threshold`` is a near-duplicate and dropped.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    det_scores = np.asarray(det_scores, dtype=np.float64).reshape(-1)
    if len(boxes) == 0 or top_k <= 0:
        return []
    candidates: dict[int, tuple[float, str]] = {}
    if sims is not None and len(phrases) > 0 and np.size(sims) > 0:
        sims = np.asarray(sims, dtype=np.float64).reshape(len(phrases), len(boxes))
        for j, phrase in enumerate(phrases):
            i = int(np.argmax(sims[j]))
            score = float(sims[j, i])
            if i not in candidates or score > candidates[i][0]:
                candidates[i] = (score, phrase)
        # Best score first; ties broken by the detector's score then by box order (deterministic).
        order = sorted(candidates, key=lambda i: (-candidates[i][0], -det_scores[i], i))
    else:
        order = sorted(range(len(boxes)), key=lambda i: (-det_scores[i], i))
    kept: list[int] = []
    for i in order:
        if all(iou(boxes[i], boxes[k]) <= iou_threshold for k in kept):
            kept.append(i)
            if len(kept) == top_k:
                break
    result = []
    for rank, i in enumerate(kept):
        score, phrase = candidates.get(i, (math.nan, ""))
        x1, y1, x2, y2 = (int(v) for v in boxes[i])
        result.append(Selected(rank=rank, box=(x1, y1, x2, y2), phrase=phrase, clip_score=score,
                               det_score=float(det_scores[i])))
    return result
