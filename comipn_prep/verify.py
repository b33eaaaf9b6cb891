"""``verify``: check a dataset folder in the field's layout (text, images, crops, dicts).

Works on our output and on the dicts/crops the field distributes. Problems (exit 1): a split's dict
missing or malformed, a dict key that is not an image of that split, a listed crop that is absent or
does not open, a crop named for another image, and a tweet image that is there but does not open
(unreadable: always, with or without ``strict``: a file that is there but corrupt is never what was
meant, and training would silently mask it). Tweet images absent from the image folder are listed
without failing unless ``strict`` (the field's own releases lack a few). A split without tweets, too
few images (none of a split, or under half; see :mod:`comipn_prep.image_coverage`), or a dict whose
keys mostly name no image of the split, are errors of their own (exit 2), the last two unless allowed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from .conll import ConllFormatError, read_conll, require_tweets
from .image_coverage import MissingImagesError, check_dict_keys, check_split_images
from .images import ImageLoadError, load_image
from .aux_dicts import BadDictError, load_aux_dict
from .layout import CROP_NAME_RE, SPLITS, DatasetLayout

logger = logging.getLogger(__name__)


@dataclass
class SplitReport:
    split: str
    images_in_text: int = 0
    missing_images: list[str] = field(default_factory=list)
    unreadable_images: list[str] = field(default_factory=list)  # "<file>: <status>: <reason>"
    images_on_disk: int = 0  # distinct images of the split found in the image folder
    dict_keys: int = 0
    crop_counts: dict[str, int] = field(default_factory=dict)  # "0", "1", "2", "3+" -> images
    crops_checked: int = 0


@dataclass
class VerifyReport:
    root: str
    dataset: str
    splits: list[SplitReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    strict: bool = False
    # Too few images, or dict keys naming no image: exit 2 unless --allow-missing-images.
    image_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        # Unreadable images fail always; absent ones only under strict (see the module doc).
        unreadable = any(s.unreadable_images for s in self.splits)
        absent = any(s.missing_images for s in self.splits)
        return not self.problems and not self.image_errors and not unreadable and not (self.strict and absent)

    def format(self, shown: int = 20) -> str:
        lines = [f"{self.dataset} under {self.root}:"]
        for s in self.splits:
            counts = ", ".join(f"{k} crops: {v}" for k, v in s.crop_counts.items())
            lines.append(f"  {s.split}: {s.images_in_text} text images, {s.images_on_disk} on disk, "
                         f"{len(s.missing_images)} missing from the image folder, {len(s.unreadable_images)} "
                         f"unreadable, {s.dict_keys} dict keys, {s.crops_checked} crops checked; {counts}")
            for label, items in (("missing images", s.missing_images), ("unreadable images", s.unreadable_images)):
                if items:
                    more = f" ... and {len(items) - shown} more" if len(items) > shown else ""
                    lines.append(f"    {label}: {', '.join(items[:shown])}{more}")
        if self.problems:
            lines.append(f"{len(self.problems)} problem(s):")
            lines += [f"  {p}" for p in self.problems[:shown * 5]]
            if len(self.problems) > shown * 5:
                lines.append(f"  ... and {len(self.problems) - shown * 5} more")
        lines += [f"error: {e}" for e in self.image_errors]
        lines.append("consistent" if self.ok else "NOT consistent")
        return "\n".join(lines)


def verify_dataset(root: Path, dataset: str, *, check_open: bool = True, strict: bool = False,
                   allow_missing_images: bool = False) -> VerifyReport:
    """Check every split of ``dataset`` under ``root``; see the module doc for what counts. ``check_open``
    decodes every tweet image and listed crop (else only their presence is checked)."""
    layout = DatasetLayout(Path(root), dataset)
    report = VerifyReport(str(root), dataset, strict=strict)
    if not layout.text_dir.is_dir():
        raise FileNotFoundError(f"{layout.text_dir}: no such dataset folder")
    for split in SPLITS:
        text_path = layout.text_path(split)
        if not text_path.is_file():
            report.problems.append(f"{text_path}: text file missing")
            continue
        try:
            tweets = read_conll(text_path, labeled=None)
        except ConllFormatError as err:
            report.problems.append(f"{text_path}: bad CoNLL: {str(err).splitlines()[0]}")
            continue
        # A split without tweets would check nothing and pass: an error of its own (exit 2).
        require_tweets(text_path, len(tweets.tweets), "split",
                       "a split without tweets is almost always a wrong or half-copied file")
        sr = SplitReport(split)
        report.splits.append(sr)
        imgids = [t.imgid for t in tweets]
        names = {f"{i}.jpg" for i in imgids}
        sr.images_in_text = len(imgids)
        for imgid in dict.fromkeys(imgids):
            path = layout.image_path(imgid)
            if path is None:
                sr.missing_images.append(imgid)
                continue
            sr.images_on_disk += 1
            if check_open:
                try:
                    load_image(path)
                except ImageLoadError as err:
                    sr.unreadable_images.append(f"{path.name}: {err.status}: {err.reason}")
        try:
            check_split_images(layout, split, imgids, allow_missing=allow_missing_images)
        except MissingImagesError as err:
            report.image_errors.append(str(err))
        dpath = layout.dict_path(split)
        aux: dict[str, list[str]] = {}
        if not dpath.is_file():
            report.problems.append(f"{dpath}: aux dict missing")
        else:
            try:
                aux = load_aux_dict(dpath)
            except BadDictError as err:
                report.problems.append(str(err))
            else:
                try:
                    check_dict_keys(dpath, aux, imgids, allow_missing=allow_missing_images)
                except MissingImagesError as err:
                    report.image_errors.append(str(err))
        sr.dict_keys = len(aux)
        crops_dir = layout.crops_dir(split)
        for key, crops in aux.items():
            if key not in names:
                report.problems.append(f"{dpath}: key {key!r} is not an image of {text_path.name}")
            stem = key[:-4] if key.endswith(".jpg") else key
            for name in crops:
                m = CROP_NAME_RE.match(name)
                if m and m.group("imgid") != stem:
                    report.problems.append(f"{dpath}: {key!r} lists {name}, a crop of another image")
                path = crops_dir / name
                if not path.is_file():
                    report.problems.append(f"{path}: listed for {key!r} in {dpath.name}, missing")
                    continue
                sr.crops_checked += 1
                if check_open:
                    try:
                        load_image(path)
                    except ImageLoadError as err:
                        report.problems.append(f"{path}: listed for {key!r}, does not open ({err.status}: "
                                               f"{err.reason})")
        counts = {"0": 0, "1": 0, "2": 0, "3+": 0}
        for name in dict.fromkeys(f"{i}.jpg" for i in imgids):
            n = len(aux.get(name, []))
            counts["3+" if n >= 3 else str(n)] += 1
        sr.crop_counts = counts
    return report
