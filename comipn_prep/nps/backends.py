"""NP chunkers: TextBlob's bundled pattern tagger + chunker, spaCy ``noun_chunks``, NLTK ``pos_tag`` +
a RegexpParser grammar.

Each backend turns a batch of tweets (tagger-safe tokens, one word per original token) into, per tweet,
Penn POS tags and raw NP spans ``(start, end)``. The tweet-aware rules (:mod:`.rules`) run afterwards
and are the same for every backend. Loading never touches the network: a missing model or data set
raises :class:`BackendUnavailable` with the command that installs it.
"""

from __future__ import annotations

import importlib.metadata
import logging
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

logger = logging.getLogger(__name__)

Span = tuple[int, int]
BACKENDS = ("auto", "textblob", "spacy", "nltk")
DEFAULT_SPACY_MODEL = "en_core_web_sm"
NLTK_TAGGER_RESOURCE = "averaged_perceptron_tagger_eng"
# NP grammar for NLTK: an optional determiner / possessive, adjectives, participles and numbers, then
# nouns, optionally a possessive "'s" and more nouns; or a lone pronoun. Names joined by "of" ("Game of
# Thrones") are put together by the capitalised-run rule, for every backend.
NLTK_NP_GRAMMAR = r"""
NP: {<DT|PDT|PRP\$>?<CD|JJ.*|VBN|VBG>*<NN.*>+<POS>?<NN.*|CD>*}
    {<PRP>}
"""


class BackendUnavailable(ValueError):
    """The backend asked for cannot run here (missing package, model or data); says how to fix it."""


class Backend(Protocol):
    name: str
    version: str

    def analyse(self, sentences: list[list[str]]) -> list[tuple[list[str], list[Span]]]:
        """Per sentence: one Penn tag per token and the raw NP spans."""
        ...


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def spans_from_iob(chunks: list[str], label: str = "NP") -> list[Span]:
    """``B-NP`` / ``I-NP`` chunk tags to spans (an ``I-NP`` after something else opens a span)."""
    spans: list[Span] = []
    start = None
    b_tag, i_tag = f"B-{label}", f"I-{label}"
    for i, chunk in enumerate(chunks):
        if start is not None and chunk != i_tag:
            spans.append((start, i))
            start = None
        if chunk == b_tag or (chunk == i_tag and start is None):
            start = i
    if start is not None:
        spans.append((start, len(chunks)))
    return spans


# --- TextBlob ---------------------------------------------------------------------------------------


def _textblob_np_rule():
    from textblob import _text

    label, rule = _text.CHUNKS[0][0]  # the Germanic (English) rules; NP comes first
    assert label == "NP", "textblob's chunk rules changed order"
    return rule


def textblob_np_spans(tags: list[str], rule=None) -> list[Span]:
    """The NP chunks TextBlob's ``find_chunks`` finds for these tags, without its other chunk types.

    ``find_chunks`` applies its NP rule first (so no other chunk type takes an NP's tokens), skips
    conjunctions at a chunk's start, and moves an adverb that opens an NP out of it unless an adjective
    follows. This does exactly that on the tag string, skipping the VP / PP / ADJP / ADVP passes and the
    per-match quadratic separator counting that cost most of its time."""
    rule = rule or _textblob_np_rule()
    text = "".join(f"{tag}/" for tag in tags)
    bounds, pos = [], 0  # character offset where each token's tag starts
    for tag in tags:
        bounds.append(pos)
        pos += len(tag) + 1
    spans: list[Span] = []
    for m in rule.finditer(text):
        # A match may start inside a tag ("which/WDT" matches from "DT"): that token opens it.
        j = bisect_right(bounds, m.start()) - 1
        end = j + m.group(0).count("/")
        while j < end and tags[j] in ("CC", "CJ", "KON", "Conj(neven)"):
            j += 1  # "A conjunction can not be start of a chunk"
        if j >= end:
            continue
        # "Perhaps" (ADVP) + "you" (NP); find_chunks repeats this over a run of adverbs.
        while j < end - 1 and tags[j].startswith("RB") and not tags[j + 1].startswith("JJ"):
            j += 1
        spans.append((j, end))
    return spans



