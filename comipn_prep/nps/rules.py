"""Tweet-aware clean-up of a chunker's noun phrases (any backend: TextBlob, spaCy, NLTK).

A newspaper chunker reads tweet debris as words: ``RT @jack`` becomes one NP and a URL opens an NP that
runs into the next words. The rules here, in order:

1. cut every chunk at debris (URLs, ``RT``, symbols, emoji, blanks, a lone ``#`` / ``@``), at
   ``@user`` handles, at coordinators ("A and B" -> "A", "B"), at pronouns and determiners inside it
   ("pilot a Space Shuttle") and between two hashtags;
2. trim leading determiners / pronouns / conjunctions and trailing function words (keeps NPs short),
   except a capitalised article that opens a name ("The Walking Dead"); drop what has no content left;
3. add runs of capitalised words the tagger missed (entities are often Title Case or ALL CAPS and get
   tagged JJ / VB / RB), bridging name connectors ("Game of Thrones", "J . K . Rowling",
   "Spider - Man", "New Orleans # Saints") and a number right after a name ("iOS 8"); merge them with
   the chunks they touch; likewise a short quoted stretch that opens with a capitalised word (a title:
   "' Beauty and the Beast '");
4. every #hashtag and @mention (or the word after a lone ``#`` / ``@``) not already inside a phrase is
   a phrase of its own.

Spans are ``(start, end)`` token indices, end exclusive; the result is sorted and non-overlapping, and
never starts or ends with a symbol.
"""

from __future__ import annotations

from .normalise import BLANK, HASHTAG, MARK, MENTION, RT, SYMBOL, URL, WORD

Span = tuple[int, int]

# Tokens that end a chunk: nothing of them may be inside an NP.
_BARRIER_KINDS = frozenset({URL, RT, SYMBOL, BLANK, MARK})
COORDINATORS = frozenset({"and", "&", "&amp;", "&amp", "or", "n", "nor", "+", "vs", "vs.", "versus", "AND",
                          "OR", "And", "Or"})
# Penn tags a phrase should not start with (after rule 1): determiners, pronouns, conjunctions, ...
_LEADING_TAGS = frozenset({"DT", "PDT", "PRP", "PRP$", "WDT", "WP", "WP$", "EX", "CC", "POS", "IN", "TO",
                           "UH", "RB", "MD"})
# Inside a chunk these open a new phrase: "the US its power", "pilot a Space Shuttle".
_OPENER_TAGS = frozenset({"PRP", "PRP$", "WP", "WP$", "DT", "PDT", "WDT"})
_TRAILING_TAGS = frozenset({"DT", "PDT", "CC", "POS", "IN", "TO", "PRP$", "WDT", "WP"})
# A phrase made only of these carries no referent worth grounding ("it", "this", "me").
_EMPTY_TAGS = _LEADING_TAGS | {"CD", ".", ",", ":", "SYM", "``", "''", "-LRB-", "-RRB-", "(", ")", "$", "#"}
# Lower-case words that may sit inside a capitalised name when a capitalised word follows them.
NAME_CONNECTORS = frozenset({"of", "the", "de", "del", "della", "da", "das", "do", "dos", "du", "van", "von",
                             "der", "den", "la", "le", "les", "di", "al", "el", "bin", "y",
                             "a", "-", "'", "’", "'s", "’s", "s", "&", "&amp;", "for", "from"})
# "." joins a name only after an initial or a title / abbreviation ("J . K . Rowling", "St . Sabina").
ABBREVIATIONS = frozenset("""St Dr Mr Mrs Ms Jr Sr Gov Sen Rep Gen Lt Col Sgt Capt Prof Rev Mt Ft Pt Ave
Inc Co Corp Ltd Bros No Vol Pres Sec Fr""".split())
# Capitalised function words that do not open a name on their own ("In", "At", "My").
FUNCTION_WORDS = frozenset("""a an the this that these those my your his her its our their i you he she it
we they me him us them in on at for from with by to of and or but is are was were be been am can
just so if as via not no yes what who how why when where which there here rt all up out about after
before do does did has have had get got new""".split())
_NAME_OPENERS = frozenset({"The", "THE", "A", "An"})
MAX_CONNECTORS = 2  # consecutive connector tokens allowed inside a name ("of the")


def is_capitalised(token: str) -> bool:
    """A word with an upper-case letter that starts with a letter or digit ("Zimmerman", "iOS", "NBA")."""
    # token != token.lower(): "has an upper-case letter", in C rather than a Python loop.
    return token[:1].isalnum() and token != token.lower()


