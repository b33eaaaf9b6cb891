"""Class-agnostic boxes from an ultralytics YOLO model."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image


@dataclass
class Detections:
    boxes: np.ndarray  # (n, 4) float xyxy in original pixels
    scores: np.ndarray  # (n,)


@contextlib.contextmanager
def keep_torch_threads():
    """Undo ultralytics' ``torch.set_num_threads(cpu_count - 1)`` on CPU predicts: on 2 cores it left
    the whole process (CLIP, the tower, the tagger) on one thread after the first detection."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


class Detector:
    """Wraps ``YOLO.predict``: class-agnostic NMS, at most ``max_candidates`` boxes per image."""

    def __init__(self, model: Any, conf: float = 0.25, nms_iou: float = 0.7, max_candidates: int = 10,
                 device: str = "cpu", imgsz: int = 640, max_batch: int = 0):
        self.model = model
        self.conf = conf
        self.nms_iou = nms_iou
        self.max_candidates = max_candidates
        self.device = device
        self.imgsz = imgsz
        # 0 = auto. On a CPU one image per call is cheaper (measured: a batch of 8 equal 640x480 images
        # cost 1.8x the CPU time per image of single calls); a GPU wants whole batches.
        self.max_batch = max_batch if max_batch > 0 else (1 if str(device) == "cpu" else 64)

    def _predict(self, images: list[Image.Image]) -> list[Detections]:
        with keep_torch_threads():
            results = self.model.predict(images, conf=self.conf, iou=self.nms_iou, agnostic_nms=True,
                                         max_det=self.max_candidates, imgsz=self.imgsz, device=self.device,
                                         verbose=False)
        out = []
        for r in results:
            boxes = r.boxes
            out.append(Detections(boxes=boxes.xyxy.detach().cpu().numpy().astype(np.float64),
                                  scores=boxes.conf.detach().cpu().numpy().astype(np.float64)))
        return out

    def detect(self, images: Sequence[Image.Image]) -> list[Detections]:
        """Boxes for each image, in input order.

        Images are batched by size: ultralytics pads a batch of equal-sized images to the same
        minimal rectangle as a lone image, so each image's boxes do not depend on its batch-mates
        (a mixed-size batch would be padded to a square and give slightly different boxes)."""
        groups: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(images):
            groups.setdefault(im.size, []).append(i)
        out: list[Detections | None] = [None] * len(images)
        for idx in groups.values():
            for start in range(0, len(idx), self.max_batch):
                chunk = idx[start:start + self.max_batch]
                for i, det in zip(chunk, self._predict([images[i] for i in chunk])):
                    out[i] = det
        return out  # type: ignore[return-value]
