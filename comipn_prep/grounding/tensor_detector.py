"""Class-agnostic boxes from an ultralytics YOLO model called on ready batch tensors: the letterbox on the
device (:mod:`.letterbox`), the model's own ``nn.Module`` on the stacked batch, then ultralytics' own
``non_max_suppression`` and ``scale_boxes``; ultralytics' per-image pre- and post-processing (numpy
letterbox, ``Results`` objects) are skipped.

The network is the one ``YOLO.predict`` runs (its ``AutoBackend``, Conv and BatchNorm fused), set up by
one ``predict`` of a blank image with :class:`.detector.Detector`'s settings (whose class it extends); the input is the
pixels ultralytics would make (the letterbox gives ``cv2``'s to the bit), so the boxes are
``YOLO.predict``'s (tests/prep/grounding/test_tensor_detector.py).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from .detector import Detections, Detector, keep_torch_threads
from .letterbox import letterbox


class BatchDetector(Detector):
    """:class:`.detector.Detector` (the same settings) on ``(3, h, w)`` uint8 tensors on the detector's device
    instead of Pillow images: at most ``max_candidates`` boxes per image after class-agnostic NMS, in
    original pixels."""

    _backend: Any = None  # the fused network ``predict`` set up (see _setup)
    _shape: tuple[int, int] | None = None
    _stride = 32

    def _setup(self) -> None:
        """ultralytics builds its predictor (the fused network on the device) on a first ``predict``: one of a
        blank image, with this detector's settings."""
        if self._backend is not None:
            return
        self._predict([Image.new("RGB", (64, 64), (114, 114, 114))])
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
