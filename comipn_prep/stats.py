"""Counts per split: tweets, tokens, distinct images and entities per type (by B- tags)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .conll import ENTITY_TYPES, ConllFile, read_conll
from .layout import SPLITS


def split_stats(data: ConllFile) -> dict:
    """Tweets, tokens, distinct images and entities per type counted by B- tags (OTHER as MISC)."""
    entities: Counter[str] = Counter()
    for tweet in data:
        for label in tweet.labels or []:
            if label.startswith("B-"):
                entities[label[2:]] += 1
    return {
        "tweets": len(data),
        "tokens": sum(len(t) for t in data),
        "images": len({t.imgid for t in data}),
        "entities": {etype: entities.get(etype, 0) for etype in ENTITY_TYPES},
    }


def dataset_stats(data_dir: str | Path) -> dict:
    """:func:`split_stats` of ``train.txt``, ``valid.txt`` and ``test.txt`` in ``data_dir``."""
    data_dir = Path(data_dir)
    missing = [f"{s}.txt" for s in SPLITS if not (data_dir / f"{s}.txt").is_file()]
    if missing:
        raise FileNotFoundError(f"{data_dir}: missing {', '.join(missing)}")
    return {split: split_stats(read_conll(data_dir / f"{split}.txt")) for split in SPLITS}


def format_stats_table(stats: dict) -> str:
    """A fixed-width table: one row per split, entity columns per type and their total."""
    header = ["split", "tweets", "tokens", "images", *ENTITY_TYPES, "entities"]
    rows = [header]
    for split, s in stats.items():
        ents = [s["entities"][t] for t in ENTITY_TYPES]
        rows.append([split, s["tweets"], s["tokens"], s["images"], *ents, sum(ents)])
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    out = []
    for r in rows:
        cells = [str(r[0]).ljust(widths[0])] + [str(c).rjust(w) for c, w in zip(r[1:], widths[1:])]
        out.append("  ".join(cells))
    return "\n".join(out)
