"""Linear-chain CRF over words with BIO constraints (pytorch-crf underneath), with exact marginals.

Forbidden transitions (``I-X`` after ``O`` or after another type, ``I-X`` at the start) are fixed to a
large negative score in training and decoding alike, so the model learns under the constraint it is
decoded with (AllenNLP CrfTagger style) and weight decay can never wear the constraint away.

pytorch-crf has no marginals: :meth:`BIOCRF.forward_backward` runs the forward and backward passes in
log space over the same masked scores, giving token marginals (:meth:`BIOCRF.marginals`) and the exact
probability that a span is one whole entity (:meth:`BIOCRF.span_log_probs`): ``exp(Z_span - Z)``, with
``Z_span`` the normaliser over the paths that tag ``B-X`` at its first word, ``I-X`` on the rest, and no
``I-X`` right after it. The B- marginal alone is no such probability: it counts paths that continue
the entity past the span or end it early.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from torch import nn
from torchcrf import CRF

logger = logging.getLogger(__name__)

FORBIDDEN = -10000.0


def _split(label: str) -> tuple[str, str | None]:
    if label == "O" or "-" not in label:
        return "O", None
    prefix, kind = label.split("-", 1)
    return prefix, kind


def allowed_transitions(labels: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(allowed[i, j], start_allowed[j])``: may label j follow label i / open a sequence."""
    n = len(labels)
    allowed = torch.ones(n, n, dtype=torch.bool)
    start = torch.ones(n, dtype=torch.bool)
    for j, to_label in enumerate(labels):
        to_prefix, to_type = _split(to_label)
        if to_prefix != "I":
            continue
        start[j] = False
        for i, from_label in enumerate(labels):
            from_prefix, from_type = _split(from_label)
            allowed[i, j] = from_prefix in ("B", "I") and from_type == to_type
    return allowed, start


def is_valid_bio(tags: Sequence[str]) -> bool:
    """True when no ``I-X`` follows ``O``, another type, or opens the sequence."""
    previous = "O"
    for tag in tags:
        prefix, kind = _split(tag)
        if prefix == "I":
            p_prefix, p_kind = _split(previous)
            if p_prefix == "O" or p_kind != kind:
                return False
        previous = tag
    return True


