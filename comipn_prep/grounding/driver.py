"""The batched grounding driver: images -> boxes -> CLIP scores -> kept crops + manifest rows.

Order of work per batch of images: decode (in background threads, one batch ahead), detect (YOLO,
equal-sized images together), crop every kept-candidate box of every image, encode all crops of the
batch through CLIP together, encode the batch's new phrases (cached), select, write crops, then append
the batch's rows to the manifest. :meth:`Grounder.ground_one` is the naive order (one image at a time)
that tests and the benchmark compare against.

Two crop paths give the same crops: the Pillow path (``Image.crop`` + CLIP's own transform, the CPU
default) and the tensor path (the CUDA default, :mod:`.tensor_crops`): each image goes to the device once
as a uint8 tensor; all its boxes are resized and normalised there at once (two batched products); PNGs
of the kept crops are written by CPU threads while the device works on the next batch.

Two input paths give the same boxes: ``ultralytics`` (the default: Pillow decodes on threads, ``YOLO.predict``
letterboxes and post-processes each image) and ``tensor`` (:mod:`comipn_prep.image_loader`: a prefetching
DataLoader whose workers read the files, JPEGs decoded by torchvision, on the GPU there; the letterbox,
YOLO's network and NMS on ready batch tensors, :mod:`.tensor_detector`). On a GPU the image then stays on
the device from decoding to the crops' CLIP pixels; only the kept crops come back, to be saved as PNGs.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm

from ..conll import atomic_write_bytes
from ..devices import resolve_device
from ..image_loader import iter_images
from ..images import ImageLoadError, load_image
from ..layout import CROP_NAME_RE, SPLIT_FOLDERS, canonical_split, crop_name, find_image, inside
from ..nps.extract import nps_path
from ..weights import load_clip, load_yolo
from .clip_matcher import DEFAULT_PROMPT, ClipMatcher
from .detector import Detections, Detector
from .manifest import RECHECKED, STATUSES, ManifestAppender, rows_to_frame, status_counts
from .nps_input import GroundItem, read_ground_items
from .selection import Selected, pixel_boxes, select_boxes
from .shards import Shard
from .tensor_crops import TensorPreprocess, UnsupportedPreprocess, image_tensor
from .tensor_detector import BatchDetector

logger = logging.getLogger(__name__)


@dataclass
class GroundConfig:
    """Everything that decides a grounding run's output (saved beside the manifests)."""

    detector: str = "yolov8n.pt"
    clip_model: str = "ViT-B-32"
    clip_pretrained: str | None = "openai"
    top_k: int = 3
    conf: float = 0.25
    iou: float = 0.5  # near-duplicate threshold among kept boxes
    nms_iou: float = 0.7  # the detector's own NMS
    max_candidates: int = 10
    prompt: str = DEFAULT_PROMPT
    device: str = "auto"
    batch_size: int = 8  # images per batch
    crop_batch: int = 16  # crops per CLIP call
    detector_batch: int = 0  # images per YOLO call; 0 = auto (1 on CPU, where it is cheaper; 64 on GPU)
    threads: int = 0  # torch threads; 0 = leave torch's default
    png_compress_level: int = 1  # crops are small; fast PNG encoding, lossless either way
    crop_path: str = "auto"  # "tensor" (on the device), "pillow", or auto: tensor on CUDA, Pillow on CPU
    io_threads: int = 0  # decode and PNG threads; 0 = auto (tensor path 4 each; Pillow path 1 decode, inline PNG)
    input_path: str = "ultralytics"  # "tensor": DataLoader + torchvision decoding + YOLO on batch tensors

    def __post_init__(self):
        if self.input_path not in ("ultralytics", "tensor"):
            raise ValueError(f"input path must be ultralytics or tensor, got {self.input_path!r}")
        if self.crop_path not in ("auto", "tensor", "pillow"):
            raise ValueError(f"crop path must be auto, tensor or pillow, got {self.crop_path!r}")
        if "{}" not in self.prompt:
            raise ValueError(f"--prompt must contain {{}} where the noun phrase goes, got {self.prompt!r}")
        if not 0.0 <= self.conf <= 1.0:
            raise ValueError(f"--conf must be within 0..1, got {self.conf}")
        if isinstance(self.clip_pretrained, str) and self.clip_pretrained.strip().lower() in ("", "none"):
            self.clip_pretrained = None


