"""The preprocessing settings a model was trained with (detector, CLIP, thresholds, NP backend), read
from what ``comipn-prep`` left in the dataset's aux folder, so that new tweets are grounded the same way.

Saved in ``best.pt`` under ``"prep"`` and in an exported model's ``config.json``; :class:`comipn_model.Tagger`
reads it back (every value can be overridden there).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from comipn_prep.layout import DatasetLayout

log = logging.getLogger(__name__)

# The grounding settings that decide which crops a tweet gets (speed-only ones are left out).
GROUNDING_KEYS = ("detector", "clip_model", "clip_pretrained", "top_k", "conf", "iou", "nms_iou",
                  "max_candidates", "prompt")


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_prep_record(layout: DatasetLayout) -> dict:
    """``{"grounding": {...} | None, "np_backend": str | None}`` from ``ground_run*.json`` and
    ``nps/summary.json`` of the layout's aux folder (empty values when the crops came from elsewhere)."""
    aux = layout.aux_dir
    runs = sorted(aux.glob("ground_run*.json")) if aux.is_dir() else []
    runs.sort(key=lambda p: p.name != "ground_run.json")  # the whole run first, then shards
    grounding = None
    for path in runs:
        record = _read_json(path)
        if record and isinstance(record.get("config"), dict):
            cfg = record["config"]
            grounding = {k: cfg[k] for k in GROUNDING_KEYS if k in cfg}
            grounding["random_weights"] = bool(record.get("random_weights", False))
            break
    summary = _read_json(aux / "nps" / "summary.json") or {}
    backend = summary.get("backend") if isinstance(summary.get("backend"), str) else None
    return {"grounding": grounding, "np_backend": backend}
