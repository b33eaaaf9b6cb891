"""``run``: extract-nps, ground and build-dict in order, in the field's layout.

Reads ``<root>/<dataset>/<split>.txt`` and ``<root>/<dataset>_images/``; writes under ``out`` (``root``
unless told otherwise): NP files to ``<out>/<dataset>_aux_images/nps/<split>.nps.jsonl``, crops and
manifests to ``<out>/<dataset>_aux_images/<split-folder>/``, dicts to ``<out>/<dataset>/``. An ``out``
other than ``root`` also gets links to the text files and the image folder, so it is a whole dataset
root that ``comipn-train --data-root`` and ``verify`` read as it is.

Every check runs before the first write (:func:`plan_run`): text readable, images present
(:mod:`comipn_prep.image_coverage`), nothing comipn did not write in the way
(:mod:`comipn_prep.output_guard`), NP files and dicts replaceable, weights loadable, device present.
A refused run writes nothing. Every stage resumes: extract-nps keeps NP files made from the same input
(unless ``force``), grounding skips images already in its manifest (but tries an ``unreadable`` one
again), and a dict identical to the one already there is left alone. A split without tweets is refused.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .aux_dicts import build_dicts, load_existing_dict, split_dict
from .conll import read_conll, require_tweets
from .folder_lock import holding, lock_name
from comipn_prep.grounding.driver import GroundConfig, Grounder, SplitSummary, ground
from comipn_prep.grounding.shards import Shard
from comipn_prep.grounding.nps_input import read_ground_items
from .grounding.manifest import RECHECKED, read_split_manifests
from .image_coverage import ImageCoverage, check_split_images
from .layout import SPLIT_FOLDERS, SPLITS, DatasetLayout, canonical_split
from .output_guard import check_crop_folders, check_dict_targets, claim_crop_folders

logger = logging.getLogger(__name__)

WAY_OUT = "--out DIR (a folder of its own)"
EMPTY_SPLIT_HINT = "a split without tweets is almost always a wrong or half-copied file; leave it out with --split"


def nps_dir(layout: DatasetLayout) -> Path:
    return layout.aux_dir / "nps"


@dataclass
class RunResult:
    nps_dir: Path
    ground: list[SplitSummary]
    dicts: dict[str, Path]
    coverage: dict[str, ImageCoverage] = field(default_factory=dict)


@dataclass
class RunPlan:
    """What a run reads and writes, established by read-only checks."""

    source: DatasetLayout
    target: DatasetLayout
    splits: list[str]
    coverage: dict[str, ImageCoverage]
    links: list[tuple[Path, Path]]  # (link in target, what it points to in source)


def plan_run(root: Path, dataset: str, *, out: Path | None = None, splits: Sequence[str] = SPLITS,
             np_backend: str = "auto", force: bool = False, replace_foreign: bool = False,
             allow_missing_images: bool = False) -> RunPlan:
    """Every check of a run that needs no model, without writing anything; raises on the first problem."""
    source = DatasetLayout(Path(root), dataset)
    target = DatasetLayout(Path(out) if out is not None else Path(root), dataset)
    splits = [canonical_split(s) for s in splits]
    for split in splits:
        if not source.text_path(split).is_file():
            raise FileNotFoundError(f"{source.text_path(split)}: no such text file")
    if not source.images_dir.is_dir():
        raise FileNotFoundError(f"{source.images_dir}: no such image folder (the tweets' images go there; "
                                f"see docs/data.md)")
    ids = {s: [t.imgid for t in read_conll(source.text_path(s), labeled=None)] for s in splits}
    for s in splits:
        require_tweets(source.text_path(s), len(ids[s]), "split", EMPTY_SPLIT_HINT)
    coverage = {s: check_split_images(source, s, ids[s], allow_missing=allow_missing_images) for s in splits}
    links = _plan_links(source, target)
    _check_nps(source, target, splits, np_backend, force)
    split_dirs = [target.aux_dir / target.split_folder(s) for s in splits]
    check_crop_folders(split_dirs, replace_foreign=replace_foreign, way_out=WAY_OUT)
    unchanged = [] if force else [target.dict_path(s) for s in splits
                                if _dict_unchanged(target, s, ids[s], source.images_dir)]
    check_dict_targets([target.dict_path(s) for s in splits], force=force, replace_foreign=replace_foreign,
                       way_out=WAY_OUT, unchanged=unchanged)
    return RunPlan(source, target, splits, coverage, links)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _plan_links(source: DatasetLayout, target: DatasetLayout) -> list[tuple[Path, Path]]:
    """The text files and image folder ``target`` needs to be a whole dataset root; refuses when one is
    there already and is something else."""
    if _same(source.root, target.root) or source.root.resolve() == target.root.resolve():
        return []
    wanted = [(target.text_path(s), source.text_path(s)) for s in SPLITS if source.text_path(s).is_file()]
    wanted.append((target.images_dir, source.images_dir))
    links = []
    for link, dest in wanted:
        if link.exists() or link.is_symlink():
            if not _same(link, dest):
                raise FileExistsError(f"{link} exists and is not {dest}; give --out a folder of its own")
            continue
        links.append((link, dest))
    return links


def _check_nps(source: DatasetLayout, target: DatasetLayout, splits: Sequence[str], np_backend: str,
               force: bool) -> None:
    """The refusal extract-nps itself would raise midway, raised before any split is written."""
    import hashlib
    import json

    from comipn_prep.nps.extract import nps_path
    from .nps.extract import RULES_VERSION, SUMMARY_NAME, get_backend

    out = nps_dir(target)
    if force or not any(nps_path(out, s).exists() for s in splits):
        return
    backend = get_backend(np_backend)  # loads and caches it; extract-nps reuses it
    try:
        previous = json.loads((out / SUMMARY_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = {}
    same_maker = (previous.get("backend") == backend.name and previous.get("backend_version") == backend.version
                  and previous.get("rules_version") == RULES_VERSION)
    for split in splits:
        path = nps_path(out, split)
        if not path.exists():
            continue
        old = previous.get("splits", {}).get(split, {}) if same_maker else {}
        sha = hashlib.sha256(source.text_path(split).read_bytes()).hexdigest()
        if old.get("input_sha256") != sha:
            raise FileExistsError(f"{path} exists (made from other input or settings); nothing was written: "
                                  f"pass --force to redo it")


def _dict_unchanged(target: DatasetLayout, split: str, imgids: Sequence[str], images_dir: Path) -> bool:
    """True when the split's dict is there and a run would rebuild it byte for byte: every image is
    in the manifests already and the dict equals what they give."""
    path = target.dict_path(split)
    split_dir = target.aux_dir / target.split_folder(split)
    if not path.is_file() or not split_dir.is_dir():
        return False
    manifests = read_split_manifests(split_dir)
    if set(imgids) - set(manifests["imgid"]):
        return False  # images left to ground: the dict would grow
    # An image once unreadable is tried again (RECHECKED): the dict changes only if it now opens.
    retried = set(manifests["imgid"][manifests["status"].isin(RECHECKED)]) & set(imgids)
    return not any(_opens(images_dir, i) for i in retried) and load_existing_dict(path) == split_dict(split_dir)


def _opens(images_dir: Path, imgid: str) -> bool:
    from .images import ImageLoadError, load_image
    from .layout import find_image

    path = find_image(images_dir, imgid)
    try:
        return path is not None and load_image(path) is not None
    except ImageLoadError:
        return False


def _make_links(links: Sequence[tuple[Path, Path]]) -> None:
    for link, dest in links:
        link.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.symlink(dest.resolve(), link, target_is_directory=dest.is_dir())
        except OSError as err:  # e.g. a file system without symlinks: copy the text, point at the images
            if dest.is_file():
                shutil.copyfile(dest, link)
            else:
                logger.warning("could not link %s -> %s (%s); training needs the images there", link, dest, err)


def _run_locks(a: dict) -> list:
    """``run`` holds the folders it fills: the dicts' text folder, the aux folder (as ``ground`` without
    ``--shard`` does) and the NP folder (as ``extract-nps`` does)."""
    target = DatasetLayout(Path(a["out"]) if a["out"] is not None else Path(a["root"]), a["dataset"])
    return [(target.text_dir, lock_name(), "dict folder"), (target.aux_dir, lock_name(), "aux folder"),
            (nps_dir(target), lock_name(), "noun-phrase folder")]


@holding(_run_locks)
def run_pipeline(root: Path, dataset: str, *, out: Path | None = None, splits: Sequence[str] = SPLITS,
                 config: GroundConfig | None = None, np_backend: str = "auto", force: bool = False,
                 limit: int | None = None, progress: bool = True, replace_foreign: bool = False,
                 allow_missing_images: bool = False) -> RunResult:
    """Check everything (:func:`plan_run`, then load the models), then extract, ground and build dicts."""
    plan = plan_run(root, dataset, out=out, splits=splits, np_backend=np_backend, force=force,
                    replace_foreign=replace_foreign, allow_missing_images=allow_missing_images)
    config = config or GroundConfig()
    grounder = Grounder.from_config(config)  # weights loadable, device present: still nothing written
    source, target = plan.source, plan.target
    _make_links(plan.links)
    claim_crop_folders(target.aux_dir / target.split_folder(s) for s in plan.splits)
    from comipn_prep.nps.extract import extract_nps

    npdir = nps_dir(target)
    logger.info("extract-nps -> %s", npdir)
    extract_nps(source.text_dir, npdir, backend=np_backend, splits=tuple(plan.splits), force=force)
    summaries = ground(npdir, source.images_dir, target.aux_dir, plan.splits, config, force=force, limit=limit,
                       progress=progress, grounder=grounder)
    dicts = build_dicts(target.aux_dir, dataset, target.text_dir, plan.splits, force=force, skip_identical=True,
                        replace_foreign=replace_foreign, way_out=WAY_OUT)
    return RunResult(npdir, summaries, dicts, plan.coverage)


def _ground_locks(a: dict) -> list:
    shard = a["shard"] or Shard(0, 1)
    what = "aux folder" if shard.whole else f"aux folder (shard {shard.index}/{shard.count})"
    return [(Path(a["out_dir"]), lock_name(shard.index, shard.count), what)]


@holding(_ground_locks)
def ground_checked(nps_dir: Path, images_dir: Path, out_dir: Path, splits: Sequence[str], config: GroundConfig,
                   *, shard: Shard | None = None, force: bool = False, limit: int | None = None, progress: bool = True,
                   replace_foreign: bool = False, allow_missing_images: bool = False) -> list[SplitSummary]:
    """The ``ground`` command with its checks first: NP files readable, images present, no foreign crops
    under ``out_dir``, models loadable; only then the first crop is written."""
    from .image_coverage import check_images
    from .nps.extract import nps_path

    images_dir, out_dir = Path(images_dir), Path(out_dir)
    splits = [canonical_split(s) for s in splits]
    if not images_dir.is_dir():
        raise FileNotFoundError(f"{images_dir}: no such image folder")
    for split in splits:
        items = read_ground_items(nps_path(nps_dir, split))
        require_tweets(nps_path(nps_dir, split), len(items), "noun-phrase file", EMPTY_SPLIT_HINT)
        check_images(images_dir, split, [it.imgid for it in items], allow_missing=allow_missing_images)
    split_dirs = [out_dir / SPLIT_FOLDERS[s] for s in splits]
    check_crop_folders(split_dirs, replace_foreign=replace_foreign, way_out="another --out AUX_DIR")
    grounder = Grounder.from_config(config)
    claim_crop_folders(split_dirs)
    return ground(nps_dir, images_dir, out_dir, splits, config, shard=shard or Shard(0, 1), force=force,
                  limit=limit, progress=progress, grounder=grounder)