def _is_initial(token: str) -> bool:
    return (len(token) == 1 and token.isupper()) or token in ABBREVIATIONS


def _is_number(token: str) -> bool:
    return token[:1].isdigit()


def is_function_word(token: str) -> bool:
    """A function word in any casing but ALL CAPS ("US", "IT", "UP" are names; "I" and "A" are not)."""
    if len(token) > 1 and token.isupper():
        return False
    return token.lower() in FUNCTION_WORDS


def is_name_word(token: str) -> bool:
    """Capitalised and not a function word: "Philly" (tagged RB) or "Will" in "Will Smith" stay."""
    return is_capitalised(token) and not is_function_word(token)


class _Flags:
    """Per-token facts of one tweet, computed once (the rules look at each token several times)."""

    __slots__ = ("tokens", "kinds", "tags", "caps", "names")

    def __init__(self, tokens: list[str], kinds: list[str], tags: list[str]):
        self.tokens, self.kinds, self.tags = tokens, kinds, tags
        caps = []
        for token, kind in zip(tokens, kinds):
            if kind == WORD:
                caps.append(is_capitalised(token))
            elif kind == HASHTAG or (kind == MENTION and token[:1] not in "@＠"):
                # "#Bronx River"; "@ Washington Capitals" (Twitter-2017 splits "@" from the name)
                caps.append(is_capitalised(token.lstrip("#＃")))
            else:
                caps.append(False)
        self.caps = caps
        self.names = [c and not is_function_word(t) for c, t in zip(caps, tokens)]


def _is_user_mention(token: str, kind: str) -> bool:
    # "@user" as one token: a handle, kept out of other phrases ("RT @jack" is no NP).
    return kind == MENTION and token[:1] in "@＠"


def split_at_barriers(tokens: list[str], kinds: list[str], spans: list[Span],
                      tags: list[str] | None = None) -> list[Span]:
    """Cut every span at debris, ``@user`` handles, coordinators, between two hashtags and (given tags)
    at pronouns and determiners inside it ("the US its power" -> "the US", "power"); drop the cut
    tokens (a capitalised "The" that opens a name comes back with the name's run)."""
    out: list[Span] = []
    for start, end in spans:
        piece = start
        for i in range(start, end):
            if i > piece and kinds[i] == HASHTAG and kinds[i - 1] == HASHTAG:
                out.append((piece, i))  # "#MyFest2015 #ttot": one phrase per hashtag
                piece = i
            if (kinds[i] in _BARRIER_KINDS or tokens[i] in COORDINATORS or _is_user_mention(tokens[i], kinds[i])
                    or (tags is not None and i > start and tags[i] in _OPENER_TAGS
                        and not is_name_word(tokens[i]))):
                if piece < i:
                    out.append((piece, i))
                piece = i + 1
        if piece < end:
            out.append((piece, end))
    return out


def _closing_letter(f: _Flags, i: int, start: int) -> bool:
    # A capital letter that ends a name: "Serie A", "Plan B" (but not "I").
    token = f.tokens[i]
    return i > start and len(token) == 1 and token.isupper() and token != "I" and f.caps[i - 1]


def _trim(f: _Flags, span: Span) -> Span | None:
    start, end = span
    tags, tokens = f.tags, f.tokens
    kinds = f.kinds
    while start < end and ((tags[start] in _LEADING_TAGS and not f.names[start]) or kinds[start] == SYMBOL):
        # "The Walking Dead", "A Series of ...": a capitalised article before a name opens it.
        if tokens[start] in _NAME_OPENERS and start + 1 < end and f.caps[start + 1]:
            break
        start += 1
    while end > start and ((tags[end - 1] in _TRAILING_TAGS and not f.names[end - 1]
                            and not _is_number(tokens[end - 1]) and not _closing_letter(f, end - 1, start))
                           or kinds[end - 1] == SYMBOL):
        end -= 1
    for i in range(start, end):
        if f.caps[i] or tags[i] not in _EMPTY_TAGS:
            return start, end
    return None  # nothing with content left ("it", "this", "2")


def trim(tokens: list[str], tags: list[str], span: Span, kinds: list[str] | None = None) -> Span | None:
    """Strip leading determiners / pronouns / conjunctions and trailing function words; None if nothing
    with content is left."""
    return _trim(_Flags(tokens, kinds or [WORD] * len(tokens), tags), span)


