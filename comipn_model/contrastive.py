"""Idea 4, contrastive aggregation: a relevance-weighted pool of each tweet's image and crop class
tokens and the tweet's [CLS] state, projected into one space and pulled together by a symmetric
in-batch InfoNCE loss with a learned temperature. Examples without an image take no part."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MIN_SCALE, MAX_SCALE = math.log(1.0), math.log(100.0)  # temperature kept in [0.01, 1]


def info_nce(text: torch.Tensor, image: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over ``N`` matched pairs (row i of ``text`` with row i of ``image``)."""
    text = F.normalize(text, dim=-1)
    image = F.normalize(image, dim=-1)
    logits = logit_scale.clamp(MIN_SCALE, MAX_SCALE).exp() * text @ image.t()
    target = torch.arange(len(text), device=text.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


def _mlp(dim_in: int, dim_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, dim_out), nn.GELU(), nn.Linear(dim_out, dim_out))


class ContrastiveAggregation(nn.Module):
    def __init__(self, text_dim: int, vision_dim: int, embed_dim: int = 256, temperature: float = 0.07):
        super().__init__()
        self.image_norm = nn.LayerNorm(vision_dim)
        # No bias: a softmax over the images is blind to a shift shared by all of them, so a bias
        # would never receive a gradient.
        self.image_score = nn.Linear(vision_dim, 1, bias=False)
        self.text_head = _mlp(text_dim, embed_dim)
        self.image_head = _mlp(vision_dim, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    def aggregate(self, cls_last: torch.Tensor, image_mask: torch.Tensor) -> torch.Tensor:
        """``(B, M, Dv)`` last-block class tokens -> ``(B, Dv)``, weighted by learned relevance over
        the images that exist (rows without any image give zeros; they are left out of the loss)."""
        normed = self.image_norm(cls_last)
        scores = self.image_score(normed).squeeze(-1).masked_fill(~image_mask, float("-inf"))
        any_image = image_mask.any(dim=1, keepdim=True)
        weights = torch.softmax(scores.masked_fill(~any_image, 0.0), dim=1) * image_mask
        return (weights.unsqueeze(-1) * normed).sum(1)

    def forward(self, text_cls: torch.Tensor, cls_last: torch.Tensor,
                image_mask: torch.Tensor) -> torch.Tensor | None:
        """The loss over the batch's imaged examples, or None with fewer than two of them."""
        rows = image_mask.any(dim=1)
        if int(rows.sum()) < 2:
            return None
        image = self.image_head(self.aggregate(cls_last[rows], image_mask[rows]))
        text = self.text_head(text_cls[rows])
        return info_nce(text, image, self.logit_scale)
