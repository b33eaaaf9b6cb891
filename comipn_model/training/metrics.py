"""Entity-level scores exactly as seqeval computes them in its default (conlleval) mode."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from seqeval.metrics import classification_report, f1_score, precision_score, recall_score


@dataclass
class Scores:
    precision: float
    recall: float
    f1: float

    def to_dict(self) -> dict:
        return asdict(self)


def overall(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> Scores:
    """Micro P / R / F1 over entities."""
    _check(gold, pred)
    return Scores(precision=float(precision_score(gold, pred, zero_division=0)),
                  recall=float(recall_score(gold, pred, zero_division=0)),
                  f1=float(f1_score(gold, pred, zero_division=0)))


def report(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Overall and per-type rows: ``{"overall": {...}, "per_type": {"PER": {precision, recall, f1,
    support}, ...}}``, every number as seqeval gives it."""
    _check(gold, pred)
    rows = classification_report(gold, pred, output_dict=True, zero_division=0)
    per_type = {name: {"precision": float(row["precision"]), "recall": float(row["recall"]),
                       "f1": float(row["f1-score"]), "support": int(row["support"])}
                for name, row in rows.items() if not name.endswith(" avg")}
    result = overall(gold, pred).to_dict()
    result["support"] = sum(row["support"] for row in per_type.values())
    return {"overall": result, "per_type": per_type}


def _check(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sequences but {len(pred)} predicted")
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sequence {i}: {len(g)} gold labels but {len(p)} predicted")
