"""Whether a split's images are really there: one check for every command that reads images.

A folder of tweet images that is empty, misnamed or only partly copied used to pass silently: grounding
wrote "missing" rows, ``verify`` said consistent, and training ran text-only. Here a split whose images
are absent (none at all, or under ``min_fraction`` of its distinct image ids), or an aux dict whose keys
mostly name no image of the split (e.g. keys without ``.jpg``), raises :class:`MissingImagesError`
unless the caller allows it (``--allow-missing-images``). The field's own releases lack a few images,
so a small gap is only logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from .layout import DatasetLayout, canonical_split, find_image

logger = logging.getLogger(__name__)

ALLOW_FLAG = "--allow-missing-images"
DEFAULT_MIN_FRACTION = 0.5


class MissingImagesError(ValueError):
    """Too few of a split's images (or of a dict's keys) are usable; ``str(err)`` is the user message."""


@dataclass
class ImageCoverage:
    """How many of a split's distinct image ids have a file on disk."""

    split: str
    expected: int
    present: int
    example_present: str | None = None
    example_missing: str | None = None

    @property
    def missing(self) -> int:
        return self.expected - self.present

    @property
    def fraction(self) -> float:
        return self.present / self.expected if self.expected else 1.0


def _split_label(split: str) -> str:
    """A split's canonical name; any other label (an input file's name, for predict) as it is."""
    try:
        return canonical_split(split)
    except ValueError:
        return split


def _example(name: str | None) -> str:
    return name if name is not None else "none"


def image_coverage(images_dir: Path, split: str, image_ids: Sequence[str]) -> ImageCoverage:
    """Count, without judging, the distinct ``image_ids`` that have a file in ``images_dir``."""
    images_dir = Path(images_dir)
    ids = list(dict.fromkeys(image_ids))
    cov = ImageCoverage(_split_label(split), len(ids), 0)
    if not images_dir.is_dir():
        cov.example_missing = f"{ids[0]}.jpg" if ids else None
        return cov
    for imgid in ids:
        path = find_image(images_dir, imgid)
        if path is not None:
            cov.present += 1
            if cov.example_present is None:
                cov.example_present = path.name
        elif cov.example_missing is None:
            cov.example_missing = f"{imgid}.jpg"
    return cov


def check_images(images_dir: Path, split: str, image_ids: Sequence[str], *, dataset: str | None = None,
                 allow_missing: bool = False, min_fraction: float = DEFAULT_MIN_FRACTION) -> ImageCoverage:
    """The coverage of ``split``'s images in ``images_dir``; raises :class:`MissingImagesError` when none
    is on disk or fewer than ``min_fraction`` are, unless ``allow_missing`` (then it logs a warning)."""
    images_dir = Path(images_dir)
    cov = image_coverage(images_dir, split, image_ids)
    label = f"{dataset} {cov.split}" if dataset else cov.split
    if cov.expected == 0 or (cov.present > 0 and cov.fraction >= min_fraction):
        if cov.missing:
            logger.info("%s: %d of %d images missing from %s (masked)", label, cov.missing, cov.expected,
                        images_dir)
        return cov
    where = images_dir if images_dir.is_dir() else f"{images_dir} (no such folder)"
    message = (f"{label}: only {cov.present} of {cov.expected} tweet images are on disk in {where}, under the "
               f"{min_fraction:.0%} needed (present e.g. {_example(cov.example_present)}, missing e.g. "
               f"{_example(cov.example_missing)}). Put the images there, or pass {ALLOW_FLAG} to go on with "
               f"the missing ones masked.")
    _refuse_unless_allowed(message, allow_missing)
    return cov


def check_split_images(layout: DatasetLayout, split: str, image_ids: Sequence[str], *,
                       allow_missing: bool = False,
                       min_fraction: float = DEFAULT_MIN_FRACTION) -> ImageCoverage:
    """:func:`check_images` on ``layout.images_dir`` (the field's ``<root>/<name>_images``)."""
    return check_images(layout.images_dir, split, image_ids, dataset=layout.name, allow_missing=allow_missing,
                        min_fraction=min_fraction)


def check_dict_keys(dict_path: Path, aux: Mapping[str, list[str]], image_ids: Sequence[str], *,
                    allow_missing: bool = False, min_fraction: float = DEFAULT_MIN_FRACTION) -> None:
    """Raise :class:`MissingImagesError` when fewer than ``min_fraction`` of the aux dict's keys are image
    names of the split (``"<imgid>.jpg"`` for ``image_ids``): such a dict gives (almost) no crops.

    A dict with no key at all for a split that has tweets counts as matching none."""
    names = {f"{i}.jpg" for i in image_ids}
    if not names:
        return
    keys = list(aux)
    matched = [k for k in keys if k in names]
    if keys and len(matched) / len(keys) >= min_fraction:
        return
    unmatched = next((k for k in keys if k not in names), None)
    example_name = next(iter(dict.fromkeys(f"{i}.jpg" for i in image_ids)))
    message = (f"{dict_path}: only {len(matched)} of {len(keys)} keys name an image of the split "
               f"({len(names)} images), under the {min_fraction:.0%} needed (key e.g. {_example(unmatched)!s}, "
               f"image name e.g. {example_name}); keys must be '<imgid>.jpg'. Rebuild the dict, or pass "
               f"{ALLOW_FLAG} to go on without its crops.")
    _refuse_unless_allowed(message, allow_missing)


def _refuse_unless_allowed(message: str, allow_missing: bool) -> None:
    """Raise :class:`MissingImagesError`; with ``allow_missing`` only log the message and go on."""
    if not allow_missing:
        raise MissingImagesError(message)
    logger.warning("%s (going on: %s)", message, ALLOW_FLAG)
