"""The tensor crop path (the CUDA default, forced here on the CPU) against the Pillow path: the same
boxes, the same crop pixels after CLIP's resize, CLIP scores within 1e-3, the same files on disk."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from comipn_prep.grounding.driver import GroundConfig, Grounder, ground_split, load_item
from comipn_prep.grounding.nps_input import GroundItem
from comipn_prep.grounding.manifest import read_manifest
from comipn_prep.grounding.tensor_crops import TensorPreprocess, cut, image_tensor, pillow_coefficients

CFG = dict(detector="yolov8n.yaml", clip_pretrained="none", conf=0.0, max_candidates=6, batch_size=3,
           crop_batch=8, top_k=3, device="cpu")


@pytest.fixture(scope="module")
def pillow_grounder() -> Grounder:
    torch.manual_seed(0)
    return Grounder.from_config(GroundConfig(**CFG))


@pytest.fixture(scope="module")
def tensor_grounder(pillow_grounder) -> Grounder:
    """The same two models, cropping through tensors."""
    g = pillow_grounder
    return Grounder(g.detector, g.matcher, GroundConfig(**CFG, crop_path="tensor"), g.detector_id, g.clip_id,
                    g.random_weights, tensor_pre=TensorPreprocess(g.matcher.bundle.preprocess))


@pytest.fixture(scope="module")
def picture(ellipses_picture):
    """``picture(seed, size=(320, 240))``: 5 ellipses up to 200x150 pixels on noise."""
    def draw(seed: int, size=(320, 240)) -> Image.Image:
        return ellipses_picture(seed, size, count=5, max_extent=(200, 150))

    return draw


def test_tensor_preprocess_gives_pillows_pixels(pillow_grounder, picture):
    preprocess = pillow_grounder.matcher.bundle.preprocess
    tp = TensorPreprocess(preprocess)
    im = picture(3, (640, 480))
    image = image_tensor(np.asarray(im), "cpu")
    rng = np.random.default_rng(1)
    boxes = [(0, 0, 640, 480), (10, 20, 11, 21), (5, 5, 6, 300), (100, 50, 600, 60), (3, 4, 227, 228),
             (7, 9, 231, 400), (0, 0, 224, 224)]
    for _ in range(12):
        x1, y1 = int(rng.integers(0, 600)), int(rng.integers(0, 440))
        boxes.append((x1, y1, int(rng.integers(x1 + 1, 641)), int(rng.integers(y1 + 1, 481))))
    ours = tp(cut(image, boxes))
    ref = torch.stack([preprocess(im.crop(b)) for b in boxes])
    std = torch.tensor(preprocess.transforms[-1].std).view(1, 3, 1, 1)
    levels = ((ours - ref) * std * 255).abs()
    assert ours.shape == ref.shape == (len(boxes), 3, 224, 224)
    assert float(levels.max()) < 1e-3  # Pillow's own arithmetic: the same 8-bit pixels
    # every box of the image at once (two batched products, the driver's path): the very same pixels
    assert torch.equal(tp.boxes(image, boxes), ours)
    assert tp.boxes(image, []).shape == (0, 3, 224, 224)


def test_pillow_coefficients_sum_to_one_in_fixed_point():
    for n_in, n_out in ((640, 224), (7, 224), (224, 224), (300, 299)):
        index, weight = pillow_coefficients(n_in, n_out)
        assert index.shape == weight.shape and len(index) == n_out
        assert index.min() >= 0 and index.max() < n_in
        assert np.all(np.abs(weight.sum(axis=1) - (1 << 22)) <= weight.shape[1])  # each coefficient rounded


def test_tensor_path_grounds_like_the_pillow_path(tmp_path, pillow_grounder, tensor_grounder, picture):
    phrases = [["a red car", "the man"], [], ["Kentucky"], ["a dog", "EU", "New York"]]
    sizes = [(320, 240), (320, 240), (200, 300), (97, 61)]
    items = []
    for k, (ph, size) in enumerate(zip(phrases, sizes)):
        picture(10 + k, size).save(tmp_path / f"{k}.jpg", quality=92)
        items.append(GroundItem(str(k), ph))
    pil = pillow_grounder.ground_batch([load_item(tmp_path, it) for it in items])
    ten = tensor_grounder.ground_batch([load_item(tmp_path, it, as_array=True) for it in items])
    assert sum(len(r.selected) for r in pil) > len(pil)
    for a, b in zip(pil, ten):
        assert (a.imgid, a.status, a.width, a.height) == (b.imgid, b.status, b.width, b.height)
        assert [(s.rank, s.box, s.phrase) for s in a.selected] == [(s.rank, s.box, s.phrase) for s in b.selected]
        for sa, sb in zip(a.selected, b.selected):
            both_nan = math.isnan(sa.clip_score) and math.isnan(sb.clip_score)
            assert both_nan or abs(sa.clip_score - sb.clip_score) < 1e-3
        for ca, cb in zip(a.crops, b.crops):
            assert np.array_equal(np.asarray(ca), np.asarray(cb))
    # Every candidate's score, not only the chosen ones: the embeddings of both paths agree.
    loaded = load_item(tmp_path, items[3], as_array=True)
    det = pillow_grounder.detector.detect([loaded.image])[0]
    from comipn_prep.grounding.driver import candidate_boxes

    boxes, _ = candidate_boxes(loaded.size, det)
    assert len(boxes) > 1
    emb_pil = pillow_grounder.matcher.encode_crops([loaded.image.crop(tuple(int(v) for v in b)) for b in boxes])
    crops, _ = tensor_grounder._crops(loaded, boxes, need_pixels=True)
    emb_ten = tensor_grounder._encode(crops)
    text = pillow_grounder.matcher.encode_phrases(items[3].phrases)
    assert np.abs(text @ emb_pil.T - text @ emb_ten.T).max() < 1e-3


def test_tensor_path_writes_the_same_crops_and_manifest(tmp_path, pillow_grounder, tensor_grounder, picture):
    items = [GroundItem(str(k), ["a thing", "people"] if k % 3 else []) for k in range(7)]
    (tmp_path / "img").mkdir()
    for k, it in enumerate(items):
        picture(20 + k).save(tmp_path / "img" / f"{it.imgid}.jpg", quality=90)
    assert tensor_grounder.write_threads > 0 and pillow_grounder.write_threads == 0
    a = ground_split(pillow_grounder, items, tmp_path / "img", tmp_path / "pil", "train", progress=False)
    b = ground_split(tensor_grounder, items, tmp_path / "img", tmp_path / "ten", "train", progress=False)
    assert a.statuses == b.statuses and a.crops == b.crops > 0
    da, db = read_manifest(Path(a.manifest)), read_manifest(Path(b.manifest))
    cols = ["imgid", "status", "crop_file", "rank", "x1", "y1", "x2", "y2", "phrase"]
    assert da[cols].equals(db[cols])
    assert np.nanmax(np.abs(da.clip_score.to_numpy() - db.clip_score.to_numpy())) < 1e-3
    for name in da.crop_file[da.crop_file != ""]:
        pa = np.asarray(Image.open(tmp_path / "pil" / "train" / "crops" / name))
        pb = np.asarray(Image.open(tmp_path / "ten" / "train" / "crops" / name))
        assert np.array_equal(pa, pb)


def test_crop_path_choice():
    assert GroundConfig().crop_path == "auto"
    with pytest.raises(ValueError, match="crop path"):
        GroundConfig(crop_path="gpu")
    from comipn_prep.grounding.driver import _tensor_preprocess

    class Odd:
        transforms = [object()]

    assert _tensor_preprocess("auto", "cpu", Odd()) is None  # auto on a CPU: Pillow
    assert _tensor_preprocess("auto", "cuda", Odd()) is None  # a transform it cannot copy: Pillow, warned
    with pytest.raises(ValueError, match="tensor crop path"):
        _tensor_preprocess("tensor", "cpu", Odd())