@dataclass
class ImageResult:
    imgid: str
    status: str
    selected: list[Selected] = field(default_factory=list)
    crops: list[Image.Image] = field(default_factory=list)
    width: int = 0
    height: int = 0
    reason: str = ""


@dataclass
class Loaded:
    item: GroundItem
    image: Image.Image | None
    status: str = "ok"
    reason: str = ""
    pixels: np.ndarray | None = None  # (h, w, 3) uint8 copy of ``image`` for the tensor crop path
    tensor: torch.Tensor | None = None  # (3, h, w) uint8 on the device (the tensor input path; then no
    # ``image`` on a GPU)

    @property
    def ok(self) -> bool:
        return self.image is not None or self.tensor is not None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        if self.image is not None:
            return self.image.size
        assert self.tensor is not None
        return int(self.tensor.shape[-1]), int(self.tensor.shape[-2])


class Grounder:
    """Holds the two models; grounds batches of decoded images."""

    def __init__(self, detector: Detector, matcher: ClipMatcher, config: GroundConfig, detector_id: str,
                 clip_id: str, random_weights: bool, tensor_pre: TensorPreprocess | None = None,
                 batch_detector: BatchDetector | None = None):
        self.detector = detector
        self.batch_detector = batch_detector  # None: the ultralytics input path
        self.matcher = matcher
        self.config = config
        self.detector_id = detector_id
        self.clip_id = clip_id
        self.random_weights = random_weights
        self.tensor_pre = tensor_pre  # None: the Pillow crop path

    @property
    def tensor_crops(self) -> bool:
        return self.tensor_pre is not None

    @property
    def decode_threads(self) -> int:
        return self.config.io_threads or (4 if self.tensor_crops else 1)

    @property
    def write_threads(self) -> int:
        """PNG-writing threads; 0 writes inline (the Pillow path on a CPU, where the cores are busy)."""
        return self.config.io_threads or (4 if self.tensor_crops else 0)

    @classmethod
    def from_config(cls, config: GroundConfig, *, detector_recorded_in: str | None = None,
                    trust_flag: str = "--trust-detector") -> "Grounder":
        """Load both models (fails fast with WeightsUnavailable before any work).

        ``detector_recorded_in``: where ``config.detector`` was read from when the user did not give it
        (a model's recorded settings); then only ultralytics' own model names load, and anything else
        raises UntrustedWeights naming that place and ``trust_flag`` (see :func:`comipn_prep.weights.load_yolo`)."""
        # Under torchrun, "auto" / "cuda" is this process's GPU (LOCAL_RANK); ultralytics and open_clip take a name.
        local_rank = os.environ.get("LOCAL_RANK")
        device = str(resolve_device(config.device, int(local_rank) if local_rank else None))
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        # Random weights are drawn from a fixed seed (without touching the caller's RNG), so a
        # random-weight run is reproducible and "yolov8n:random" names one model.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            yolo, det_id, det_random = load_yolo(config.detector, recorded_in=detector_recorded_in,
                                                 trust_flag=trust_flag)
            torch.manual_seed(0)
            bundle = load_clip(config.clip_model, config.clip_pretrained, device=device)
        settings = dict(conf=config.conf, nms_iou=config.nms_iou, max_candidates=config.max_candidates, device=device,
                        max_batch=config.detector_batch)
        detector = Detector(yolo, **settings)
        batch_detector = BatchDetector(yolo, **settings) if config.input_path == "tensor" else None
        matcher = ClipMatcher(bundle, device=device, prompt=config.prompt, crop_batch=config.crop_batch)
        return cls(detector, matcher, config, det_id, bundle.weights_id, det_random or bundle.random_weights,
                   tensor_pre=_tensor_preprocess(config.crop_path, device, bundle.preprocess),
                   batch_detector=batch_detector)

    @property
    def tensor_input(self) -> bool:
        return self.batch_detector is not None

    def detect(self, loaded: Sequence[Loaded]) -> list[Detections]:
        """Boxes of decoded images, by the input path: batch tensors, or ``YOLO.predict`` on Pillow images."""
        if self.batch_detector is not None and all(b.tensor is not None for b in loaded):
            return self.batch_detector.detect([b.tensor for b in loaded])
        return self.detector.detect([b.image for b in loaded])

    # -- the work -----------------------------------------------------------------------------------
    def ground_batch(self, batch: Sequence[Loaded]) -> list[ImageResult]:
        """Ground a batch: the detector over its images (see ``Detector.detect`` for how it batches),
        then all their crops through CLIP together, and the batch's new phrases (cached)."""
        good = [b for b in batch if b.ok]
        detections = self.detect(good) if good else []
        per_image = []  # (loaded, boxes, det_scores, crop of box i)
        to_encode: list = []  # Pillow crops, or uint8 tensor crops on the device
        for loaded, det in zip(good, detections):
            boxes, scores = candidate_boxes(loaded.size, det)
            crops, crop_of = self._crops(loaded, boxes, need_pixels=bool(loaded.item.phrases))
            per_image.append((loaded, boxes, scores, crop_of))
            if loaded.item.phrases:  # without phrases the detector's order decides: no CLIP needed
                to_encode.extend(crops)
        crop_emb = self._encode(to_encode)
        phrases_all = list(dict.fromkeys(p for b in good for p in b.item.phrases))
        phrase_emb = dict(zip(phrases_all, self.matcher.encode_phrases(phrases_all)))
        by_id: dict[int, ImageResult] = {}
        offset = 0
        for loaded, boxes, scores, crop_of in per_image:
            phrases = loaded.item.phrases
            n = len(boxes) if phrases else 0
            emb = crop_emb[offset:offset + n]
            offset += n
            sims = (np.stack([phrase_emb[p] for p in phrases]) @ emb.T) if phrases and len(boxes) else None
            by_id[id(loaded)] = self._result(loaded, boxes, scores, crop_of, sims)
        return [by_id.get(id(b)) or ImageResult(b.item.imgid, b.status, reason=b.reason) for b in batch]

    def _crops(self, loaded: Loaded, boxes: np.ndarray, need_pixels: bool):
        """``(crops to encode, crop_of)``: ``crop_of(i)`` is box i's crop as a Pillow image (to save).
        Pillow path: ``Image.crop`` of each box. Tensor path: the image goes to the device once and its
        boxes are preprocessed there together (only when CLIP needs them); saved crops are slices of the
        decoded array."""
        image = loaded.image
        if image is None:  # the tensor input path on a GPU: the image is only on the device
            return self._device_crops(loaded.tensor, boxes, need_pixels)
        if not self.tensor_crops:
            crops = [image.crop(tuple(int(v) for v in b)) for b in boxes]
            return crops, crops.__getitem__
        pixels = loaded.pixels if loaded.pixels is not None else np.array(image)

        def crop_of(i: int) -> Image.Image:
            x1, y1, x2, y2 = (int(v) for v in boxes[i])
            return Image.fromarray(np.ascontiguousarray(pixels[y1:y2, x1:x2]))

        # All of this image's boxes preprocessed at once on the device (rows of (3, S, S) pixels).
        crops = list(self.tensor_pre.boxes(image_tensor(pixels, self.matcher.device), boxes)) \
            if need_pixels and len(boxes) else []
        return crops, crop_of

    def _device_crops(self, image: torch.Tensor, boxes: np.ndarray, need_pixels: bool):
        """Crops of a ``(3, h, w)`` device image: CLIP's pixels made there (or Pillow crops of host copies
        when the CLIP transform has no tensor form); a saved crop comes back to the host alone."""
        def crop_of(i: int) -> Image.Image:
            x1, y1, x2, y2 = (int(v) for v in boxes[i])
            return Image.fromarray(image[:, y1:y2, x1:x2].permute(1, 2, 0).cpu().numpy())

        if not (need_pixels and len(boxes)):
            return [], crop_of
        if self.tensor_crops:
            return list(self.tensor_pre.boxes(image, boxes)), crop_of
        return [crop_of(i) for i in range(len(boxes))], crop_of

    def _encode(self, crops: Sequence) -> np.ndarray:
        """CLIP embeddings of the batch's crops, by the path they were cut for."""
        if not self.tensor_crops:
            return self.matcher.encode_crops(crops)
        return self.matcher.encode_pixels(torch.stack(list(crops)) if len(crops) else torch.zeros(0))

    def ground_one(self, loaded: Loaded) -> ImageResult:
        """The naive order of work: this image's detection, then its crops and phrases through CLIP."""
        if not loaded.ok:
            return ImageResult(loaded.item.imgid, loaded.status, reason=loaded.reason)
        det = self.detect([loaded])[0]
        boxes, scores = candidate_boxes(loaded.size, det)
        phrases = loaded.item.phrases
        crops, crop_of = self._crops(loaded, boxes, need_pixels=bool(phrases))
        sims = None
        if phrases and len(boxes):
            sims = self.matcher.encode_phrases(phrases) @ self._encode(crops).T
        return self._result(loaded, boxes, scores, crop_of, sims)

    def _result(self, loaded: Loaded, boxes: np.ndarray, scores: np.ndarray, crop_of,
                sims: np.ndarray | None) -> ImageResult:
        width, height = loaded.size
        selected = select_boxes(boxes, scores, sims, loaded.item.phrases, top_k=self.config.top_k,
                                iou_threshold=self.config.iou)
        index = {tuple(int(v) for v in b): i for i, b in enumerate(boxes)}
        kept_crops = [crop_of(index[s.box]) for s in selected]
        status = "ok" if selected else "no_boxes"
        return ImageResult(loaded.item.imgid, status, selected, kept_crops, width, height)


