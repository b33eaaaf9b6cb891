"""Entities in the standard shape: character offsets into the text as given (``&amp;``, possessives, runs
of spaces), the exact slice as ``word``, span scores and token marginals from the CRF, spaCy Docs."""

from __future__ import annotations

import random

import pytest
import spacy

from comipn_prep.conll import entity_spans, read_conll
from comipn_prep.nps.tokenize import tokenize_tweet
from comipn_model import Tagger
from comipn_model.inference.entities import entities_of, joined, token_offsets
from comipn_model.inference.spacy_doc import SPANS_KEY, make_doc

ESCAPED = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def as_raw_text(tokens, tags, rng: random.Random):
    """A raw tweet built from dataset tokens, with each token's true characters: ``&`` written ``&amp;``
    (and one put inside some entities: ``Tom &amp; Jerry``), a possessive ``'s`` glued to some entities'
    last word, and runs of 2-3 spaces here and there. Returns (text, tokens, tags, true offsets)."""
    out_tokens, out_tags = [], []
    for k, (token, tag) in enumerate(zip(tokens, tags)):
        out_tokens.append(token)
        out_tags.append(tag)
        if tag != "O" and k + 1 < len(tags) and tags[k + 1] == f"I-{tag[2:]}" and rng.random() < 0.5:
            out_tokens.append("&")
            out_tags.append(f"I-{tag[2:]}")
        ends_entity = tag != "O" and (k + 1 == len(tags) or not tags[k + 1].startswith("I-"))
        if ends_entity and rng.random() < 0.4:
            out_tokens.append("'s")
            out_tags.append("O")
    text, offsets = "", []
    for k, token in enumerate(out_tokens):
        if k:
            glued = token == "'s"
            text += "" if glued else " " * rng.choice((1, 1, 1, 2, 3))
        written = ESCAPED.get(token, token)
        offsets.append((len(text), len(text) + len(written)))
        text += written
    return "  " + text + " ", out_tokens, out_tags, [(s + 2, e + 2) for s, e in offsets]


@pytest.fixture(scope="module")
def raw_tweets(twitter_data):
    """200 Twitter-2017 test tweets as raw text (with entity escapes, possessives, runs of spaces)."""
    rng = random.Random(0)
    tweets = read_conll(twitter_data / "twitter2017" / "test.txt").tweets[:200]
    return [as_raw_text(t.tokens, t.labels, rng) for t in tweets]


def test_the_raw_text_has_what_the_alignment_must_survive(raw_tweets):
    texts = [text for text, *_ in raw_tweets]
    assert sum("&amp;" in t for t in texts) >= 20 and sum("'s" in t for t in texts) >= 20
    assert sum("   " in t for t in texts) >= 50
    assert sum(len(entity_spans(tags)) for _, _, tags, _ in raw_tweets) >= 200


def test_dataset_tokens_are_placed_on_their_true_characters(raw_tweets):
    """Gold entities through the same conversion the Tagger uses: every offset is the true one, so
    ``text[start:end] == word`` and an entity reads as written (``Tom &amp; Jerry``, not ``Tom & Jerry``)."""
    entities = 0
    for text, tokens, tags, truth in raw_tweets:
        offsets = token_offsets(text, tokens)
        assert offsets == truth, text
        for entity in entities_of(text, offsets, tags):
            assert text[entity["start"]:entity["end"]] == entity["word"]
            assert entity["word"] == text[truth[entity["token_start"]][0]:truth[entity["token_end"] - 1][1]]
            entities += 1
    assert entities >= 200


def test_offsets_of_rewritten_and_unplaceable_tokens():
    text = "Tom &amp; Jerry  &gt;  NASA's  HQ"
    tokens = tokenize_tweet(text)
    assert tokens == ["Tom", "&", "Jerry", ">", "NASA", "'s", "HQ"]  # the tokenizer unescapes
    offsets = token_offsets(text, tokens)
    assert [text[s:e] for s, e in offsets] == ["Tom", "&amp;", "Jerry", "&gt;", "NASA", "'s", "HQ"]
    tags = ["B-ORG", "I-ORG", "I-ORG", "O", "B-ORG", "O", "B-LOC"]
    got = entities_of(text, offsets, tags, [0.5, 0.25, 1.0])
    assert got[0] == {"entity_group": "ORG", "score": 0.5, "word": "Tom &amp; Jerry", "start": 0, "end": 15,
                      "token_start": 0, "token_end": 3}
    assert [(e["word"], e["start"], e["end"]) for e in got[1:]] == [("NASA", 23, 27), ("HQ", 31, 33)]
    assert token_offsets("a b", ["a", "zzz", "b"]) == [(0, 1), (2, 2), (2, 3)]  # nothing left for "zzz"
    assert joined(["New", "York"]) == ("New York", [(0, 3), (4, 8)])
    with pytest.raises(ValueError, match="2 scores for 3 entities"):
        entities_of(text, offsets, tags, [0.5, 0.5])


