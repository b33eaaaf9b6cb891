"""Idea 2, dynamic similarity matching: weight every visual patch by its relevance to this tweet's
tokens, pool each image's relevant patches into prompts, and let the image's relevance to the text and a
per-layer softmax gate over the images (global + crops) decide how much attention each image's prompts
get: both enter as an additive log-weight on the prefix's attention logits (see
:func:`comipn_model.network.text_encoder.encode`), so an unrelated image fades out exactly like a masked one."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from comipn_model.network.prompts import PromptGenerator


def patch_relevance(text: torch.Tensor, text_mask: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
    """``r[b, m, v] = max_t cos(text[b, t], patches[b, m, v])`` clamped at 0, padding excluded.
    text ``(B, T, E)``, text_mask ``(B, T)``, patches ``(B, M, P, E)`` -> ``(B, M, P)``."""
    sims = torch.einsum("bte,bmpe->bmtp", F.normalize(text, dim=-1), F.normalize(patches, dim=-1))
    sims = sims.masked_fill(~text_mask.bool()[:, None, :, None], -1.0)
    return sims.amax(dim=2).clamp(min=0)


def token_image_relevance(text: torch.Tensor, patches: torch.Tensor, image_mask: torch.Tensor) -> torch.Tensor:
    """``r[b, t, m] = max_v cos(text[b, t], patches[b, m, v])`` clamped at 0, 0 for a missing image: how
    much token ``t`` finds of itself in image ``m`` (the same cosine :func:`patch_relevance` maximises over
    tokens, here over patches). text ``(B, T, E)``, patches ``(B, M, P, E)``, image_mask ``(B, M)`` ->
    ``(B, T, M)``."""
    sims = torch.einsum("bte,bmpe->btmp", F.normalize(text, dim=-1), F.normalize(patches, dim=-1))
    return sims.amax(dim=-1).clamp(min=0) * image_mask[:, None, :]


# Smallest relevance used in the log: log(1e-4) = -9.2 leaves an unrelated image ~1e-4 of the weight.
MIN_RELEVANCE = 1e-4


class DynamicMatching(nn.Module):
    """Text states ``(B, T, D)`` + patches ``(B, M, P, Dv)`` -> per layer ``(B, M * prompt_len, D)``
    prompt states, their ``(B, M * prompt_len)`` mask (off where the image is missing), per layer the
    ``(B, M * prompt_len)`` attention log-weights, and each image's relevance to the text ``(B, M)``. The
    per-layer ones come stacked over the layers (``states[l]`` is layer l's)."""

    def __init__(self, text_dim: int, vision_dim: int, match_dim: int, layers: int, prompt_len: int,
                 dropout: float = 0.1):
        super().__init__()
        self.text_proj = nn.Linear(text_dim, match_dim)
        self.patch_proj = nn.Linear(vision_dim, match_dim)
        # Both projections start with the same large bias, so every text-patch cosine starts near 1:
        # each image's prompts start fully open (as the prompt path's do) and training learns what to
        # fade. Random projections alone start near cosine 0.1, i.e. a log-weight of -2 to -4 that
        # left the matched path shut and its gate collapsed onto the text path on the probe.
        with torch.no_grad():
            shared = F.normalize(torch.randn(match_dim), dim=0) * 16.0
            self.text_proj.bias.copy_(shared)
            self.patch_proj.bias.copy_(shared)
        self.generator = PromptGenerator(vision_dim, text_dim, layers, prompt_len, dropout)
        self.gate_norm = nn.LayerNorm(vision_dim)
        # One score per (image, layer); no bias, which the softmax over images would ignore.
        self.gate = nn.Linear(vision_dim, layers, bias=False)
        self.prompt_len = prompt_len

    def forward(self, text: torch.Tensor, text_mask: torch.Tensor, patches: torch.Tensor, image_mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        relevance = patch_relevance(self.text_proj(text), text_mask, self.patch_proj(patches))  # (B,M,P)
        relevance = relevance * image_mask[:, :, None]
        weight_sum = relevance.sum(-1, keepdim=True)
        pooled = (relevance.unsqueeze(-1) * patches).sum(2) / weight_sum.clamp(min=1e-6)  # (B, M, Dv)
        # (B, M): the image's relevance to this tweet, in [0, 1]: that of its most relevant patch (a mean
        # over all 49 patches starts near 0.07 and, as a log-weight, all but shuts the path at init).
        strength = relevance.amax(-1)
        # (B, M, 1, Dv) -> (B, M, L, P, D): the generator's layer embedding spreads it over layers.
        per_image = self.generator(pooled.unsqueeze(2))
        states = per_image.permute(2, 0, 1, 3, 4).flatten(2, 3)  # (L, B, M * P, D)
        scores = self.gate(self.gate_norm(pooled)).masked_fill(~image_mask[..., None], float("-inf"))
        any_image = image_mask.any(dim=1)
        log_gates = torch.log_softmax(scores.masked_fill(~any_image[:, None, None], 0.0), dim=1)  # (B, M, L)
        # Relative to an even share: an even gate leaves every image at its relevance (with 4 images a
        # plain log-softmax would also cut each to a quarter, and the path would start nearly shut).
        shares = image_mask.sum(1).clamp(min=1).float().log()[:, None, None]
        log_weight = log_gates + shares + strength.clamp(min=MIN_RELEVANCE).log()[..., None]
        # Missing images are masked; a finite value keeps their (unused) logits free of inf - inf.
        log_weight = log_weight.masked_fill(~image_mask[..., None], 0.0)
        bias = log_weight.permute(2, 0, 1).repeat_interleave(self.prompt_len, dim=2)  # (L, B, M * P)
        mask = image_mask.repeat_interleave(self.prompt_len, dim=1)
        return states, mask, bias, strength
