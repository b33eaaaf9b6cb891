"""From the field's folder layout to ``Example`` lists: each tweet with its image and crop paths, images
missing on disk masked and counted.

read: CoNLL splits (``comipn_prep.conll``), the aux dicts (``torch.load(weights_only=True)``) and the image
and crop paths (``comipn_prep.layout``) -> :class:`Example` lists (batched by :mod:`comipn_model.data.batching`).

Images missing on disk are masked, never replaced, and counted: one warning per split with the counts.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from comipn_prep.conll import Tweet, read_conll
from comipn_prep.aux_dicts import load_aux_dict
from comipn_prep.layout import DatasetLayout, canonical_split, find_image, inside

log = logging.getLogger(__name__)

MAX_CROPS = 3  # the field's loaders use at most three crops per image


@dataclass
class Example:
    """One tweet and the files of its images: the global image first, then up to aux_k crops."""

    tweet: Tweet
    image_paths: list[Path | None] = field(default_factory=list)  # None: missing on disk
    # Per word, per crop (image_paths[1:]): 1 the crop holds the word's entity, 0 it does not, -1 unsupervised
    # (comipn_model.data.region_targets); None: none supervised.
    region_targets: list[list[int]] | None = None

    @property
    def words(self) -> list[str]:
        return self.tweet.tokens

    @property
    def labels(self) -> list[str] | None:
        return self.tweet.labels


@dataclass
class ImageCounts:
    """How many images and crops a split asked for and how many were missing on disk."""

    tweets: int = 0
    images_found: int = 0
    images_missing: int = 0
    crops_found: int = 0
    crops_missing: int = 0  # listed by the aux dict but not on disk

    @property
    def any_found(self) -> bool:
        return self.images_found + self.crops_found > 0


def subsample(tweets: list[Tweet], ratio: float, seed: int) -> list[Tweet]:
    """A seeded random share of the tweets (kept in file order); ratio 1.0 keeps all."""
    if not 0 < ratio <= 1:
        raise ValueError(f"sample ratio must be in (0, 1], got {ratio}")
    if ratio >= 1:
        return tweets
    keep = max(1, round(len(tweets) * ratio))
    chosen = sorted(random.Random(seed).sample(range(len(tweets)), keep))
    return [tweets[i] for i in chosen]


def load_split(layout: DatasetLayout, split: str, *, aux_k: int, with_images: bool,
               sample_ratio: float = 1.0, seed: int = 0, warn: bool = True) -> tuple[list[Example], ImageCounts]:
    """The examples of one split. ``with_images=False`` (text-only models) looks at no image file;
    ``warn=False`` leaves the warning about missing images to the caller (see :func:`warn_missing`)."""
    split = canonical_split(split)
    tweets = read_split(layout, split)
    tweets = subsample(tweets, sample_ratio, seed) if split == "train" else tweets
    return attach_images(tweets, layout, split, aux_k=aux_k, with_images=with_images, warn=warn)


def read_split(layout: DatasetLayout, split: str) -> list[Tweet]:
    """The labelled tweets of one split; an absent, empty or label-less file is an error of its own."""
    split = canonical_split(split)
    path = layout.text_path(split)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the {split} split of {layout.name!r} is not there")
    tweets = read_conll(path, labeled=None).tweets
    if not tweets:
        raise ValueError(f"{path}: the {split} split holds no tweet (an empty file)")
    if tweets[0].raw_labels is None:
        raise ValueError(f"{path}: the {split} split has no labels (one token a line); training and scoring "
                         f"need 'token<TAB>label' lines")
    return tweets


def attach_images(tweets: Sequence[Tweet], layout: DatasetLayout | None, split: str | None, *,
                  aux_k: int, with_images: bool, images_dir: Path | None = None,
                  aux: dict[str, list[str]] | None = None, crops_dir: Path | None = None,
                  warn: bool = True) -> tuple[list[Example], ImageCounts]:
    """Pair each tweet with its image and crop paths; counts what is missing and warns once."""
    counts = ImageCounts(tweets=len(tweets))
    if not with_images:
        return [Example(t, []) for t in tweets], counts
    if layout is not None and split is not None:
        images_dir = images_dir or layout.images_dir
        aux = load_aux_dict(layout.dict_path(split), missing_ok=True) if aux is None else aux
        crops_dir = crops_dir or layout.crops_dir(split)
    aux = aux or {}
    k = min(aux_k, MAX_CROPS)
    examples = []
    for tweet in tweets:
        image = find_image(images_dir, tweet.imgid) if images_dir is not None else None
        counts.images_found += image is not None
        counts.images_missing += image is None
        paths: list[Path | None] = [image]
        for name in aux.get(tweet.image_name, [])[:k]:
            crop = inside(crops_dir, name) if crops_dir is not None else None
            if crop is not None and crop.is_file():
                counts.crops_found += 1
                paths.append(crop)
            else:
                counts.crops_missing += 1
                paths.append(None)
        examples.append(Example(tweet, paths))
    if warn:
        warn_missing({split or "input": counts})
    return examples, counts


def warn_missing(counts: dict[str, ImageCounts]) -> None:
    """One warning for all the named splits: how many images and listed crops are missing (masked)."""
    missing = {name: c for name, c in counts.items() if c.images_missing or c.crops_missing}
    if not missing:
        return
    parts = [f"{name}: {c.images_missing} of {c.tweets} images, {c.crops_missing} of "
             f"{c.crops_missing + c.crops_found} listed crops" for name, c in missing.items()]
    log.warning("missing on disk, masked -- %s", "; ".join(parts))
