"""What a run needs besides the network: the batch maker (with the vision tower, the matching tower when
one is set, and their feature cache) and the feature standardisation fitted on the training images."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import torch

from comipn_prep.logs import progress_enabled

from comipn_model.data.batch import WordBatcher
from comipn_model.network.config import CoMIPNConfig
from comipn_model.network.matching_tower import MatchingFeatures, MatchingTower
from comipn_model.network.vision import FeatureCache, VisionTower, default_feature_cache
from comipn_model.data.batching import Collator, make_visual_fn
from comipn_model.data.examples import Example, ImageCounts

log = logging.getLogger(__name__)


def make_collator(model, model_config: CoMIPNConfig, example_sets: Sequence[Sequence[Example]],
                  counts: Sequence[ImageCounts], feature_cache: str | None, device: torch.device) -> Collator:
    """The batch maker; builds the (frozen) vision tower, and the matching tower when dynamic matching reads
    one, only when some image is on disk. Both share one cache folder, each under keys of its own."""
    batcher = WordBatcher(model.tokenizer, model_config.labels, model_config.max_seq)
    if not model_config.uses_images or not any(c.any_found for c in counts):
        if model_config.uses_images:
            log.warning("no image or crop of this dataset is on disk: every image is masked")
        return Collator(batcher, None)
    tower = VisionTower(model_config.clip_model, model_config.clip_pretrained, device=str(device))
    folder = Path(feature_cache) if feature_cache else default_feature_cache()
    cache = FeatureCache(folder, tower, progress=progress_enabled())
    if model_config.tower_matching:
        matching = MatchingTower(model_config.matching_tower, device=str(device))
        log.info("dynamic matching reads the patches of %s (%s)", model_config.matching_tower, matching.identity)
        cache = MatchingFeatures(cache, FeatureCache(folder, matching, progress=progress_enabled()))
    return Collator(batcher, make_visual_fn(cache, model_config.num_images), feature_cache=cache)


def _training_images(model, examples: Sequence[Example]) -> list:
    """The distinct images (and crops) the model reads of ``examples``, in a fixed order."""
    return list(dict.fromkeys(p for ex in examples for p in ex.image_paths[:model.config.num_images]
                              if p is not None))


def fill_feature_share(model, collate: Collator, examples: Sequence[Example], rank: int, world_size: int) -> int:
    """Under torchrun, before :func:`fit_visual_norm` (which reads every training image on every process):
    this process computes every ``world_size``-th training image, from the ``rank``-th (cached ones are
    only read), into the shared cache, so that the processes fill it together, each image once; the
    caller then waits at a barrier. Returns how many this process read."""
    if getattr(model, "visual_norm", None) is None or collate.feature_cache is None or world_size <= 1:
        return 0
    mine = _training_images(model, examples)[rank::world_size]
    for start in range(0, len(mine), 256):
        collate.feature_cache.get_many(mine[start:start + 256])
    log.info("process %d of %d: features of %d training images filled into the cache", rank, world_size, len(mine))
    return len(mine)


def fit_visual_norm(model, collate: Collator, examples: Sequence[Example]) -> int:
    """Fit the model's feature standardisation on the distinct images (and crops) the model reads of
    ``examples`` (the training split); returns how many were read (0: nothing to fit, left as is)."""
    norm = getattr(model, "visual_norm", None)
    if norm is None or collate.feature_cache is None:
        return 0
    paths = _training_images(model, examples)
    cache = collate.feature_cache

    def features():  # in chunks: a whole training split's features would not fit in memory
        for start in range(0, len(paths), 256):
            yield from cache.get_many(paths[start:start + 256])

    seen = norm.fit(features())
    log.info("vision features standardised with the statistics of %d training images", seen)
    return seen
