"""One image's vision-tower features, and the stacking of a batch's features (missing ones masked)
into :class:`~comipn_model.data.batch.VisualInputs`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from comipn_model.data.batch import VisualInputs


@dataclass
class ImageFeatures:
    """One image's tower outputs: the class token after every block and the last block's patches."""

    cls: torch.Tensor  # (Lv, Dv)
    patches: torch.Tensor  # (P, Dv)



def stack_visual(per_example: Sequence[Sequence[ImageFeatures | None]], num_images: int,
                 dims: tuple[int, int, int] | None = None) -> VisualInputs | None:
    """Stack each example's images (global image first, then crops; cut or padded to ``num_images``)
    into a batch. A ``None`` is a masked slot of zeros. Returns None when no example has any image and
    ``dims`` = ``(Lv, P, Dv)`` is not given (the model reads that as every image missing)."""
    first = next((f for row in per_example for f in row[:num_images] if f is not None), None)
    if first is not None:
        lv, dv = first.cls.shape
        p = first.patches.shape[0]
    elif dims is not None:
        lv, p, dv = dims
    else:
        return None
    batch = len(per_example)
    cls = torch.zeros(batch, num_images, lv, dv)
    patches = torch.zeros(batch, num_images, p, dv)
    mask = torch.zeros(batch, num_images, dtype=torch.bool)
    for b, row in enumerate(per_example):
        for m, feats in enumerate(list(row)[:num_images]):
            if feats is None:
                continue
            if feats.cls.shape != (lv, dv) or feats.patches.shape != (p, dv):
                raise ValueError(f"example {b} image {m}: features {tuple(feats.cls.shape)} / "
                                 f"{tuple(feats.patches.shape)} do not match {(lv, dv)} / {(p, dv)}")
            cls[b, m] = feats.cls
            patches[b, m] = feats.patches
            mask[b, m] = True
    return VisualInputs(cls=cls, patches=patches, mask=mask)
