"""The BIO-constrained CRF: valid sequences only, gold paths with a stray I- still scoreable."""

from __future__ import annotations

import pytest
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


@pytest.mark.parametrize("width", [1, 2, 33, 64, 70])
def test_tree_normalizer_equals_torchcrfs_time_loop(width):
    """log Z as a tree of log-semiring matrix products: torchcrf's loop over time steps gives the same
    value and gradients, masked rows (steps past a row's end are the identity) and long rows included."""
    from torchcrf import CRF

    gen = torch.Generator().manual_seed(width)
    crf = BIOCRF(LABELS)
    with torch.no_grad():
        for name in ("transitions", "start_transitions", "end_transitions"):
            crf._parameters[name].copy_(3 * torch.randn(crf._parameters[name].shape, generator=gen))
    lengths = torch.tensor([width, 1, max(1, width // 2), max(1, width - 3)])
    mask = (torch.arange(width)[:, None] < lengths[None, :])  # time first
    emissions = 3 * torch.randn(width, 4, len(LABELS), generator=gen, dtype=torch.float64)
    ours_e, loop_e = emissions.clone().requires_grad_(), emissions.clone().requires_grad_()
    with crf._masked_once():
        ours = crf._compute_normalizer(ours_e, mask)
        loop = CRF._compute_normalizer(crf, loop_e, mask)
    assert torch.allclose(ours, loop, atol=1e-9, rtol=0)
    ours.sum().backward(retain_graph=True)  # both read the one masked transition matrix
    loop.sum().backward()
    assert torch.allclose(ours_e.grad, loop_e.grad, atol=1e-9, rtol=0)


# -- marginals and span probabilities, against enumerating every path ----------------------------------

SMALL = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]  # 5 labels: 5**5 paths for 5 words


def _random_crf(labels, gen, scale=1.0) -> BIOCRF:
    crf = BIOCRF(labels)
    with torch.no_grad():
        for name in ("transitions", "start_transitions", "end_transitions"):
            crf._parameters[name].copy_(torch.randn(crf._parameters[name].shape, generator=gen) * scale)
    return crf


def _path_probs(crf: BIOCRF, emissions: torch.Tensor, length: int) -> dict[tuple[int, ...], float]:
    """Every path over one row's first ``length`` words with its probability, by enumeration (fp64)."""
    import itertools

    start, trans, end = (t.detach().double() for t in (crf.start_transitions, crf.transitions, crf.end_transitions))
    em = emissions.double()
    scores = {}
    for path in itertools.product(range(len(crf.labels)), repeat=length):
        s = start[path[0]] + em[0, path[0]] + end[path[-1]]
        for t in range(1, length):
            s = s + trans[path[t - 1], path[t]] + em[t, path[t]]
        scores[path] = s
    log_z = torch.logsumexp(torch.stack(list(scores.values())), 0)
    return {p: float((s - log_z).exp()) for p, s in scores.items()}


def _is_exact_span(crf: BIOCRF, path, first: int, stop: int, kind: str) -> bool:
    labels = [crf.labels[i] for i in path]
    return (labels[first] == f"B-{kind}" and all(lab == f"I-{kind}" for lab in labels[first + 1:stop])
            and (stop == len(labels) or labels[stop] != f"I-{kind}"))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.3, 3.0))
