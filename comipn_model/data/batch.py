"""The model's batch (``ModelBatch``, ``VisualInputs``) and ``WordBatcher``: words -> sub-token ids (WordPiece,
byte-level BPE, SentencePiece), one position per word (its first sub-token), labels aligned.

Words are represented by their first sub-token. Padding is dynamic: to the longest tweet of the batch.
A word cut off by ``max_seq`` has no sub-token in the batch: it is decoded as O and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import lru_cache
from typing import Sequence

import torch


@dataclass
class VisualInputs:
    """Cached features of the M = 1 + aux_k images of each tweet (the global image first)."""

    cls: torch.Tensor  # (B, M, Lv, Dv) class token after every vision block
    patches: torch.Tensor  # (B, M, P, Dv) patch tokens of the last vision block
    mask: torch.Tensor  # (B, M) bool: True where the image exists

    def to(self, device) -> "VisualInputs":
        return VisualInputs(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


@dataclass
class ModelBatch:
    input_ids: torch.Tensor  # (B, T) long
    attention_mask: torch.Tensor  # (B, T) long, 1 for real sub-tokens
    token_type_ids: torch.Tensor  # (B, T) long
    word_starts: torch.Tensor  # (B, W) long: position of each word's first sub-token (0 where none)
    word_mask: torch.Tensor  # (B, W) bool: the word has a sub-token in the batch
    word_counts: list[int]  # words per tweet, truncated ones included
    labels: torch.Tensor | None = None  # (B, W) long label ids (0 where word_mask is False)
    visual: VisualInputs | None = None
    truncated_words: int = 0  # words cut off by max_seq in this batch
    # The region loss's targets (comipn_model.data.region_targets): per word and crop (images 1..aux_k), 1 where
    # the crop holds the word's entity, and where that is supervised. None: no region supervision.
    region_targets: torch.Tensor | None = None  # (B, W, aux_k) float
    region_mask: torch.Tensor | None = None  # (B, W, aux_k) bool

    def to(self, device) -> "ModelBatch":
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            moved[f.name] = value.to(device) if hasattr(value, "to") and value is not None else value
        return replace(self, **moved)


@dataclass
class Tokenised:
    """One tweet's sub-tokens, unpadded (see :meth:`WordBatcher.tokenise`)."""

    input_ids: list[int]  # special tokens included, cut at max_seq
    word_ids: list[int | None]  # the word of each sub-token (None: special token)
    n_words: int  # words of the tweet, truncated ones included
    token_type_ids: list[int] | None = None


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


# A tweet's start: a retweet mark, a mention, a name (each a word that byte-level BPE marks as a word start).
PROBE_WORDS = ("RT", "@user", "Collins")


def splits_words_as_text(tokenizer) -> bool:
    """The tokenizer gives words passed one by one (``is_split_into_words=True``) the same ids as the
    words joined by spaces. A byte-level BPE (RoBERTa's) loaded without ``add_prefix_space=True`` does
    not: it tokenises every word given alone as if it went on the previous one (``C ol lins`` for
    ``ĠCollins``), and raises nothing."""
    alone = tokenizer(list(PROBE_WORDS), is_split_into_words=True)["input_ids"]
    return alone == tokenizer(" ".join(PROBE_WORDS))["input_ids"]