def _tensor_preprocess(crop_path: str, device: str, preprocess) -> TensorPreprocess | None:
    """The tensor crop path's transform when it is asked for (auto: on CUDA); None = Pillow path."""
    if crop_path == "pillow" or (crop_path == "auto" and not str(device).startswith("cuda")):
        return None
    try:
        return TensorPreprocess(preprocess)
    except UnsupportedPreprocess as err:
        if crop_path == "tensor":
            raise ValueError(f"the tensor crop path cannot reproduce this CLIP transform: {err}") from None
        logger.warning("%s: cropping with Pillow instead", err)
        return None


def candidate_boxes(size: tuple[int, int], det: Detections) -> tuple[np.ndarray, np.ndarray]:
    """Integer boxes with non-zero area and their scores, in an image of ``size`` (width, height)
    (identical boxes after rounding collapse to the first, so each crop is encoded once)."""
    boxes, keep = pixel_boxes(det.boxes, size[0], size[1])
    seen: set[tuple[int, ...]] = set()
    idx = []
    for i in keep:
        key = tuple(int(v) for v in boxes[i])
        if key not in seen:
            seen.add(key)
            idx.append(i)
    boxes = boxes[idx]
    scores = det.scores[idx] if len(idx) else np.zeros(0)
    return boxes, scores


