"""Idea 1, visual prefix prompts: per text layer, ``prompt_len`` virtual-token states per image made
from that image's class tokens (HVPNeT's mechanism). The encoder turns them into keys / values with
the layer's own projections (see :func:`comipn_model.network.text_encoder.encode`)."""

from __future__ import annotations

import torch
from torch import nn


def layer_to_block(text_layers: int, vision_blocks: int) -> list[int]:
    """Evenly spaced vision blocks, the last block feeding the last text layer
    (12 blocks -> 6 layers: 1, 3, 5, 7, 9, 11; 12 -> 12: 0..11)."""
    return [round((layer + 1) * vision_blocks / text_layers) - 1 for layer in range(text_layers)]


class PromptGenerator(nn.Module):
    """``(..., L, Dv)`` per-layer visual vectors -> ``(..., L, prompt_len, D)`` prefix states.

    One MLP is shared by the layers (each layer already reads a different vision block), plus a learned
    per-layer, per-position embedding: 3 M parameters at BERT-base size instead of HVPNeT's per-layer
    key/value generators (tens of millions).
    """

    def __init__(self, vision_dim: int, hidden: int, layers: int, prompt_len: int, dropout: float = 0.1):
        super().__init__()
        self.prompt_len = prompt_len
        self.hidden = hidden
        self.mlp = nn.Sequential(nn.LayerNorm(vision_dim), nn.Linear(vision_dim, hidden), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, prompt_len * hidden))
        self.layer_embedding = nn.Parameter(torch.randn(layers, prompt_len, hidden) * 0.02)

    def forward(self, per_layer: torch.Tensor) -> torch.Tensor:
        out = self.mlp(per_layer)
        out = out.view(*per_layer.shape[:-1], self.prompt_len, self.hidden)
        return out + self.layer_embedding


class VisualPrefixPrompts(nn.Module):
    """Class tokens ``(B, M, Lv, Dv)`` -> per layer ``(B, M * prompt_len, D)`` (stacked over the layers)
    and its mask."""

    def __init__(self, vision_dim: int, vision_blocks: int, hidden: int, layers: int, prompt_len: int,
                 dropout: float = 0.1):
        super().__init__()
        self.register_buffer("blocks", torch.tensor(layer_to_block(layers, vision_blocks)), persistent=False)
        self.generator = PromptGenerator(vision_dim, hidden, layers, prompt_len, dropout)
        self.prompt_len = prompt_len

    def forward(self, cls: torch.Tensor, image_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The prefix states of every layer stacked, ``(L, B, M * prompt_len, D)`` (``states[l]`` is layer
        l's), and their mask."""
        states = self.generator(cls[:, :, self.blocks])  # (B, M, L, P, D)
        states = states.permute(2, 0, 1, 3, 4).flatten(2, 3)  # (L, B, M * P, D)
        mask = image_mask.repeat_interleave(self.prompt_len, dim=1)  # (B, M * P)
        return states, mask
