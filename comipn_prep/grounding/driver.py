"""The batched grounding driver: images -> boxes -> CLIP scores -> kept crops + manifest rows.

Order of work per batch of images: decode (in a background thread, one batch ahead), detect (YOLO,
equal-sized images together), crop every kept-candidate box of every image, encode all crops of the
batch through CLIP together, encode the batch's new phrases (cached), select, write crops, then rewrite
the manifest. :meth:`Grounder.ground_one` is the naive order (one image at a time) that tests and the
benchmark compare against.
"""

from __future__ import annotations

import io
import json
import logging
import math
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
from ..images import ImageLoadError, load_image
from ..layout import CROP_NAME_RE, SPLIT_FOLDERS, canonical_split, crop_name, find_image
from ..weights import load_clip, load_yolo
from .clip_matcher import DEFAULT_PROMPT, ClipMatcher
from .detector import Detections, Detector
from .manifest import STATUSES, read_manifest, rows_to_frame, status_counts, write_manifest
from .nps_input import GroundItem, nps_path, read_ground_items
from .selection import Selected, pixel_boxes, select_boxes
from .shards import Shard

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

    def __post_init__(self):
        if "{}" not in self.prompt:
            raise ValueError(f"--prompt must contain {{}} where the noun phrase goes, got {self.prompt!r}")
        if not 0.0 <= self.conf <= 1.0:
            raise ValueError(f"--conf must be within 0..1, got {self.conf}")
        if isinstance(self.clip_pretrained, str) and self.clip_pretrained.strip().lower() in ("", "none"):
            self.clip_pretrained = None


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device")
    return device


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


class Grounder:
    """Holds the two models; grounds batches of decoded images."""

    def __init__(self, detector: Detector, matcher: ClipMatcher, config: GroundConfig, detector_id: str,
                 clip_id: str, random_weights: bool):
        self.detector = detector
        self.matcher = matcher
        self.config = config
        self.detector_id = detector_id
        self.clip_id = clip_id
        self.random_weights = random_weights

    @classmethod
    def from_config(cls, config: GroundConfig) -> "Grounder":
        """Load both models (fails fast with WeightsUnavailable before any work)."""
        device = resolve_device(config.device)
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        # Random weights are drawn from a fixed seed (without touching the caller's RNG), so a
        # random-weight run is reproducible and "yolov8n:random" names one model.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            yolo, det_id, det_random = load_yolo(config.detector)
            torch.manual_seed(0)
            bundle = load_clip(config.clip_model, config.clip_pretrained, device=device)
        detector = Detector(yolo, conf=config.conf, nms_iou=config.nms_iou,
                            max_candidates=config.max_candidates, device=device,
                            max_batch=config.detector_batch)
        matcher = ClipMatcher(bundle, device=device, prompt=config.prompt, crop_batch=config.crop_batch)
        return cls(detector, matcher, config, det_id, bundle.weights_id, det_random or bundle.random_weights)

    # -- the work -----------------------------------------------------------------------------------
    def ground_batch(self, batch: Sequence[Loaded]) -> list[ImageResult]:
        """Ground a batch: the detector over its images (see ``Detector.detect`` for how it batches),
        then all their crops through CLIP together, and the batch's new phrases (cached)."""
        good = [b for b in batch if b.image is not None]
        detections = self.detector.detect([b.image for b in good]) if good else []
        per_image = []  # (loaded, boxes, det_scores, crops)
        all_crops: list[Image.Image] = []
        for loaded, det in zip(good, detections):
            boxes, scores, crops = _candidate_crops(loaded.image, det)
            per_image.append((loaded, boxes, scores, crops))
            if loaded.item.phrases:  # without phrases the detector's order decides: no CLIP needed
                all_crops.extend(crops)
        crop_emb = self.matcher.encode_crops(all_crops)
        phrases_all = list(dict.fromkeys(p for b in good for p in b.item.phrases))
        phrase_emb = dict(zip(phrases_all, self.matcher.encode_phrases(phrases_all)))
        by_id: dict[int, ImageResult] = {}
        offset = 0
        for loaded, boxes, scores, crops in per_image:
            phrases = loaded.item.phrases
            n = len(crops) if phrases else 0
            emb = crop_emb[offset:offset + n]
            offset += n
            sims = (np.stack([phrase_emb[p] for p in phrases]) @ emb.T) if phrases and len(crops) else None
            by_id[id(loaded)] = self._result(loaded, boxes, scores, crops, sims)
        return [by_id.get(id(b)) or ImageResult(b.item.imgid, b.status, reason=b.reason) for b in batch]

    def ground_one(self, loaded: Loaded) -> ImageResult:
        """The naive order of work: this image's detection, then its crops and phrases through CLIP."""
        if loaded.image is None:
            return ImageResult(loaded.item.imgid, loaded.status, reason=loaded.reason)
        det = self.detector.detect([loaded.image])[0]
        boxes, scores, crops = _candidate_crops(loaded.image, det)
        phrases = loaded.item.phrases
        sims = None
        if phrases and crops:
            sims = self.matcher.encode_phrases(phrases) @ self.matcher.encode_crops(crops).T
        return self._result(loaded, boxes, scores, crops, sims)

    def _result(self, loaded: Loaded, boxes: np.ndarray, scores: np.ndarray, crops: list[Image.Image],
                sims: np.ndarray | None) -> ImageResult:
        im = loaded.image
        assert im is not None
        selected = select_boxes(boxes, scores, sims, loaded.item.phrases, top_k=self.config.top_k,
                                iou_threshold=self.config.iou)
        index = {tuple(int(v) for v in b): i for i, b in enumerate(boxes)}
        kept_crops = [crops[index[s.box]] for s in selected]
        status = "ok" if selected else "no_boxes"
        return ImageResult(loaded.item.imgid, status, selected, kept_crops, im.width, im.height)


