"""`import-gmner`: lay the Twitter-GMNER release out in the field's layout, so that every stage runs on it
as on Twitter-2015.

::

    SRC/txt/{train,dev,test}.txt  ->  ROOT/NAME/{train,valid,test}.txt   (the same bytes)
    SRC/xml/<imgid>.xml           ->  ROOT/NAME/xml/<imgid>.xml          (the gold boxes; read by evaluate-gmner)
    IMAGES/<imgid>.jpg            ->  ROOT/NAME_images/<imgid>.jpg       (a link to the file, or a copy)

The release's image ids are the Twitter-2015 and Twitter-2017 ids (``1000046``, ``16_05_01_6``,
``O_2371``); its images are those of the two datasets, so ``--images`` may be given once per folder: each
id takes the first folder that holds ``<imgid>.jpg`` (or .png / .jpeg / .gif). Everything is read and
checked (the text, every XML file) before the first write; a dataset folder that already holds text is
replaced only with ``force``. Images found nowhere are counted and named in the summary; the commands
that read images refuse a split with too few of them, as on any dataset.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .conll import atomic_write_bytes, read_conll, require_tweets, write_conll
from .gmner import XML_DIR, gmner_paths, read_gmner_split
from .layout import SPLITS, DatasetLayout, find_image

log = logging.getLogger(__name__)

RECORD = "gmner_import.json"


@dataclass
class ImportOptions:
    src: str | os.PathLike
    root: str | os.PathLike
    name: str = "twitter-gmner"
    images: list[str | os.PathLike] = field(default_factory=list)  # folders searched in order
    copy_images: bool = False  # False: symbolic links to the files (no second copy of 10,000 images)
    force: bool = False


def import_gmner(opts: ImportOptions) -> dict:
    """Lay ``opts.src`` out under ``opts.root`` as dataset ``opts.name``; returns the summary (also written
    to ``ROOT/NAME/gmner_import.json``)."""
    src = Path(opts.src)
    layout = DatasetLayout(Path(opts.root), opts.name)
    image_dirs = [Path(d) for d in opts.images]
    for folder in image_dirs:
        if not folder.is_dir():
            raise FileNotFoundError(f"--images {folder}: no such folder")
    # read and check everything first: the text (file:line) and every XML file of its tweets
    splits = {}
    for split in SPLITS:
        text_path, xml_dir = gmner_paths(src, split)
        conll = read_conll(text_path, labeled=True)
        require_tweets(text_path, len(conll), "split")
        splits[split] = (conll, read_gmner_split(src, split))
    if src.resolve() == layout.text_dir.resolve():
        raise ValueError(f"{src} is the folder it would be laid out in: choose another ROOT or --dataset")
    existing = [layout.text_path(s) for s in SPLITS if layout.text_path(s).exists()]
    if existing and not opts.force:
        raise FileExistsError(f"{existing[0]} exists: pass --force to replace the dataset's text and boxes")
    imgids = list(dict.fromkeys(t.imgid for conll, _ in splits.values() for t in conll.tweets))
    found: dict[str, Path] = {}
    for imgid in imgids:
        for folder in image_dirs:
            path = find_image(folder, imgid)
            if path is not None:
                found[imgid] = path
                break
    # writes
    summary: dict = {"source": str(src.resolve()), "dataset": opts.name, "splits": {}}
    out_xml = layout.text_dir / XML_DIR
    out_xml.mkdir(parents=True, exist_ok=True)
    for split, (conll, gold) in splits.items():
        write_conll(layout.text_path(split), conll)
        for imgid in gold.tweets:
            xml = gold.xml_dir / f"{imgid}.xml"
            if xml.is_file():
                atomic_write_bytes(out_xml / xml.name, xml.read_bytes(), durable=False)
        entities = [e for t in gold.tweets.values() for e in t.entities]
        summary["splits"][split] = {"tweets": len(gold.tweets), "entities": len(entities),
                                    "in_picture": sum(bool(e.boxes) for e in entities),
                                    "boxes": sum(len(e.boxes) for e in entities),
                                    "unmatched_boxes": len(gold.unmatched), "without_xml": gold.without_xml}
    placed = _place_images(found, layout.images_dir, opts.copy_images, opts.force) if image_dirs else 0
    missing = [i for i in imgids if i not in found]
    summary["images"] = {"ids": len(imgids), "found": len(found), "placed": placed,
                         "how": "copy" if opts.copy_images else "link", "missing": len(missing),
                         "first_missing": missing[:5]}
    atomic_write_bytes(layout.text_dir / RECORD, (json.dumps(summary, indent=2) + "\n").encode("utf-8"))
    log.info("laid out %s as %s: %s", src, layout.text_dir, summary["images"])
    return summary


def _place_images(found: dict[str, Path], images_dir: Path, copy: bool, force: bool) -> int:
    """Link (or copy) each found image into ``images_dir`` under its own file name; an entry already there
    is kept unless ``force``. Returns how many were placed."""
    images_dir.mkdir(parents=True, exist_ok=True)
    placed = 0
    for path in found.values():
        target = images_dir / path.name
        if target.exists() or target.is_symlink():
            if not force:
                continue
            target.unlink()
        if copy:
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
        else:
            os.symlink(path.resolve(), target)
        placed += 1
    return placed


def format_summary(summary: dict) -> str:
    lines = [f"{'split':<6} {'tweets':>7} {'entities':>9} {'in pic.':>8} {'boxes':>6} {'unmatched':>10}"]
    for split, s in summary["splits"].items():
        lines.append(f"{split:<6} {s['tweets']:7d} {s['entities']:9d} {s['in_picture']:8d} {s['boxes']:6d} "
                     f"{s['unmatched_boxes']:10d}")
    im = summary["images"]
    lines.append(f"images: {im['found']} of {im['ids']} found, {im['placed']} placed ({im['how']})"
                 + (f"; {im['missing']} missing, e.g. {', '.join(im['first_missing'])}" if im["missing"] else ""))
    return "\n".join(lines)
