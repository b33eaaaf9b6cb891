"""A tagged tweet as a spaCy ``Doc``: its tokens as the Doc's tokens, ``doc.text`` the input as given, ``doc.ents`` set.

The Doc is built from the tagger's own tokens (their character offsets), not re-tokenised by spaCy, so
every entity falls on token boundaries; what lies between tokens is kept as spaCy keeps it (one space
as the previous token's trailing space, more whitespace as a whitespace token). The entities' scores
also go in ``doc.spans["comipn"]`` with ``attrs["scores"]``, the layout of spaCy's span categorizer.
"""

from __future__ import annotations

import re
from typing import Sequence

SPANS_KEY = "comipn"
_RUNS = re.compile(r"\s+|\S+")


def make_doc(nlp_or_vocab, text: str, offsets: Sequence[tuple[int, int]], entities: Sequence[dict]):
    """A ``Doc`` of ``text`` over the tokens at ``offsets``, with ``entities`` (``start``/``end`` character
    offsets, ``entity_group``, ``score``) as ``doc.ents``. ``nlp_or_vocab``: a pipeline (``spacy.blank("en")``
    needs no download) or its ``Vocab``."""
    from spacy.tokens import Doc

    vocab = getattr(nlp_or_vocab, "vocab", nlp_or_vocab)
    words: list[str] = []
    spaces: list[bool] = []

    def fill(chunk: str) -> None:  # text no token claims
        for run in _RUNS.findall(chunk):
            if run[0] == " " and words and not spaces[-1] and not words[-1].isspace():
                spaces[-1] = True
                run = run[1:]
            if run:
                words.append(run)
                spaces.append(False)

    at = 0
    for start, end in offsets:
        fill(text[at:start])
        if end > start:  # a token that matched no character has no place in the Doc
            words.append(text[start:end])
            spaces.append(False)
        at = max(at, end)
    fill(text[at:])
    doc = Doc(vocab, words=words, spaces=spaces)
    spans = []
    for entity in entities:
        span = doc.char_span(entity["start"], entity["end"], label=entity["entity_group"])
        if span is not None:  # None only for an entity of empty tokens
            spans.append((span, entity.get("score")))
    doc.ents = [span for span, _ in spans]
    doc.spans[SPANS_KEY] = [span for span, _ in spans]
    doc.spans[SPANS_KEY].attrs["scores"] = [score for _, score in spans]
    return doc
