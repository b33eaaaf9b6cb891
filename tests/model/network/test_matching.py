"""Dynamic similarity matching (comipn_model.network.matching) on small tensors: patch relevance, and how
each image's relevance and presence become its prompts' mask and attention log-weights."""

from __future__ import annotations

import math

import pytest
import torch

from comipn_model.network.matching import MIN_RELEVANCE, DynamicMatching, patch_relevance, token_image_relevance


def test_patch_relevance_is_the_best_real_token_cosine_clamped_at_zero():
    text = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]]])  # the third token is padding
    mask = torch.tensor([[1, 1, 0]])
    patches = torch.tensor([[[[3.0, 0.0], [1.0, 1.0], [-1.0, 0.0], [-1.0, -1.0]]]])  # (B=1, M=1, P=4, E=2)
    relevance = patch_relevance(text, mask, patches)
    expected = torch.tensor([[[1.0, math.sqrt(0.5), 0.0, 0.0]]])
    # the third patch matches only the padding token (cosine 1); the fourth is at -0.71 to both real tokens
    assert relevance.shape == (1, 1, 4) and torch.allclose(relevance, expected)


def test_token_image_relevance_is_each_tokens_best_patch_and_agrees_with_patch_relevance():
    text = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    patches = torch.tensor([[[[3.0, 0.0], [1.0, 1.0]], [[-1.0, 0.0], [0.0, -1.0]], [[1.0, 0.0], [0.0, 1.0]]]])
    image_mask = torch.tensor([[True, True, False]])
    r = token_image_relevance(text, patches, image_mask)
    # token 0 vs image 0: best of cos 1 and 0.71; token 1: 0.71; image 1: all cosines <= 0; image 2 missing
    assert torch.allclose(r, torch.tensor([[[1.0, 0.0, 0.0], [math.sqrt(0.5), 0.0, 0.0]]]))
    # the image's strength in the matching (best patch over tokens) is the best token over patches
    strength = patch_relevance(text, torch.ones(1, 2), patches).amax(-1) * image_mask
    assert torch.allclose(r.amax(1), strength)


@pytest.fixture(scope="module")
def matching():
    torch.manual_seed(0)
    return DynamicMatching(text_dim=8, vision_dim=6, match_dim=5, layers=3, prompt_len=2, dropout=0.0).eval()


def test_a_missing_image_is_masked_and_an_only_image_is_weighted_by_its_relevance(matching):
    torch.manual_seed(1)
    text, text_mask = torch.randn(2, 4, 8), torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    patches = torch.randn(2, 3, 7, 6)  # 3 images (global + 2 crops) of 7 patches
    image_mask = torch.tensor([[True, False, False], [True, True, False]])
    states, mask, log_weights, strength = matching(text, text_mask, patches, image_mask)
    assert len(states) == len(log_weights) == 3 and states[0].shape == (2, 3 * 2, 8)
    assert mask.tolist() == [[True, True, False, False, False, False], [True, True, True, True, False, False]]
    relevance = patch_relevance(matching.text_proj(text), text_mask, matching.patch_proj(patches))
    assert torch.allclose(strength[0, 0], relevance[0, 0].max()) and strength[0, 1:].eq(0).all()
    for bias in log_weights:
        # one image: the gate gives it everything, and the log-weight is its relevance's log
        assert torch.allclose(bias[0, :2], strength[0, 0].clamp(min=MIN_RELEVANCE).log().expand(2))
        assert bias[0, 2:].eq(0).all() and bias[1, 4:].eq(0).all()  # finite for the masked slots
        # two images: their log-gates sum (softmax) to the even share: exp(bias - log relevance) sums to 2
        shares = (bias[1, [0, 2]] - strength[1, :2].clamp(min=MIN_RELEVANCE).log()).exp()
        assert torch.allclose(shares.sum(), torch.tensor(2.0))
