"""The BIO-constrained CRF: valid sequences only, gold paths with a stray I- still scoreable."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from comipn_model.network.crf import BIOCRF, FORBIDDEN, allowed_transitions, is_valid_bio
from comipn_prep.conll import bio_labels

LABELS = bio_labels()


def test_allowed_transitions_follow_bio():
    allowed, start = allowed_transitions(LABELS)
    idx = LABELS.index
    assert not allowed[idx("O"), idx("I-PER")]
    assert not allowed[idx("B-LOC"), idx("I-PER")]
    assert not allowed[idx("I-LOC"), idx("I-PER")]
    assert allowed[idx("B-PER"), idx("I-PER")] and allowed[idx("I-PER"), idx("I-PER")]
    assert allowed[idx("O"), idx("B-PER")] and allowed[idx("I-PER"), idx("O")]
    assert not start[idx("I-ORG")] and start[idx("B-ORG")] and start[idx("O")]


def test_is_valid_bio():
    assert is_valid_bio(["O", "B-PER", "I-PER", "O", "B-LOC"])
    assert not is_valid_bio(["I-PER"])
    assert not is_valid_bio(["B-PER", "I-LOC"])
    assert not is_valid_bio(["O", "I-MISC"])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(1, 4), width=st.integers(1, 12),
       scale=st.floats(0.1, 50.0))
def test_decoder_never_emits_invalid_bio(seed, batch, width, scale):
    gen = torch.Generator().manual_seed(seed)
    crf = BIOCRF(LABELS)
    with torch.no_grad():  # raw scores that favour forbidden moves: the mask must still win
        for name in ("transitions", "start_transitions", "end_transitions"):
            crf._parameters[name].copy_(torch.randn(crf._parameters[name].shape, generator=gen) * scale)
    emissions = torch.randn(batch, width, len(LABELS), generator=gen) * scale
    lengths = torch.randint(0, width + 1, (batch,), generator=gen)
    mask = torch.arange(width)[None, :] < lengths[:, None]
    paths = crf.viterbi(emissions, mask)
    for path, n in zip(paths, lengths.tolist()):
        assert len(path) == n
        assert is_valid_bio([LABELS[i] for i in path])


def test_forbidden_scores_stay_fixed_through_training():
    crf = BIOCRF(LABELS)
    opt = torch.optim.AdamW(crf.parameters(), lr=0.5, weight_decay=0.5)
    tags = torch.tensor([[LABELS.index("B-PER"), LABELS.index("I-PER"), 0]])
    for _ in range(5):
        opt.zero_grad()
        crf.nll(torch.randn(1, 3, len(LABELS)), tags, torch.ones(1, 3, dtype=torch.bool)).backward()
        opt.step()
    allowed, start = allowed_transitions(LABELS)
    assert torch.all(crf.transitions[~allowed] == FORBIDDEN)
    assert torch.all(crf.start_transitions[~start] == FORBIDDEN)
    assert torch.all(crf.transitions[allowed] > FORBIDDEN / 2)
    # the raw parameters are what the optimizer and the state dict see
    assert set(dict(crf.named_parameters())) == {"start_transitions", "end_transitions", "transitions"}


def test_gold_with_stray_i_tag_is_read_as_b_and_scores_normally():
    crf = BIOCRF(LABELS)
    emissions = torch.randn(1, 3, len(LABELS))
    mask = torch.ones(1, 3, dtype=torch.bool)
    stray = torch.tensor([[0, LABELS.index("I-ORG"), LABELS.index("I-ORG")]])  # O I-ORG I-ORG
    repaired = torch.tensor([[0, LABELS.index("B-ORG"), LABELS.index("I-ORG")]])
    assert torch.equal(crf.repair(stray, mask), repaired)
    assert torch.allclose(crf.nll(emissions, stray, mask), crf.nll(emissions, repaired, mask))
    assert crf.nll(emissions, stray, mask).item() < 100  # not the -1e4 of a forbidden path


def test_rows_without_words_are_left_out():
    crf = BIOCRF(LABELS)
    emissions = torch.randn(2, 3, len(LABELS))
    mask = torch.tensor([[True, True, False], [False, False, False]])
    tags = torch.zeros(2, 3, dtype=torch.long)
    assert crf.viterbi(emissions, mask)[1] == []
    only_first = crf.nll(emissions[:1], tags[:1], mask[:1])
    assert torch.allclose(crf.nll(emissions, tags, mask), only_first)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(1, 5), width=st.integers(1, 9))
def test_nll_and_its_gradients_equal_plain_torchcrf_on_the_masked_scores(seed, batch, width):
    """BIOCRF masks its scores once per call and scores the gold path without a time loop: the same
    likelihood and gradients as torchcrf's own code run on the masked scores."""
    from torchcrf import CRF

    gen = torch.Generator().manual_seed(seed)
    crf = BIOCRF(LABELS)
    with torch.no_grad():
        for name in ("transitions", "start_transitions", "end_transitions"):
            crf._parameters[name].copy_(torch.randn(crf._parameters[name].shape, generator=gen))
    plain = CRF(len(LABELS), batch_first=True)
    with torch.no_grad():
        plain.transitions.copy_(crf.transitions)
        plain.start_transitions.copy_(crf.start_transitions)
        plain.end_transitions.copy_(crf.end_transitions)
    emissions = torch.randn(batch, width, len(LABELS), generator=gen)
    lengths = torch.randint(1, width + 1, (batch,), generator=gen)
    mask = torch.arange(width)[None, :] < lengths[:, None]
    tags = crf.repair(torch.randint(0, len(LABELS), (batch, width), generator=gen), mask)
    ours_e, plain_e = emissions.clone().requires_grad_(), emissions.clone().requires_grad_()
    ours = crf.nll(ours_e, tags, mask)
    reference = -plain(plain_e, tags, mask=mask, reduction="mean")
    assert torch.allclose(ours, reference, atol=1e-4)
    ours.backward()
    reference.backward()
    assert torch.allclose(ours_e.grad, plain_e.grad, atol=1e-5)
    allowed, start = allowed_transitions(LABELS)

    def grad(p):  # a score no path used (one-word tweets: no transition) may have no gradient
        return torch.zeros_like(p) if p.grad is None else p.grad

    assert torch.allclose(grad(crf._parameters["transitions"]), grad(plain.transitions) * allowed, atol=1e-5)
    assert torch.allclose(grad(crf._parameters["start_transitions"]), grad(plain.start_transitions) * start,
                          atol=1e-5)
    assert torch.allclose(grad(crf._parameters["end_transitions"]), grad(plain.end_transitions), atol=1e-5)
    assert crf.viterbi(emissions, mask) == plain.decode(emissions, mask=mask)
