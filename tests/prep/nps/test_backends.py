"""The three NP backends, offline: TextBlob as shipped, spaCy on annotated Docs, NLTK's grammar on given
tags (and its tagger from a tiny local data folder); missing models fail fast with the install command."""

from __future__ import annotations

import json

import pytest

from comipn_prep.conll import read_conll
from comipn_prep.nps.backends import BackendUnavailable
from comipn_prep.nps.extract import extract_tweet_nps
from comipn_prep.nps import backends as B
from comipn_prep.nps.extract import extract_batch
from comipn_prep.nps.normalise import tagger_token

# --- TextBlob -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["twitter2015", "twitter2017"])
def test_textblob_np_spans_equal_find_chunks_on_real_tweets(twitter_data, dataset):
    from textblob import _text
    from textblob.en import parser

    tweets = read_conll(twitter_data / dataset / "valid.txt").tweets
    for tweet in tweets:
        words = [tagger_token(t) for t in tweet.tokens]
        tagged = _text.find_tags(words, lexicon=parser.lexicon, default=parser.default, language="en")
        expected = B.spans_from_iob([c[2] for c in _text.find_chunks([list(t) for t in tagged], language="en")])
        assert B.textblob_np_spans([t for _, t in tagged]) == expected, tweet.tokens


def test_textblob_backend_one_word_per_token():
    backend = B.TextBlobBackend()
    assert backend.name == "textblob" and backend.version
    words = ["A/B", "testing", "is", "fun", "for", "George", "Zimmerman", "&slash;"]
    [(tags, spans)] = backend.analyse([words])
    assert len(tags) == len(words)  # a "/" inside a token is no separator here
    assert (5, 8) in spans and (0, 2) in spans
    assert backend.analyse([[]]) == [([], [])]


def test_spans_from_iob():
    assert B.spans_from_iob(["B-NP", "I-NP", "O", "I-NP", "B-NP", "B-NP", "I-NP"]) == [(0, 2), (3, 4), (4, 5), (5, 7)]


# --- spaCy ----------------------------------------------------------------------------------------

WORDS = ["RT", "@jack", ":", "George", "Zimmerman", "visited", "the", "old", "Tower", "Bridge", "http://t.co/x"]
ANNOTATION = dict(
    tags=["NN", "NN", ":", "NNP", "NNP", "VBD", "DT", "JJ", "NNP", "NNP", "NN"],
    pos=["X", "PROPN", "PUNCT", "PROPN", "PROPN", "VERB", "DET", "ADJ", "PROPN", "PROPN", "X"],
    heads=[1, 5, 5, 4, 5, 5, 9, 9, 9, 5, 5],
    deps=["compound", "nsubj", "punct", "compound", "nsubj", "ROOT", "det", "amod", "compound", "dobj", "dep"],
)


def _annotated_pipeline():
    """A blank English pipeline whose one component sets given tags and a given parse, as a trained
    parser would: noun_chunks then run spaCy's real English syntax iterator."""
    import spacy
    from spacy.language import Language
    from spacy.tokens import Doc

    name = "comipn_test_annotate"
    if name not in Language.factories and not Language.has_factory(name):
        @Language.component(name)
        def annotate(doc):
            words = [t.text for t in doc]
            if words != WORDS:
                return doc
            return Doc(doc.vocab, words=words, **ANNOTATION)

    nlp = spacy.blank("en")
    nlp.add_pipe(name)
    return nlp


def test_spacy_noun_chunks_on_an_annotated_doc():
    import spacy
    from spacy.tokens import Doc

    doc = Doc(spacy.blank("en").vocab, words=WORDS, **ANNOTATION)
    tags, spans = B.spacy_spans(doc)
    assert tags == ANNOTATION["tags"]
    assert spans == [(0, 2), (3, 5), (6, 10)]  # "RT @jack" is one chunk: tweets fool the parser


def test_spacy_backend_with_tweet_rules():
    backend = B.SpacyBackend(nlp=_annotated_pipeline())
    assert backend.name == "spacy" and "spacy" in backend.version
    item = extract_tweet_nps(WORDS, backend=backend)
    assert [(n.start, n.end, n.text) for n in item.nps] == [
        (1, 2, "@jack"), (3, 5, "George Zimmerman"), (7, 10, "old Tower Bridge")]


def test_spacy_pipeline_without_parser_fails_clearly():
    import spacy

    backend = B.SpacyBackend(nlp=spacy.blank("en"))
    with pytest.raises(BackendUnavailable, match="no noun chunks"):
        backend.analyse([["George", "Zimmerman"]])


