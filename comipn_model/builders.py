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
    return Collator(batcher, make_visual_fn(cache, model_config.num_images))
