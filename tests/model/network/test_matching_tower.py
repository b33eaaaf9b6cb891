"""The matching tower (a frozen DINO / DINOv2 ViT through transformers): its patch tokens, their cache keys,
their join with CLIP's class tokens, and the refusals (tiny random-weight towers, offline)."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

from comipn_model.network.matching_tower import (MatchingFeatures, MatchingTower, MatchingTowers,
                                                  check_matching_tower, check_recorded_matching_tower,
                                                  matching_tower_dim)
from comipn_model.network.vision import FeatureCache, VisionTower
from comipn_prep.weights import UntrustedWeights, WeightsUnavailable


@pytest.fixture(scope="module")
def towers(tmp_path_factory, make_matching_tower):
    base = tmp_path_factory.mktemp("towers")
    return {"dinov2": make_matching_tower(base / "dinov2"),
            "other": make_matching_tower(base / "other", seed=1),
            "registers": make_matching_tower(base / "registers", registers=2),
            "vit": make_matching_tower(base / "vit", kind="vit")}


def _own_forward(folder, pixels):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        return model(pixel_values=pixels).last_hidden_state


@pytest.mark.parametrize("name, skip", [("dinov2", 1), ("registers", 3), ("vit", 1)])
def test_patches_are_the_last_hidden_state_without_cls_and_registers(towers, picture, name, skip):
    tower = MatchingTower(str(towers[name]))
    images = [picture(seed=1), picture(seed=2, size=(100, 300))]
    feats = tower(images)
    pixels = torch.stack([tower.preprocess(im) for im in images])
    states = _own_forward(towers[name], pixels)
    assert states.shape[1] == 16 + skip  # 16 patches, [CLS], and the registers when there are any
    for f, s in zip(feats, states):
        assert f.patches.shape == (16, 32) and f.cls.shape == (1, 32)
        torch.testing.assert_close(f.patches, s[skip:], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(f.cls[0], s[0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(feats[0].patches, feats[1].patches)  # the pictures reach the patches
    assert matching_tower_dim(str(towers[name])) == 32
    assert not any(p.requires_grad for p in tower.model.parameters())


def test_cache_keys_differ_per_tower_and_weights(towers, tmp_path, picture):
    path = picture(tmp_path / "a.jpg")
    data = path.read_bytes()
    dinov2, other, vit = (MatchingTower(str(towers[n])) for n in ("dinov2", "other", "vit"))
    clip = VisionTower("ViT-S-32", None)
    keys = {FeatureCache(tmp_path / "c", t).key(data) for t in (dinov2, other, vit, clip)}
    assert len(keys) == 4
    # The same weights in a renamed folder keep their entries (the id is the weights' content).
    moved = tmp_path / "moved"
    shutil.copytree(towers["dinov2"], moved)
    assert FeatureCache(tmp_path / "c", MatchingTower(str(moved))).key(data) == FeatureCache(tmp_path / "c",
                                                                                               dinov2).key(data)


def test_features_computed_once_and_stored_as_fp16(towers, tmp_path, picture):
    paths = [picture(tmp_path / f"{i}.jpg", seed=i) for i in range(3)] + [tmp_path / "missing.jpg"]
    tower = MatchingTower(str(towers["dinov2"]))
    cache = FeatureCache(tmp_path / "cache", tower, progress=False)
    first = cache.get_many(paths)
    assert cache.tower_calls == 1 and first[3] is None
    again = FeatureCache(tmp_path / "cache", tower, progress=False)
    second = again.get_many(paths)
    assert again.tower_calls == 0 and again.hits == 3
    for a, b in zip(first[:3], second[:3]):
        assert torch.equal(a.patches, b.patches)
    stored = [load_file(f) for f in (tmp_path / "cache").rglob("*.safetensors")]
    assert len(stored) == 3 and all(s["patches"].dtype == torch.float16 and s["patches"].shape == (16, 32)
                                    for s in stored)
    # A second tower writes beside the first, never reading its entries.
    other = FeatureCache(tmp_path / "cache", MatchingTower(str(towers["other"])), progress=False)
    other_feats = other.get_many(paths[:1])
    assert other.tower_calls == 1 and not torch.equal(other_feats[0].patches, first[0].patches)


def test_joined_features_take_clip_class_tokens_and_tower_patches(towers, tmp_path, picture):
    paths = [picture(tmp_path / "a.jpg"), None, tmp_path / "missing.jpg"]
    clip, tower = VisionTower("ViT-S-32", None), MatchingTower(str(towers["dinov2"]))
    clip_cache, tower_cache = FeatureCache(tmp_path / "c", clip), FeatureCache(tmp_path / "c", tower)
    joined = MatchingFeatures(clip_cache, tower_cache).get_many(paths)
    assert joined[1] is None and joined[2] is None
    assert torch.equal(joined[0].cls, clip_cache.get(paths[0]).cls)
    assert torch.equal(joined[0].patches, tower_cache.get(paths[0]).patches)
    assert joined[0].cls.shape[-1] == 384 and joined[0].patches.shape == (16, 32)
    from PIL import Image

    direct = MatchingTowers(clip, tower)([Image.open(paths[0]).convert("RGB")])[0]
    torch.testing.assert_close(direct.patches, joined[0].patches, atol=2e-2, rtol=1e-2)  # fp16 on disk


def test_refusals_say_what_to_pass(towers, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable, match=r"no such folder.*--matching-tower"):
        check_matching_tower(str(tmp_path / "nowhere"))
    with pytest.raises(WeightsUnavailable, match=r"not in the local cache.*--matching-tower"):
        check_matching_tower("nobody-has/this-dino")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WeightsUnavailable, match="no config.json"):
        check_matching_tower(str(empty))
    from transformers import BertConfig

    bert = tmp_path / "bert"
    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(bert)
    with pytest.raises(WeightsUnavailable, match=r"'bert' model.*Dinov2Model.*ViTModel"):
        check_matching_tower(str(bert))
    no_weights = tmp_path / "no-weights"
    shutil.copytree(towers["dinov2"], no_weights)
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(WeightsUnavailable, match="--matching-tower"):
        MatchingTower(str(no_weights))


def test_a_recorded_tower_is_never_looked_up_from_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check_recorded_matching_tower("/abs/dino", "config.json", "--matching-tower")  # loads as recorded
    check_recorded_matching_tower("facebook/dinov2-small", "config.json", "--matching-tower")  # a Hub name
    for relative in ("./dino", "~/dino", "a/b/c"):
        with pytest.raises(UntrustedWeights, match="relative path.*--matching-tower PATH"):
            check_recorded_matching_tower(relative, "config.json", "--matching-tower")
    (tmp_path / "facebook" / "dinov2-small").mkdir(parents=True)  # a same-named folder would win
    with pytest.raises(UntrustedWeights, match="would be read instead"):
        check_recorded_matching_tower("facebook/dinov2-small", "config.json", "--matching-tower")


def test_a_batch_stacks_patches_of_another_width_than_the_class_tokens():
    from comipn_model.data.features import ImageFeatures, stack_visual

    f = ImageFeatures(cls=torch.ones(12, 384), patches=torch.full((16, 32), 2.0))
    visual = stack_visual([[f, None], [None]], num_images=2)
    assert visual.cls.shape == (2, 2, 12, 384) and visual.patches.shape == (2, 2, 16, 32)
    assert visual.mask.tolist() == [[True, False], [False, False]] and visual.patches[0, 0].eq(2).all()
    empty = stack_visual([[None]], num_images=2, dims=(12, 16, 384, 32))
    assert empty.cls.shape == (1, 2, 12, 384) and empty.patches.shape == (1, 2, 16, 32)
    with pytest.raises(ValueError, match="do not match"):
        stack_visual([[f, ImageFeatures(cls=torch.ones(12, 384), patches=torch.ones(16, 384))]], num_images=2)
