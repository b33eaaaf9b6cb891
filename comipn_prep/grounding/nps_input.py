"""The noun phrases of a split, as the grounding stage needs them: (imgid, phrases) in file order,
read from ``<split>.nps.jsonl`` written by ``comipn-prep extract-nps`` (``comipn_prep.nps``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from comipn_prep.nps.io import read_nps_jsonl

__all__ = ["GroundItem", "read_ground_items"]


@dataclass
class GroundItem:
    imgid: str
    phrases: list[str] = field(default_factory=list)


def read_ground_items(path: Path) -> list[GroundItem]:
    """One item per tweet; phrases de-duplicated in order (one embedding, one candidate each)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no noun-phrase file (run comipn-prep extract-nps first)")
    items = []
    for tweet in read_nps_jsonl(path):
        phrases = dict.fromkeys(p.text.strip() for p in tweet.nps if p.text.strip())
        items.append(GroundItem(tweet.imgid, list(phrases)))
    return items