@pytest.fixture(scope="module")
def tagger(tmp_path_factory, make_tiny_encoder, make_checkpoint):
    """A text-only tiny model whose random CRF (strong transitions) tags plenty of entities."""
    base = tmp_path_factory.mktemp("entities")
    encoder = make_tiny_encoder(base / "encoder", dropout=0.0)
    return Tagger.from_pretrained(make_checkpoint(base / "best.pt", encoder, switches=False, seed=3), device="cpu")


def test_tagger_entities_on_200_raw_tweets(tagger, raw_tweets):
    texts = [text for text, *_ in raw_tweets]
    results = tagger(texts, marginals=True)
    entities = [e for r in results for e in r.entities]
    assert len(entities) >= 50  # the random CRF tags something: the property is not checked on nothing
    for text, result in zip(texts, results):
        assert result.text == text and result.tokens == tokenize_tweet(text)
        for e in result.entities:
            assert text[e["start"]:e["end"]] == e["word"]
            assert result.tags[e["token_start"]] == f"B-{e['entity_group']}"
            assert 0 < e["score"] <= 1
        assert len(result.marginals) == len(result.tokens)
        for token_probs in result.marginals:
            assert set(token_probs) == set(tagger.config.labels)
            assert sum(token_probs.values()) == pytest.approx(1, abs=1e-5)
    # the tokenizer's "&" stands on all of "&amp;"; "'s" on its own characters
    placed = {(tok, r.text[s:e]) for r in results for tok, (s, e) in zip(r.tokens, r.offsets)}
    assert ("&", "&amp;") in placed and ("'s", "'s") in placed and not any(tok == "&" and w == "&" for tok, w in placed)
    # the decoded path is the most likely one, and its entities are rarely unlikely
    assert sum(e["score"] > 0.05 for e in entities) > len(entities) / 2


def test_scores_off_and_tokens_given(tagger, raw_tweets):
    texts = [text for text, *_ in raw_tweets[:20]]
    on = tagger(texts)
    off = tagger(texts, scores=False)
    assert [r.tags for r in on] == [r.tags for r in off] and all(r.marginals is None for r in on)
    assert [{**e, "score": None} for r in on for e in r.entities] == [e for r in off for e in r.entities]
    given = tagger([["Tom", "&", "Jerry"], []])
    assert given[0].text == "Tom & Jerry" and given[1].text == "" and given[1].entities == []
    for e in given[0].entities:
        assert given[0].text[e["start"]:e["end"]] == e["word"]


def test_span_score_is_the_crf_probability_of_exactly_that_span(tagger):
    """The Tagger's score is BIOCRF.span_log_probs of the decoded span (the CRF's exact probability)."""
    import torch

    text = "Tom &amp; Jerry visit the Big Apple with Elon Musk and NASA's crew"
    result = tagger([text])[0]
    assert result.entities
    encoded = tagger.batcher.collate(tagger.batcher.tokenise([result.tokens]))
    with torch.no_grad():
        emissions = tagger.model.emissions(encoded).double()
    spans = [(0, e["token_start"], e["token_end"], e["entity_group"]) for e in result.entities]
    want = tagger.model.crf.span_log_probs(emissions, encoded.word_mask, spans).exp().tolist()
    assert [e["score"] for e in result.entities] == pytest.approx(want, rel=1e-9)


def test_spacy_doc_keeps_the_text_and_the_entities(tagger, raw_tweets):
    nlp = spacy.blank("en")
    texts = [text for text, *_ in raw_tweets[:60]]
    docs = tagger.to_spacy(nlp, texts)
    results = tagger(texts)
    assert sum(len(doc.ents) for doc in docs) > 0
    for doc, result in zip(docs, results):
        assert doc.text == result.text
        assert [(s.start_char, s.end_char, s.label_, s.text) for s in doc.ents] == \
            [(e["start"], e["end"], e["entity_group"], e["word"]) for e in result.entities]
        assert doc.spans[SPANS_KEY].attrs["scores"] == [e["score"] for e in result.entities]
    doc = make_doc(nlp.vocab, "  Tom &amp; Jerry  rock ", [(2, 5), (6, 11), (12, 17), (19, 23)],
                   [{"entity_group": "ORG", "score": 0.9, "start": 2, "end": 17}])
    assert doc.text == "  Tom &amp; Jerry  rock "
    assert [(e.text, e.label_) for e in doc.ents] == [("Tom &amp; Jerry", "ORG")]
