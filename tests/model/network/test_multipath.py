"""The token gates of interactive multi-path encoding (comipn_model.network.multipath): softmax, zero-start tanh,
and the original code's sigmoid-then-softmax."""

from __future__ import annotations

import pytest
import torch

from comipn_model.network.multipath import (PATH_MATCHED, PATH_PROMPT, PATH_TEXT, SquashedSoftmaxGate, TokenGate,
                                            ZeroStartGate, make_gate)


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


def test_the_zero_start_gate_starts_as_the_text_path_and_opens_where_its_score_grows():
    torch.manual_seed(0)
    paths = [PATH_TEXT, PATH_PROMPT, PATH_MATCHED]
    gate = ZeroStartGate(hidden=4, paths=paths)
    states = {p: torch.randn(2, 5, 4, requires_grad=True) for p in paths}
    fused, gates = gate(states)
    assert torch.equal(fused, states[PATH_TEXT]) and gates.shape == (2, 5, 3)
    assert torch.equal(gates[..., 0], torch.ones(2, 5)) and torch.equal(gates[..., 1:], torch.zeros(2, 5, 2))
    fused.sum().backward()
    # Closed at the start: the visual paths get no gradient yet, their gates' scores do.
    assert torch.equal(states[PATH_PROMPT].grad, torch.zeros(2, 5, 4))
    assert all(gate.scores[p].weight.grad.abs().sum() > 0 for p in paths[1:])
    with torch.no_grad():
        gate.scores[PATH_PROMPT].bias.fill_(50.0)  # tanh -> 1: the prompt path replaces the text path
    fused, _ = gate({p: s.detach() for p, s in states.items()})
    assert torch.allclose(fused, states[PATH_PROMPT].detach(), atol=1e-6)


def test_the_gate_is_chosen_by_name():
    assert isinstance(make_gate("softmax", 4, [PATH_TEXT, PATH_PROMPT]), TokenGate)
    assert isinstance(make_gate("tanh", 4, [PATH_TEXT, PATH_PROMPT]), ZeroStartGate)
    assert isinstance(make_gate("sigmoid-softmax", 4, [PATH_TEXT, PATH_PROMPT]), SquashedSoftmaxGate)
    with pytest.raises(ValueError, match="softmax, tanh, sigmoid-softmax"):
        make_gate("sigmoid", 4, [PATH_TEXT, PATH_PROMPT])
    with pytest.raises(ValueError, match="text path first"):
        ZeroStartGate(4, [PATH_PROMPT, PATH_TEXT])


def test_a_config_saved_before_the_choice_loads_with_the_softmax_gate_and_a_wrong_name_fails():
    from comipn_model.network.config import CoMIPNConfig

    older = CoMIPNConfig().to_dict()
    del older["path_gate"]
    assert CoMIPNConfig.from_dict(older).path_gate == "softmax"
    assert CoMIPNConfig.from_dict(CoMIPNConfig(path_gate="tanh").to_dict()).path_gate == "tanh"
    with pytest.raises(ValueError, match="path_gate must be one of softmax, tanh, sigmoid-softmax"):
        CoMIPNConfig(path_gate="zero")


def test_the_original_gate_shares_one_score_and_never_closes_a_path():
    paths = [PATH_TEXT, PATH_PROMPT, PATH_MATCHED]
    gate = SquashedSoftmaxGate(hidden=3, paths=paths)
    with torch.no_grad():  # a score that saturates the sigmoid: +50 on the prompt path, -50 on the others
        gate.score.weight.copy_(torch.tensor([[1.0, 0.0, 0.0]]))
        gate.score.bias.zero_()
    states = {PATH_TEXT: torch.full((1, 2, 3), -50.0), PATH_PROMPT: torch.full((1, 2, 3), 50.0),
              PATH_MATCHED: torch.full((1, 2, 3), -50.0)}
    with torch.no_grad():
        fused, gates = gate(states)
    e = torch.e
    # sigmoid gives 1 / 0 / 0, the softmax of that e / 1 / 1 over (e + 2): the most a path can get...
    assert torch.allclose(gates[0, 0], torch.tensor([1 / (e + 2), e / (e + 2), 1 / (e + 2)]), atol=1e-6)
    assert 0.21 < float(gates.min()) and float(gates.max()) < 0.58  # ...and the least
    assert torch.allclose(fused, sum(gates[..., i:i + 1] * states[p] for i, p in enumerate(paths)), atol=1e-5)
    assert sum(p.numel() for p in gate.parameters()) == 3 + 1  # one scorer for every path