@dataclass
class TextBlobBackend:
    """TextBlob's bundled pattern tagger (lexicon + suffix rules) and its regex chunker; no download.

    The tagger and chunker functions are called on token lists directly: no string is built and
    re-split, so there is no ``&slash;`` escaping and exactly one output word per token."""

    name: str = "textblob"
    version: str = ""

    def __post_init__(self):
        try:
            from textblob import _text
            from textblob.en import parser
        except ImportError as err:  # pragma: no cover - textblob is a dependency
            raise BackendUnavailable(f"textblob is not installed ({err}): pip install textblob") from None
        self.version = _version("textblob")
        self._find_tags = _text.find_tags
        self._np_rule = _textblob_np_rule()
        # A plain dict copy of the (lazily loaded) lexicon: the tagger's many .get calls then run in C.
        self._lexicon = dict(parser.lexicon.items())
        self._default = parser.default

    def analyse(self, sentences: list[list[str]]) -> list[tuple[list[str], list[Span]]]:
        out = []
        for words in sentences:
            if not words:
                out.append(([], []))
                continue
            tagged = self._find_tags(words, lexicon=self._lexicon, default=self._default, language="en")
            tags = [t[1] for t in tagged]
            out.append((tags, textblob_np_spans(tags, self._np_rule)))
        return out


# --- spaCy ------------------------------------------------------------------------------------------


def spacy_spans(doc) -> tuple[list[str], list[Span]]:
    """Penn tags and ``noun_chunks`` spans of a parsed (or hand-annotated) spaCy ``Doc``."""
    tags = [tok.tag_ or "NN" for tok in doc]
    return tags, [(chunk.start, chunk.end) for chunk in doc.noun_chunks]


@dataclass
class SpacyBackend:
    """``noun_chunks`` of an installed spaCy pipeline (a package name or a local folder); ``nlp`` may
    hand over a pipeline already built (tests build one from annotated Docs)."""

    model: str = DEFAULT_SPACY_MODEL
    nlp: object | None = None
    name: str = "spacy"
    version: str = ""

    def __post_init__(self):
        import spacy

        if self.nlp is None:
            self.nlp = _load_spacy(self.model)
        meta = getattr(self.nlp, "meta", {})
        self.version = f"spacy {spacy.__version__}, {meta.get('lang', 'en')}_{meta.get('name', '?')} " \
                       f"{meta.get('version', '?')}"

    def analyse(self, sentences: list[list[str]]) -> list[tuple[list[str], list[Span]]]:
        from spacy.tokens import Doc

        # Docs built from the tagger-safe words keep spaCy's tokens one-to-one with the tweet's.
        docs = [Doc(self.nlp.vocab, words=words) for words in sentences]
        try:
            return [spacy_spans(doc) for doc in self.nlp.pipe(docs, batch_size=256)]
        except ValueError as err:  # E029: noun_chunks needs a dependency parse
            raise BackendUnavailable(f"spaCy pipeline {self.model!r} gives no noun chunks ({err}); use a "
                                     f"pipeline with a parser, e.g. python -m spacy download "
                                     f"{DEFAULT_SPACY_MODEL}") from None


def _looks_like_path(model: str) -> bool:
    return "/" in model or "\\" in model or Path(model).exists()


def _load_spacy(model: str):
    import spacy

    try:
        # Named entities and lemmas are not needed for noun chunks: skip them for speed.
        return spacy.load(model, exclude=["ner", "lemmatizer", "textcat"])
    except (OSError, ValueError, ImportError) as err:
        if _looks_like_path(model):
            raise BackendUnavailable(
                f"no spaCy pipeline at {model} ({err}). --spacy-model takes an installed pipeline's name "
                f"or a local pipeline folder (one with config.cfg); install the default with: "
                f"python -m spacy download {DEFAULT_SPACY_MODEL}") from None
        raise BackendUnavailable(
            f"spaCy pipeline {model!r} is not installed. Install it with: python -m spacy download {model}"
            f"  (or pass a local pipeline folder with --spacy-model PATH)") from None


def spacy_model_available(model: str = DEFAULT_SPACY_MODEL) -> bool:
    try:
        import spacy.util
    except ImportError:  # pragma: no cover
        return False
    return spacy.util.is_package(model) or (Path(model).is_dir() and (Path(model) / "config.cfg").is_file())


# --- NLTK -------------------------------------------------------------------------------------------


