"""How Tagger batches: tweets tokenised once, batched by sub-token count, results in input order, the same
tags whatever the batch size (real Twitter-2017 test tweets, a built checkpoint with MiniLM's tokenizer)."""

from __future__ import annotations

import pytest

from comipn_prep.conll import read_conll
from comipn_model import Tagger
from comipn_model.inference.tagger import batch_order

# One word of many sub-tokens, many words of one sub-token each: word counts and sub-token counts order
# these two apart.
LONG_WORD = "#Supercalifragilisticexpialidociousantidisestablishmentarianism"
SHORT_WORDS = "a b c d e f g h i j k l m n o p"


@pytest.fixture(scope="module")
def encoder(tmp_path_factory, make_tiny_encoder):
    return make_tiny_encoder(tmp_path_factory.mktemp("batching") / "encoder")


@pytest.fixture(scope="module")
def text_only(encoder, tmp_path_factory, make_checkpoint):
    path = make_checkpoint(tmp_path_factory.mktemp("text") / "best.pt", encoder, switches=False, seed=3)
    return Tagger.from_pretrained(path, device="cpu")


@pytest.fixture(scope="module")
def tweets(twitter_data):
    """Real tweets of very different lengths, with the two made-up ones and an empty one among them."""
    real = [t.tokens for t in read_conll(twitter_data / "twitter2017" / "test.txt").tweets[:45]]
    return real[:10] + [LONG_WORD.split(), []] + real[10:30] + [SHORT_WORDS.split()] + real[30:] + [["x"]]


def widths_seen(tagger, monkeypatch) -> list[list[int]]:
    """Spy on the model: each batch's real sub-token counts, in the order the model sees them."""
    seen = []
    emissions = tagger.model.emissions

    def spy(batch):
        seen.append(batch.attention_mask.sum(1).tolist())
        return emissions(batch)

    monkeypatch.setattr(tagger.model, "emissions", spy)
    return seen


def test_any_batch_size_gives_the_same_tags_in_input_order(text_only, tweets):
    alone = text_only(tweets, batch_size=1)
    assert [r.tokens for r in alone] == [list(t) for t in tweets]
    assert any(r.tags != ["O"] * len(r.tags) for r in alone)  # the random CRF tags something
    for size in (4, 7, 64):
        batched = text_only(tweets, batch_size=size)
        assert [r.tokens for r in batched] == [r.tokens for r in alone], size
        assert [r.tags for r in batched] == [r.tags for r in alone], size
        # the scores only to float rounding: padding changes the encoder's sums in the last bits
        unscored = [[{**e, "score": None} for e in r.entities] for r in batched]
        assert unscored == [[{**e, "score": None} for e in r.entities] for r in alone], size
        scores = [e["score"] for r in batched for e in r.entities]
        assert scores == pytest.approx([e["score"] for r in alone for e in r.entities], abs=1e-4), size


def test_batches_are_ordered_by_sub_token_count(text_only, tweets, monkeypatch):
    seen = widths_seen(text_only, monkeypatch)
    text_only(tweets, batch_size=4)
    lengths = [n for batch in seen for n in batch]
    expected = sorted(len(t.input_ids) for t in text_only.batcher.tokenise([t for t in tweets if t]))
    assert lengths == expected  # every tweet once, shortest in sub-tokens first
    # what word counts would have ordered otherwise: one word, more sub-tokens than sixteen words
    long_word, short_words = (len(t.input_ids) for t in text_only.batcher.tokenise([[LONG_WORD],
                                                                                    SHORT_WORDS.split()]))
    assert long_word > short_words


def test_each_tweet_is_tokenised_once(text_only, tweets, monkeypatch):
    calls = []
    tokenizer = text_only.batcher.tokenizer
    real_call = type(tokenizer).__call__

    def spy(self, *args, **kwargs):
        calls.append(args[0])
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(type(tokenizer), "__call__", spy)
    text_only(tweets, batch_size=4)
    assert len(calls) == 1 and len(calls[0]) == sum(1 for t in tweets if t)


def test_batch_order_is_a_stable_sort():
    assert batch_order([5, 3, 9, 3, 1]) == [4, 1, 3, 0, 2]
    assert batch_order([]) == []


def test_images_and_crops_follow_their_tweets(encoder, tmp_path, tweets, picture, make_checkpoint):
    """All switches, prepared crop files: reordered batches keep each tweet's picture and crops."""
    tagger = Tagger.from_pretrained(make_checkpoint(tmp_path / "all" / "best.pt", encoder), device="cpu",
                                    feature_cache=tmp_path / "fc")
    texts = [t for t in tweets if t][:12]
    images = [picture(tmp_path / f"{i}.jpg", seed=i, size=(64, 48)) if i % 3 else None for i in range(len(texts))]
    crops = [[picture(tmp_path / f"{i}_crop_{k}.png", seed=100 + 10 * i + k, size=(32, 32)) for k in range(i % 4)]
             for i in range(len(texts))]
    alone = tagger(texts, images=images, crops=crops, batch_size=1)
    batched = tagger(texts, images=images, crops=crops, batch_size=5)
    for i, (a, b) in enumerate(zip(alone, batched)):
        assert [c["file"] for c in b.crops] == [str(c) for c in crops[i]][:tagger.config.aux_k]
        assert b.tokens == list(texts[i]) and b.tags == a.tags and b.crops == a.crops
