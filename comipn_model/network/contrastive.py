"""Idea 4, contrastive aggregation: a pool of each tweet's image and crop class tokens, weighted by
their relevance *to the tweet's text*, and the text's own [CLS] state (encoded without any visual
input), projected into one space and pulled together by a symmetric in-batch InfoNCE loss with a
learned temperature. Examples without an image take no part.

The text side never sees the image: otherwise the image's identity reaches [CLS] through the prefix and
InfoNCE is solved by copying it (it fell to 0 on one tweet paired with 8 pictures, where a text-only
[CLS] cannot go below ln 8)."""

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


def masked_info_nce(text: torch.Tensor, image: torch.Tensor, logit_scale: torch.Tensor,
                    rows: torch.Tensor) -> torch.Tensor:
    """:func:`info_nce` over the pairs where ``rows`` (``(N,)`` bool) is on, computed on all ``N`` rows
    without selecting them: the same value up to rounding, with no value read back from the device
    and one shape whatever the number of pairs (for a compiled step). 0 when no row is on."""
    text = F.normalize(text, dim=-1)
    image = F.normalize(image, dim=-1)
    logits = logit_scale.clamp(MIN_SCALE, MAX_SCALE).exp() * text @ image.t()
    # A large finite floor, not -inf: a row with every column off must keep finite gradients.
    pair = rows[:, None] & rows[None, :]
    logits = logits.masked_fill(~pair, -1e9)
    diagonal = logits.diagonal()
    on = rows.to(logits.dtype)
    count = on.sum().clamp(min=1)
    text_to_image = ((torch.logsumexp(logits, dim=1) - diagonal) * on).sum() / count
    image_to_text = ((torch.logsumexp(logits, dim=0) - diagonal) * on).sum() / count
    return (text_to_image + image_to_text) / 2


def _mlp(dim_in: int, dim_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, dim_out), nn.GELU(), nn.Linear(dim_out, dim_out))


class ContrastiveAggregation(nn.Module):
    def __init__(self, text_dim: int, vision_dim: int, embed_dim: int = 256, temperature: float = 0.07,
                 own_relevance: bool = True):
        """``own_relevance``: learn a text-conditioned relevance of each image (a scaled dot product of
        the text [CLS] and the image's class token); off when dynamic matching's relevance is passed in."""
        super().__init__()
        self.image_norm = nn.LayerNorm(vision_dim)
        self.query = nn.Linear(text_dim, embed_dim) if own_relevance else None
        self.image_key = nn.Linear(vision_dim, embed_dim) if own_relevance else None
        self.text_head = _mlp(text_dim, embed_dim)
        self.image_head = _mlp(vision_dim, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    def aggregate(self, text_cls: torch.Tensor, cls_last: torch.Tensor, image_mask: torch.Tensor,
                  relevance: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, M, Dv)`` last-block class tokens -> ``(B, Dv)``, weighted over the images that exist by
        their relevance to the text: ``relevance`` ``(B, M)`` (>= 0, e.g. dynamic matching's) when
        given, else softmax of the learned text-image score. Rows without any image give zeros."""
        normed = self.image_norm(cls_last)
        if relevance is not None:
            weights = relevance * image_mask
            total = weights.sum(1, keepdim=True)
            # No image relevant at all: an even pool of the images that exist.
            even = image_mask / image_mask.sum(1, keepdim=True).clamp(min=1)
            weights = torch.where(total > 0, weights / total.clamp(min=1e-12), even)
        else:
            if self.query is None:
                raise ValueError("built without its own relevance (own_relevance=False): pass relevance")
            scores = torch.einsum("be,bme->bm", self.query(text_cls), self.image_key(normed))
            scores = (scores / math.sqrt(self.query.out_features)).masked_fill(~image_mask, float("-inf"))
            any_image = image_mask.any(dim=1, keepdim=True)
            weights = torch.softmax(scores.masked_fill(~any_image, 0.0), dim=1) * image_mask
        return (weights.unsqueeze(-1) * normed).sum(1)

    def forward(self, text_cls: torch.Tensor, cls_last: torch.Tensor, image_mask: torch.Tensor,
                relevance: torch.Tensor | None = None) -> torch.Tensor | None:
        """The loss over the batch's imaged examples, or None with fewer than two of them. ``text_cls``
        must come from the text alone (no visual prefix)."""
        rows = image_mask.any(dim=1)
        if int(rows.sum()) < 2:
            return None
        image = self.image_head(self.aggregate(text_cls[rows], cls_last[rows], image_mask[rows],
                                               None if relevance is None else relevance[rows]))
        text = self.text_head(text_cls[rows])
        return info_nce(text, image, self.logit_scale)

    def loss_on_all_rows(self, text_cls: torch.Tensor, cls_last: torch.Tensor, image_mask: torch.Tensor,
                         relevance: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, counts)``: :meth:`forward`'s loss computed on every row with the imageless ones masked,
        and whether it counts (at least two imaged rows; else the loss is finite and means nothing).
        Nothing is read back from the device and the shapes do not depend on the data: the compiled
        step's form of :meth:`forward`."""
        rows = image_mask.any(dim=1)
        image = self.image_head(self.aggregate(text_cls, cls_last, image_mask, relevance))
        text = self.text_head(text_cls)
        return masked_info_nce(text, image, self.logit_scale, rows), rows.sum() >= 2