class BIOCRF(CRF):
    """``torchcrf.CRF`` (batch first) whose forbidden transitions are masked on every use.

    The raw parameters stay ``transitions`` / ``start_transitions`` in the state dict; reading the
    attribute returns the masked scores, which is what torchcrf's scoring and Viterbi code use.
    """

    def __init__(self, labels: Sequence[str]):
        self.labels = list(labels)
        super().__init__(len(self.labels), batch_first=True)
        allowed, start = allowed_transitions(self.labels)
        self.register_buffer("allowed", allowed, persistent=False)
        self.register_buffer("start_allowed", start, persistent=False)
        self._i_tags = torch.tensor([_split(t)[0] == "I" for t in self.labels])
        self._b_of = torch.tensor([self.labels.index(f"B-{_split(t)[1]}") if _split(t)[0] == "I"
                                   and f"B-{_split(t)[1]}" in self.labels else i
                                   for i, t in enumerate(self.labels)])

    # torchcrf's reset_parameters initialises through the attributes; aim it at the raw parameters.
    def reset_parameters(self) -> None:
        for name in ("start_transitions", "end_transitions", "transitions"):
            nn.init.uniform_(self._parameters[name], -0.1, 0.1)

    def _masked(self, name: str, allowed_name: str) -> torch.Tensor:
        fixed = self.__dict__.get("_fixed")
        if fixed is not None:
            return fixed[name]
        raw = self._parameters.get(name)
        if raw is None:  # during nn.Module registration: behave as "not set yet"
            raise AttributeError(name)
        allowed = self._buffers.get(allowed_name)
        if allowed is None:
            return raw
        return raw.masked_fill(~allowed, FORBIDDEN)

    @property
    def transitions(self) -> torch.Tensor:  # type: ignore[override]
        return self._masked("transitions", "allowed")

    @property
    def start_transitions(self) -> torch.Tensor:  # type: ignore[override]
        return self._masked("start_transitions", "start_allowed")

    @contextlib.contextmanager
    def _masked_once(self) -> Iterator[None]:
        """Inside, the masked scores are computed once and shared: torchcrf reads ``transitions`` at
        every time step, and each read would otherwise launch its own masking kernels (on a GPU the
        step is bound by kernel launches)."""
        self.__dict__["_fixed"] = None
        fixed = {"transitions": self.transitions, "start_transitions": self.start_transitions}
        self.__dict__["_fixed"] = fixed
        try:
            yield
        finally:
            self.__dict__["_fixed"] = None

    def _compute_score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The gold path's score, as torchcrf's, without its loop over time steps (time first:
        emissions ``(T, B, C)``, tags and mask ``(T, B)``; mask[0] all on)."""
        mask = mask.to(emissions.dtype)
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (T, B)
        moves = self.transitions[tags[:-1], tags[1:]]  # (T - 1, B)
        score = self.start_transitions[tags[0]] + emitted[0] + ((moves + emitted[1:]) * mask[1:]).sum(0)
        last = tags.gather(0, (mask.sum(0).long() - 1).unsqueeze(0)).squeeze(0)
        return score + self.end_transitions[last]

    def repair(self, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Gold sequences with ``I-X`` opening an entity (186 in Twitter-2015 train) read as ``B-X``:
        the same entities conlleval / seqeval count, and a path the constrained CRF can score."""
        tags = tags.clone()
        is_i = self._i_tags.to(tags.device)[tags]
        b_of = self._b_of.to(tags.device)[tags]
        allowed = self.allowed
        prev = torch.cat([torch.zeros_like(tags[:, :1]), tags[:, :-1]], dim=1)
        ok = allowed[prev, tags]
        ok[:, 0] = ~is_i[:, 0]
        bad = is_i & ~ok & mask
        # A repaired tag can make the next I- tag valid, never invalid; one pass suffices.
        return torch.where(bad, b_of, tags)

    def _compute_normalizer(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``log Z`` per row, as torchcrf's, without its loop over time steps (time first: emissions
        ``(T, B, C)``, mask ``(T, B)``). Each step is a ``(C, C)`` matrix of transition plus emission
        scores (a masked step: the identity), and their product in the log semiring is taken as a
        tree, ``log2 T`` levels of one batched log-sum-exp each: on a GPU a loop of ``T`` steps is
        ``T`` launches forward and more backward."""
        steps, batch, tags = emissions.shape
        dtype = emissions.dtype
        # A large finite "impossible": -inf would make log-sum-exp's gradient NaN where a whole
        # column is impossible (off the identity's diagonal).
        impossible = -1e30 if dtype in (torch.float32, torch.float64) else torch.finfo(dtype).min / 1024
        eye = torch.full((tags, tags), impossible, dtype=dtype, device=emissions.device)
        eye.fill_diagonal_(0.0)
        score = self.start_transitions + emissions[0]  # (B, C)
        if steps > 1:
            moves = self.transitions + emissions[1:].unsqueeze(2)  # (T - 1, B, C_from, C_to)
            moves = torch.where(mask[1:].bool()[:, :, None, None], moves, eye)
            count = steps - 1
            width = 1 << (count - 1).bit_length()  # the next power of two: every level halves exactly
            if width > count:
                moves = torch.cat([moves, eye.expand(width - count, batch, tags, tags)])
            while moves.shape[0] > 1:
                moves = torch.logsumexp(moves[0::2].unsqueeze(-1) + moves[1::2].unsqueeze(-3), dim=-2)
            score = torch.logsumexp(score.unsqueeze(-1) + moves[0], dim=1)
        return torch.logsumexp(score + self.end_transitions, dim=1)

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood per sequence; rows with no word in the batch count zero (a
        batch with none gives 0). No value is read back to the host (no device sync)."""
        mask, rows = _crf_mask(mask)
        tags = self.repair(tags, mask)
        with self._masked_once():
            # torchcrf's forward checks its mask on the host; ours is made valid by _crf_mask.
            em, tg, mk = emissions.transpose(0, 1), tags.transpose(0, 1), mask.transpose(0, 1)
            llh = self._compute_score(em, tg, mk) - self._compute_normalizer(em, mk)
        rows = rows.to(llh.dtype)
        return -(llh * rows).sum() / rows.sum().clamp(min=1)

    def viterbi(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """Best valid path per row, cut to that row's words (empty for a row with none)."""
        crf_mask, rows = _crf_mask(mask)
        with self._masked_once():
            paths = self.decode(emissions, mask=crf_mask)
        return [path if keep else [] for path, keep in zip(paths, rows.tolist())]

    # -- probabilities ------------------------------------------------------------------------------
    def _scores(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (self.start_transitions.to(dtype), self.transitions.to(dtype), self.end_transitions.to(dtype))

    @torch.no_grad()
    def forward_backward(self, emissions: torch.Tensor, mask: torch.Tensor) -> Tables:
        """Both tables of a batch (``emissions (B, T, C)``, ``mask (B, T)`` on for each row's words, a
        prefix), in at least fp32 (fp64 emissions stay fp64)."""
        crf_mask, rows = _crf_mask(mask)
        dtype = torch.promote_types(emissions.dtype, torch.float32)
        em = emissions.to(dtype)
        start, trans, end = self._scores(dtype)
        batch, width, _ = em.shape
        lengths = crf_mask.sum(1)
        alpha = torch.empty_like(em)
        alpha[:, 0] = start + em[:, 0]
        for t in range(1, width):  # past a row's end the values are never read
            alpha[:, t] = torch.logsumexp(alpha[:, t - 1, :, None] + trans, dim=1) + em[:, t]
        beta = torch.empty_like(em)
        beta[:, width - 1] = end
        last = (lengths - 1)[:, None]
        for t in range(width - 2, -1, -1):
            step = torch.logsumexp(trans + (em[:, t + 1] + beta[:, t + 1])[:, None, :], dim=2)
            beta[:, t] = torch.where(last <= t, end, step)
        final = alpha[torch.arange(batch, device=em.device), lengths - 1]
        log_z = torch.logsumexp(final + end, dim=1)
        return Tables(alpha, beta, log_z, em, lengths, rows)

    @torch.no_grad()
    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor, tables: Tables | None = None) -> torch.Tensor:
        """``P(label y at word t)``, ``(B, T, C)``: each word's row sums to 1; zero past a row's words."""
        tables = tables or self.forward_backward(emissions, mask)
        probs = (tables.alpha + tables.beta - tables.log_z[:, None, None]).exp()
        keep = torch.arange(probs.shape[1], device=probs.device)[None, :] < tables.lengths[:, None]
        return probs * (keep & tables.rows[:, None])[..., None]

    def _type_labels(self, kinds: Sequence[str]) -> tuple[list[int], list[int]]:
        """Per entity type, the index of its ``B-`` label and of its ``I-`` label (-1 when there is none)."""
        begin, inside = [], []
        for kind in kinds:
            if f"B-{kind}" not in self.labels:
                raise ValueError(f"entity type {kind!r} has no B-{kind} label (labels: {self.labels})")
            begin.append(self.labels.index(f"B-{kind}"))
            inside.append(self.labels.index(f"I-{kind}") if f"I-{kind}" in self.labels else -1)
        return begin, inside

    @torch.no_grad()
    def span_log_probs(self, emissions: torch.Tensor, mask: torch.Tensor,
                       spans: Sequence[tuple[int, int, int, str]], tables: Tables | None = None) -> torch.Tensor:
        """``log P(words start..end-1 of row b are exactly one entity of type X)`` for each span
        ``(b, start, end, X)`` (end exclusive), all spans at once.

        ``Z_span`` is read off the two tables rather than by a second forward pass: the paths it sums
        are free before the span (``alpha`` at ``start - 1``), fixed inside it (``B-X I-X ... I-X``), and
        free after it except that the next word is no ``I-X`` (``beta`` at ``end``)."""
        tables = tables or self.forward_backward(emissions, mask)
        em = tables.emissions
        if not spans:
            return em.new_zeros(0)
        device, dtype = em.device, em.dtype
        start_t, trans, end_t = self._scores(dtype)
        row, first, stop = (torch.tensor([s[i] for s in spans], device=device) for i in range(3))
        if bool(((stop <= first) | (first < 0) | (stop > tables.lengths[row])).any()):
            raise ValueError("a span must hold at least one word and lie within its row's words")
        begin_l, inside_l = self._type_labels([s[3] for s in spans])
        begin, inside = torch.tensor(begin_l, device=device), torch.tensor(inside_l, device=device)
        if bool(((stop - first > 1) & (inside < 0)).any()):
            raise ValueError("a span of more than one word needs its type's I- label")
        inside_c = inside.clamp(min=0)
        # left: the start transition, or every path up to the word before, into B-X
        before = tables.alpha[row, (first - 1).clamp(min=0)]  # (S, C)
        into = torch.logsumexp(before + trans[:, begin].T, dim=1)
        score = torch.where(first == 0, start_t[begin], into) + em[row, first, begin]
        # inside: B-X -> I-X -> ... -> I-X, emissions included
        width = int((stop - first).max())
        if width > 1:
            at = first[:, None] + torch.arange(1, width, device=device)[None, :]  # (S, width - 1)
            on = at < stop[:, None]
            emitted = em[row[:, None], at.clamp(max=em.shape[1] - 1), inside_c[:, None]]
            moves = torch.where(torch.arange(1, width, device=device)[None, :] == 1,
                                trans[begin, inside_c][:, None], trans[inside_c, inside_c][:, None])
            score = score + ((emitted + moves) * on).sum(1)
        # right: the end transition, or any next label but I-X, and every path after it
        last_label = torch.where(stop - first > 1, inside_c, begin)
        after = stop.clamp(max=em.shape[1] - 1)
        nxt = trans[last_label] + em[row, after] + tables.beta[row, after]  # (S, C)
        barred = torch.zeros_like(nxt, dtype=torch.bool)
        has_inside = inside >= 0
        barred[has_inside.nonzero().squeeze(1), inside[has_inside]] = True
        out = torch.logsumexp(nxt.masked_fill(barred, float("-inf")), dim=1)
        score = score + torch.where(stop == tables.lengths[row], end_t[last_label], out)
        return score - tables.log_z[row]


@dataclass
class Tables:
    """Forward / backward tables of a batch in log space: ``alpha[b, t, y]`` sums the scores of the paths
    over words ``0..t`` that end in ``y`` (its emission included), ``beta[b, t, y]`` those of the words
    after ``t`` given ``y`` at ``t`` (the end transition included); ``log_z[b]`` normalises row ``b``.
    ``lengths``: words per row (a row with none is given one dummy word; ``rows`` marks the real ones)."""

    alpha: torch.Tensor
    beta: torch.Tensor
    log_z: torch.Tensor
    emissions: torch.Tensor
    lengths: torch.Tensor
    rows: torch.Tensor


def _crf_mask(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """torchcrf needs mask[:, 0] on; a tweet whose every word was cut by max_seq gets a dummy first
    position, and is left out of the loss and the decoding (``rows`` marks the real ones)."""
    mask = mask.bool()
    rows = mask[:, 0].clone()
    # Always: asking whether any row needs it would read a value back from the device.
    mask = torch.cat([torch.ones_like(mask[:, :1]), mask[:, 1:]], dim=1)
    return mask, rows
