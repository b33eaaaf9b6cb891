"""The vision features' standardisation: statistics of the training images, applied to present images only."""

from __future__ import annotations

import torch

from comipn_model.data.batch import VisualInputs
from comipn_model.data.features import ImageFeatures
from comipn_model.network.visual_norm import VisualNorm


def shared_direction_features(n: int, blocks: int = 3, dim: int = 8, patches: int = 5) -> list[ImageFeatures]:
    """Pictures whose features are one large shared vector plus a small picture-specific part, as a
    frozen tower's class tokens are (cosine near 0.9 between any two pictures)."""
    gen = torch.Generator().manual_seed(0)
    shared_cls, shared_patch = torch.randn(blocks, dim, generator=gen) * 10, torch.randn(dim, generator=gen) * 10
    return [ImageFeatures(cls=shared_cls + torch.randn(blocks, dim, generator=gen),
                          patches=shared_patch + torch.randn(patches, dim, generator=gen)) for _ in range(n)]


def test_fit_gives_each_dimension_mean_zero_and_unit_std_over_the_training_images():
    feats = shared_direction_features(50)
    norm = VisualNorm(3, 8)
    assert norm.fit(iter([None, *feats, None])) == 50 and int(norm.images_seen) == 50
    cls = torch.stack([f.cls for f in feats])[:, None]  # (N, 1 image, blocks, dim)
    patches = torch.stack([f.patches for f in feats])[:, None]
    out = norm(VisualInputs(cls=cls, patches=patches, mask=torch.ones(50, 1, dtype=torch.bool)))
    assert torch.allclose(out.cls.mean(0), torch.zeros(3, 8), atol=1e-5)
    assert torch.allclose(out.cls.std(0, unbiased=False), torch.ones(3, 8), atol=1e-3)
    flat = out.patches.reshape(-1, 8)
    assert torch.allclose(flat.mean(0), torch.zeros(8), atol=1e-5)
    assert torch.allclose(flat.std(0, unbiased=False), torch.ones(8), atol=1e-3)
    # What the modules see: two pictures' class tokens go from nearly parallel to unrelated.
    before = torch.cosine_similarity(cls[0, 0, -1], cls[1, 0, -1], dim=0)
    after = torch.cosine_similarity(out.cls[0, 0, -1], out.cls[1, 0, -1], dim=0)
    assert before > 0.9 and abs(after) < 0.8


def test_missing_images_stay_zero_and_an_unfitted_norm_is_the_identity():
    feats = shared_direction_features(4)
    cls = torch.stack([f.cls for f in feats]).view(2, 2, 3, 8)
    patches = torch.stack([f.patches for f in feats]).view(2, 2, 5, 8)
    mask = torch.tensor([[True, False], [True, True]])
    cls[0, 1] = 0
    patches[0, 1] = 0
    visual = VisualInputs(cls=cls, patches=patches, mask=mask)
    unfitted = VisualNorm(3, 8)
    assert unfitted.fit([]) == 0 and int(unfitted.images_seen) == 0
    same = unfitted(visual)
    assert torch.equal(same.cls, cls) and torch.equal(same.patches, patches)
    fitted = VisualNorm(3, 8)
    fitted.fit(feats)
    out = fitted(visual)
    assert torch.equal(out.cls[0, 1], torch.zeros(3, 8)) and torch.equal(out.patches[0, 1], torch.zeros(5, 8))
    assert out.cls[1, 1].abs().sum() > 0 and torch.equal(out.mask, mask)


def test_statistics_are_part_of_the_state_dict():
    norm = VisualNorm(3, 8)
    norm.fit(shared_direction_features(6))
    again = VisualNorm(3, 8)
    again.load_state_dict(norm.state_dict())
    assert torch.equal(again.cls_mean, norm.cls_mean) and int(again.images_seen) == 6
    assert {"cls_mean", "cls_std", "patch_mean", "patch_std", "images_seen"} == set(norm.state_dict())


def test_configs_saved_before_the_standardisation_load_without_it():
    from comipn_model.network.config import CoMIPNConfig

    assert CoMIPNConfig().visual_norm is True
    older = {k: v for k, v in CoMIPNConfig().to_dict().items() if k != "visual_norm"}
    assert CoMIPNConfig.from_dict(older).visual_norm is False
    assert CoMIPNConfig.from_dict(CoMIPNConfig().to_dict()).visual_norm is True
