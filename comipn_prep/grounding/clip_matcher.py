"""CLIP embeddings of box crops and of noun phrases (cached), and their cosine similarities."""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from ..weights import ClipBundle

logger = logging.getLogger(__name__)

DEFAULT_PROMPT = "a photo of {}"
# Phrases kept, least recently used first out: ~100 MB of 512-d embeddings. A split's phrases are
# mostly unique, so an unbounded cache grows with the dataset (1 GB at 100k tweets).
PHRASE_CACHE_SIZE = 50_000


class ClipMatcher:
    """Scores (phrase, crop) pairs with an open_clip model.

    Phrase embeddings are cached by phrase text (the ``cache_size`` most recently used). Text is
    encoded only up to the longest phrase of a batch instead of the full 77-token context: CLIP's text
    tower is causal and pools at the end-of-text token, so the padding after it never changes the
    result (tested against ``encode_text``) and costs ~10x the compute of a short phrase.
    """

    def __init__(self, bundle: ClipBundle, device: str = "cpu", prompt: str = DEFAULT_PROMPT,
                 crop_batch: int = 16, truncate_text: bool = True, cache_phrases: bool = True,
                 cache_size: int = PHRASE_CACHE_SIZE):
        self.bundle = bundle
        self.model = bundle.model
        self.device = device
        self.prompt = prompt
        self.crop_batch = max(1, crop_batch)
        # Both switches exist for the benchmark's plain baseline; results are equal either way.
        self.truncate_text = truncate_text
        self.cache_phrases = cache_phrases
        self.cache_size = max(1, cache_size)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    # -- text ---------------------------------------------------------------------------------------
    def _can_truncate(self) -> bool:
        m = self.model
        return self.truncate_text and (
            getattr(m, "attn_mask", None) is not None and getattr(m, "text_pool_type", "") == "argmax"
            and hasattr(m, "token_embedding") and hasattr(m, "positional_embedding"))

    @torch.inference_mode()
    def _encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        m = self.model
        if not self._can_truncate():
            return m.encode_text(tokens.to(self.device))
        length = int(tokens.argmax(dim=-1).max()) + 1  # through the last end-of-text token
        tokens = tokens[:, :length].to(self.device)
        cast_dtype = m.transformer.get_cast_dtype()
        x = m.token_embedding(tokens).to(cast_dtype) + m.positional_embedding[:length].to(cast_dtype)
        x = m.transformer(x, attn_mask=m.attn_mask[:length, :length])
        x = m.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
        proj = m.text_projection
        if proj is not None:
            x = proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
        return x

    def encode_phrases(self, phrases: Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings, one row per phrase (cached)."""
        if not self.cache_phrases:
            self._cache.clear()
        new = sorted({p for p in phrases if p not in self._cache})
        if new:
            tokens = self.bundle.tokenizer([self.prompt.format(p) for p in new])
            for start in range(0, len(new), 64):
                emb = self._encode_tokens(tokens[start:start + 64]).float()
                emb = torch.nn.functional.normalize(emb, dim=-1).cpu().numpy()
                for p, e in zip(new[start:start + 64], emb):
                    self._cache[p] = e
        dim = self._embed_dim()
        out = np.stack([self._cache[p] for p in phrases]) if phrases else np.zeros((0, dim), np.float32)
        for p in phrases:
            self._cache.move_to_end(p)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out

    def _embed_dim(self) -> int:
        if self._cache:
            return len(next(iter(self._cache.values())))
        return int(getattr(self.model.visual, "output_dim", 512))

    # -- images -------------------------------------------------------------------------------------
    @torch.inference_mode()
    def encode_crops(self, crops: Sequence[Image.Image]) -> np.ndarray:
        """Unit-norm embeddings of crops, in batches of ``crop_batch``."""
        if not crops:
            return np.zeros((0, self._embed_dim()), np.float32)
        out = []
        for start in range(0, len(crops), self.crop_batch):
            batch = torch.stack([self.bundle.preprocess(c) for c in crops[start:start + self.crop_batch]])
            emb = self.model.encode_image(batch.to(self.device)).float()
            out.append(torch.nn.functional.normalize(emb, dim=-1).cpu().numpy())
        return np.concatenate(out)

    @torch.inference_mode()
    def encode_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        """Unit-norm embeddings of already preprocessed crops ``(N, 3, S, S)`` (the tensor crop path),
        in batches of ``crop_batch``; one transfer of the results back."""
        if len(pixels) == 0:
            return np.zeros((0, self._embed_dim()), np.float32)
        out = [torch.nn.functional.normalize(self.model.encode_image(pixels[s:s + self.crop_batch]).float(), dim=-1)
               for s in range(0, len(pixels), self.crop_batch)]
        return torch.cat(out).cpu().numpy()
