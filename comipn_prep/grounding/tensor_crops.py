"""CLIP's image preprocessing on uint8 tensors, on the model's device: the crop path that never goes
through Pillow (the grounding driver's default on CUDA).

An image is decoded once, sent to the device once, and its candidate boxes are cut from that tensor,
resized, centre-cropped and normalised there. The resize is Pillow's own arithmetic (``Resample.c``):
two separable passes (width, then height), each a weighted sum over the filter's taps with Pillow's
22-bit fixed-point coefficients, rounded and clipped to 8 bits as Pillow does. Done in float64, where
these integer sums are exact, it gives Pillow's pixels (tests/prep/grounding/test_tensor_crops.py compares them).
torch's own antialiased ``interpolate`` differs by one level on ~1 pixel in 6000, and by two on rare
ones (measured on drawn 640x480 images).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

_PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed-point precision for 8-bit images


def _bicubic(x: np.ndarray) -> np.ndarray:
    a = -0.5  # Pillow's bicubic (Keys, a = -0.5)
    x = np.abs(x)
    return np.where(x < 1.0, ((a + 2.0) * x - (a + 3.0)) * x * x + 1,
                    np.where(x < 2.0, (((x - 5) * x + 8) * x - 4) * a, 0.0))


def _bilinear(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


_FILTERS = {"bicubic": (_bicubic, 2.0), "bilinear": (_bilinear, 1.0)}


@lru_cache(maxsize=4096)
def pillow_coefficients(in_size: int, out_size: int, mode: str = "bicubic") -> tuple[np.ndarray, np.ndarray]:
    """``(index, weight)``, both ``(out_size, taps)``: output pixel j of one axis is
    ``sum_k in[index[j, k]] * weight[j, k]`` in Pillow's fixed point (``precompute_coeffs`` +
    ``normalize_coeffs_8bpc``); unused taps have weight 0."""
    filt, fsupport = _FILTERS[mode]
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = fsupport * filterscale
    ksize = int(np.ceil(support)) * 2 + 1
    center = (np.arange(out_size) + 0.5) * scale
    xmin = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)
    xmax = np.minimum(np.trunc(center + support + 0.5), in_size).astype(np.int64) - xmin
    x = np.arange(ksize)[None, :]
    valid = x < xmax[:, None]
    w = np.where(valid, filt((x + xmin[:, None] - center[:, None] + 0.5) * (1.0 / filterscale)), 0.0)
    total = np.add.accumulate(w, axis=1)[:, -1:]  # summed in order, as Pillow does
    w = np.divide(w, total, out=w.copy(), where=total != 0.0)
    fixed = np.where(w < 0, np.trunc(-0.5 + w * (1 << _PRECISION_BITS)),
                     np.trunc(0.5 + w * (1 << _PRECISION_BITS))).astype(np.int64)
    fixed[~valid] = 0
    index = np.minimum(x + xmin[:, None], in_size - 1)
    return index, fixed


class UnsupportedPreprocess(ValueError):
    """The CLIP transform has a step the tensor path does not reproduce (use the Pillow path)."""


def _name(mode: Any) -> str:
    return str(getattr(mode, "value", mode)).lower()


class TensorPreprocess:
    """open_clip's ``Resize(shortest side) -> CenterCrop -> ToTensor -> Normalize`` on ``(3, h, w)`` uint8
    tensors; built from the bundle's own transform so both paths use the same sizes and statistics."""

    def __init__(self, preprocess: Any):
        steps = list(getattr(preprocess, "transforms", []))
        self.resize: list[int] | None = None
        self.mode = "bicubic"
        self.crop: tuple[int, int] | None = None
        self.mean = self.std = None
        for step in steps:
            kind = type(step).__name__
            if kind == "Resize":
                mode = _name(step.interpolation)
                if mode not in _FILTERS or getattr(step, "max_size", None) is not None \
                        or getattr(step, "antialias", True) is False:
                    raise UnsupportedPreprocess(f"CLIP transform step {step} has no tensor equivalent here")
                size = step.size
                self.resize = [size] if isinstance(size, int) else list(size)
                self.mode = mode
            elif kind == "CenterCrop":
                size = step.size
                self.crop = (size, size) if isinstance(size, int) else (int(size[0]), int(size[-1]))
            elif kind == "Normalize":
                self.mean = torch.tensor(step.mean, dtype=torch.float32).view(3, 1, 1)
                self.std = torch.tensor(step.std, dtype=torch.float32).view(3, 1, 1)
            elif kind in ("MaybeConvertMode", "MaybeToTensor", "ToTensor") or "convert_to_rgb" in repr(step):
                continue  # images are RGB already; the scaling to [0, 1] happens below
            else:
                raise UnsupportedPreprocess(f"CLIP transform step {kind} has no tensor equivalent here")
        if self.resize is None or self.crop is None or self.mean is None:
            raise UnsupportedPreprocess(f"CLIP transform {preprocess} is not Resize/CenterCrop/Normalize")
        self._stats: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self._taps: dict[tuple, tuple[torch.Tensor, torch.Tensor, np.ndarray]] = {}

    def _coefficients(self, in_size: int, out_size: int, device: torch.device):
        """``(index, weight)`` on the device and the index on the host (bounds are read there: no sync)."""
        key = (in_size, out_size, device)
        taps = self._taps.get(key)
        if taps is None:
            if len(self._taps) > 4096:  # many distinct crop sizes: keep memory bounded
                self._taps.clear()
            index, weight = pillow_coefficients(in_size, out_size, self.mode)
            taps = (torch.from_numpy(index).to(device), torch.from_numpy(weight).to(device, torch.float64), index)
            self._taps[key] = taps
        return taps

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The resized ``(h, w)``, computed as torchvision's Resize computes it for a Pillow image."""
        if len(self.resize) == 2:
            return self.resize[0], self.resize[1]
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.resize[0], int(self.resize[0] * long / short)
        return (new_long, new_short) if width <= height else (new_short, new_long)

    @staticmethod
    def _pass(x: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Resample the last axis of ``x`` (float64, integer-valued) as one Pillow pass."""
        acc = (x[..., index] * weight).sum(-1)  # (..., out, taps) -> (..., out): exact integer sums
        half = float(1 << (_PRECISION_BITS - 1))
        return torch.floor((acc + half) / float(1 << _PRECISION_BITS)).clamp_(0, 255)

    def resize_crop(self, crop: torch.Tensor) -> torch.Tensor:
        """One ``(3, h, w)`` uint8 crop -> ``(3, S, S)`` float in 0..255 (integer-valued), centre-cropped.

        Each output pixel depends only on its own filter taps, so only the pixels the centre crop keeps
        are computed (the same values as resizing the whole crop first, as Pillow does)."""
        _, h, w = crop.shape
        new_h, new_w = self.output_size(h, w)
        ch, cw = self.crop
        x = crop.to(torch.float64)
        if ch > new_h or cw > new_w:  # torchvision pads with zeros before cropping (fixed-size resizes)
            if new_w != w:
                x = self._pass(x, *self._coefficients(w, new_w, x.device)[:2])
            if new_h != h:
                x = self._pass(x.transpose(-1, -2), *self._coefficients(h, new_h, x.device)[:2]).transpose(-1, -2)
            pad_h, pad_w = max(ch - new_h, 0), max(cw - new_w, 0)
            x = F.pad(x, (pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2))
            new_h, new_w = x.shape[-2:]
            top, left = int(round((new_h - ch) / 2.0)), int(round((new_w - cw) / 2.0))
            return x[:, top:top + ch, left:left + cw].float()
        top, left = int(round((new_h - ch) / 2.0)), int(round((new_w - cw) / 2.0))
        if new_h != h:  # the kept rows' taps; only the input rows they read go through the width pass
            v_index, v_weight, host = (t[top:top + ch] for t in self._coefficients(h, new_h, x.device))
            first, last = int(host.min()), int(host.max()) + 1
            x, v_index = x[:, first:last], v_index - first
        else:
            x = x[:, top:top + ch]
        # Pillow resizes width first, then height, storing the intermediate image as 8-bit.
        if new_w != w:
            h_index, h_weight, _ = (t[left:left + cw] for t in self._coefficients(w, new_w, x.device))
            x = self._pass(x, h_index, h_weight)
        else:
            x = x[:, :, left:left + cw]
        if new_h != h:
            x = self._pass(x.transpose(-1, -2), v_index, v_weight).transpose(-1, -2)
        return x.float()

    def _axis_taps(self, start: int, size: int, out_size: int, keep: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """One axis of one box as ``(index, weight)`` into the whole image's axis, for the ``count``
        output pixels from ``keep`` on: Pillow's taps shifted by the box's ``start``, or (no resize on
        this axis) the kept pixels themselves with weight 1.0 in fixed point."""
        if out_size == size:
            return (start + keep + np.arange(count))[:, None], np.full((count, 1), 1 << _PRECISION_BITS)
        index, weight = pillow_coefficients(size, out_size, self.mode)
        return start + index[keep:keep + count], weight[keep:keep + count]

    @staticmethod
    def _dense(taps: list[tuple[np.ndarray, np.ndarray]], size: int, device) -> torch.Tensor:
        """``(n, out, size)`` float64 resampling matrices from every box's taps (padded to the widest)."""
        width = max(index.shape[1] for index, _ in taps)
        index = np.stack([np.pad(i, ((0, 0), (0, width - i.shape[1]))) for i, _ in taps])
        weight = np.stack([np.pad(w, ((0, 0), (0, width - w.shape[1]))) for _, w in taps])
        index, weight = torch.from_numpy(index).to(device), torch.from_numpy(weight).to(device, torch.float64)
        out = torch.zeros(len(taps), index.shape[1], size, dtype=torch.float64, device=device)
        return out.scatter_add_(2, index, weight)

    def boxes(self, image: torch.Tensor, boxes) -> torch.Tensor:
        """``(n, 3, S, S)`` normalised pixels of integer xyxy ``boxes`` of one ``(3, H, W)`` uint8 image,
        equal to :meth:`__call__` on the cut crops, in a fixed number of device calls for all boxes:
        each box's two Pillow passes are dense matrices into the whole image (its taps shifted by the
        box's corner), applied as two batched products in float64 (exact integer sums), each rounded as
        Pillow rounds (the crop path's per-crop loop made about 15 calls a box: launches on a GPU)."""
        boxes = [tuple(int(v) for v in b) for b in boxes]
        if not boxes:
            return self([])
        ch, cw = self.crop
        rows, cols, batched, alone = [], [], [], []
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            h, w = y2 - y1, x2 - x1
            new_h, new_w = self.output_size(h, w)
            if ch > new_h or cw > new_w:  # padded before the centre crop: the per-crop path
                alone.append(i)
                continue
            top, left = int(round((new_h - ch) / 2.0)), int(round((new_w - cw) / 2.0))
            rows.append(self._axis_taps(y1, h, new_h, top, ch))
            cols.append(self._axis_taps(x1, w, new_w, left, cw))
            batched.append(i)
        device = image.device
        out = torch.empty(len(boxes), 3, ch, cw, dtype=torch.float32, device=device)
        if batched:
            first = min(int(r[0].min()) for r in rows)  # only the image rows some box reads
            last = max(int(r[0].max()) for r in rows) + 1
            rows = [(index - first, weight) for index, weight in rows]
            x = image[:, first:last].to(torch.float64)  # (3, h, W)
            half, unit = float(1 << (_PRECISION_BITS - 1)), float(1 << _PRECISION_BITS)
            across = self._dense(cols, image.shape[-1], device)  # (n, cw, W)
            down = self._dense(rows, last - first, device)  # (n, ch, h)
            # Pillow resizes the width first and stores that pass as 8 bits, then the height.
            wide = torch.floor((x.unsqueeze(0) @ across.transpose(1, 2).unsqueeze(1) + half) / unit).clamp_(0, 255)
            pixels = torch.floor((down.unsqueeze(1) @ wide + half) / unit).clamp_(0, 255)  # (n, 3, ch, cw)
            out[batched] = pixels.float()
        for i in alone:
            x1, y1, x2, y2 = boxes[i]
            out[i] = self.resize_crop(image[:, y1:y2, x1:x2])
        mean, std = self._device_stats(device)
        return (out / 255.0 - mean) / std

    def _device_stats(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._stats:
            self._stats[device] = (self.mean.to(device), self.std.to(device))
        return self._stats[device]

    def __call__(self, crops: Sequence[torch.Tensor]) -> torch.Tensor:
        """``(N, 3, S, S)`` normalised pixels of the crops (on the crops' device)."""
        if not crops:
            return torch.zeros(0, 3, *self.crop)
        mean, std = self._device_stats(crops[0].device)
        batch = torch.stack([self.resize_crop(c) for c in crops])
        return (batch / 255.0 - mean) / std


def image_tensor(pixels, device: str | torch.device) -> torch.Tensor:
    """An ``(h, w, 3)`` uint8 array -> ``(3, h, w)`` uint8 tensor on ``device`` (one transfer per image)."""
    if not pixels.flags.writeable:  # np.asarray(PIL image) is read-only; torch wants to own a copy then
        pixels = np.array(pixels)
    return torch.from_numpy(np.ascontiguousarray(pixels)).to(device).permute(2, 0, 1)


def cut(image: torch.Tensor, boxes) -> list[torch.Tensor]:
    """Views of ``image`` (``(3, h, w)``) for integer xyxy boxes."""
    return [image[:, int(y1):int(y2), int(x1):int(x2)] for x1, y1, x2, y2 in boxes]
