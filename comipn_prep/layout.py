"""The folder layout the field's loaders (HVPNeT / Co-MIPN) read.

```
<root>/<name>/{train,valid,test}.txt                   CoNLL text
<root>/<name>/<name>_{train,val,test}_dict.pth         aux dicts (the dev split is "val" here)
<root>/<name>_images/<imgid>.jpg                       the tweets' images
<root>/<name>_aux_images/{train,val,test}/crops/<imgid>_pred_yolo_crop_<num>.png
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "valid", "test")
# The text files say "valid"; dicts and crop folders say "val".
SPLIT_FOLDERS = {"train": "train", "valid": "val", "test": "test"}
_SPLIT_ALIASES = {"train": "train", "valid": "valid", "val": "valid", "dev": "valid", "test": "test"}
CROP_NAME_RE = re.compile(r"^(?P<imgid>.+)_pred_yolo_crop_(?P<num>\d+)\.png$")
IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg", ".gif")


def canonical_split(name: str) -> str:
    """``train`` / ``valid`` / ``test`` from any name the field uses (``val`` and ``dev`` included)."""
    try:
        return _SPLIT_ALIASES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown split {name!r}: use train, valid (or val) or test") from None


def expand_splits(name: str) -> list[str]:
    """``all`` -> every split, else the one split named."""
    return list(SPLITS) if name.lower() == "all" else [canonical_split(name)]


def crop_name(imgid: str, num: int) -> str:
    return f"{imgid}_pred_yolo_crop_{num}.png"


@dataclass(frozen=True)
class DatasetLayout:
    """Where each file of dataset ``name`` lives under ``root``."""

    root: Path
    name: str

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def text_dir(self) -> Path:
        return self.root / self.name

    @property
    def images_dir(self) -> Path:
        return self.root / f"{self.name}_images"

    @property
    def aux_dir(self) -> Path:
        return self.root / f"{self.name}_aux_images"

    def text_path(self, split: str) -> Path:
        return self.text_dir / f"{canonical_split(split)}.txt"

    def split_folder(self, split: str) -> str:
        return SPLIT_FOLDERS[canonical_split(split)]

    def dict_path(self, split: str) -> Path:
        return self.text_dir / f"{self.name}_{self.split_folder(split)}_dict.pth"

    def crops_dir(self, split: str) -> Path:
        return self.aux_dir / self.split_folder(split) / "crops"

    def image_path(self, imgid: str) -> Path | None:
        """The tweet's image: ``<imgid>.jpg``, else the same stem as .png / .jpeg / .gif; None if absent."""
        return find_image(self.images_dir, imgid)


def find_image(images_dir: Path, imgid: str) -> Path | None:
    """``<imgid>.jpg`` in ``images_dir``, else the same stem as .png / .jpeg / .gif; None if absent."""
    for suffix in IMAGE_SUFFIXES:
        candidate = Path(images_dir) / f"{imgid}{suffix}"
        if candidate.is_file():
            return candidate
    return None
