"""Class-agnostic boxes from an ultralytics YOLO model called on ready batch tensors: the letterbox on the
device (:mod:`.letterbox`), the model's own ``nn.Module`` on the stacked batch, then ultralytics' own
``non_max_suppression`` and ``scale_boxes``; ultralytics' per-image pre- and post-processing (numpy
letterbox, ``Results`` objects) are skipped.

The network is the one ``YOLO.predict`` runs (its ``AutoBackend``, Conv and BatchNorm fused), set up by
one ``predict`` of a blank image with the same settings as :class:`.detector.Detector`; the input is the
pixels ultralytics would make (the letterbox gives ``cv2``'s to the bit), so the boxes are
``YOLO.predict``'s (tests/prep/grounding/test_tensor_detector.py).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .detector import Detections, keep_torch_threads
from .letterbox import letterbox


class BatchDetector:
    """YOLO on ``(3, h, w)`` uint8 tensors (on the detector's device): at most ``max_candidates`` boxes
    per image after class-agnostic NMS, in original pixels."""

    def __init__(self, model: Any, conf: float = 0.25, nms_iou: float = 0.7, max_candidates: int = 10,
                 device: str = "cpu", imgsz: int = 640, max_batch: int = 0):
        self.model = model
        self.conf = conf
        self.nms_iou = nms_iou
        self.max_candidates = max_candidates
        self.device = device
        self.imgsz = imgsz
        # 0 = auto, as Detector: one image per call on a CPU (cheaper there), batches on a GPU.
        self.max_batch = max_batch if max_batch > 0 else (1 if str(device) == "cpu" else 64)
        self._backend = None
        self._shape: tuple[int, int] | None = None
        self._stride = 32

    def _setup(self) -> None:
        """ultralytics builds its predictor (the fused network on the device) on a first ``predict``."""
        if self._backend is not None:
            return
        with keep_torch_threads():
            self.model.predict(np.full((64, 64, 3), 114, np.uint8), conf=self.conf, iou=self.nms_iou,
                               agnostic_nms=True, max_det=self.max_candidates, imgsz=self.imgsz,
                               device=self.device, verbose=False)
        predictor = self.model.predictor
        self._backend = predictor.model
        size = predictor.imgsz
        self._shape = (int(size[0]), int(size[1])) if isinstance(size, (list, tuple)) else (int(size), int(size))
        self._stride = int(max(int(getattr(self._backend, "stride", 32)), 32))

    @property
    def stride(self) -> int:
        self._setup()
        return self._stride

    @torch.inference_mode()
    def _run(self, batch: torch.Tensor, orig_shapes: list[tuple[int, int]]) -> list[Detections]:
        from ultralytics.utils import ops
        from ultralytics.utils.nms import non_max_suppression

        backend = self._backend
        x = batch.half() if getattr(backend, "fp16", False) else batch.float()
        preds = backend(x.div_(255))
        kept = non_max_suppression(preds, self.conf, self.nms_iou, None, True, max_det=self.max_candidates,
                                   nc=0, end2end=getattr(backend, "end2end", False))
        out = []
        for pred, shape in zip(kept, orig_shapes):
            boxes = ops.scale_boxes(x.shape[2:], pred[:, :4].clone(), shape)
            out.append(Detections(boxes=boxes.detach().cpu().numpy().astype(np.float64),
                                  scores=pred[:, 4].detach().cpu().numpy().astype(np.float64)))
        return out

    def detect(self, images: Sequence[torch.Tensor]) -> list[Detections]:
        """Boxes for each ``(3, h, w)`` uint8 image, in input order.

        Each image is letterboxed to its own minimal rectangle (what ``predict`` does for a lone image);
        images whose rectangles are equal are run together, so an image's boxes do not depend on its
        batch-mates."""
        self._setup()
        boxed = [letterbox(im.to(self.device), self._shape, self._stride, auto=True) for im in images]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (_, params) in enumerate(boxed):
            groups.setdefault(params.shape, []).append(i)
        out: list[Detections | None] = [None] * len(images)
        with keep_torch_threads():
            for idx in groups.values():
                for start in range(0, len(idx), self.max_batch):
                    chunk = idx[start:start + self.max_batch]
                    batch = torch.stack([boxed[i][0] for i in chunk])
                    for i, det in zip(chunk, self._run(batch, [boxed[i][1].orig for i in chunk])):
                        out[i] = det
        return out  # type: ignore[return-value]
