"""The region linker saved with a model: ``regions.json`` (which linker, and the "none" threshold chosen on
dev), in the run or exported folder, or beside a checkpoint file."""

from __future__ import annotations

import json
from pathlib import Path

from comipn_prep.conll import atomic_write_bytes

LINKERS = ("matching", "clip", "largest")  # largest: the baseline, the largest crop
REGIONS_FILE = "regions.json"


def regions_path(source: str | Path) -> Path:
    """Where a model's ``regions.json`` lives: in its folder, or beside its checkpoint file."""
    source = Path(source)
    return (source if source.is_dir() else source.parent) / REGIONS_FILE


def read_regions(source: str | Path) -> dict | None:
    """The saved linker settings of a model (``{"linker", "none_threshold", ...}``); None when there are none."""
    path = regions_path(source)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: not JSON ({err.msg})") from None
    threshold = data.get("none_threshold") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("linker") not in LINKERS or not (
            threshold is None or (isinstance(threshold, (int, float)) and not isinstance(threshold, bool))):
        raise ValueError(f"{path}: expected {{\"linker\": one of {', '.join(LINKERS)}, \"none_threshold\": a number "
                         "or null}")
    return data


def write_regions(folder: str | Path, linker: str, none_threshold: float | None, **chosen_on) -> Path:
    """Save ``linker`` and its threshold (and what it was chosen on: split, scores) as ``folder/regions.json``."""
    if linker not in LINKERS:
        raise ValueError(f"unknown linker {linker!r}: choose {', '.join(LINKERS)}")
    path = Path(folder) / REGIONS_FILE
    data = {"linker": linker, "none_threshold": none_threshold, **chosen_on}
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
    return path
