"""Image files to ``(3, h, w)`` uint8 tensors, JPEGs decoded by torchvision (on the GPU where asked),
everything else through :func:`comipn_prep.images.load_image` (the same pixels either way).

The file's header is read on the host first (Pillow reads only the header here): its size is checked
against the same pixel limit as :func:`~comipn_prep.images.load_image`, and only a baseline or
progressive JPEG of 3 (YCbCr / RGB) or 1 (grey) components goes to ``torchvision.io.decode_jpeg``;
CMYK JPEGs, PNG, GIF, WebP and anything unreadable take the Pillow path, which gives today's pixels or
today's error (``ImageLoadError`` naming the file). The EXIF orientation is read from the header and
applied to the decoded tensor as flips and rotations, as ``ImageOps.exif_transpose`` applies it.
On the CPU, torchvision's and Pillow's JPEG decoders are both libjpeg-turbo: the same pixels
(tests/prep/test_decode.py); nvJPEG on a GPU may differ by a level or so on some pixels.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .images import DEFAULT_MAX_PIXELS, STATUS_TOO_LARGE, ImageLoadError, _pillow_open, load_image

logger = logging.getLogger(__name__)

_ORIENTATION_TAG = 0x0112


@dataclass
class Encoded:
    """A JPEG's bytes, ready for ``decode_jpeg``: ``data`` is a 1-D uint8 tensor (pinnable)."""

    path: str
    data: torch.Tensor
    orientation: int = 1  # EXIF orientation, 1 = upright
    grey: bool = False  # one component: decoded as RGB by replication, as Pillow's convert("RGB")


def jpeg_candidate(path: str | os.PathLike, data: bytes,
                   max_pixels: int = DEFAULT_MAX_PIXELS) -> Encoded | None:
    """``Encoded`` when ``data`` is a JPEG the tensor decoder gives Pillow's pixels for, else None (the
    Pillow path decides: other formats, CMYK, unreadable headers). A JPEG over ``max_pixels`` raises
    ``ImageLoadError`` (too_large), as :func:`load_image` does, before any pixel is decoded."""
    if not data.startswith(b"\xff\xd8"):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with _pillow_open()(io.BytesIO(data)) as im:  # header only; no pixel decoded
                if im.format != "JPEG" or im.mode not in ("RGB", "L"):
                    return None
                width, height = im.size
                orientation = int(im.getexif().get(_ORIENTATION_TAG, 1) or 1)
    except Exception:  # noqa: BLE001 - a header Pillow cannot read: load_image names the error
        return None
    if width * height > max_pixels:
        raise ImageLoadError(path, STATUS_TOO_LARGE, f"{width}x{height} pixels exceeds the limit of {max_pixels}")
    if width < 1 or height < 1 or orientation not in range(1, 9):
        return None
    return Encoded(str(path), torch.frombuffer(bytearray(data), dtype=torch.uint8), orientation, im.mode == "L")


def orient(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """``(..., h, w)`` turned upright per its EXIF ``orientation`` (1-8), as ``ImageOps.exif_transpose``."""
    if orientation == 2:
        return image.flip(-1)
    if orientation == 3:
        return image.flip(-1, -2)
    if orientation == 4:
        return image.flip(-2)
    if orientation == 5:
        return image.transpose(-1, -2)
    if orientation == 6:
        return torch.rot90(image, -1, (-2, -1))
    if orientation == 7:
        return image.transpose(-1, -2).flip(-1, -2)
    if orientation == 8:
        return torch.rot90(image, 1, (-2, -1))
    return image


def pillow_tensor(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """``load_image`` as a ``(3, h, w)`` uint8 CPU tensor (raises its ``ImageLoadError``)."""
    return torch.from_numpy(np.array(load_image(path, max_pixels))).permute(2, 0, 1)


def _finish(image: torch.Tensor, enc: Encoded) -> torch.Tensor:
    if enc.grey and image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    return orient(image, enc.orientation).contiguous()


def decode_encoded(batch: Sequence[Encoded], device: str | torch.device = "cpu") -> list[torch.Tensor]:
    """Decode JPEGs on ``device`` (one batched call where torchvision has it), upright, ``(3, h, w)``
    uint8. A JPEG the decoder refuses (truncated, an odd encoding) goes through :func:`pillow_tensor`,
    which gives Pillow's pixels or raises Pillow's ``ImageLoadError`` naming the file."""
    from torchvision.io import ImageReadMode, decode_jpeg

    if not batch:
        return []
    device = torch.device(device)
    mode = ImageReadMode.UNCHANGED  # grey stays one channel here; replicated after (no colour conversion)
    try:
        images = decode_jpeg([e.data for e in batch], mode=mode, device=device)
    except RuntimeError:
        images = None  # one bad file fails the whole batched call: decode them one by one
    out = []
    for k, enc in enumerate(batch):
        image = images[k] if images is not None else None
        if image is None:
            try:
                image = decode_jpeg(enc.data, mode=mode, device=device)
            except RuntimeError as err:
                logger.debug("%s: torchvision could not decode it (%s): Pillow decides", enc.path, err)
                image = pillow_tensor(enc.path).to(device)
                out.append(image)
                continue
        if image.shape[0] not in (1, 3):
            image = pillow_tensor(enc.path).to(device)
            out.append(image)
            continue
        out.append(_finish(image, enc))
    return out


def read_image(path: str | os.PathLike, *, host_decode: bool = True,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor | Encoded:
    """One image file: a ``(3, h, w)`` uint8 CPU tensor, or (``host_decode=False``, a JPEG) its
    ``Encoded`` bytes for :func:`decode_encoded` on a device. Raises ``ImageLoadError`` as
    :func:`load_image` does (missing, unreadable, too large)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError:
        return pillow_tensor(path, max_pixels)  # raises load_image's error (missing / unreadable)
    enc = jpeg_candidate(path, data, max_pixels)
    if enc is None:
        return pillow_tensor(path, max_pixels)
    return decode_encoded([enc], "cpu")[0] if host_decode else enc