def load_item(images_dir: Path, item: GroundItem, as_array: bool = False) -> Loaded:
    """Decode one tweet's image (``as_array``: also its uint8 pixel array, for the tensor crop path)."""
    path = find_image(images_dir, item.imgid)
    if path is None:
        return Loaded(item, None, "missing", f"no {item.imgid}.jpg/.png/.jpeg/.gif in {images_dir}")
    try:
        image = load_image(path)
    except ImageLoadError as err:
        logger.debug("%s", err)
        return Loaded(item, None, err.status, str(err))
    return Loaded(item, image, pixels=np.array(image) if as_array else None)  # a writable copy


def iter_loaded(images_dir: Path, items: Sequence[GroundItem], batch_size: int, prefetch: bool = True,
                workers: int = 1, as_array: bool = False) -> Iterator[list[Loaded]]:
    """Batches of decoded images; with ``prefetch`` the next batch decodes meanwhile, on ``workers``
    threads (Pillow releases the GIL while it decodes)."""
    batches = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
    if not prefetch:
        for b in batches:
            yield [load_item(images_dir, it, as_array) for it in b]
        return
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
        def submit(b):
            return [pool.submit(load_item, images_dir, it, as_array) for it in b]

        futures = submit(batches[0]) if batches else []
        for k in range(len(batches)):
            current = [f.result() for f in futures]
            if k + 1 < len(batches):
                futures = submit(batches[k + 1])
            yield current


