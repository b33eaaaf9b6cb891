"""The noun phrases of a split, as the grounding stage needs them: (imgid, phrases) in file order.

Reads ``<split>.nps.jsonl`` written by ``comipn-prep extract-nps`` through ``comipn_prep.nps`` when that
package is installed; otherwise reads the documented JSON-lines contract directly
(``{"imgid": ..., "tokens": [...], "nps": [{"start": s, "end": e, "text": ...}, ...]}`` a line).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..layout import canonical_split


@dataclass
class GroundItem:
    imgid: str
    phrases: list[str] = field(default_factory=list)


def nps_path(nps_dir: Path, split: str) -> Path:
    return Path(nps_dir) / f"{canonical_split(split)}.nps.jsonl"


def read_ground_items(path: Path) -> list[GroundItem]:
    """One item per tweet; phrases de-duplicated in order (one embedding, one candidate each)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no noun-phrase file (run comipn-prep extract-nps first)")
    try:
        from ..nps import read_nps_jsonl  # the extract-nps package, when present
    except ImportError:
        read_nps_jsonl = None
    items = []
    if read_nps_jsonl is not None:
        for t in read_nps_jsonl(path):
            items.append(GroundItem(str(t.imgid), _dedupe(np.text for np in t.nps)))
        return items
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                imgid = str(obj["imgid"])
                phrases = []
                for np_ in obj.get("nps", []):
                    text = np_["text"] if isinstance(np_, dict) else (np_[2] if len(np_) > 2 else "")
                    if not text:
                        start, end = (np_["start"], np_["end"]) if isinstance(np_, dict) else np_[:2]
                        text = " ".join(obj["tokens"][start:end])
                    phrases.append(text)
            except (ValueError, KeyError, TypeError, IndexError) as err:
                raise ValueError(f"{path}:{lineno}: not a noun-phrase record: {err}") from None
            items.append(GroundItem(imgid, _dedupe(phrases)))
    return items


def _dedupe(phrases) -> list[str]:
    seen: dict[str, None] = {}
    for p in phrases:
        p = str(p).strip()
        if p:
            seen.setdefault(p, None)
    return list(seen)