def test_marginals_and_span_probabilities_equal_brute_force(seed, scale):
    gen = torch.Generator().manual_seed(seed)
    crf = _random_crf(SMALL, gen, scale)
    lengths = [5, 3, 1, 0]  # padding, a one-word row and a row with no word
    emissions = (torch.randn(len(lengths), 5, len(SMALL), generator=gen) * scale).double()
    mask = torch.arange(5)[None, :] < torch.tensor(lengths)[:, None]
    tables = crf.forward_backward(emissions, mask)
    marginals = crf.marginals(emissions, mask, tables)
    spans = [(b, i, j, kind) for b, n in enumerate(lengths) for i in range(n) for j in range(i + 1, n + 1)
             for kind in ("PER", "LOC")]
    logp = crf.span_log_probs(emissions, mask, spans, tables)
    every = {b: _path_probs(crf, emissions[b], n) for b, n in enumerate(lengths) if n}
    for b, n in enumerate(lengths):
        if n == 0:
            assert torch.all(marginals[b] == 0)
            continue
        paths = every[b]
        want = torch.zeros(n, len(SMALL), dtype=torch.float64)
        for path, p in paths.items():
            want[torch.arange(n), torch.tensor(path)] += p
        assert torch.allclose(marginals[b, :n], want, atol=1e-5)
        assert torch.allclose(marginals[b, :n].sum(1), torch.ones(n, dtype=torch.float64), atol=1e-6)
        assert torch.all(marginals[b, n:] == 0)
    for (b, i, j, kind), got in zip(spans, logp.exp().tolist()):
        want = sum(p for path, p in every[b].items()
                   if _is_exact_span(crf, path, i, j, kind))
        assert abs(got - want) < 1e-5, (b, i, j, kind, got, want)
        assert 0 < got <= 1 + 1e-9


def test_fp32_gives_the_same_as_fp64():
    gen = torch.Generator().manual_seed(3)
    crf = _random_crf(LABELS, gen, 2.0)
    emissions = torch.randn(3, 7, len(LABELS), generator=gen) * 2
    mask = torch.arange(7)[None, :] < torch.tensor([7, 4, 2])[:, None]
    spans = [(0, 1, 3, "PER"), (1, 0, 1, "LOC"), (2, 1, 2, "MISC")]
    got = crf.span_log_probs(emissions, mask, spans)
    want = crf.span_log_probs(emissions.double(), mask, spans)
    assert got.dtype == torch.float32 and torch.allclose(got.double(), want, atol=1e-4)
    assert torch.allclose(crf.marginals(emissions, mask).sum(2)[mask], torch.ones(int(mask.sum())), atol=1e-5)


def test_the_decoded_entities_score_highest_where_the_answer_is_known():
    """Words 1-2 are clearly a PER and word 4 a LOC: those spans, and no other, score near 1, above every
    other span of any type; the B- marginal of a span that runs on is no span probability."""
    crf = BIOCRF(SMALL)
    with torch.no_grad():
        for p in crf.parameters():
            p.zero_()
    idx = SMALL.index
    emissions = torch.zeros(1, 6, len(SMALL))
    for t, label in enumerate(["O", "B-PER", "I-PER", "O", "B-LOC", "O"]):
        emissions[0, t, idx(label)] = 6.0
    mask = torch.ones(1, 6, dtype=torch.bool)
    path = crf.viterbi(emissions, mask)[0]
    from comipn_prep.conll import entity_spans

    decoded = {(s, e, t) for t, s, e in entity_spans([SMALL[i] for i in path])}
    assert decoded == {(1, 3, "PER"), (4, 5, "LOC")}
    spans = [(0, i, j, kind) for i in range(6) for j in range(i + 1, 7) for kind in ("PER", "LOC")]
    probs = dict(zip([(i, j, k) for _, i, j, k in spans], crf.span_log_probs(emissions, mask, spans).exp().tolist()))
    ranked = sorted(probs, key=probs.get, reverse=True)
    assert set(ranked[:2]) == decoded
    assert all(probs[s] > 0.9 for s in decoded) and all(probs[s] < 0.1 for s in ranked[2:])
    assert all(0 < p <= 1 for p in probs.values())
    # B-PER at word 1 is as likely as ever, but "word 1 alone is a PER" is not
    marginal = crf.marginals(emissions, mask)[0, 1, idx("B-PER")].item()
    assert marginal > 0.9 and probs[(1, 2, "PER")] < 0.05


def test_span_arguments_are_checked():
    crf = BIOCRF(SMALL)
    emissions = torch.zeros(1, 3, len(SMALL))
    mask = torch.tensor([[True, True, False]])
    with pytest.raises(ValueError, match="within its row"):
        crf.span_log_probs(emissions, mask, [(0, 1, 3, "PER")])
    with pytest.raises(ValueError, match="no B-ORG"):
        crf.span_log_probs(emissions, mask, [(0, 0, 1, "ORG")])
    assert crf.span_log_probs(emissions, mask, []).numel() == 0
