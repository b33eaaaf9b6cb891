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
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

SPLITS = ("train", "valid", "test")
# The text files say "valid"; dicts and crop folders say "val".
SPLIT_FOLDERS = {"train": "train", "valid": "val", "test": "test"}
_SPLIT_ALIASES = {"train": "train", "valid": "valid", "val": "valid", "dev": "valid", "test": "test"}
CROP_NAME_RE = re.compile(r"^(?P<imgid>.+)_pred_yolo_crop_(?P<num>\d+)\.png$")
IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg", ".gif")


# An IMGID becomes file names: ``<imgid>.jpg``, ``<imgid>_pred_yolo_crop_<n>.png`` and, while a crop is
# written, ``.<crop name>.tmp-<pid>-<thread id>`` (up to ~35 more bytes). 180 bytes leave that temp name
# under the 255-byte limit of common file systems; the field's ids are 5 to 13 bytes.
IMGID_MAX_BYTES = 180
FILE_NAME_MAX_BYTES = 255


def file_name_problem(name: str, max_bytes: int = FILE_NAME_MAX_BYTES) -> str | None:
    """Why ``name`` is not a plain file name of one folder (None when it is): no path separator,
    not ``.`` / ``..``, no drive (``C:``), no NUL or other control character, at most ``max_bytes``
    bytes of UTF-8. Such a name joined to a folder always names a file directly inside it."""
    if not isinstance(name, str):
        return f"is a {type(name).__name__}, not a string"
    if not name:
        return "is empty"
    if name.startswith(("/", "\\")):
        return "is an absolute path"
    if "/" in name or "\\" in name:
        return "contains a path separator"
    if name in (".", ".."):
        return "is a path component, not a file name"
    if PureWindowsPath(name).drive or PureWindowsPath(name).is_absolute():
        return "names a drive"
    bad = next((c for c in name if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        return f"contains the control character {bad!r}"
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        return f"is {size} bytes long (at most {max_bytes})"
    return None


def imgid_problem(imgid: str) -> str | None:
    """Why ``imgid`` is not a plain file stem (None when it is): see :func:`file_name_problem`; also no
    leading ``.`` (a hidden file, and crops named so would pass for temp files) and at most
    :data:`IMGID_MAX_BYTES` bytes, so that its crops' names fit too."""
    why = file_name_problem(imgid, IMGID_MAX_BYTES)
    if why is None and imgid.startswith("."):
        why = "starts with '.' (a hidden file)"
    return why


def check_imgid(imgid: str, where: str) -> str:
    """``imgid`` when it is a plain file stem, else ValueError ``<where>: IMGID ... <why>``."""
    why = imgid_problem(imgid)
    if why is not None:
        raise ValueError(f"{where}: IMGID {shown(imgid)} {why}; an IMGID must be a plain file stem")
    return imgid


def aux_entry_problem(key: str, crops) -> str | None:
    """Why one aux-dict entry (``"<imgid>.jpg" -> [crop names]``) could make a path outside its folder
    (None when it cannot): the key and every crop name must be plain file names."""
    why = file_name_problem(key)
    if why is not None:
        return f"key {shown(key)} {why}"
    for name in crops:
        why = file_name_problem(name)
        if why is not None:
            return f"crop name {shown(name)} of {shown(key)} {why}"
    return None


def shown(name: str, limit: int = 60) -> str:
    """``repr(name)``, shortened for a message."""
    return repr(name) if len(name) <= limit else repr(name[:limit]) + "..."


class OutsideFolderError(ValueError):
    """A path built from a name would not stay inside its folder."""


def inside(folder: str | Path, name: str) -> Path:
    """``folder / name``, proven to stay inside ``folder``: both resolved (links followed), except the
    last component, which may be a link (a write replaces the link, never its target). Every output
    path built from a name read from a file goes through here."""
    folder = Path(folder)
    path = folder / name
    base = folder.resolve()
    last = path.name
    where = path.parent.resolve() / last
    if last in ("", ".", "..") or "\x00" in str(name) or not where.is_relative_to(base) or where == base:
        raise OutsideFolderError(f"{shown(str(name))} would name {where}, not a file inside {base}")
    return path


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
    """``<imgid>.jpg`` in ``images_dir``, else the same stem as .png / .jpeg / .gif; None if absent.
    An imgid that is not a plain file stem is refused (ValueError), never looked up."""
    check_imgid(imgid, str(images_dir))
    for suffix in IMAGE_SUFFIXES:
        candidate = Path(images_dir) / f"{imgid}{suffix}"
        if candidate.is_file():
            return candidate
    return None
