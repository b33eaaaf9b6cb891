"""comipn_prep.images.load_image on images as tweets come (all made here with Pillow)."""

from __future__ import annotations

import io
import struct
import resource
import zlib

import numpy as np
import pytest
from PIL import Image

from comipn_prep.images import ImageLoadError, load_image


def _gradient(w=40, h=30) -> np.ndarray:
    x = np.linspace(0, 255, w, dtype=np.float64)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.float64)[:, None].repeat(w, 1)
    return np.stack([x, y, 255 - x], axis=-1).astype(np.uint8)


def test_rgb_roundtrip_is_exact(tmp_path):
    arr = _gradient()
    Image.fromarray(arr).save(tmp_path / "a.png")
    im = load_image(tmp_path / "a.png")
    assert im.mode == "RGB" and im.size == (40, 30)
    assert np.array_equal(np.asarray(im), arr)


@pytest.mark.parametrize("mode", ["L", "CMYK", "P", "1", "LA"])
def test_modes_become_rgb(tmp_path, mode):
    src = Image.fromarray(_gradient()).convert(mode)
    path = tmp_path / ("a.jpg" if mode == "CMYK" else "a.png")
    src.save(path)
    im = load_image(path)
    assert im.mode == "RGB" and im.size == (40, 30)
    if mode == "L":  # grey stays grey: R == G == B == the grey value
        a = np.asarray(im)
        assert np.array_equal(a[..., 0], np.asarray(src)) and np.array_equal(a[..., 0], a[..., 2])


def test_rgba_transparent_pixels_become_white(tmp_path):
    arr = np.zeros((10, 10, 4), np.uint8)
    arr[..., 0] = 200  # red, fully transparent on the left half
    arr[:, 5:, 3] = 255
    Image.fromarray(arr, "RGBA").save(tmp_path / "t.png")
    a = np.asarray(load_image(tmp_path / "t.png"))
    assert tuple(a[0, 0]) == (255, 255, 255)
    assert tuple(a[0, 9]) == (200, 0, 0)


def test_palette_with_transparency(tmp_path):
    im = Image.new("P", (8, 8), 1)
    im.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    im.info["transparency"] = 0
    im.putpixel((0, 0), 0)
    im.save(tmp_path / "p.png", transparency=0)
    a = np.asarray(load_image(tmp_path / "p.png"))
    assert tuple(a[0, 0]) == (255, 255, 255) and tuple(a[4, 4]) == (10, 200, 30)


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    arr = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    a = np.asarray(load_image(tmp_path / "g16.png"))[0, :, 0]
    assert list(a) == [0, 128, 255]


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    Image.fromarray(arr).save(tmp_path / "r.jpg", exif=exif, quality=95)
    im = load_image(tmp_path / "r.jpg")
    assert im.size == (20, 40)
    a = np.asarray(im).astype(int)
    assert a[2, 10, 0] > 200 and a[37, 10, 0] < 60  # red is now on top


def test_animated_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=50)
    a = np.asarray(load_image(tmp_path / "a.gif"))
    assert a[8, 8, 0] > 200 and a[8, 8, 2] < 50


def test_one_pixel_image(tmp_path):
    Image.new("RGB", (1, 1), (1, 2, 3)).save(tmp_path / "one.png")
    im = load_image(tmp_path / "one.png")
    assert im.size == (1, 1) and im.getpixel((0, 0)) == (1, 2, 3)


def test_missing(tmp_path):
    with pytest.raises(ImageLoadError) as err:
        load_image(tmp_path / "nope.jpg")
    assert err.value.status == "missing" and "nope.jpg" in str(err.value)


def test_truncated_and_corrupt_are_unreadable(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_gradient(200, 150)).save(buf, format="JPEG")
    (tmp_path / "trunc.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8\xff not an image at all")
    (tmp_path / "empty.png").write_bytes(b"")
    for name in ("trunc.jpg", "junk.jpg", "empty.png"):
        with pytest.raises(ImageLoadError) as err:
            load_image(tmp_path / name)
        assert err.value.status == "unreadable", name
        assert name in str(err.value)


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG file whose header claims width x height pixels (data for a 1x1 image)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\x00")) \
        + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [20000, 60000])
def test_decompression_bomb_refused_from_header(tmp_path, side):
    (tmp_path / "bomb.png").write_bytes(_png_claiming(side, side))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with pytest.raises(ImageLoadError) as err:
        load_image(tmp_path / "bomb.png")
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert err.value.status == "too_large" and "bomb.png" in str(err.value)
    # Decoding would need side*side*3 bytes (1.2 GB / 10.8 GB); refused from the header, peak RSS barely moves.
    assert grown < 200 * 1024


def test_pixel_limit_is_a_parameter(tmp_path):
    Image.new("RGB", (100, 100)).save(tmp_path / "a.png")
    with pytest.raises(ImageLoadError) as err:
        load_image(tmp_path / "a.png", max_pixels=9999)
    assert err.value.status == "too_large"
    assert load_image(tmp_path / "a.png", max_pixels=10000).size == (100, 100)
