"""Raw tweet text -> tokens, as the Twitter NER datasets tokenise them (for tagging new tweets).

NLTK's ``TweetTokenizer`` keeps URLs, @mentions, #hashtags and emoticons whole; on top of it the
English possessive clitic is split off (``NASA's`` -> ``NASA 's``), as in both Twitter datasets.
Tokens of the result feed the noun-phrase stage (:func:`comipn_prep.nps.extract.extract_tweet_nps`) unchanged.
"""

from __future__ import annotations

import re
from functools import lru_cache

_POSSESSIVE_RE = re.compile(r"^(?P<word>\w.*?)(?P<clitic>['’][sS])$")


@lru_cache(maxsize=1)
def _tokenizer():
    from nltk.tokenize import TweetTokenizer

    # preserve_case: case is a strong NER cue; reduce_len / strip_handles would change the words.
    return TweetTokenizer(preserve_case=True, reduce_len=False, strip_handles=False)


def tokenize_tweet(text: str) -> list[str]:
    """The tokens of one raw tweet (no network, no model data needed)."""
    tokens = []
    for token in _tokenizer().tokenize(text):
        m = _POSSESSIVE_RE.match(token)
        if m and not token.startswith(("@", "#", "http")):
            tokens += [m.group("word"), m.group("clitic")]
        else:
            tokens.append(token)
    return tokens
