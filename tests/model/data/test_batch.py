"""WordBatcher: tokenise once, collate any subset; the same batches as the tokenizer's own padding and a
word-by-word alignment loop (real Twitter-2017 test tweets, MiniLM's WordPiece tokenizer)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from comipn_prep.conll import read_conll
from comipn_model.data.batch import WordBatcher

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]


@pytest.fixture(scope="module")
def tokenizer(minilm_path):
    return AutoTokenizer.from_pretrained(minilm_path, use_fast=True)


@pytest.fixture(scope="module")
def tweets(twitter_data):
    return read_conll(twitter_data / "twitter2017" / "test.txt").tweets


def reference(tokenizer, label_to_id, max_seq, words, labels):
    """The straightforward alignment: the tokenizer pads, a loop reads word_ids token by token."""
    unk = tokenizer.unk_token
    safe = [[w if tokenizer.tokenize(w) else unk for w in ws] for ws in words]
    enc = tokenizer(safe, is_split_into_words=True, truncation=True, max_length=max_seq, padding="longest",
                    return_tensors="pt")
    width = max(max(len(w) for w in words), 1)
    starts = torch.zeros(len(words), width, dtype=torch.long)
    mask = torch.zeros(len(words), width, dtype=torch.bool)
    for b in range(len(words)):
        for pos, wid in enumerate(enc.word_ids(b)):
            if wid is not None and not mask[b, wid]:
                starts[b, wid] = pos
                mask[b, wid] = True
    label_ids = torch.zeros_like(starts)
    for b, seq in enumerate(labels):
        for i, label in enumerate(seq):
            label_ids[b, i] = label_to_id[label] if mask[b, i] else 0
    types = enc.get("token_type_ids", torch.zeros_like(enc["input_ids"]))
    return enc["input_ids"], enc["attention_mask"], types, starts, mask, label_ids


def assert_same_batch(batch, ref, words):
    input_ids, attention, types, starts, mask, label_ids = ref
    assert torch.equal(batch.input_ids, input_ids)
    assert torch.equal(batch.attention_mask, attention)
    assert torch.equal(batch.token_type_ids, types)
    assert torch.equal(batch.word_starts, starts)
    assert torch.equal(batch.word_mask, mask)
    assert torch.equal(batch.labels, label_ids)
    assert batch.word_counts == [len(w) for w in words]
    assert batch.truncated_words == sum(len(w) for w in words) - int(mask.sum())
    for t in (batch.input_ids, batch.attention_mask, batch.token_type_ids, batch.word_starts, batch.labels):
        assert t.dtype == torch.long
    assert batch.word_mask.dtype == torch.bool


@pytest.mark.parametrize("max_seq", [128, 16])
def test_encode_equals_the_reference_loop_on_real_tweets(tokenizer, tweets, max_seq):
    batcher = WordBatcher(tokenizer, LABELS, max_seq)
    # Words with no sub-token at all (emoji variation selector, soft hyphen) are in the real split; the
    # made-up tweets add a zero-width space and a tweet of nothing else.
    no_subtoken = [w for t in tweets for w in t.tokens if not tokenizer.tokenize(w)]
    assert {"\ufe0f", "\xad"} <= set(no_subtoken)
    extra = [["\u200b", "\ufe0f"], ["Paris", "\u200b", "\xad", "London"]]
    words = [t.tokens for t in tweets] + extra
    labels = [t.labels for t in tweets] + [["O", "O"], ["B-LOC", "O", "O", "B-LOC"]]
    truncated = 0
    for start in range(0, len(words), 32):
        w, lab = words[start:start + 32], labels[start:start + 32]
        batch = batcher.encode(w, lab)
        assert_same_batch(batch, reference(tokenizer, batcher.label_to_id, max_seq, w, lab), w)
        truncated += batch.truncated_words
    assert (truncated > 0) == (max_seq == 16)  # 16 cuts real tweets; 128 none


def test_collate_of_any_subset_equals_encoding_it(tokenizer, tweets):
    batcher = WordBatcher(tokenizer, LABELS, 24)
    tokenised = batcher.tokenise([t.tokens for t in tweets])
    assert [t.n_words for t in tokenised] == [len(t.tokens) for t in tweets]
    assert all(len(t.input_ids) == len(t.word_ids) <= 24 for t in tokenised)
    for picked in ([5, 700, 3, 3], [42], list(range(100, 164, 2))):
        words = [tweets[i].tokens for i in picked]
        labels = [tweets[i].labels for i in picked]
        batch = batcher.collate([tokenised[i] for i in picked], labels)
        assert_same_batch(batch, reference(tokenizer, batcher.label_to_id, 24, words, labels), words)


@pytest.mark.parametrize("multiple", [8, 32])
def test_pad_multiple_pads_tokens_and_words_and_changes_nothing_else(tokenizer, tweets, multiple):
    """The compiled step's batches: sub-tokens (up to max_seq) and words padded to a multiple; the real
    part is the unpadded batch, the rest is padding (masked)."""
    words, labels = [t.tokens for t in tweets[:5]], [t.labels for t in tweets[:5]]
    plain = WordBatcher(tokenizer, LABELS, max_seq=60).encode(words, labels)
    padded = WordBatcher(tokenizer, LABELS, max_seq=60, pad_multiple=multiple).encode(words, labels)
    length, width = plain.input_ids.shape[1], plain.word_mask.shape[1]
    assert padded.input_ids.shape[1] == min(-(-length // multiple) * multiple, 60)
    assert padded.word_mask.shape[1] % multiple == 0 and padded.word_mask.shape[1] >= width
    for name in ("input_ids", "attention_mask", "token_type_ids", "word_starts", "word_mask", "labels"):
        assert torch.equal(getattr(padded, name)[:, :getattr(plain, name).shape[1]], getattr(plain, name)), name
    assert not padded.attention_mask[:, length:].any() and not padded.word_mask[:, width:].any()
    assert padded.word_counts == plain.word_counts
    with pytest.raises(ValueError, match="pad_multiple"):
        WordBatcher(tokenizer, LABELS, pad_multiple=0)


def test_left_padding_follows_the_tokenizer(minilm_path, tweets):
    tokenizer = AutoTokenizer.from_pretrained(minilm_path, use_fast=True, padding_side="left")
    batcher = WordBatcher(tokenizer, LABELS, 128)
    words, labels = [t.tokens for t in tweets[:40]], [t.labels for t in tweets[:40]]
    assert_same_batch(batcher.encode(words, labels), reference(tokenizer, batcher.label_to_id, 128, words, labels),
                      words)


def test_bad_labels_are_named(tokenizer):
    batcher = WordBatcher(tokenizer, LABELS)
    with pytest.raises(ValueError, match="example 1: 2 words but 1 labels"):
        batcher.encode([["a"], ["b", "c"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="label 'B-XYZ' is not in the model's label list"):
        batcher.encode([["a"]], [["B-XYZ"]])
    assert batcher.encode([["a"]]).labels is None
