"""comipn_prep.decode: torchvision's JPEG decoding against load_image's Pillow pixels (images made here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from comipn_prep.decode import Encoded, decode_encoded, jpeg_candidate, orient, read_image
from comipn_prep.images import ImageLoadError, load_image


def _picture(seed: int, size=(323, 241)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (max(size[1] // 4, 1), max(size[0] // 4, 1), 3), dtype=np.uint8)
    im = Image.fromarray(small).resize(size)  # smooth areas, as photos have, and sharp edges below
    draw = ImageDraw.Draw(im)
    colour = tuple(int(c) for c in rng.integers(0, 255, 3))
    draw.ellipse([size[0] // 8, size[1] // 8, size[0] // 2, size[1] // 2], fill=colour)
    return im


def _pillow(path) -> np.ndarray:
    return np.asarray(load_image(path))


def _ours(path) -> np.ndarray:
    return read_image(path).permute(1, 2, 0).numpy()


@pytest.mark.parametrize("options", [dict(quality=90), dict(quality=75, subsampling="4:4:4"),
                                     dict(quality=95, subsampling="4:2:2"), dict(quality=85, progressive=True)])
def test_jpeg_pixels_equal_pillows(tmp_path, options):
    # Both are libjpeg-turbo on the CPU: measured 0 levels apart on every pixel (nvJPEG may differ).
    for seed, size in ((0, (323, 241)), (1, (640, 480)), (2, (17, 333))):
        path = tmp_path / f"{seed}.jpg"
        _picture(seed, size).save(path, **options)
        assert jpeg_candidate(path, path.read_bytes()) is not None
        ours, ref = _ours(path), _pillow(path)
        assert ours.shape == ref.shape == (size[1], size[0], 3)
        assert np.array_equal(ours, ref)


def test_grey_jpeg_is_replicated_like_pillows_rgb(tmp_path):
    path = tmp_path / "g.jpg"
    _picture(3).convert("L").save(path, quality=90)
    assert jpeg_candidate(path, path.read_bytes()).grey
    assert np.array_equal(_ours(path), _pillow(path))


@pytest.mark.parametrize("name,mode", [("a.png", "RGBA"), ("a.gif", "P"), ("a.webp", "RGB"), ("cmyk.jpg", "CMYK"),
                                       ("l.png", "L")])
def test_other_formats_fall_back_to_pillow(tmp_path, name, mode):
    path = tmp_path / name
    _picture(4).convert(mode).save(path)
    assert jpeg_candidate(path, path.read_bytes()) is None  # not torchvision's: Pillow decodes it
    assert np.array_equal(_ours(path), _pillow(path))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_as_pillows_exif_transpose(tmp_path, orientation):
    path = tmp_path / f"o{orientation}.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    _picture(5, (64, 40)).save(path, quality=92, exif=exif)
    enc = jpeg_candidate(path, path.read_bytes())
    assert enc.orientation == orientation
    ref = _pillow(path)
    assert ref.shape[:2] == ((40, 64) if orientation < 5 else (64, 40))
    assert np.array_equal(_ours(path), ref)


def test_orient_is_exif_transpose_on_an_asymmetric_array():
    from PIL import ImageOps

    arr = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    for orientation in range(1, 9):
        im = Image.fromarray(arr)
        exif = im.getexif()
        exif[0x0112] = orientation
        im.info["exif"] = exif.tobytes()
        ref = np.asarray(ImageOps.exif_transpose(im))
        ours = orient(torch.from_numpy(arr).permute(2, 0, 1), orientation).permute(1, 2, 0).numpy()
        assert np.array_equal(ours, ref), orientation


def test_corrupt_and_truncated_files_raise_load_images_error(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(ImageLoadError, match="bad.jpg") as err:
        read_image(bad)
    assert err.value.status == "unreadable"
    good = tmp_path / "good.jpg"
    _picture(6).save(good, quality=90)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    with pytest.raises(ImageLoadError, match="cut.jpg") as err:
        read_image(cut)
    with pytest.raises(ImageLoadError) as pil_err:
        load_image(cut)
    assert err.value.status == pil_err.value.status == "unreadable"
    with pytest.raises(ImageLoadError, match="missing") as err:
        read_image(tmp_path / "nope.jpg")


def test_a_batch_with_a_bad_jpeg_decodes_the_others(tmp_path):
    paths = []
    for k in range(3):
        paths.append(tmp_path / f"{k}.jpg")
        _picture(k, (50 + k, 40)).save(paths[-1], quality=90)
    encs = [jpeg_candidate(p, p.read_bytes()) for p in paths]
    out = decode_encoded(encs, "cpu")
    assert [tuple(t.shape) for t in out] == [(3, 40, 50), (3, 40, 51), (3, 40, 52)]
    # Bytes torchvision refuses (truncated in memory): the file itself is read by Pillow, the batch goes on.
    broken = Encoded(str(paths[1]), encs[1].data[:200].clone())
    again = decode_encoded([encs[0], broken, encs[2]])
    assert all(torch.equal(a, b) for a, b in zip(again, out))


def test_too_large_refused_from_the_header(tmp_path):
    path = tmp_path / "big.jpg"
    _picture(7, (300, 200)).save(path, quality=80)
    with pytest.raises(ImageLoadError, match="exceeds") as err:
        read_image(path, max_pixels=100 * 100)
    assert err.value.status == "too_large"
