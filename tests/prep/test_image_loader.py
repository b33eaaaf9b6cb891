"""comipn_prep.image_loader: batches in order, pixels as load_image's, bad files as records naming them."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from comipn_prep.image_loader import iter_images
from comipn_prep.images import load_image


@pytest.mark.parametrize("workers", [0, 1])
def test_batches_in_order_with_pillows_pixels_and_error_records(tmp_path, workers):
    rng = np.random.default_rng(0)
    paths = []
    for k in range(5):
        im = Image.fromarray(rng.integers(0, 255, (30 + k, 40, 3), dtype=np.uint8))
        paths.append(tmp_path / (f"{k}.png" if k == 2 else f"{k}.jpg"))
        im.save(paths[-1])
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not an image")
    paths[3] = tmp_path / "bad.jpg"
    paths.append(None)  # no file for this one
    batches = list(iter_images(paths, batch_size=4, device="cpu", workers=workers))
    assert [len(b) for b in batches] == [4, 2]
    got = [x for b in batches for x in b]
    assert [x.index for x in got] == list(range(6))
    assert [x.status for x in got] == ["ok", "ok", "ok", "unreadable", "ok", "missing"]
    assert "bad.jpg" in got[3].reason and got[3].tensor is None and got[5].tensor is None
    for x in got:
        if x.status == "ok":
            ref = np.asarray(load_image(paths[x.index]))
            assert np.array_equal(x.tensor.permute(1, 2, 0).numpy(), ref)
