"""Idea 3, interactive multi-path encoding: the text is encoded along several paths (visual prefix
prompts, dynamically matched prompts, text only) and a token-wise gate fuses them,
``h_t = sum_p g_{t,p} h_{t,p}`` with ``g_t = softmax_p(score_p(h_{t,p}))``."""

from __future__ import annotations

import torch
from torch import nn

PATH_TEXT = "text"
PATH_PROMPT = "prompt"
PATH_MATCHED = "matched"


class TokenGate(nn.Module):
    """One learned linear score per path, softmax over the paths at every token."""

    def __init__(self, hidden: int, paths: list[str]):
        super().__init__()
        self.paths = list(paths)
        self.scores = nn.ModuleDict({p: nn.Linear(hidden, 1) for p in self.paths})

    def forward(self, states: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """states: path -> ``(B, T, D)``. Returns the fused ``(B, T, D)`` and the gates ``(B, T, paths)``."""
        stacked = torch.stack([states[p] for p in self.paths], dim=2)  # (B, T, paths, D)
        logits = torch.cat([self.scores[p](states[p]) for p in self.paths], dim=-1)
        gates = torch.softmax(logits, dim=-1)
        return (gates.unsqueeze(-1) * stacked).sum(2), gates
