"""Idea 3, interactive multi-path encoding: the text is encoded along several paths (visual prefix
prompts, dynamically matched prompts, text only) and a token-wise gate fuses them. Two gates:

- ``softmax`` (the paper's): ``h_t = sum_p g_{t,p} h_{t,p}`` with ``g_t = softmax_p(score_p(h_{t,p}))``;
  every path starts with about an even share of every token.
- ``tanh`` (zero start): ``h_t = h_text + sum_{p visual} tanh(score_p(h_{t,p})) (h_{t,p} - h_text)``
  with every score's weights and bias zero at the start, so the model starts as text-only and a visual
  path opens, token by token, only as far as training finds it useful (Flamingo's tanh gates, at the
  fusion instead of inside the layers)."""

from __future__ import annotations

import torch
from torch import nn

PATH_TEXT = "text"
PATH_PROMPT = "prompt"
PATH_MATCHED = "matched"
GATES = ("softmax", "tanh")


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


class ZeroStartGate(nn.Module):
    """The text path plus each visual path's difference to it, scaled token-wise by ``tanh`` of a learned
    score that is 0 at the start: the fused states start as the text path's exactly."""

    def __init__(self, hidden: int, paths: list[str]):
        super().__init__()
        if paths[0] != PATH_TEXT:
            raise ValueError(f"the zero-start gate needs the text path first, got {paths}")
        self.paths = list(paths)
        self.scores = nn.ModuleDict({p: nn.Linear(hidden, 1) for p in self.paths[1:]})
        for score in self.scores.values():
            nn.init.zeros_(score.weight)
            nn.init.zeros_(score.bias)

    def forward(self, states: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """states: path -> ``(B, T, D)``. Returns the fused ``(B, T, D)`` and the gates ``(B, T, paths)``:
        1 for the text path, each visual path's ``tanh`` (in -1..1) after it."""
        text = states[PATH_TEXT]
        opened = [torch.tanh(self.scores[p](states[p])) for p in self.paths[1:]]  # (B, T, 1) each
        fused = text + sum(g * (states[p] - text) for g, p in zip(opened, self.paths[1:]))
        return fused, torch.cat([torch.ones_like(opened[0]), *opened], dim=-1)


def make_gate(kind: str, hidden: int, paths: list[str]) -> nn.Module:
    if kind == "softmax":
        return TokenGate(hidden, paths)
    if kind == "tanh":
        return ZeroStartGate(hidden, paths)
    raise ValueError(f"path gate must be one of {', '.join(GATES)}, got {kind!r}")