def _candidate_crops(image: Image.Image, det: Detections) -> tuple[np.ndarray, np.ndarray, list[Image.Image]]:
    """Integer boxes with non-zero area, their scores and crops (identical boxes after rounding
    collapse to the first, so each crop is encoded once)."""
    boxes, keep = pixel_boxes(det.boxes, image.width, image.height)
    seen: set[tuple[int, ...]] = set()
    idx = []
    for i in keep:
        key = tuple(int(v) for v in boxes[i])
        if key not in seen:
            seen.add(key)
            idx.append(i)
    boxes = boxes[idx]
    scores = det.scores[idx] if len(idx) else np.zeros(0)
    crops = [image.crop(tuple(int(v) for v in b)) for b in boxes]
    return boxes, scores, crops


def load_item(images_dir: Path, item: GroundItem) -> Loaded:
    path = find_image(images_dir, item.imgid)
    if path is None:
        return Loaded(item, None, "missing", f"no {item.imgid}.jpg/.png/.jpeg/.gif in {images_dir}")
    try:
        return Loaded(item, load_image(path))
    except ImageLoadError as err:
        logger.debug("%s", err)
        return Loaded(item, None, err.status, str(err))


def iter_loaded(images_dir: Path, items: Sequence[GroundItem], batch_size: int,
                prefetch: bool = True) -> Iterator[list[Loaded]]:
    """Batches of decoded images; with ``prefetch`` the next batch decodes in a thread meanwhile."""
    batches = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
    if not prefetch:
        for b in batches:
            yield [load_item(images_dir, it) for it in b]
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") as pool:
        future = pool.submit(lambda b: [load_item(images_dir, it) for it in b], batches[0]) if batches else None
        for k in range(len(batches)):
            current = future.result()
            if k + 1 < len(batches):
                future = pool.submit(lambda b: [load_item(images_dir, it) for it in b], batches[k + 1])
            yield current


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
        atomic_write_bytes(crops_dir / crop_name(result.imgid, s.rank), _png_bytes(crop, level))
    keep = {crop_name(result.imgid, s.rank) for s in result.selected}
    for old in crops_dir.glob(f"{result.imgid}_pred_yolo_crop_*.png"):
        m = CROP_NAME_RE.match(old.name)
        if m and m.group("imgid") == result.imgid and old.name not in keep:
            old.unlink()


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
    manifest_path = split_dir / shard.manifest_name
    mine = shard.take(items)
    existing = read_manifest(manifest_path)
    done = set() if force else set(existing["imgid"])
    todo = [it for it in mine if it.imgid not in done]
    skipped = len(mine) - len(todo)
    if limit is not None:
        todo = todo[:limit]
    if force:  # the redone images' old rows go; rows of images not redone (e.g. past --limit) stay
        existing = existing[~existing["imgid"].isin({it.imgid for it in todo})]
    frames = [existing] if len(existing) else []
    cfg = grounder.config
    start = time.perf_counter()
    n_crops = 0
    bar = tqdm(total=len(todo), desc=f"ground {split}", unit="img", disable=not progress)
    try:
        for batch in iter_loaded(images_dir, todo, 1 if naive else cfg.batch_size, prefetch=not naive):
            results = [grounder.ground_one(b) for b in batch] if naive else grounder.ground_batch(batch)
            rows = []
            for r in results:
                if r.status in ("ok", "no_boxes"):
                    write_crops(r, crops_dir, cfg.png_compress_level)  # crops first, then their rows
                n_crops += len(r.selected)
                rows.extend(result_rows(r, grounder))
            frames.append(rows_to_frame(rows))
            merged = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
            frames = [merged]
            write_manifest(manifest_path, merged)
            bar.update(len(batch))
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    final = frames[0] if frames else rows_to_frame([])
    counts = status_counts(final) if len(final) else {s: 0 for s in STATUSES}
    return SplitSummary(split=split, manifest=str(manifest_path), total=len(mine), skipped=skipped,
                        processed=len(todo), crops=n_crops, seconds=seconds, statuses=counts,
                        random_weights=grounder.random_weights)


def ground(nps_dir: Path, images_dir: Path, out_dir: Path, splits: Sequence[str], config: GroundConfig, *,
           shard: Shard = Shard(0, 1), force: bool = False, limit: int | None = None,
           progress: bool = True) -> list[SplitSummary]:
    """The ``ground`` command: every split's NP file -> crops and manifest under ``out_dir``."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"{images_dir}: no such image folder")
    items_by_split = {s: read_ground_items(nps_path(nps_dir, s)) for s in splits}  # bad input before models
    grounder = Grounder.from_config(config)
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
    path = out_dir / name
    atomic_write_bytes(path, (json.dumps(record, indent=2) + "\n").encode("utf-8"))
    return path
