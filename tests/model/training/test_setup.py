"""comipn_model.training.setup: the batch maker builds the vision tower only when a model that reads
images finds some on disk; the feature standardisation is fitted only when there are features."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch

from comipn_prep.layout import DatasetLayout
from comipn_model.data.examples import load_split
from comipn_model.network.config import CoMIPNConfig
from comipn_model.training import setup
from comipn_model.training.setup import fit_visual_norm, make_collator

TEXT_ONLY = {"use_prompt": False, "use_dynamic_matching": False, "use_contrastive": False}


@pytest.fixture(scope="module")
def model(minilm_path):
    """What make_collator and fit_visual_norm read of a model: its tokenizer and its feature norm."""
    from transformers import AutoTokenizer

    return SimpleNamespace(tokenizer=AutoTokenizer.from_pretrained(minilm_path), visual_norm=torch.nn.Identity())


@pytest.fixture()
def no_tower(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the vision tower was built")

    monkeypatch.setattr(setup, "VisionTower", refuse)


@pytest.mark.parametrize("switches", [TEXT_ONLY, {}], ids=["text-only", "images-but-none-on-disk"])
def test_without_images_to_read_no_tower_is_built(tmp_path, make_root, model, no_tower, caplog, switches):
    layout = DatasetLayout(make_root(tmp_path / "root", sizes=(5, 1, 1)), "twitter2017")
    config = CoMIPNConfig(**switches)
    examples, counts = load_split(layout, "train", aux_k=config.aux_k, with_images=config.uses_images)
    assert not counts.any_found
    with caplog.at_level(logging.WARNING, logger="comipn_model.training.setup"):
        collate = make_collator(model, config, [examples], [counts], str(tmp_path / "cache"), torch.device("cpu"))
    masked = [r.getMessage() for r in caplog.records if "every image is masked" in r.getMessage()]
    assert len(masked) == (1 if config.uses_images else 0)  # said once, and only to a model that wanted images
    batch = collate(examples)
    assert batch.visual is None and batch.labels.shape[0] == 5 and collate.feature_cache is None
    assert fit_visual_norm(model, collate, examples) == 0  # nothing to fit
    assert not (tmp_path / "cache").exists()
