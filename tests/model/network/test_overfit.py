"""Overfit check: real tweets, every switch on, the model must learn its training batch.

The issue's check (16 tweets, 60 steps) is marked slow (8 min 20 s on the shared 2-core machine); the
default variant (8 tweets, 20 steps) runs the same code: 48 s with the machine lightly loaded,
156 s under heavy load from other processes.
"""

from __future__ import annotations

import pytest
import torch
from seqeval.metrics import f1_score

from comipn_model import CoMIPN, CoMIPNConfig, WordBatcher
from comipn_model.data.features import ImageFeatures, stack_visual
from comipn_model.network.vision import vision_dims
from comipn_prep.conll import read_conll

LRS = {"text_encoder": 1e-4, "new": 1e-3, "crf": 5e-2}


def overfit(minilm_path, twitter_data, tweets: int, steps: int) -> tuple[float, float]:
    data = [t for t in read_conll(twitter_data / "twitter2017" / "train.txt")][:tweets]
    torch.manual_seed(1234)
    config = CoMIPNConfig(text_model=minilm_path, clip_pretrained=None)
    model = CoMIPN(config)
    blocks, width, patches = vision_dims(config.clip_model)
    gen = torch.Generator().manual_seed(0)

    def image():
        return ImageFeatures(cls=torch.randn(blocks, width, generator=gen),
                             patches=torch.randn(patches, width, generator=gen))

    # image + one crop for most tweets, none for every fourth: both code paths train
    visual = stack_visual([[image(), image()] if i % 4 else [] for i in range(len(data))], config.num_images)
    batch = WordBatcher(model.tokenizer, config.labels).encode([t.tokens for t in data],
                                                               [t.labels for t in data], visual)
    gold = [t.labels for t in data]
    assert sum(label.startswith("B-") for seq in gold for label in seq) >= 10  # real entities to learn
    optimizer = torch.optim.AdamW([{"params": ps, "lr": LRS[name]} for name, ps in model.param_groups().items()],
                                  weight_decay=0.01)
    model.eval()
    before = f1_score(gold, model.decode(batch))
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model(batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    model.eval()
    return before, f1_score(gold, model.decode(batch))


def test_overfit_small(minilm_path, twitter_data):
    before, after = overfit(minilm_path, twitter_data, tweets=8, steps=20)
    assert before < 0.5
    assert after >= 0.95


@pytest.mark.slow
def test_overfit_16_tweets_60_steps(minilm_path, twitter_data):
    before, after = overfit(minilm_path, twitter_data, tweets=16, steps=60)
    assert before < 0.5
    assert after >= 0.95
