"""The token gate of interactive multi-path encoding (comipn_model.network.multipath)."""

from __future__ import annotations

import torch

from comipn_model.network.multipath import PATH_MATCHED, PATH_PROMPT, PATH_TEXT, TokenGate


def test_the_gate_is_a_softmax_over_paths_at_every_token_and_mixes_their_states():
    torch.manual_seed(0)
    paths = [PATH_TEXT, PATH_PROMPT, PATH_MATCHED]
    gate = TokenGate(hidden=4, paths=paths)
    states = {p: torch.randn(2, 5, 4) for p in paths}
    fused, gates = gate(states)
    assert fused.shape == (2, 5, 4) and gates.shape == (2, 5, 3)
    assert torch.allclose(gates.sum(-1), torch.ones(2, 5)) and (gates > 0).all()
    mixed = sum(gates[..., i:i + 1] * states[p] for i, p in enumerate(paths))
    assert torch.allclose(fused, mixed, atol=1e-6)
    assert not torch.allclose(gates[0, 0], gates[0, 1])  # per token: each token's own states decide


def test_a_path_whose_score_dominates_takes_the_token():
    gate = TokenGate(hidden=3, paths=[PATH_TEXT, PATH_PROMPT])
    with torch.no_grad():
        for name, bias in ((PATH_TEXT, 0.0), (PATH_PROMPT, 50.0)):
            gate.scores[name].weight.zero_()
            gate.scores[name].bias.fill_(bias)
    states = {PATH_TEXT: torch.zeros(1, 2, 3), PATH_PROMPT: torch.ones(1, 2, 3)}
    fused, gates = gate(states)
    assert torch.allclose(fused, torch.ones(1, 2, 3)) and torch.allclose(gates[..., 1], torch.ones(1, 2))
