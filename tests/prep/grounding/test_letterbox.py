"""The tensor letterbox against ultralytics' own ``LetterBox`` (cv2), and boxes mapped back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ultralytics.data.augment import LetterBox
from ultralytics.utils import ops

from comipn_prep.grounding.letterbox import letterbox, letterbox_params, resize_linear, unletterbox_boxes


def _noise(seed: int, h: int, w: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_resize_gives_cv2s_pixels_at_random_sizes():
    import cv2

    rng = np.random.default_rng(0)
    sizes = [((240, 320), (480, 640)), ((480, 640), (240, 320)), ((1000, 800), (640, 512)), ((1, 1), (3, 3)),
             ((2, 3), (5, 7)), ((481, 641), (480, 640))]
    sizes += [(tuple(rng.integers(1, 500, 2)), tuple(rng.integers(1, 500, 2))) for _ in range(20)]
    for k, ((h, w), (nh, nw)) in enumerate(sizes):
        a = _noise(k, int(h), int(w))
        ref = cv2.resize(a, (int(nw), int(nh)), interpolation=cv2.INTER_LINEAR)
        ours = resize_linear(torch.from_numpy(a).permute(2, 0, 1)[None], (int(nh), int(nw)))[0].permute(1, 2, 0)
        assert np.array_equal(ours.numpy(), ref), ((h, w), (nh, nw))


@pytest.mark.parametrize("auto", [True, False])
def test_letterbox_equals_ultralytics_letterbox(auto):
    for k, (h, w) in enumerate([(240, 320), (480, 640), (241, 333), (1000, 700), (90, 1200), (640, 640), (5, 3)]):
        a = _noise(k, h, w)
        ref = LetterBox((640, 640), auto=auto, stride=32)(image=a.copy())
        ours, params = letterbox(torch.from_numpy(a).permute(2, 0, 1), 640, 32, auto=auto)
        assert params.shape == ref.shape[:2]
        assert np.array_equal(ours.permute(1, 2, 0).numpy(), ref), (h, w)


def test_boxes_map_back_to_the_original_pixels():
    rng = np.random.default_rng(3)
    for h, w in [(240, 320), (241, 333), (1000, 700), (90, 1200)]:
        params = letterbox_params(h, w, 640, 32)
        x1, y1 = rng.uniform(0, w - 2, 20), rng.uniform(0, h - 2, 20)
        boxes = np.stack([x1, y1, rng.uniform(x1 + 1, w), rng.uniform(y1 + 1, h)], 1)
        gy, gx = params.gain
        forward = torch.from_numpy(boxes).float() * torch.tensor([gx, gy, gx, gy])
        forward += torch.tensor([params.left, params.top, params.left, params.top])
        back = unletterbox_boxes(forward, params)
        assert float((back - torch.from_numpy(boxes).float()).abs().max()) < 1.0
        theirs = ops.scale_boxes(params.shape, forward.clone(), (h, w))  # ultralytics' own inverse
        assert float((back - theirs).abs().max()) < 1.0
