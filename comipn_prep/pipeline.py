"""``run``: extract-nps, ground and build-dict in order, in the field's layout under one root.

NP files go to ``<root>/<dataset>_aux_images/nps/<split>.nps.jsonl``; crops and manifests to
``<root>/<dataset>_aux_images/<split-folder>/``; dicts to ``<root>/<dataset>/``. Every stage
resumes: extract-nps keeps NP files made from the same input (unless ``force``), grounding skips
images already in its manifest, and a dict identical to the one already there is left alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .aux_dicts import build_dicts
from .grounding import GroundConfig, SplitSummary, ground
from .layout import SPLITS, DatasetLayout

logger = logging.getLogger(__name__)


def nps_dir(layout: DatasetLayout) -> Path:
    return layout.aux_dir / "nps"


@dataclass
class RunResult:
    nps_dir: Path
    ground: list[SplitSummary]
    dicts: dict[str, Path]


def run_pipeline(root: Path, dataset: str, *, splits: Sequence[str] = SPLITS, config: GroundConfig | None = None,
                 np_backend: str = "auto", force: bool = False, limit: int | None = None,
                 progress: bool = True) -> RunResult:
    layout = DatasetLayout(Path(root), dataset)
    for split in splits:
        if not layout.text_path(split).is_file():
            raise FileNotFoundError(f"{layout.text_path(split)}: no such text file")
    if not layout.images_dir.is_dir():
        raise FileNotFoundError(f"{layout.images_dir}: no such image folder")
    config = config or GroundConfig()
    out = nps_dir(layout)
    from .nps import extract_nps

    logger.info("extract-nps -> %s", out)
    # extract-nps resumes by itself: a split made from the same input and settings is kept.
    extract_nps(layout.text_dir, out, backend=np_backend, splits=tuple(splits), force=force)
    summaries = ground(out, layout.images_dir, layout.aux_dir, splits, config, force=force, limit=limit,
                       progress=progress)
    dicts = build_dicts(layout.aux_dir, dataset, layout.text_dir, splits, force=force, skip_identical=True)
    return RunResult(out, summaries, dicts)
