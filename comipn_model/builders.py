"""The network and the batch maker of a run (shared by training, test scoring and tagging)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import torch

from comipn_prep.logs import progress_enabled, quiet_transformers

from .batch import WordBatcher
from .config import CoMIPNConfig
from .data import Collator, Example, ImageCounts, make_visual_fn

log = logging.getLogger(__name__)


def build_model(model_config: CoMIPNConfig, device: torch.device, weights: str | None = None):
    """The network on ``device``. ``weights``: where its weights will come from (a checkpoint), said in
    the log instead of "random weights"."""
    from .model import CoMIPN
    from .text_encoder import load_text_encoder

    with quiet_transformers():
        encoder, tokenizer = load_text_encoder(model_config.text_model, model_config.random_init, weights=weights)
        model = CoMIPN(model_config, encoder=encoder, tokenizer=tokenizer)
    return model.to(device)


def default_feature_cache() -> Path:
    return Path(os.environ.get("COMIPN_FEATURE_CACHE", Path.home() / ".cache" / "comipn" / "features"))


def make_collator(model, model_config: CoMIPNConfig, example_sets: Sequence[Sequence[Example]],
                  counts: Sequence[ImageCounts], feature_cache: str | None, device: torch.device) -> Collator:
    """The batch maker; builds the (frozen) vision tower only when some image is on disk."""
    batcher = WordBatcher(model.tokenizer, model_config.labels, model_config.max_seq)
    if not model_config.uses_images or not any(c.any_found for c in counts):
        if model_config.uses_images:
            log.warning("no image or crop of this dataset is on disk: every image is masked")
        return Collator(batcher, None)
    from .vision import FeatureCache, VisionTower

    tower = VisionTower(model_config.clip_model, model_config.clip_pretrained, device=str(device))
    cache = FeatureCache(Path(feature_cache) if feature_cache else default_feature_cache(), tower,
                         progress=progress_enabled())
    return Collator(batcher, make_visual_fn(cache, model_config.num_images), feature_cache=cache)


def fit_visual_norm(model, collate: Collator, examples: Sequence[Example]) -> int:
    """Fit the model's feature standardisation on the distinct images (and crops) the model reads of
    ``examples`` (the training split); returns how many were read (0: nothing to fit, left as is)."""
    norm = getattr(model, "visual_norm", None)
    if norm is None or collate.feature_cache is None:
        return 0
    paths = list(dict.fromkeys(p for ex in examples for p in ex.image_paths[:model.config.num_images]
                               if p is not None))
    cache = collate.feature_cache

    def features():  # in chunks: a whole training split's features would not fit in memory
        for start in range(0, len(paths), 256):
            yield from cache.get_many(paths[start:start + 256])

    seen = norm.fit(features())
    log.info("vision features standardised with the statistics of %d training images", seen)
    return seen
