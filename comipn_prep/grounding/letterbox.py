"""ultralytics' ``LetterBox`` as tensor ops on the device: resize keeping the aspect ratio, pad with 114 to
the minimal stride-multiple rectangle, and the inverse mapping of boxes back to the original pixels.

The resize is OpenCV's ``INTER_LINEAR`` for 8-bit images as ultralytics calls it (``cv2.resize``), in
its integer arithmetic: 11-bit weights (``INTER_RESIZE_COEF_BITS``) computed in float32 from
``scale = 1 / (new / old)``, the source column clamped at both edges with its weight set to 0 / 1, rows
clamped but their weights kept, the horizontal pass summed exactly, the vertical pass rounded as
OpenCV's vectorised ``VResizeLinearVec_32s8u`` rounds. It gives ``cv2.resize``'s pixels to the bit
(tests/prep/grounding/test_letterbox.py, random sizes up and down), in int32 (exact on any device).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

PAD_VALUE = 114  # ultralytics' grey
_COEF_SCALE = 2048  # OpenCV's INTER_RESIZE_COEF_SCALE (11 bits)


@dataclass(frozen=True)
class LetterboxParams:
    """Where an ``(h, w)`` image lands in its letterboxed ``(H, W)`` image."""

    orig: tuple[int, int]  # (h, w)
    resized: tuple[int, int]  # (h, w) before padding
    shape: tuple[int, int]  # (H, W) after padding
    top: int
    left: int

    @property
    def gain(self) -> tuple[float, float]:
        """(y, x) scale from original to resized pixels."""
        return self.resized[0] / self.orig[0], self.resized[1] / self.orig[1]


def letterbox_params(height: int, width: int, imgsz: int | tuple[int, int] = 640, stride: int = 32,
                     auto: bool = True) -> LetterboxParams:
    """ultralytics' ``LetterBox.get_params`` (``center=True``, ``scaleup=True``, no ``scale_fill``):
    ``auto`` pads only to the next multiple of ``stride`` (the minimal rectangle ``predict`` uses for
    a lone image or a batch of equal-sized ones), else to ``imgsz``."""
    new_h, new_w = (imgsz, imgsz) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[1]))
    r = min(new_h / height, new_w / width)
    unpad_w, unpad_h = max(round(width * r), 1), max(round(height * r), 1)
    dw, dh = new_w - unpad_w, new_h - unpad_h
    if auto:
        dw, dh = dw % stride, dh % stride
    dw, dh = dw / 2, dh / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    return LetterboxParams((height, width), (unpad_h, unpad_w), (unpad_h + top + bottom, unpad_w + left + right),
                           top, left)


@lru_cache(maxsize=1024)
def linear_taps(in_size: int, out_size: int, clamp_weights: bool) -> tuple[np.ndarray, ...]:
    """``(first, second, w_first, w_second)`` source indices and 11-bit weights of one axis, as OpenCV
    computes them for ``INTER_LINEAR`` (``clamp_weights``: the horizontal axis, whose edge taps OpenCV
    sets to weights 2048 / 0; the vertical one keeps its weights on clamped rows)."""
    scale = 1.0 / (out_size / in_size)
    f = ((np.arange(out_size) + 0.5) * scale - 0.5).astype(np.float32)
    i = np.floor(f).astype(np.int64)
    f = (f - i.astype(np.float32)).astype(np.float32)
    if clamp_weights:
        low, high = i < 0, i >= in_size - 1
        f[low | high] = 0
        i[low] = 0
        i[high] = in_size - 1
    w0 = np.rint((np.float32(1) - f) * np.float32(_COEF_SCALE)).astype(np.int64)
    w1 = np.rint(f * np.float32(_COEF_SCALE)).astype(np.int64)
    return np.clip(i, 0, in_size - 1), np.clip(i + 1, 0, in_size - 1), w0, w1


def resize_linear(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(N, C, h, w)`` uint8 -> ``(N, C, H, W)`` uint8 with ``cv2.resize(..., INTER_LINEAR)``'s pixels."""
    n, c, h, w = images.shape
    out_h, out_w = size
    if (out_h, out_w) == (h, w):
        return images
    device = images.device

    def taps(in_size, out_size, clamp):
        return [torch.from_numpy(t).to(device) for t in linear_taps(in_size, out_size, clamp)]

    x0, x1, a0, a1 = taps(w, out_w, True)
    y0, y1, b0, b1 = taps(h, out_h, False)
    x = images.to(torch.int32)
    # Horizontal pass, exact: at most 255 * 2048 per value.
    wide = x.index_select(3, x0) * a0.to(torch.int32) + x.index_select(3, x1) * a1.to(torch.int32)
    s0, s1 = wide.index_select(2, y0), wide.index_select(2, y1)
    b0, b1 = b0.to(torch.int32).view(-1, 1), b1.to(torch.int32).view(-1, 1)
    # OpenCV's vectorised vertical pass: each product shifted by 16, both summed, +2, shifted by 2.
    out = (((b0 * (s0 >> 4)) >> 16) + ((b1 * (s1 >> 4)) >> 16) + 2) >> 2
    return out.clamp_(0, 255).to(torch.uint8)


def letterbox(image: torch.Tensor, imgsz: int | tuple[int, int] = 640, stride: int = 32,
              auto: bool = True) -> tuple[torch.Tensor, LetterboxParams]:
    """One ``(3, h, w)`` uint8 image -> its letterboxed ``(3, H, W)`` uint8 image (ultralytics' pixels)."""
    params = letterbox_params(int(image.shape[-2]), int(image.shape[-1]), imgsz, stride, auto)
    resized = resize_linear(image.unsqueeze(0), params.resized)[0]
    bottom = params.shape[0] - params.resized[0] - params.top
    right = params.shape[1] - params.resized[1] - params.left
    padded = F.pad(resized, (params.left, right, params.top, bottom), value=PAD_VALUE)
    return padded, params


def unletterbox_boxes(boxes: torch.Tensor, params: LetterboxParams) -> torch.Tensor:
    """xyxy boxes in letterboxed pixels -> original pixels, clipped to the image (a new tensor)."""
    gain_y, gain_x = params.gain
    out = boxes.clone().float()
    out[..., [0, 2]] = (out[..., [0, 2]] - params.left) / gain_x
    out[..., [1, 3]] = (out[..., [1, 3]] - params.top) / gain_y
    out[..., [0, 2]] = out[..., [0, 2]].clamp(0, params.orig[1])
    out[..., [1, 3]] = out[..., [1, 3]].clamp(0, params.orig[0])
    return out