def iter_loaded_tensors(images_dir: Path, items: Sequence[GroundItem], batch_size: int, device: str,
                        workers: int = 2, as_array: bool = False) -> Iterator[list[Loaded]]:
    """The tensor input path's batches: :func:`comipn_prep.image_loader.iter_images` (worker processes,
    prefetching, JPEGs decoded by torchvision on ``device``). On a CPU each image is also a Pillow image
    (a view of the same pixels: the crops and sizes work as on the Pillow path); on a GPU it is only on
    the device."""
    paths = [find_image(images_dir, it.imgid) for it in items]
    for batch in iter_images(paths, batch_size, device, workers=workers):
        out = []
        for got in batch:
            item = items[got.index]
            if got.tensor is None:
                reason = got.reason if paths[got.index] is not None else \
                    f"no {item.imgid}.jpg/.png/.jpeg/.gif in {images_dir}"
                out.append(Loaded(item, None, got.status, reason))
            elif got.tensor.device.type == "cpu":
                pixels = np.ascontiguousarray(got.tensor.permute(1, 2, 0).numpy())
                out.append(Loaded(item, Image.fromarray(pixels), pixels=pixels if as_array else None,
                                  tensor=got.tensor))
            else:
                out.append(Loaded(item, None, tensor=got.tensor))
        yield out


# -- writing ------------------------------------------------------------------------------------------
def _png_bytes(im: Image.Image, level: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=level)
    return buf.getvalue()


def result_rows(result: ImageResult, grounder: Grounder) -> list[dict]:
    base = {"imgid": result.imgid, "status": result.status, "image_width": result.width or None,
            "image_height": result.height or None, "detector": grounder.detector_id,
            "clip_model": grounder.clip_id, "random_weights": grounder.random_weights}
    if not result.selected:
        return [{**base, "crop_file": "", "rank": None, "phrase": "", "clip_score": math.nan,
                 "det_score": math.nan}]
    rows = []
    for s in result.selected:
        x1, y1, x2, y2 = s.box
        rows.append({**base, "crop_file": crop_name(result.imgid, s.rank), "rank": s.rank, "x1": x1,
                     "y1": y1, "x2": x2, "y2": y2, "phrase": s.phrase, "clip_score": s.clip_score,
                     "det_score": s.det_score})
    return rows


def write_crops(result: ImageResult, crops_dir: Path, level: int) -> None:
    """Write this image's crops (each atomically) and remove stale higher-numbered ones."""
    for s, crop in zip(result.selected, result.crops):
        atomic_write_bytes(inside(crops_dir, crop_name(result.imgid, s.rank)), _png_bytes(crop, level))
    keep = {crop_name(result.imgid, s.rank) for s in result.selected}
    for old in crops_dir.glob(f"{result.imgid}_pred_yolo_crop_*.png"):
        m = CROP_NAME_RE.match(old.name)
        if m and m.group("imgid") == result.imgid and old.name not in keep:
            inside(crops_dir, old.name).unlink()


