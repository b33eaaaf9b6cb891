"""Test pictures: random noise with random filled ellipses, the same for the same arguments."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def ellipses_picture(seed: int, size=(320, 240), count: int = 4, max_extent=(120, 100)) -> Image.Image:
    """``count`` ellipses up to ``max_extent`` (w, h) pixels on RGB noise; YOLO and CLIP find boxes in it."""
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(count):
        x, y = rng.integers(0, size[0] - 20), rng.integers(0, size[1] - 20)
        draw.ellipse([x, y, x + rng.integers(10, max_extent[0]), y + rng.integers(10, max_extent[1])],
                     fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    return im
