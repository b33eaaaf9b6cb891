"""The region head: which crop of the tweet's picture holds each word's entity (issue 26, GMNER).

Per word, the relevance of its *contextual* state (the fused states the CRF reads, at its first sub-token)
to each crop, in dynamic matching's form (:func:`~comipn_model.network.matching.token_image_relevance`: the
best cosine of the projected word to the crop's projected patches), made a logit by a learnt scale and
bias: ``sigmoid`` is P(this crop is the region of this word's entity). Only the crops (images 1..aux_k)
are candidates, never image 0 (the whole picture) or a missing crop.

Trained by :func:`region_loss` on gold boxes (targets built by :mod:`comipn_model.data.region_targets`);
read by the ``matching`` region linker (:mod:`comipn_model.inference.regions`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from comipn_model.network.matching import token_image_relevance

# A relevance of ~0.2 (random projections' best cosine over 49 patches) starts near P = 0.3.
INIT_SCALE = 10.0
INIT_BIAS = -3.0


class RegionHead(nn.Module):
    """Word states ``(B, W, D)`` + patches ``(B, M, P, Dv)`` + image mask ``(B, M)`` -> crop logits
    ``(B, W, M - 1)`` (image 0, the whole picture, is no candidate)."""

    def __init__(self, text_dim: int, vision_dim: int, match_dim: int):
        super().__init__()
        self.text_proj = nn.Linear(text_dim, match_dim)
        self.patch_proj = nn.Linear(vision_dim, match_dim)
        self.scale = nn.Parameter(torch.tensor(INIT_SCALE))
        self.bias = nn.Parameter(torch.tensor(INIT_BIAS))

    def forward(self, words: torch.Tensor, patches: torch.Tensor, image_mask: torch.Tensor) -> torch.Tensor:
        crops = image_mask[:, 1:].bool()
        relevance = token_image_relevance(self.text_proj(words), self.patch_proj(patches[:, 1:]), crops)
        return relevance * self.scale + self.bias

    @staticmethod
    def probabilities(logits: torch.Tensor, image_mask: torch.Tensor) -> torch.Tensor:
        """``(B, W, M)`` in [0, 1] as dynamic matching's word-image relevance is laid out: image 0 and the
        missing crops 0, the crops their probability."""
        probs = torch.sigmoid(logits) * image_mask[:, None, 1:]
        return torch.cat([probs.new_zeros(*probs.shape[:2], 1), probs], dim=-1)


def region_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked BCE-with-logits mean over the supervised (word, crop) pairs; 0 when none is (no data-dependent
    branch, so a compiled step takes it as it is). logits, targets, mask ``(B, W, K)``."""
    mask = mask.float()
    losses = F.binary_cross_entropy_with_logits(logits, targets.float(), reduction="none")
    return (losses * mask).sum() / mask.sum().clamp(min=1.0)
