"""Idea 2, dynamic similarity matching: weight every visual patch by its relevance to this tweet's
tokens, pool each image's relevant patches into prompts, and let a per-layer softmax gate over the
images (global + crops) decide how much each contributes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from comipn_model.prompts import PromptGenerator


def patch_relevance(text: torch.Tensor, text_mask: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
    """``r[b, m, v] = max_t cos(text[b, t], patches[b, m, v])`` clamped at 0, padding excluded.
    text ``(B, T, E)``, text_mask ``(B, T)``, patches ``(B, M, P, E)`` -> ``(B, M, P)``."""
    sims = torch.einsum("bte,bmpe->bmtp", F.normalize(text, dim=-1), F.normalize(patches, dim=-1))
    sims = sims.masked_fill(~text_mask.bool()[:, None, :, None], -1.0)
    return sims.amax(dim=2).clamp(min=0)


class DynamicMatching(nn.Module):
    """Text states ``(B, T, D)`` + patches ``(B, M, P, Dv)`` -> per layer ``(B, prompt_len, D)`` prompts
    and the ``(B, prompt_len)`` mask (off where the example has no image at all)."""

    def __init__(self, text_dim: int, vision_dim: int, match_dim: int, layers: int, prompt_len: int,
                 dropout: float = 0.1):
        super().__init__()
        self.text_proj = nn.Linear(text_dim, match_dim)
        self.patch_proj = nn.Linear(vision_dim, match_dim)
        self.generator = PromptGenerator(vision_dim, text_dim, layers, prompt_len, dropout)
        self.gate_norm = nn.LayerNorm(vision_dim)
        # One score per (image, layer); no bias, which the softmax over images would ignore.
        self.gate = nn.Linear(vision_dim, layers, bias=False)
        self.prompt_len = prompt_len

    def forward(self, text: torch.Tensor, text_mask: torch.Tensor, patches: torch.Tensor,
                image_mask: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        relevance = patch_relevance(self.text_proj(text), text_mask, self.patch_proj(patches))  # (B,M,P)
        relevance = relevance * image_mask[:, :, None]
        weight_sum = relevance.sum(-1, keepdim=True)
        pooled = (relevance.unsqueeze(-1) * patches).sum(2) / weight_sum.clamp(min=1e-6)  # (B, M, Dv)
        # The mean relevance scales the image's prompts: an unrelated picture fades towards no input.
        strength = relevance.mean(-1)  # (B, M)
        # (B, M, 1, Dv) -> (B, M, L, P, D): the generator's layer embedding spreads it over layers.
        per_image = self.generator(pooled.unsqueeze(2)) * strength[..., None, None, None]
        scores = self.gate(self.gate_norm(pooled)).masked_fill(~image_mask[..., None], float("-inf"))
        any_image = image_mask.any(dim=1)
        gates = torch.softmax(scores.masked_fill(~any_image[:, None, None], 0.0), dim=1)  # (B, M, L)
        layered = torch.einsum("bml,bmlpd->lbpd", gates, per_image)
        mask = any_image[:, None].expand(-1, self.prompt_len)
        return list(layered.unbind(0)), mask, strength