def _runs(f: _Flags) -> list[Span]:
    tokens, kinds, caps = f.tokens, f.kinds, f.caps
    n = len(tokens)
    alpha_words = shouting = 0
    for token, kind in zip(tokens, kinds):
        if kind == WORD and token[:1].isalpha():
            alpha_words += 1
            if len(token) > 1 and token.isupper():
                shouting += 1
    if alpha_words and shouting * 2 > alpha_words:
        return []
    runs: list[Span] = []
    i = 0
    while i < n:
        if not f.names[i]:
            i += 1
            continue
        start, end, j = i, i + 1, i + 1
        # A sentence's first word is capitalised anyway: unless tagged a proper noun it does not open
        # a name ("Photos of Tower Bridge").
        opener_is_common = (i == 0 or kinds[i - 1] not in (WORD, HASHTAG)) and kinds[i] == WORD \
            and tokens[i].istitle() and len(tokens[i]) > 1 and not f.tags[i].startswith("NNP")
        while j < n:
            if caps[j]:
                if kinds[j] == HASHTAG and kinds[j - 1] == HASHTAG:
                    break  # "#Riverdale #DogsTO": two tags, two phrases
                end = j = j + 1
                continue
            # Bridge up to MAX_CONNECTORS connectors when a capitalised word follows them.
            k = j
            while k < n and k - j < MAX_CONNECTORS and (
                    tokens[k] in NAME_CONNECTORS
                    or (tokens[k] == "." and _is_initial(tokens[k - 1]) and k + 1 < n and kinds[k + 1] == WORD)
                    or (kinds[k] == MARK and tokens[k] in "#＃" and kinds[k - 1] == WORD)):
                k += 1
            if j < k < n and caps[k]:
                j = k
                continue
            break
        if end < n and kinds[end] == WORD and _is_number(tokens[end]):
            end += 1  # "Festival 2015", "NHL 17"
        if opener_is_common and end > start + 1 and not caps[start + 1]:
            end = start + 1  # "Photos" | "of Tower Bridge": the connector is not part of a name here
        if start > 0 and tokens[start - 1] in _NAME_OPENERS:
            start -= 1  # "The Walking Dead", "A Series of Unfortunate Events"
        runs.append((start, end))
        i = end
    return runs


_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’", "”": "”", "’": "’", "``": "''"}
MAX_TITLE = 6  # tokens of a quoted title ("' Beauty and the Beast '")


def quoted_titles(f: _Flags) -> list[Span]:
    """Short quoted stretches that open with a capitalised word and hold no debris: titles of songs,
    films and shows ("Teardrops on My Guitar")."""
    tokens, kinds = f.tokens, f.kinds
    out: list[Span] = []
    n = len(tokens)
    i = 0
    while i < n:
        close = _QUOTES.get(tokens[i])
        if close is None or i + 1 >= n or not f.caps[i + 1]:
            i += 1
            continue
        j = i + 1
        while j < n and j - i - 1 <= MAX_TITLE and tokens[j] != close and kinds[j] in (WORD, SYMBOL) \
                and tokens[j] not in _QUOTES:
            j += 1
        if j < n and tokens[j] == close and 1 < j - i - 1 <= MAX_TITLE:
            out.append((i + 1, j))
            i = j + 1
        else:
            i += 1
    return out


def capitalised_runs(tokens: list[str], kinds: list[str], tags: list[str] | None = None) -> list[Span]:
    """Runs of capitalised words (hashtags included) that start with a name word, bridging name
    connectors and ending with an optional number. A sentence-initial word opens a run only when
    ``tags`` call it a proper noun (no tags: every capitalised word may). In a tweet written mostly in
    capitals, capitals say nothing: no run is returned then."""
    return _runs(_Flags(tokens, kinds, tags or ["NNP"] * len(tokens)))


def merge_overlapping(spans: list[Span]) -> list[Span]:
    """Union of spans that share a token."""
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def refine(tokens: list[str], kinds: list[str], tags: list[str], spans: list[Span]) -> list[Span]:
    """The chunker's spans made tweet-proof (see the module doc); sorted, non-overlapping."""
    f = _Flags(tokens, kinds, tags)
    pieces = []
    for span in split_at_barriers(tokens, kinds, spans, tags):
        trimmed = _trim(f, span)
        if trimmed is not None:
            pieces.append(trimmed)
    pieces.extend(_runs(f))
    pieces.extend(quoted_titles(f))
    out = []
    for span in merge_overlapping(pieces):
        trimmed = _trim(f, span)
        if trimmed is not None:
            out.append(trimmed)
    # Every hashtag and mention is a phrase: on its own unless a phrase already holds it.
    inside = [False] * len(tokens)
    for start, end in out:
        for i in range(start, end):
            inside[i] = True
    out.extend((i, i + 1) for i, kind in enumerate(kinds) if kind in (HASHTAG, MENTION) and not inside[i])
    out.sort()
    return out
