"""Fixtures of the grounding tests."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw


def _ellipses_picture(seed: int, size=(320, 240), count: int = 4, max_extent=(120, 100)) -> Image.Image:
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(count):
        x, y = rng.integers(0, size[0] - 20), rng.integers(0, size[1] - 20)
        draw.ellipse([x, y, x + rng.integers(10, max_extent[0]), y + rng.integers(10, max_extent[1])],
                     fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    return im


@pytest.fixture(scope="session")
def ellipses_picture():
    """``ellipses_picture(seed, size=(320, 240), count=4, max_extent=(120, 100))``: ``count`` filled ellipses
    up to ``max_extent`` (w, h) pixels on RGB noise, the same for the same arguments; YOLO and CLIP find
    boxes in it."""
    return _ellipses_picture