class WordBatcher:
    """Tokenises word lists with a fast tokenizer and aligns labels to first sub-tokens."""

    def __init__(self, tokenizer, labels: Sequence[str], max_seq: int = 128, pad_multiple: int = 1):
        """``pad_multiple``: pad the sub-tokens and the words of every batch up to a multiple of it (the
        sub-tokens no further than ``max_seq``), so that batches come in a few shapes only (a compiled
        step is specialised to each shape it sees); 1 pads to the longest tweet."""
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("a fast tokenizer is needed (word_ids); load it with use_fast=True")
        if not splits_words_as_text(tokenizer):
            raise ValueError(f"the tokenizer ({type(tokenizer).__name__}) tokenises a word given alone "
                             f"(is_split_into_words) otherwise than in running text, e.g. {PROBE_WORDS[-1]!r} "
                             f"as if it went on the previous word: load it with add_prefix_space=True")
        self.tokenizer = tokenizer
        self.label_to_id = {label: i for i, label in enumerate(labels)}
        self.max_seq = max_seq
        if pad_multiple < 1:
            raise ValueError(f"pad_multiple must be at least 1, got {pad_multiple}")
        self.pad_multiple = pad_multiple
        self._has_subtokens = lru_cache(maxsize=200_000)(self._word_has_subtokens)

    def _word_has_subtokens(self, word: str) -> bool:
        return bool(self.tokenizer.tokenize(word))

    def _safe_words(self, words: Sequence[str]) -> list[str]:
        # Whitespace and zero-width characters give no sub-token at all; read them as [UNK] so that
        # every word keeps a position and its label.
        unk = self.tokenizer.unk_token
        return [w if self._has_subtokens(w) else unk for w in words]

    def tokenise(self, words: Sequence[Sequence[str]]) -> list[Tokenised]:
        """Each tweet's sub-tokens (special tokens included, cut at ``max_seq``), unpadded: one tokenizer
        call for all of them. :meth:`collate` pads any subset of them into a batch."""
        if not words:
            return []
        enc = self.tokenizer([self._safe_words(w) for w in words], is_split_into_words=True,
                             truncation=True, max_length=self.max_seq)
        types = enc.get("token_type_ids")
        return [Tokenised(input_ids=enc["input_ids"][b], word_ids=enc.word_ids(b), n_words=len(w),
                          token_type_ids=None if types is None else types[b])
                for b, w in enumerate(words)]

    def collate(self, tokenised: Sequence[Tokenised], labels: Sequence[Sequence[str]] | None = None,
                visual: VisualInputs | None = None) -> ModelBatch:
        """Pad tokenised tweets to the longest of them (as the tokenizer's ``padding="longest"``) and
        place each word at its first sub-token. Built as Python lists, converted once (indexing tensors
        element by element cost more than the tokenizer)."""
        batch_size = len(tokenised)
        length = max((len(t.input_ids) for t in tokenised), default=0)
        width = max(max((t.n_words for t in tokenised), default=0), 1)
        if self.pad_multiple > 1:
            length = max(length, min(_round_up(length, self.pad_multiple), self.max_seq))
            width = _round_up(width, self.pad_multiple)
        left = self.tokenizer.padding_side == "left"
        pad_id = self.tokenizer.pad_token_id
        pad_type = getattr(self.tokenizer, "pad_token_type_id", 0)
        ids, attention, types, starts, masks = [], [], [], [], []
        for t in tokenised:
            n = len(t.input_ids)
            pad = length - n
            offset = pad if left else 0
            row_types = t.token_type_ids if t.token_type_ids is not None else [0] * n
            if left:
                ids.append([pad_id] * pad + list(t.input_ids))
                attention.append([0] * pad + [1] * n)
                types.append([pad_type] * pad + list(row_types))
            else:
                ids.append(list(t.input_ids) + [pad_id] * pad)
                attention.append([1] * n + [0] * pad)
                types.append(list(row_types) + [pad_type] * pad)
            row_starts, row_mask = [0] * width, [False] * width
            for pos, wid in enumerate(t.word_ids):
                if wid is not None and not row_mask[wid]:
                    row_starts[wid] = pos + offset
                    row_mask[wid] = True
            starts.append(row_starts)
            masks.append(row_mask)
        input_ids = torch.tensor(ids, dtype=torch.long).reshape(batch_size, length)
        attention_mask = torch.tensor(attention, dtype=torch.long).reshape(batch_size, length)
        if any(t.token_type_ids is not None for t in tokenised):
            token_type_ids = torch.tensor(types, dtype=torch.long).reshape(batch_size, length)
        else:
            token_type_ids = torch.zeros_like(input_ids)
        word_starts = torch.tensor(starts, dtype=torch.long).reshape(batch_size, width)
        word_mask = torch.tensor(masks, dtype=torch.bool).reshape(batch_size, width)
        label_ids = None
        if labels is not None:
            rows = []
            for b, (seq, row_mask) in enumerate(zip(labels, masks)):
                n_words = tokenised[b].n_words
                if len(seq) != n_words:
                    raise ValueError(f"example {b}: {n_words} words but {len(seq)} labels")
                row = [0] * width
                for i, label in enumerate(seq):
                    try:
                        label_id = self.label_to_id[label]
                    except KeyError:
                        raise ValueError(f"label {label!r} is not in the model's label list") from None
                    row[i] = label_id if row_mask[i] else 0
                rows.append(row)
            label_ids = torch.tensor(rows, dtype=torch.long).reshape(batch_size, width)
        counts = [t.n_words for t in tokenised]
        truncated = sum(counts) - sum(sum(m) for m in masks)
        return ModelBatch(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                          word_starts=word_starts, word_mask=word_mask, word_counts=counts, labels=label_ids,
                          visual=visual, truncated_words=truncated)

    def encode(self, words: Sequence[Sequence[str]], labels: Sequence[Sequence[str]] | None = None,
               visual: VisualInputs | None = None) -> ModelBatch:
        """One padded batch of word lists (with their labels): :meth:`tokenise` then :meth:`collate`."""
        return self.collate(self.tokenise(words), labels, visual)
