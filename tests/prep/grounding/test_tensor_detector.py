"""YOLO on ready batch tensors (the tensor input path) against ``YOLO.predict`` (the ultralytics path),
with a random-weight YOLOv8n: the same boxes and scores, and the same grounding run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from comipn_prep.grounding.detector import Detector
from comipn_prep.grounding.driver import GroundConfig, Grounder, Loaded, ground_split
from comipn_prep.grounding.manifest import read_manifest
from comipn_prep.grounding.nps_input import GroundItem
from comipn_prep.grounding.tensor_crops import TensorPreprocess
from comipn_prep.grounding.tensor_detector import BatchDetector
from comipn_prep.weights import load_yolo

SIZES = [(320, 240), (333, 241), (640, 480), (200, 500), (320, 240)]


@pytest.fixture(scope="module")
def yolo():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return load_yolo("yolov8n.yaml")[0]


@pytest.fixture(scope="module")
def pictures(ellipses_picture):
    return [ellipses_picture(k, size) for k, size in enumerate(SIZES)]


def _tensor(im: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(im)).permute(2, 0, 1)


@pytest.mark.parametrize("max_batch", [1, 8])
def test_batch_tensor_boxes_equal_yolo_predict(yolo, pictures, max_batch):
    ref = Detector(yolo, conf=0.0, nms_iou=0.7, max_candidates=10, device="cpu", imgsz=320).detect(pictures)
    ours = BatchDetector(yolo, conf=0.0, nms_iou=0.7, max_candidates=10, device="cpu", imgsz=320,
                         max_batch=max_batch).detect([_tensor(im) for im in pictures])
    for r, o, im in zip(ref, ours, pictures):
        assert len(r.boxes) == len(o.boxes) == 10  # random weights, conf 0: every image has its 10 boxes
        # Same input pixels, same fused network: equal up to float noise of the batched convolutions.
        assert np.abs(r.boxes - o.boxes).max() < 1e-2, im.size
        assert np.abs(r.scores - o.scores).max() < 1e-5
        assert (o.boxes[:, [0, 2]] <= im.width).all() and (o.boxes[:, [1, 3]] <= im.height).all()


@pytest.fixture(scope="module")
def grounders(random_grounding):
    """``(ultralytics path, tensor input path)`` over the same random-weight models, YOLO at imgsz 320 in both
    (a quarter of the compute of 640)."""
    cfg = dict(detector="yolov8n.yaml", clip_model=random_grounding["clip_model"], clip_pretrained="none", conf=0.0,
               max_candidates=6, batch_size=3, crop_batch=8, top_k=3, device="cpu")
    loaded = Grounder.from_config(GroundConfig(**cfg))
    d = loaded.detector
    base = Grounder(Detector(d.model, d.conf, d.nms_iou, d.max_candidates, imgsz=320), loaded.matcher,
                    loaded.config, loaded.detector_id, loaded.clip_id, loaded.random_weights)
    tensor = Grounder(d, loaded.matcher, GroundConfig(**cfg, input_path="tensor"), loaded.detector_id, loaded.clip_id,
                      loaded.random_weights,
                      batch_detector=BatchDetector(d.model, d.conf, d.nms_iou, d.max_candidates, imgsz=320))
    assert loaded.batch_detector is None and tensor.tensor_input and not base.tensor_input
    return base, tensor


def test_ground_with_the_tensor_input_path_writes_the_ultralytics_paths_crops(tmp_path, pictures, grounders):
    base, tensor = grounders
    items = [GroundItem(str(k), ["a thing", "people"] if k % 3 else []) for k in range(5)]
    (tmp_path / "img").mkdir()
    for k, it in enumerate(items):
        pictures[k % len(pictures)].save(tmp_path / "img" / f"{it.imgid}.jpg", quality=90)
    Image.open(tmp_path / "img" / "1.jpg").save(tmp_path / "img" / "1.png")  # a PNG: Pillow decodes it
    (tmp_path / "img" / "1.jpg").unlink()
    (tmp_path / "img" / "3.jpg").write_bytes(b"\xff\xd8\xff broken")  # unreadable on both paths
    a = ground_split(base, items, tmp_path / "img", tmp_path / "ult", "train", progress=False)
    b = ground_split(tensor, items, tmp_path / "img", tmp_path / "ten", "train", progress=False)
    assert a.statuses == b.statuses and a.crops == b.crops > 0 and a.statuses["unreadable"] == 1
    da, db = read_manifest(Path(a.manifest)), read_manifest(Path(b.manifest))
    cols = ["imgid", "status", "crop_file", "rank", "x1", "y1", "x2", "y2", "phrase", "image_width", "image_height"]
    assert da[cols].equals(db[cols])
    assert np.nanmax(np.abs(da.clip_score.to_numpy() - db.clip_score.to_numpy())) < 1e-4
    assert np.nanmax(np.abs(da.det_score.to_numpy() - db.det_score.to_numpy())) < 1e-5
    for name in da.crop_file[da.crop_file != ""]:
        pa = np.asarray(Image.open(tmp_path / "ult" / "train" / "crops" / name))
        pb = np.asarray(Image.open(tmp_path / "ten" / "train" / "crops" / name))
        assert np.array_equal(pa, pb)


@pytest.mark.parametrize("crops_on_device", [False, True])
def test_images_only_on_the_device_ground_like_pillow_images(pictures, grounders, crops_on_device):
    """What the tensor input path hands over on a GPU (no Pillow image, only the device tensor; a CPU
    tensor here) grounds like the Pillow images: the same boxes, phrases and crop pixels."""
    base, tensor = grounders
    if crops_on_device:  # CLIP's pixels made from the device image, not from Pillow crops
        tensor = Grounder(tensor.detector, tensor.matcher, tensor.config, tensor.detector_id, tensor.clip_id,
                          tensor.random_weights, TensorPreprocess(tensor.matcher.bundle.preprocess),
                          batch_detector=tensor.batch_detector)
    items = [GroundItem(str(k), ["a thing", "people"] if k else []) for k in range(3)]
    ref = base.ground_batch([Loaded(it, pictures[k]) for k, it in enumerate(items)])
    ours = tensor.ground_batch([Loaded(it, None, tensor=_tensor(pictures[k])) for k, it in enumerate(items)])
    for r, o in zip(ref, ours):
        assert (r.status, r.width, r.height) == (o.status, o.width, o.height) and r.selected
        assert [(s.box, s.phrase, s.rank) for s in r.selected] == [(s.box, s.phrase, s.rank) for s in o.selected]
        assert np.allclose([s.clip_score for s in r.selected], [s.clip_score for s in o.selected], atol=1e-4,
                           equal_nan=True)  # NaN: an image without phrases has no CLIP score
        assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(r.crops, o.crops))
