"""The region head (comipn_model.network.region_head): which crop holds each entity word's entity, trained by a
masked BCE on gold targets; absent (and every other part unchanged) when the region weight is 0."""

from __future__ import annotations

import copy

import pytest
import torch

from comipn_model import CoMIPN, CoMIPNConfig, WordBatcher
from comipn_model.data.features import ImageFeatures, stack_visual
from comipn_model.network.region_head import RegionHead, region_loss
from comipn_model.network.vision import vision_dims
from comipn_model.training.config import TrainConfig
from comipn_prep.conll import read_conll

ALL_ON = dict(use_prompt=True, use_dynamic_matching=True, use_contrastive=True)


@pytest.fixture(scope="module")
def minilm(minilm_path):
    from comipn_model.network.text_encoder import load_text_encoder

    return load_text_encoder(minilm_path)


@pytest.fixture(scope="module")
def tweets(twitter_data):
    return list(read_conll(twitter_data / "twitter2017" / "train.txt"))[:4]


def build(minilm, minilm_path, **fields) -> CoMIPN:
    encoder, tokenizer = minilm
    torch.manual_seed(0)
    return CoMIPN(CoMIPNConfig(text_model=minilm_path, clip_pretrained=None, **fields),
                  encoder=copy.deepcopy(encoder), tokenizer=tokenizer)


def features(seed: int) -> ImageFeatures:
    gen = torch.Generator().manual_seed(seed)
    blocks, width, patches = vision_dims("ViT-B-32")
    return ImageFeatures(cls=torch.randn(blocks, width, generator=gen),
                         patches=torch.randn(patches, width, generator=gen))


def batch_of(model, tweets, images):
    batcher = WordBatcher(model.tokenizer, model.config.labels, model.config.max_seq)
    return batcher.encode([t.tokens for t in tweets], [t.labels for t in tweets],
                          stack_visual(images, model.config.num_images))


def test_region_loss_is_the_masked_bce_mean():
    logits = torch.tensor([[[2.0, -1.0], [0.5, 3.0]]])
    targets = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    mask = torch.tensor([[[True, False], [True, True]]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = (bce(torch.tensor(2.0), torch.tensor(1.0)) + bce(torch.tensor(0.5), torch.tensor(0.0))
                + bce(torch.tensor(3.0), torch.tensor(1.0))) / 3
    assert region_loss(logits, targets, mask) == pytest.approx(float(expected))
    assert float(region_loss(logits, targets, torch.zeros_like(mask))) == 0.0  # nothing supervised


def test_region_weight_0_builds_no_head_and_leaves_every_other_part_as_it_was(minilm, minilm_path, tweets):
    plain = build(minilm, minilm_path, **ALL_ON).eval()
    headed = build(minilm, minilm_path, **ALL_ON, region_weight=1.0).eval()
    assert plain.region_head is None and isinstance(headed.region_head, RegionHead)
    # No head without dynamic matching (whose patches it reads) or crops.
    assert not CoMIPNConfig(**dict(ALL_ON, use_dynamic_matching=False), region_weight=1.0).region_head
    assert not CoMIPNConfig(**ALL_ON, aux_k=0, region_weight=1.0).region_head
    # Made last: the same seed gives every other part the same weights, so the same tags and losses.
    shared = plain.state_dict()
    others = {k: v for k, v in headed.state_dict().items() if not k.startswith("region_head.")}
    assert shared.keys() == others.keys() and all(torch.equal(shared[k], others[k]) for k in shared)
    batch = batch_of(plain, tweets, [[features(i), features(i + 10), features(i + 20)] for i in range(4)])
    with torch.no_grad():
        a, b = plain(batch), headed(batch)
    assert torch.equal(a.emissions, b.emissions) and torch.equal(a.loss, b.loss)  # no targets: no region loss
    assert a.region_loss is None and b.region_loss is None
    relevance = headed.word_image_relevance(batch)  # the head's probabilities; image 0 and missing crop 3: 0
    assert relevance.shape == (4, batch.word_mask.shape[1], 4) and torch.all(relevance[..., 0] == 0)
    assert torch.all((relevance[..., 1:3] > 0) & (relevance[..., 1:3] < 1)) and torch.all(relevance[..., 3] == 0)
    # The Tagger's one-forward form gives the same emissions and relevance as the two calls.
    for model in (plain, headed):
        emissions, both = model.emissions_and_relevance(batch)
        assert torch.equal(emissions, model.emissions(batch))
        assert torch.equal(both, model.word_image_relevance(batch))


def test_the_loss_is_added_with_its_weight_and_a_few_steps_raise_the_right_crop(minilm, minilm_path, tweets):
    model = build(minilm, minilm_path, **ALL_ON, region_weight=2.0).train()
    images = [[features(i), features(i + 10), features(i + 20)] for i in range(4)]
    batch = batch_of(model, tweets, images)
    width = batch.word_mask.shape[1]
    # Every word of every tweet: crop 1 (image 2) holds its entity, crop 0 does not; crop 2 is missing.
    batch.region_targets = torch.zeros(4, width, 3)
    batch.region_targets[:, :, 1] = 1.0
    batch.region_mask = torch.ones(4, width, 3, dtype=torch.bool)
    without = copy.copy(batch)
    without.region_targets = without.region_mask = None
    with torch.no_grad():
        a = model.eval()(batch)
        b = model(without)
    assert a.region_loss is not None and float(a.region_loss) > 0
    assert float(a.loss - b.loss) == pytest.approx(2.0 * float(a.region_loss), rel=1e-4)

    # The head alone on the model's fused states (fixed here): a few steps make the right crop's score rise.
    model.eval()
    with torch.no_grad():
        visual, _, _, words = model._emissions(batch)
    head = model.region_head
    mask = batch.region_mask & batch.word_mask[..., None] & visual.mask[:, None, 1:]

    def margin() -> float:
        with torch.no_grad():
            p = RegionHead.probabilities(head(words, visual.patches, visual.mask), visual.mask)[..., 1:]
        p = p[batch.word_mask]
        assert torch.all(p[:, 2] == 0)  # the missing crop: 0, never a candidate
        return float((p[:, 1] - p[:, 0]).mean())

    before = margin()
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(20):
        optimizer.zero_grad()
        region_loss(head(words, visual.patches, visual.mask), batch.region_targets, mask).backward()
        optimizer.step()
    assert margin() > before + 0.2, (before, margin())


def test_region_weight_round_trips_and_is_checked(tmp_path):
    cfg = TrainConfig(data_root="d", dataset="x", run_dir=str(tmp_path), model=CoMIPNConfig(region_weight=0.5))
    again = TrainConfig.from_dict(cfg.to_dict())
    assert again.model.region_weight == 0.5 and again.model.region_head
    assert CoMIPNConfig.from_dict({}).region_weight == 0.0  # a config.json from before: off
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="region_weight"):
            CoMIPNConfig(region_weight=bad)
