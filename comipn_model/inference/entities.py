"""Entities in the shape NER tools give them: type, span probability, and the exact slice of the input text.

Each entity is a dict with the keys of the Hugging Face token-classification pipeline (aggregated):
``entity_group`` (the type), ``score`` (the CRF's probability that exactly this span is one entity of
this type, or None when scores were not asked for), ``word`` (``text[start:end]``: the input as given)
and ``start`` / ``end`` (character offsets into the input string, end exclusive), beside
``token_start`` / ``token_end`` (token indices, end exclusive).

The tweet tokenizer does not keep the text as it is (NLTK's ``TweetTokenizer`` unescapes ``&amp;`` to
``&`` and drops runs of spaces), so the tokens are placed on the input's characters: in order, on the
text with its HTML references unescaped (each character mapped back to what it came from, so ``&``
stands on all of ``&amp;``), verbatim where the token is there as written, and otherwise by a
character-level alignment (``spacy_alignments``, tolerant of Unicode normalisation and case); what no
token claims up to the next space goes to the token before it, and a token that aligns nowhere takes
the unclaimed characters before its successor.
"""

from __future__ import annotations

import html
import re
from typing import Sequence

from comipn_prep.conll import entity_spans

Offsets = list[tuple[int, int]]


def joined(tokens: Sequence[str]) -> tuple[str, Offsets]:
    """Tokens given without a text: the text is the tokens joined by single spaces, and their offsets."""
    offsets, at = [], 0
    for token in tokens:
        offsets.append((at, at + len(token)))
        at += len(token) + 1
    return " ".join(tokens), offsets


_HTML_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")


def _unescaped(text: str) -> tuple[str, list[int], list[int]]:
    """``text`` with its HTML character references unescaped (as the tweet tokenizer does), and for
    each character of the result the span of ``text`` it came from."""
    plain: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    at = 0
    for m in _HTML_ENTITY.finditer(text):
        value = html.unescape(m.group())
        if value == m.group():  # not a reference Python knows: kept as written
            continue
        plain.append(text[at:m.start()])
        starts += range(at, m.start())
        ends += range(at + 1, m.start() + 1)
        plain.append(value)
        starts += [m.start()] * len(value)
        ends += [m.end()] * len(value)
        at = m.end()
    plain.append(text[at:])
    starts += range(at, len(text))
    ends += range(at + 1, len(text) + 1)
    return "".join(plain), starts, ends


def token_offsets(text: str, tokens: Sequence[str]) -> Offsets:
    """``(start, end)`` in ``text`` of each token, in order and never overlapping; a token that matches
    no character of the text gets the empty span where it would sit."""
    if not tokens:
        return []
    plain, starts, ends = _unescaped(text)
    spans: list[tuple[int, int] | None] = []
    cursor = 0
    for k, token in enumerate(tokens):
        while cursor < len(plain) and plain[cursor].isspace():
            cursor += 1
        if token and plain.startswith(token, cursor):
            spans.append((cursor, cursor + len(token)))
        else:
            spans.append(_aligned(tokens[k:], plain, cursor))
        if spans[-1] is not None:
            cursor = spans[-1][1]
    # back to the characters of the text as given
    placed = [None if s is None else (starts[s[0]], ends[s[1] - 1]) for s in spans]
    return _fill(text, placed)


def _aligned(tokens: Sequence[str], plain: str, cursor: int) -> tuple[int, int] | None:
    """Where ``tokens[0]``, which is not verbatim at ``cursor``, lies: a character-level alignment of the
    remaining tokens with the remaining text (``spacy_alignments``, tolerant of Unicode normalisation and
    case); None when none of its characters align."""
    from spacy_alignments import get_alignments

    to_chars, _ = get_alignments(list(tokens), list(plain[cursor:]))
    chars = to_chars[0]
    return (cursor + chars[0], cursor + chars[-1] + 1) if chars else None


def _fill(text: str, spans: list[tuple[int, int] | None]) -> Offsets:
    """Offsets for every token: a token placed by alignment reaches over the unclaimed non-space
    characters after it; an unplaced one takes the unclaimed non-space run before the next token."""
    next_start = [len(text)] * len(spans)
    upcoming = len(text)
    for k in range(len(spans) - 1, -1, -1):
        next_start[k] = upcoming
        if spans[k] is not None:
            upcoming = spans[k][0]
    out: Offsets = []
    prev_end = 0
    for k, span in enumerate(spans):
        limit = next_start[k]
        if span is None:
            begin = prev_end
            while begin < limit and text[begin].isspace():
                begin += 1
            span = (begin, begin)
        end = span[1]
        while end < limit and not text[end].isspace():
            end += 1
        out.append((span[0], end))
        prev_end = end
    return out


def entities_of(text: str, offsets: Offsets, tags: Sequence[str],
                scores: Sequence[float | None] | None = None) -> list[dict]:
    """The entities of BIO ``tags`` (conlleval's reading, :func:`comipn_prep.conll.entity_spans`), in
    order; ``scores``: one per entity, in that order (None: no scores, ``"score": None``)."""
    spans = entity_spans(tags)
    if scores is not None and len(scores) != len(spans):
        raise ValueError(f"{len(scores)} scores for {len(spans)} entities")
    out = []
    for k, (kind, first, stop) in enumerate(spans):
        start, end = offsets[first][0], offsets[stop - 1][1]
        out.append({"entity_group": kind, "score": None if scores is None else scores[k], "word": text[start:end],
                    "start": start, "end": end, "token_start": first, "token_end": stop})
    return out
