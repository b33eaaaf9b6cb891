"""Idea 3, interactive multi-path encoding: the text is encoded along several paths (visual prefix
prompts, dynamically matched prompts, text only) and a token-wise gate fuses them. Two gates:

- ``softmax`` (the paper's): ``h_t = sum_p g_{t,p} h_{t,p}`` with ``g_t = softmax_p(score_p(h_{t,p}))``;
  every path starts with about an even share of every token.
- ``tanh`` (zero start): ``h_t = h_text + sum_{p visual} tanh(score_p(h_{t,p})) (h_{t,p} - h_text)``
  with every score's weights and bias zero at the start, so the model starts as text-only and a visual
  path opens, token by token, only as far as training finds it useful (Flamingo's tanh gates, at the
  fusion instead of inside the layers).
- ``sigmoid-softmax`` (the original code's): one scorer shared by the paths, ``sigmoid`` of each path's
  score, then a softmax over the paths. The softmax of numbers in (0, 1) keeps every one of 3 paths
  between 21% and 58% of every token: the gate can lean, never close a path."""

from __future__ import annotations

import torch
from torch import nn

from comipn_model.network.config import PATH_GATES

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


class SquashedSoftmaxGate(nn.Module):
    """The original code's fusion: ``g_t = softmax_p(sigmoid(w . h_{t,p} + b))`` with one ``(w, b)`` for
    every path."""

    def __init__(self, hidden: int, paths: list[str]):
        super().__init__()
        self.paths = list(paths)
        self.score = nn.Linear(hidden, 1)

    def forward(self, states: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        stacked = torch.stack([states[p] for p in self.paths], dim=2)  # (B, T, paths, D)
        gates = torch.softmax(torch.sigmoid(self.score(stacked).squeeze(-1)), dim=-1)
        return (gates.unsqueeze(-1) * stacked).sum(2), gates


def make_gate(kind: str, hidden: int, paths: list[str]) -> nn.Module:
    if kind == "softmax":
        return TokenGate(hidden, paths)
    if kind == "tanh":
        return ZeroStartGate(hidden, paths)
    if kind == "sigmoid-softmax":
        return SquashedSoftmaxGate(hidden, paths)
    raise ValueError(f"path gate must be one of {', '.join(PATH_GATES)}, got {kind!r}")
