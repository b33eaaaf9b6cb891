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
from comipn_model.training.setup import fill_feature_share, fit_visual_norm, make_collator

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


def test_under_torchrun_the_processes_fill_the_cache_in_shares():
    """Each process computes every world_size-th distinct training image (the model's 1 + aux_k of each
    tweet), the shares together each image once; one process, or a model without the norm, fills none."""
    from comipn_model.data.batching import Collator

    class Recording:
        def __init__(self):
            self.read = []

        def get_many(self, paths):
            self.read += list(paths)
            return [None] * len(paths)

    examples = [SimpleNamespace(image_paths=[f"t{i}.jpg", f"t{i}_crop_0.png", f"t{i}_crop_1.png", None])
                for i in range(7)] + [SimpleNamespace(image_paths=["t0.jpg", None, None, None])]  # a repeat
    model = SimpleNamespace(config=SimpleNamespace(num_images=2), visual_norm=torch.nn.Identity())
    caches = [Recording() for _ in range(3)]
    counts = [fill_feature_share(model, Collator(None, None, cache), examples, rank, 3)
              for rank, cache in enumerate(caches)]
    everything = [p for i in range(7) for p in (f"t{i}.jpg", f"t{i}_crop_0.png")]
    assert sorted(p for c in caches for p in c.read) == sorted(everything) and sum(counts) == 14
    assert caches[1].read == everything[1::3]
    assert fill_feature_share(model, Collator(None, None, Recording()), examples, 0, 1) == 0
    no_norm = SimpleNamespace(config=model.config, visual_norm=None)
    assert fill_feature_share(no_norm, Collator(None, None, Recording()), examples, 0, 2) == 0
