"""Turn tweets (words + labels) and their cached visual features into padded model batches.

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

    def to(self, device) -> "ModelBatch":
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            moved[f.name] = value.to(device) if hasattr(value, "to") and value is not None else value
        return replace(self, **moved)


class WordBatcher:
    """Tokenises word lists with a fast (WordPiece) tokenizer and aligns labels to first sub-tokens."""

    def __init__(self, tokenizer, labels: Sequence[str], max_seq: int = 128):
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("a fast tokenizer is needed (word_ids); load it with use_fast=True")
        self.tokenizer = tokenizer
        self.label_to_id = {label: i for i, label in enumerate(labels)}
        self.max_seq = max_seq
        self._has_subtokens = lru_cache(maxsize=200_000)(self._word_has_subtokens)

    def _word_has_subtokens(self, word: str) -> bool:
        return bool(self.tokenizer.tokenize(word))

    def _safe_words(self, words: Sequence[str]) -> list[str]:
        # Whitespace and zero-width characters give no sub-token at all; read them as [UNK] so that
        # every word keeps a position and its label.
        unk = self.tokenizer.unk_token
        return [w if self._has_subtokens(w) else unk for w in words]

    def encode(self, words: Sequence[Sequence[str]], labels: Sequence[Sequence[str]] | None = None,
               visual: VisualInputs | None = None) -> ModelBatch:
        enc = self.tokenizer([self._safe_words(w) for w in words], is_split_into_words=True,
                             truncation=True, max_length=self.max_seq, padding="longest",
                             return_tensors="pt")
        batch_size = len(words)
        width = max((len(w) for w in words), default=0)
        word_starts = torch.zeros(batch_size, max(width, 1), dtype=torch.long)
        word_mask = torch.zeros(batch_size, max(width, 1), dtype=torch.bool)
        for b in range(batch_size):
            for pos, wid in enumerate(enc.word_ids(b)):
                if wid is not None and not word_mask[b, wid]:
                    word_starts[b, wid] = pos
                    word_mask[b, wid] = True
        label_ids = None
        if labels is not None:
            label_ids = torch.zeros_like(word_starts)
            for b, seq in enumerate(labels):
                if len(seq) != len(words[b]):
                    raise ValueError(f"example {b}: {len(words[b])} words but {len(seq)} labels")
                for i, label in enumerate(seq):
                    try:
                        label_ids[b, i] = self.label_to_id[label]
                    except KeyError:
                        raise ValueError(f"label {label!r} is not in the model's label list") from None
                label_ids[b] = torch.where(word_mask[b], label_ids[b], 0)
        counts = [len(w) for w in words]
        truncated = sum(counts) - int(word_mask.sum())
        token_type_ids = enc.get("token_type_ids", torch.zeros_like(enc["input_ids"]))
        return ModelBatch(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                          token_type_ids=token_type_ids, word_starts=word_starts, word_mask=word_mask,
                          word_counts=counts, labels=label_ids, visual=visual, truncated_words=truncated)
