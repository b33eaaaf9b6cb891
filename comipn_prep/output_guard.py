"""What comipn may overwrite: its own output, never the field's released crops and dicts.

Every user of the field already has HVPNeT's released ``<name>_aux_images/*/crops`` and
``<name>_*_dict.pth`` on disk, in the very folders comipn writes to. These read-only checks run before
the first write of ``run``, ``ground`` and ``build-dict``:

- a crop folder holding files that no comipn manifest lists is *foreign*: refused, even with
  ``--force``, unless ``--replace-foreign`` is given;
- a dict without comipn's ``.json`` twin (holding the same dict) is foreign in the same way;
- comipn's own dicts are replaced only with ``--force`` (and left alone when nothing would change).

A crop folder comipn writes to gets a small marker (:data:`OWNER_MARKER`), so crops of a batch that a
kill cut off before its manifest rows were written are known as comipn's own on the next run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterable

import torch

from .conll import atomic_write_bytes
from .grounding.manifest import manifest_paths, read_split_manifests
from .layout import CROP_NAME_RE

logger = logging.getLogger(__name__)

REPLACE_FLAG = "--replace-foreign"
OWNER_MARKER = "comipn-owner.json"


class ForeignFilesError(FileExistsError):
    """Files comipn did not write stand where it would write; ``str(err)`` is the one-line message."""


def _visible_files(folder: Path) -> list[Path]:
    # Names starting with "." are temp files of an interrupted atomic write (or OS litter), never crops.
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def foreign_crops(split_dir: Path) -> list[Path]:
    """Files in ``split_dir/crops`` that comipn did not write.

    Listed in a manifest of ``split_dir`` -> comipn's. In a folder with comipn's marker, an unlisted crop
    written after the marker, of an image that has no manifest row yet, is left over from a killed batch
    -> comipn's, and regrounding rewrites it. Everything else is foreign (files older than the marker
    too: released crops that ``--replace-foreign`` left in place stay foreign)."""
    split_dir = Path(split_dir)
    files = _visible_files(split_dir / "crops")
    if not files:
        return []
    marker = split_dir / OWNER_MARKER
    since = marker.stat().st_mtime_ns if marker.is_file() else None
    listed: set[str] = set()
    done: set[str] = set()
    if since is not None or manifest_paths(split_dir):
        df = read_split_manifests(split_dir)
        listed = {name for name in df["crop_file"] if name}
        done = set(df["imgid"])
    foreign = []
    for path in files:
        if path.name in listed:
            continue
        m = CROP_NAME_RE.match(path.name)
        if since is not None and m and m.group("imgid") not in done and path.stat().st_mtime_ns >= since:
            continue
        foreign.append(path)
    return foreign


def check_crop_folders(split_dirs: Iterable[Path], *, replace_foreign: bool, way_out: str) -> None:
    """Raise :class:`ForeignFilesError` naming the first crop folder with foreign files, unless
    ``replace_foreign``. ``way_out`` names the option that writes elsewhere (``--out DIR``, ...)."""
    for split_dir in split_dirs:
        foreign = foreign_crops(split_dir)
        if not foreign:
            continue
        crops = Path(split_dir) / "crops"
        if replace_foreign:
            logger.warning("%s: %d files comipn did not write; crops of the images grounded now replace "
                           "theirs (%s)", crops, len(foreign), REPLACE_FLAG)
            continue
        raise ForeignFilesError(
            f"{crops} holds {len(foreign)} files no comipn manifest lists (e.g. {foreign[0].name}), such as "
            f"released crops; nothing was written: write elsewhere with {way_out}, or pass {REPLACE_FLAG} "
            f"to replace them")


def claim_crop_folders(split_dirs: Iterable[Path]) -> None:
    """Mark crop folders as comipn's (after every check passed, just before grounding writes)."""
    for split_dir in split_dirs:
        marker = Path(split_dir) / OWNER_MARKER
        if not marker.is_file():
            atomic_write_bytes(marker, b'{"written_by": "comipn-prep ground"}\n')


def is_comipn_dict(path: Path) -> bool:
    """A dict comipn wrote: its ``.json`` twin exists and holds the same dict."""
    path = Path(path)
    twin = path.with_suffix(".json")
    if not path.is_file() or not twin.is_file():
        return False
    try:
        return json.loads(twin.read_text(encoding="utf-8")) == torch.load(path, weights_only=True,
                                                                          map_location="cpu")
    except Exception:  # noqa: BLE001 - anything unreadable is not provably ours
        return False


def check_dict_targets(targets: Iterable[Path], *, force: bool, replace_foreign: bool, way_out: str,
                       unchanged: Iterable[Path] = ()) -> None:
    """Refuse, before any write, to replace a dict comipn did not write (unless ``replace_foreign``) or
    one of its own (unless ``force``); ``unchanged`` are targets the new dict would equal (no write)."""
    keep = {Path(p) for p in unchanged}
    for path in map(Path, targets):
        twin = path.with_suffix(".json")
        if path in keep or not (path.exists() or twin.exists()):
            continue
        if not is_comipn_dict(path):
            if replace_foreign:
                logger.warning("%s: a dict comipn did not write; replaced (%s)", path, REPLACE_FLAG)
                continue
            raise ForeignFilesError(f"{path}: an aux dict comipn did not write (no matching .json twin), such "
                                    f"as a released one; nothing was written: write elsewhere with {way_out}, "
                                    f"or pass {REPLACE_FLAG} to replace it")
        if not force:
            raise FileExistsError(f"{path} already exists and would change; nothing was written: pass --force "
                                  f"to replace it")