def nltk_np_parser():
    """The RegexpParser over :data:`NLTK_NP_GRAMMAR` (needs no downloaded data)."""
    from nltk.chunk import RegexpParser

    return RegexpParser(NLTK_NP_GRAMMAR)


def nltk_chunk_spans(parser, tagged: list[tuple[str, str]]) -> list[Span]:
    """NP spans of one POS-tagged sentence under ``parser``."""
    if not tagged:
        return []
    tree = parser.parse(tagged)
    spans, i = [], 0
    for node in tree:
        if hasattr(node, "label"):
            n = len(node.leaves())
            if node.label() == "NP":
                spans.append((i, i + n))
            i += n
        else:
            i += 1
    return spans


def _nltk_find(resource: str, nltk_data: str | None) -> bool:
    import nltk.data

    if nltk_data and str(nltk_data) not in nltk.data.path:
        nltk.data.path.insert(0, str(nltk_data))
    try:
        nltk.data.find(f"taggers/{resource}/")
    except LookupError:
        return False
    return True


def nltk_tagger_available(nltk_data: str | None = None) -> bool:
    return _nltk_find(NLTK_TAGGER_RESOURCE, nltk_data)


@dataclass
class NltkBackend:
    """NLTK's averaged perceptron ``pos_tag`` and a RegexpParser NP grammar (needs the tagger data)."""

    nltk_data: str | None = None
    name: str = "nltk"
    version: str = ""

    def __post_init__(self):
        # nltk.data.find only looks at local folders; NLTK never downloads unless asked to.
        if not _nltk_find(NLTK_TAGGER_RESOURCE, self.nltk_data):
            raise BackendUnavailable(
                f"NLTK tagger data {NLTK_TAGGER_RESOURCE!r} is not installed. Install it with: "
                f"python -m nltk.downloader {NLTK_TAGGER_RESOURCE}  (or point --nltk-data DIR / $NLTK_DATA "
                f"at a folder that holds taggers/{NLTK_TAGGER_RESOURCE}/)")
        from nltk.tag.perceptron import PerceptronTagger

        try:
            self._tagger = PerceptronTagger()
        except (OSError, ValueError) as err:
            raise BackendUnavailable(
                f"NLTK tagger data {NLTK_TAGGER_RESOURCE!r} is incomplete or unreadable ({err}). Reinstall "
                f"it with: python -m nltk.downloader {NLTK_TAGGER_RESOURCE}") from None
        self._parser = nltk_np_parser()
        self.version = _version("nltk")

    def analyse(self, sentences: list[list[str]]) -> list[tuple[list[str], list[Span]]]:
        out = []
        for words in sentences:
            tagged = self._tagger.tag(words) if words else []
            out.append(([t for _, t in tagged], nltk_chunk_spans(self._parser, tagged)))
        return out


# --- choice -----------------------------------------------------------------------------------------


def resolve_backend_name(name: str = "auto", spacy_model: str = DEFAULT_SPACY_MODEL,
                         nltk_data: str | None = None) -> str:
    """``auto`` -> spacy if the pipeline is installed, else nltk if its tagger data is, else textblob."""
    if name not in BACKENDS:
        raise ValueError(f"unknown NP backend {name!r}: use one of {', '.join(BACKENDS)}")
    if name != "auto":
        return name
    if spacy_model_available(spacy_model):
        chosen = "spacy"
    elif nltk_tagger_available(nltk_data):
        chosen = "nltk"
    else:
        chosen = "textblob"
    logger.info("backend auto: using %s (spaCy pipeline %s %s, NLTK tagger data %s)", chosen, spacy_model,
                "installed" if chosen == "spacy" else "not installed",
                "installed" if chosen == "nltk" else ("not checked" if chosen == "spacy" else "not installed"))
    return chosen


def load_backend(name: str = "auto", spacy_model: str = DEFAULT_SPACY_MODEL,
                 nltk_data: str | None = None) -> Backend:
    """Build a backend by name (``auto`` resolved first); raises :class:`BackendUnavailable`."""
    name = resolve_backend_name(name, spacy_model, nltk_data)
    if name == "spacy":
        return SpacyBackend(model=spacy_model)
    if name == "nltk":
        return NltkBackend(nltk_data=nltk_data)
    return TextBlobBackend()
