"""Linear-chain CRF over words with BIO constraints (pytorch-crf underneath).

Forbidden transitions (``I-X`` after ``O`` or after another type, ``I-X`` at the start) are fixed to a
large negative score in training and decoding alike, so the model learns under the constraint it is
decoded with (AllenNLP CrfTagger style) and weight decay can never wear the constraint away.
"""

from __future__ import annotations

import contextlib
import logging
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

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood per sequence; rows with no word in the batch count zero."""
        mask, rows = _crf_mask(mask)
        tags = self.repair(tags, mask)
        with self._masked_once():
            llh = self(emissions, tags, mask=mask, reduction="none")
        if not rows.any():
            return emissions.sum() * 0.0
        return -(llh * rows).sum() / rows.sum()

    def viterbi(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """Best valid path per row, cut to that row's words (empty for a row with none)."""
        crf_mask, rows = _crf_mask(mask)
        with self._masked_once():
            paths = self.decode(emissions, mask=crf_mask)
        return [path if keep else [] for path, keep in zip(paths, rows.tolist())]


def _crf_mask(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """torchcrf needs mask[:, 0] on; a tweet whose every word was cut by max_seq gets a dummy first
    position, and is left out of the loss and the decoding (``rows`` marks the real ones)."""
    mask = mask.bool()
    rows = mask[:, 0].clone()
    if not rows.all():
        mask = mask.clone()
        mask[:, 0] = True
    return mask, rows
