"""Standardise the frozen tower's features with statistics of the training images.

A frozen vision tower's class tokens point mostly the same way whatever the picture: on the probe's 19
pictures, with random ViT-B/32 weights, two pictures' class tokens have a mean cosine of 0.88 (last block)
to 0.98 (first block), and what differs between pictures is 2-12% of their variance (pretrained CLIP's
embeddings are known to be anisotropic too). Fed as they are, every prompt starts as nearly the same
vector for every picture, and the modules must first learn to amplify a small difference. Centring and
scaling each feature dimension by its mean and standard deviation over the training images (per vision
block for the class tokens; over all patches for the patch tokens) puts that difference up front.

The statistics are buffers of the model: fitted once before training, saved with every checkpoint and
export, and read from there when tagging. Missing images stay zeros (they are masked anyway).
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from comipn_model.data.batch import VisualInputs

EPS = 1e-5


class VisualNorm(nn.Module):
    def __init__(self, blocks: int, dim: int, patch_dim: int | None = None):
        """``patch_dim``: the patches' width when another tower than CLIP's makes them (default ``dim``)."""
        super().__init__()
        patch_dim = dim if patch_dim is None else patch_dim
        self.register_buffer("cls_mean", torch.zeros(blocks, dim))
        self.register_buffer("cls_std", torch.ones(blocks, dim))
        self.register_buffer("patch_mean", torch.zeros(patch_dim))
        self.register_buffer("patch_std", torch.ones(patch_dim))
        self.register_buffer("images_seen", torch.zeros((), dtype=torch.long))  # 0: not fitted, identity

    @torch.no_grad()
    def fit(self, features: Iterable) -> int:
        """Statistics of ``features`` (``ImageFeatures``, each image once; None skipped), in float64.
        Returns how many images were read; with none the module stays the identity."""
        n = 0
        cls_sum = cls_sq = patch_sum = patch_sq = None
        patches_seen = 0
        for feats in features:
            if feats is None:
                continue
            cls, patches = feats.cls.double(), feats.patches.double()
            if cls_sum is None:
                cls_sum, cls_sq = torch.zeros_like(cls), torch.zeros_like(cls)
                patch_sum, patch_sq = torch.zeros_like(patches[0]), torch.zeros_like(patches[0])
            cls_sum += cls
            cls_sq += cls * cls
            patch_sum += patches.sum(0)
            patch_sq += (patches * patches).sum(0)
            patches_seen += patches.shape[0]
            n += 1
        if n == 0:
            return 0
        if cls_sum.shape != self.cls_mean.shape or patch_sum.shape != self.patch_mean.shape:
            raise ValueError(f"features of shape {tuple(cls_sum.shape)} / patches {tuple(patch_sum.shape)} do not "
                             f"fit the model's {tuple(self.cls_mean.shape)} / {tuple(self.patch_mean.shape)} "
                             f"(another CLIP model or matching tower?)")
        for name, total, squares, count in (("cls", cls_sum, cls_sq, n), ("patch", patch_sum, patch_sq, patches_seen)):
            mean = total / count
            var = (squares / count - mean * mean).clamp(min=0)
            getattr(self, f"{name}_mean").copy_(mean)
            getattr(self, f"{name}_std").copy_((var + EPS).sqrt())
        self.images_seen.fill_(n)
        return n

    def forward(self, visual: VisualInputs) -> VisualInputs:
        # Unfitted (mean 0, std 1) this is the identity; no check, so no device sync per batch.
        keep = visual.mask[:, :, None, None].to(visual.cls.dtype)
        cls = (visual.cls - self.cls_mean) / self.cls_std * keep
        patches = (visual.patches - self.patch_mean) / self.patch_std * keep
        return VisualInputs(cls=cls, patches=patches, mask=visual.mask)
