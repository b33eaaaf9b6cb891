"""One image's vision-tower features, and the stacking of a batch's features (missing ones masked)
into :class:`~comipn_model.data.batch.VisualInputs`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from comipn_model.data.batch import VisualInputs


@dataclass
class ImageFeatures:
    """One image's tower outputs: the class token after every block and the last block's patches (CLIP's,
    or the matching tower's, whose width may differ)."""

    cls: torch.Tensor  # (Lv, Dv)
    patches: torch.Tensor  # (P, Dp); Dp = Dv for CLIP's own patches



def stack_visual(per_example: Sequence[Sequence[ImageFeatures | None]], num_images: int,
                 dims: tuple[int, ...] | None = None) -> VisualInputs | None:
    """Stack each example's images (global image first, then crops; cut or padded to ``num_images``)
    into a batch. A ``None`` is a masked slot of zeros. Returns None when no example has any image and
    ``dims`` = ``(Lv, P, Dv)`` (or ``(Lv, P, Dv, Dp)`` when the patches are another width) is not given
    (the model reads that as every image missing)."""
    first = next((f for row in per_example for f in row[:num_images] if f is not None), None)
    if first is not None:
        lv, dv = first.cls.shape
        p, dp = first.patches.shape
    elif dims is not None:
        lv, p, dv = dims[:3]
        dp = dims[3] if len(dims) > 3 else dv
    else:
        return None
    batch = len(per_example)
    cls = torch.zeros(batch, num_images, lv, dv)
    patches = torch.zeros(batch, num_images, p, dp)
    mask = torch.zeros(batch, num_images, dtype=torch.bool)
    for b, row in enumerate(per_example):
        for m, feats in enumerate(list(row)[:num_images]):
            if feats is None:
                continue
            if feats.cls.shape != (lv, dv) or feats.patches.shape != (p, dp):
                raise ValueError(f"example {b} image {m}: features {tuple(feats.cls.shape)} / "
                                 f"{tuple(feats.patches.shape)} do not match {(lv, dv)} / {(p, dp)}")
            cls[b, m] = feats.cls
            patches[b, m] = feats.patches
            mask[b, m] = True
    return VisualInputs(cls=cls, patches=patches, mask=mask)