@dataclass
class SplitSummary:
    split: str
    manifest: str
    total: int  # tweets in this shard of the split
    skipped: int  # already in the manifest
    processed: int
    crops: int
    seconds: float
    statuses: dict[str, int]
    random_weights: bool = False

    @property
    def images_per_s(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0


def ground_split(grounder: Grounder, items: Sequence[GroundItem], images_dir: Path, out_dir: Path,
                 split: str, *, shard: Shard = Shard(0, 1), force: bool = False, limit: int | None = None,
                 naive: bool = False, progress: bool = True) -> SplitSummary:
    """Ground one split into ``out_dir/<split-folder>/`` (crops/ + manifest), resuming by default."""
    split = canonical_split(split)
    split_dir = Path(out_dir) / SPLIT_FOLDERS[split]
    crops_dir = split_dir / "crops"
    crops_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = inside(split_dir, shard.manifest_name)
    mine = shard.take(items)
    manifest = ManifestAppender(manifest_path)  # reads it; cuts off a killed run's unfinished append
    existing = manifest.existing
    # An image once unreadable is tried again (RECHECKED): it may have been fixed since.
    done = set() if force else set(existing["imgid"][~existing["status"].isin(RECHECKED)])
    todo = [it for it in mine if it.imgid not in done]
    skipped = len(mine) - len(todo)
    if limit is not None:
        todo = todo[:limit]
    # The redone images' old rows go (--force, or rechecked); rows of images not redone (e.g. past
    # --limit) stay.
    manifest.drop({it.imgid for it in todo})
    cfg = grounder.config
    start = time.perf_counter()
    n_crops = 0
    new_rows: list[dict] = []
    bar = tqdm(total=len(todo), desc=f"ground {split}", unit="img", disable=not progress)
    writer = ThreadPoolExecutor(grounder.write_threads, thread_name_prefix="png") if grounder.write_threads else None
    pending: tuple[list[dict], list, int] | None = None  # a batch whose PNGs are being written

    def finish(batch_rows: list[dict], futures: list, n: int) -> None:
        for f in futures:
            f.result()  # crops first, then their rows (a failed write raises here)
        manifest.append(batch_rows)
        bar.update(n)

    try:
        batches = iter_loaded_tensors(images_dir, todo, 1 if naive else cfg.batch_size, grounder.matcher.device,
                                      workers=0 if naive else grounder.decode_threads,
                                      as_array=grounder.tensor_crops) if grounder.tensor_input else \
            iter_loaded(images_dir, todo, 1 if naive else cfg.batch_size, prefetch=not naive,
                        workers=grounder.decode_threads, as_array=grounder.tensor_crops)
        for batch in batches:
            results = [grounder.ground_one(b) for b in batch] if naive else grounder.ground_batch(batch)
            rows, futures = [], []
            for r in results:
                if r.status in ("ok", "no_boxes"):
                    if writer is None:
                        write_crops(r, crops_dir, cfg.png_compress_level)
                    else:
                        futures.append(writer.submit(write_crops, r, crops_dir, cfg.png_compress_level))
                n_crops += len(r.selected)
                rows.extend(result_rows(r, grounder))
            new_rows.extend(rows)
            # With writer threads, this batch's PNGs are written while the next batch is grounded.
            if pending is not None:
                finish(*pending)
            pending = (rows, futures, len(batch))
            if writer is None:
                finish(*pending)
                pending = None
        if pending is not None:
            finish(*pending)
    finally:
        bar.close()
        if writer is not None:
            writer.shutdown(wait=True, cancel_futures=True)
    manifest.close()
    seconds = time.perf_counter() - start
    parts = [f for f in (manifest.existing, rows_to_frame(new_rows) if new_rows else None) if f is not None and len(f)]
    final = pd.concat(parts, ignore_index=True) if len(parts) > 1 else (parts[0] if parts else rows_to_frame([]))
    counts = status_counts(final) if len(final) else {s: 0 for s in STATUSES}
    return SplitSummary(split=split, manifest=str(manifest_path), total=len(mine), skipped=skipped,
                        processed=len(todo), crops=n_crops, seconds=seconds, statuses=counts,
                        random_weights=grounder.random_weights)


def ground(nps_dir: Path, images_dir: Path, out_dir: Path, splits: Sequence[str], config: GroundConfig, *,
           shard: Shard = Shard(0, 1), force: bool = False, limit: int | None = None,
           progress: bool = True, grounder: Grounder | None = None) -> list[SplitSummary]:
    """The ``ground`` command: every split's NP file -> crops and manifest under ``out_dir``
    (``grounder``: models already loaded, e.g. by a caller that checks them before writing anything)."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"{images_dir}: no such image folder")
    items_by_split = {s: read_ground_items(nps_path(nps_dir, s)) for s in splits}  # bad input before models
    grounder = grounder or Grounder.from_config(config)
    summaries = []
    for split, items in items_by_split.items():
        summary = ground_split(grounder, items, images_dir, out_dir, split, shard=shard, force=force,
                               limit=limit, progress=progress)
        logger.info("%s: %d images (%d already done), %d crops, %.2f images/s, statuses %s", split,
                    summary.processed, summary.skipped, summary.crops, summary.images_per_s, summary.statuses)
        summaries.append(summary)
    save_run_record(Path(out_dir), config, grounder, summaries, shard)
    return summaries


def save_run_record(out_dir: Path, config: GroundConfig, grounder: Grounder, summaries: list[SplitSummary],
                    shard: Shard) -> Path:
    """The run's whole config and results beside its manifests."""
    record = {"config": asdict(config), "detector_id": grounder.detector_id, "clip_id": grounder.clip_id,
              "random_weights": grounder.random_weights, "shard": f"{shard.index}/{shard.count}",
              "splits": [{**asdict(s), "images_per_s": s.images_per_s} for s in summaries]}
    name = "ground_run.json" if shard.whole else f"ground_run.shard-{shard.index}-of-{shard.count}.json"
    path = inside(out_dir, name)
    atomic_write_bytes(path, (json.dumps(record, indent=2) + "\n").encode("utf-8"))
    return path
