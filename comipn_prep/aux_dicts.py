"""``build-dict``: the per-split aux dicts the field's loaders read, from the grounding manifests.

A dict maps ``"<imgid>.jpg"`` to its crop file names, best (rank 0) first; an image grounded without
crops maps to ``[]``; images that were missing or unreadable are absent. Written with ``torch.save``
(plain dict of lists of str, so ``torch.load(path, weights_only=True)`` reads it) plus a ``.json`` twin.
:func:`load_aux_dict` is the one reader of such dicts (ours or released ones), for verify, training and
predict alike.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Sequence

import torch

from .conll import atomic_write_bytes
from .folder_lock import holding, lock_name
from .grounding.manifest import manifest_paths, read_split_manifests
from .layout import CROP_NAME_RE, SPLIT_FOLDERS, aux_entry_problem, canonical_split, inside
from .output_guard import check_dict_targets

logger = logging.getLogger(__name__)


def dict_path(out_dir: Path, dataset: str, split: str) -> Path:
    return inside(out_dir, f"{dataset}_{SPLIT_FOLDERS[canonical_split(split)]}_dict.pth")


def split_dict(split_dir: Path) -> dict[str, list[str]]:
    """The aux dict of one split folder (``<aux>/<train|val|test>``): from its manifests (shards
    merged), or, when it has none, from the crop files' names."""
    split_dir = Path(split_dir)
    crops_dir = split_dir / "crops"
    if manifest_paths(split_dir):
        df = read_split_manifests(split_dir)
        result: dict[str, list[str]] = {}
        duplicates = 0
        for imgid, rows in df.groupby("imgid", sort=False):
            statuses = set(rows["status"])
            if not statuses & {"ok", "no_boxes"}:
                continue  # missing / unreadable / too_large: no entry, as for an absent image
            crops = rows[rows["crop_file"] != ""].sort_values("rank", kind="stable")
            # A manifest may list a crop twice (e.g. two runs appended to it): the dict lists it once,
            # at its first (best) rank.
            unique = list(dict.fromkeys(crops["crop_file"]))
            duplicates += len(crops) - len(unique)
            names = []
            for name in unique:
                if inside(crops_dir, name).is_file():
                    names.append(name)
                else:
                    logger.warning("%s: manifest lists %s but the crop file is missing; left out",
                                   split_dir, name)
            result[f"{imgid}.jpg"] = names
        if duplicates:
            logger.warning("%s: the manifests list %d crop rows more than once; each crop is listed once",
                           split_dir, duplicates)
        return result
    found: dict[str, list[tuple[int, str]]] = {}
    if crops_dir.is_dir():
        for path in sorted(crops_dir.iterdir()):
            m = CROP_NAME_RE.match(path.name)
            if m:
                found.setdefault(m.group("imgid"), []).append((int(m.group("num")), path.name))
    return {f"{imgid}.jpg": [name for _, name in sorted(v)] for imgid, v in found.items()}


def dict_bytes(d: dict[str, list[str]]) -> bytes:
    buf = io.BytesIO()
    torch.save(d, buf)
    return buf.getvalue()


@holding(lambda a: [(Path(a["out_dir"]), lock_name(), "dict folder")])
def build_dicts(aux_dir: Path, dataset: str, out_dir: Path, splits: Sequence[str], force: bool = False,
                skip_identical: bool = False, replace_foreign: bool = False,
                way_out: str = "another --out") -> dict[str, Path]:
    """Write ``<out>/<dataset>_<split>_dict.pth`` (+ ``.json``) for each split.

    Refuses (before writing anything) to replace a dict comipn did not write, such as a released one,
    unless ``replace_foreign``, and one of its own unless ``force`` (see :mod:`comipn_prep.output_guard`);
    with ``skip_identical`` an existing dict equal to the new one is left as it is (a rerun is a no-op).
    """
    aux_dir = Path(aux_dir)
    if not aux_dir.is_dir():
        raise FileNotFoundError(f"{aux_dir}: no such aux folder (run comipn-prep ground first)")
    built: dict[str, dict[str, list[str]]] = {}
    for split in splits:
        split_dir = aux_dir / SPLIT_FOLDERS[canonical_split(split)]
        if not split_dir.is_dir():
            raise FileNotFoundError(f"{split_dir}: no grounding output for split {split}")
        built[split] = split_dict(split_dir)
    targets = {s: dict_path(out_dir, dataset, s) for s in splits}
    unchanged = set()
    if skip_identical:
        for s, p in targets.items():
            if p.is_file() and load_existing_dict(p) == built[s]:
                unchanged.add(s)
    check_dict_targets(targets.values(), force=force, replace_foreign=replace_foreign, way_out=way_out,
                       unchanged=[targets[s] for s in unchanged])
    for split, path in targets.items():
        if split in unchanged:
            logger.info("%s unchanged (%d images)", path, len(built[split]))
            continue
        atomic_write_bytes(path, dict_bytes(built[split]))
        atomic_write_bytes(path.with_suffix(".json"),
                           (json.dumps(built[split], indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
        n_crops = sum(len(v) for v in built[split].values())
        logger.info("wrote %s: %d images, %d crops", path, len(built[split]), n_crops)
    return targets


class BadDictError(ValueError):
    """A ``.pth`` that is not a plain dict of lists of plain file names."""


def load_aux_dict(path: Path, *, missing_ok: bool = False) -> dict[str, list[str]]:
    """Read an aux dict (``{"<imgid>.jpg": ["<imgid>_pred_yolo_crop_0.png", ...]}``) safely: with
    ``torch.load(weights_only=True)`` (a pickle of anything else is refused, never run), then checked to
    be a dict of lists of strings whose keys and crop names are plain file names (they are joined to
    folders). Raises :class:`BadDictError` naming the file; a missing file gives ``{}`` when
    ``missing_ok`` (a split prepared without crops), else FileNotFoundError."""
    path = Path(path)
    if not path.is_file():
        if missing_ok:
            return {}
        raise FileNotFoundError(f"{path}: no such aux dict")
    try:
        obj = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001 - pickles of arbitrary objects are refused here
        raise BadDictError(f"{path}: not loadable with torch.load(weights_only=True) "
                           f"(only a plain dict of lists of strings is accepted): {err}") from None
    if not isinstance(obj, dict):
        raise BadDictError(f"{path}: holds a {type(obj).__name__}, expected a dict of lists of strings")
    for key, value in obj.items():
        if not isinstance(key, str):
            raise BadDictError(f"{path}: key {key!r} is a {type(key).__name__}, expected a string")
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise BadDictError(f"{path}: value of {key!r} is not a list of strings: {value!r:.80}")
        if (why := aux_entry_problem(key, value)) is not None:  # names joined to the crop folder
            raise BadDictError(f"{path}: {why}; keys and crop names must be plain file names")
    return {k: list(v) for k, v in obj.items()}


def load_existing_dict(path: Path):
    """The dict at ``path``, or None when it does not load."""
    try:
        return torch.load(path, weights_only=True)
    except Exception:  # noqa: BLE001 - an unreadable old dict is simply "different"
        return None
