"""Counts per split: tweets, tokens, image ids in the text, images on disk and entities per type, with
each file's sha256 and the released version it matches."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from .conll import ENTITY_TYPES, ConllFile, read_conll, require_tweets
from .fingerprints import fingerprint
from .layout import SPLITS, find_image

log = logging.getLogger(__name__)


def split_stats(data: ConllFile, images_dir: Path | None = None) -> dict:
    """Tweets, tokens, distinct image ids named by the text, how many of those have a file in
    ``images_dir`` (None when no image folder is known) and entities per type counted by B- tags
    (OTHER as MISC)."""
    entities: Counter[str] = Counter()
    for tweet in data:
        for label in tweet.labels or []:
            if label.startswith("B-"):
                entities[label[2:]] += 1
    ids = {t.imgid for t in data}
    on_disk = None
    if images_dir is not None:
        on_disk = sum(find_image(images_dir, i) is not None for i in ids) if Path(images_dir).is_dir() else 0
    return {
        "tweets": len(data),
        "tokens": sum(len(t) for t in data),
        "image_ids": len(ids),
        "images_on_disk": on_disk,
        "entities": {etype: entities.get(etype, 0) for etype in ENTITY_TYPES},
    }


def default_images_dir(data_dir: Path) -> Path:
    """The field's image folder beside a text folder: ``<root>/<name>`` -> ``<root>/<name>_images``."""
    data_dir = Path(data_dir).resolve()
    return data_dir.parent / f"{data_dir.name}_images"


def dataset_stats(data_dir: str | Path, images_dir: str | Path | None = None) -> dict:
    """:func:`split_stats` of ``train.txt``, ``valid.txt`` and ``test.txt`` in ``data_dir``; images are
    looked up in ``images_dir``, by default the field's ``<name>_images`` beside ``data_dir`` when it
    exists (an ``images_dir`` given but absent counts 0 images on disk)."""
    data_dir = Path(data_dir)
    missing = [f"{s}.txt" for s in SPLITS if not (data_dir / f"{s}.txt").is_file()]
    if missing:
        raise FileNotFoundError(f"{data_dir}: missing {', '.join(missing)}")
    if images_dir is None:
        beside = default_images_dir(data_dir)
        images_dir = beside if beside.is_dir() else None
    images = Path(images_dir) if images_dir is not None else None
    data = {split: read_conll(data_dir / f"{split}.txt") for split in SPLITS}
    for split, conll in data.items():
        require_tweets(data_dir / f"{split}.txt", len(conll.tweets), "split")  # counts of nothing hide a bad copy
    result = {split: split_stats(conll, images) for split, conll in data.items()}
    files = fingerprint({split: data_dir / f"{split}.txt" for split in SPLITS},
                        tweets={split: conll.tweets for split, conll in data.items()})
    for split in SPLITS:
        result[split]["sha256"] = files["splits"][split]["sha256"]
        result[split]["known_as"] = files["splits"][split]["known_as"]
        # What the splits' overlaps say is about the test split (the one a score is quoted on).
        result[split]["warnings"] = files["warnings"] if split == "test" else []
    for warning in files["warnings"]:
        log.warning("%s: %s", data_dir, warning)
    return result


def format_stats_table(stats: dict) -> str:
    """A fixed-width table: one row per split, entity columns per type and their total; ``on_disk`` is
    ``-`` when no image folder was looked at."""
    header = ["split", "tweets", "tokens", "image_ids", "on_disk", *ENTITY_TYPES, "entities"]
    rows = [header]
    for split, s in stats.items():
        ents = [s["entities"][t] for t in ENTITY_TYPES]
        on_disk = "-" if s["images_on_disk"] is None else s["images_on_disk"]
        rows.append([split, s["tweets"], s["tokens"], s["image_ids"], on_disk, *ents, sum(ents)])
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    out = []
    for r in rows:
        cells = [str(r[0]).ljust(widths[0])] + [str(c).rjust(w) for c, w in zip(r[1:], widths[1:])]
        out.append("  ".join(cells))
    for split, s in stats.items():
        if "sha256" in s:
            out.append(f"{split + '.txt':<10}  sha256 {s['sha256']}  {s['known_as'] or 'not a version comipn knows'}")
    return "\n".join(out)
