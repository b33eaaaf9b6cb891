"""Tweet debris: what each token is (word, URL, RT, @mention, #hashtag, symbol, blank) and the form the
POS taggers see.

Taggers get exactly one word per original token, so every phrase maps back to the original tokens by
index whatever the normalisation did.
"""

from __future__ import annotations

import re

# Token kinds. Only WORD tokens (and hashtag / mention words) can be part of a noun phrase.
WORD = "word"
URL = "url"
RT = "rt"
MENTION = "mention"  # "@user" as one token (Twitter-2015), or the word after a lone "@" (Twitter-2017)
HASHTAG = "hashtag"  # "#tag" as one token, or the word after a lone "#"
MARK = "mark"  # a lone "#" or "@" that opens the next token's hashtag / mention
SYMBOL = "symbol"  # punctuation, emoji, other symbols: no letter or digit at all
BLANK = "blank"  # empty or whitespace only (e.g. a lone '\xa0' token)

_URL_RE = re.compile(r"^(?:https?:|https?…|www\.|\S+\.(?:com|org|net|co|ly|gl|me)/)", re.IGNORECASE)
_HTML_ENTITY_RE = re.compile(r"^&(?:amp|lt|gt|quot|apos|#\d+);?$", re.IGNORECASE)
_WS_RE = re.compile(r"\s+")
RT_TOKENS = frozenset({"RT", "rt", "Rt"})
_ALNUM_RE = re.compile(r"[^\W_]")  # a letter or digit of any script


def _has_alnum(token: str) -> bool:
    return _ALNUM_RE.search(token) is not None


def token_kind(token: str) -> str:
    """The kind of one token seen on its own (a lone '#' / '@' is MARK; see :func:`token_kinds`)."""
    if token.isalnum():  # the common case, decided in C
        return RT if token in RT_TOKENS else WORD
    if not token or token.isspace():
        return BLANK
    if _URL_RE.match(token):
        return URL
    if token in ("#", "@", "＃", "＠"):
        return MARK
    if token[0] in "#＃" and _has_alnum(token):
        return HASHTAG
    if token[0] in "@＠" and _has_alnum(token):
        return MENTION
    if _HTML_ENTITY_RE.match(token) or not _has_alnum(token):
        return SYMBOL
    return WORD


def token_kinds(tokens: list[str]) -> list[str]:
    """Kinds of a tweet's tokens; a WORD right after a lone '#' / '@' is a hashtag / mention word."""
    kinds = [token_kind(t) for t in tokens]
    for i in range(1, len(kinds)):
        if kinds[i - 1] == MARK and kinds[i] == WORD:
            kinds[i] = HASHTAG if tokens[i - 1] in ("#", "＃") else MENTION
    return kinds


def tagger_token(token: str) -> str:
    """The form a POS tagger sees: never empty and never containing whitespace, so that a tagger which
    splits on spaces still returns exactly one word per token."""
    if token and _WS_RE.search(token) is None:
        return token  # the common case
    cleaned = _WS_RE.sub("_", token.strip()) if token else ""
    if not cleaned:
        return "_"
    return cleaned