def test_spacy_missing_pipeline_names_the_install_command(monkeypatch):
    import spacy

    def offline_load(name, **kwargs):
        raise OSError(f"[E050] Can't find model '{name}'")

    monkeypatch.setattr(spacy, "load", offline_load)
    with pytest.raises(BackendUnavailable, match="python -m spacy download en_core_web_sm"):
        B.SpacyBackend(model="en_core_web_sm")
    with pytest.raises(BackendUnavailable, match="--spacy-model takes"):
        B.SpacyBackend(model="/no/such/pipeline")


def test_spacy_missing_for_real_if_not_installed(tmp_path):
    import spacy.util

    if spacy.util.is_package("en_core_web_sm"):
        pytest.skip("en_core_web_sm is installed here")  # not counted as a pass
    with pytest.raises(BackendUnavailable, match="python -m spacy download"):
        B.SpacyBackend()


# --- NLTK -----------------------------------------------------------------------------------------


def test_nltk_grammar_on_given_tags():
    parser = B.nltk_np_parser()
    tagged = [("RT", "NN"), ("@jack", "NN"), (":", ":"), ("the", "DT"), ("old", "JJ"), ("Tower", "NNP"),
              ("Bridge", "NNP"), ("is", "VBZ"), ("in", "IN"), ("London", "NNP"), ("'s", "POS"), ("heart", "NN"),
              ("and", "CC"), ("it", "PRP"), ("shines", "VBZ")]
    assert B.nltk_chunk_spans(parser, tagged) == [(0, 2), (3, 7), (9, 12), (13, 14)]
    assert B.nltk_chunk_spans(parser, []) == []


def _tiny_nltk_data(root):
    """A real (tiny) averaged-perceptron tagger in NLTK's data layout, trained here."""
    from nltk.tag.perceptron import PerceptronTagger

    sents = [[("The", "DT"), ("black", "JJ"), ("cat", "NN"), ("sat", "VBD"), ("on", "IN"), ("the", "DT"),
              ("mat", "NN")], [("George", "NNP"), ("Zimmerman", "NNP"), ("got", "VBD"), ("shot", "VBN")]] * 5
    tagger = PerceptronTagger(load=False)
    tagger.train(sents, nr_iter=3)
    loc = root / "taggers" / B.NLTK_TAGGER_RESOURCE
    loc.mkdir(parents=True)
    for param, name in zip(tagger.encode_json_obj(), tagger.param_files("eng")):
        (loc / name).write_text(json.dumps(param))
    return root


def test_nltk_backend_from_a_local_data_folder(tmp_path):
    backend = B.NltkBackend(nltk_data=str(_tiny_nltk_data(tmp_path)))
    [(tags, spans), empty] = backend.analyse([["The", "black", "cat", "sat", "on", "the", "mat"], []])
    assert tags == ["DT", "JJ", "NN", "VBD", "IN", "DT", "NN"] and spans == [(0, 3), (5, 7)]
    assert empty == ([], [])
    item = extract_batch(backend, [("1", ["RT", "@x", ":", "George", "Zimmerman", "got", "shot"])])[0]
    assert [n.text for n in item.nps][:2] == ["@x", "George Zimmerman"]


def test_nltk_missing_data_names_the_install_command_and_never_downloads(monkeypatch, tmp_path):
    import nltk
    import nltk.data

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    monkeypatch.setenv("NLTK_DATA", str(tmp_path))

    def no_download(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(nltk, "download", no_download)
    with pytest.raises(BackendUnavailable, match="python -m nltk.downloader averaged_perceptron_tagger_eng"):
        B.NltkBackend()
    (tmp_path / "taggers" / B.NLTK_TAGGER_RESOURCE).mkdir(parents=True)  # present but empty
    with pytest.raises(BackendUnavailable, match="incomplete"):
        B.NltkBackend()


# --- choice ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("spacy_ok, nltk_ok, expected", [
    (True, True, "spacy"), (False, True, "nltk"), (False, False, "textblob")])
def test_auto_prefers_spacy_then_nltk_then_textblob(monkeypatch, spacy_ok, nltk_ok, expected):
    monkeypatch.setattr(B, "spacy_model_available", lambda model=B.DEFAULT_SPACY_MODEL: spacy_ok)
    monkeypatch.setattr(B, "nltk_tagger_available", lambda nltk_data=None: nltk_ok)
    assert B.resolve_backend_name("auto") == expected
    assert B.resolve_backend_name("textblob") == "textblob"


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown NP backend"):
        B.load_backend("stanza")
