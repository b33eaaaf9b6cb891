"""Safe image loading: any image as the tweets come, as an RGB ``PIL.Image``, or a typed error.

Handles EXIF orientation, animated GIFs (first frame), CMYK / palette / RGBA / LA / 16-bit / grayscale
(converted to RGB), and refuses decompression bombs from the header size, before any pixel is decoded.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# 8192 x 8192: far beyond any tweet image, and ~200 MB decoded as RGB.
DEFAULT_MAX_PIXELS = 8192 * 8192

STATUS_MISSING = "missing"
STATUS_UNREADABLE = "unreadable"
STATUS_TOO_LARGE = "too_large"


class ImageLoadError(Exception):
    """An image that cannot be used; ``status`` is ``missing``, ``unreadable`` or ``too_large``."""

    def __init__(self, path: str | os.PathLike, status: str, reason: str):
        self.path = str(path)
        self.status = status
        self.reason = reason
        super().__init__(f"{self.path}: {status}: {reason}")


def load_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open ``path`` and return a fully decoded RGB image (upright per its EXIF orientation)."""
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(path, STATUS_MISSING, "no such file")
    try:
        with warnings.catch_warnings():
            # We apply our own limit below; Pillow's warning/limit would fire on the same header size.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with _pillow_open()(path) as im:
                width, height = im.size
                if width * height > max_pixels:
                    raise ImageLoadError(path, STATUS_TOO_LARGE,
                                         f"{width}x{height} pixels exceeds the limit of {max_pixels}")
                if width < 1 or height < 1:
                    raise ImageLoadError(path, STATUS_UNREADABLE, f"empty image {width}x{height}")
                im.seek(0)  # first frame of an animation
                im.load()
                return to_rgb(ImageOps.exif_transpose(im))
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageLoadError(path, STATUS_TOO_LARGE, str(err)) from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.UnidentifiedImageError) as err:
        raise ImageLoadError(path, STATUS_UNREADABLE, f"{type(err).__name__}: {err}") from None


def _pillow_open():
    """Pillow's own ``Image.open``. ultralytics replaces it on import with a wrapper that, on an
    unidentified file, tries to pip-install a HEIF plugin (network, and a crash offline); a corrupt
    tweet image must simply be ``unreadable``."""
    opener = Image.open
    if getattr(opener, "__module__", "").startswith("ultralytics"):
        opener = getattr(sys.modules.get(opener.__module__), "_image_open", opener)
    return opener


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB: transparency over white, 16/32-bit scaled to 8 bits, CMYK converted."""
    mode = im.mode
    if mode == "RGB":
        return im.copy() if im.readonly else im
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or (mode == "I" and arr.max(initial=0) > 255) else 255.0
        if mode == "F":
            top = max(float(arr.max(initial=0)), 1.0)
        gray = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")
