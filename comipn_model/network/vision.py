"""The frozen CLIP vision tower and its on-disk feature cache (see :mod:`comipn_model.data.features` for
how a batch's features are stacked).

The tower's outputs are a pure function of (model, weights, preprocessing, image bytes), so they are
computed once per image and read back afterwards: a second epoch never runs the tower.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from tqdm import tqdm

from comipn_model.data.features import ImageFeatures

logger = logging.getLogger(__name__)

# v2: weights files are identified by content hash, and the activation (GELU / QuickGELU) is part of the
# tower's identity; v1 entries may hold features of OpenAI weights run through GELU.
# v3: entries are safetensors files (read ~10x faster than torch.save's zip, and never unpickled); v2
# entries are simply not found under v3 keys.
CACHE_FORMAT = "comipn-vision-features-v3"
CACHE_SUFFIX = ".safetensors"


def default_feature_cache() -> Path:
    """Where the tower's features are cached when no folder is given: ``$COMIPN_FEATURE_CACHE``, else
    ``~/.cache/comipn/features``."""
    return Path(os.environ.get("COMIPN_FEATURE_CACHE", Path.home() / ".cache" / "comipn" / "features"))


def vision_dims(clip_model: str) -> tuple[int, int, int]:
    """``(blocks Lv, width Dv, patches P)`` of an open_clip model's vision tower, from its config only."""
    import open_clip

    cfg = open_clip.get_model_config(clip_model)
    if cfg is None:
        raise ValueError(f"unknown CLIP model {clip_model!r} (open_clip knows e.g. ViT-B-32, ViT-B-16)")
    vision = cfg["vision_cfg"]
    if not isinstance(vision.get("layers"), int) or "patch_size" not in vision:
        raise ValueError(f"CLIP model {clip_model!r} has no ViT vision tower (layers / patch_size)")
    image_size = vision.get("image_size", 224)
    side = (image_size[0] if isinstance(image_size, (list, tuple)) else image_size) // vision["patch_size"]
    return vision["layers"], vision["width"], side * side


class VisionTower:
    """A frozen open_clip ViT that returns every block's class token and the last block's patch tokens."""

    def __init__(self, clip_model: str = "ViT-B-32", clip_pretrained: str | None = "openai",
                 device: str = "cpu", flag: str = "--clip-pretrained"):
        from comipn_prep.weights import load_clip

        bundle = load_clip(clip_model, clip_pretrained, device=device, flag=flag)
        self.model_name = bundle.model_name
        self.weights_id = bundle.weights_id
        self.random_weights = bundle.random_weights
        self.quick_gelu = bundle.quick_gelu
        self.preprocess = bundle.preprocess
        self.device = torch.device(device)
        self.visual = bundle.model.visual.eval()
        for p in self.visual.parameters():
            p.requires_grad_(False)
        blocks = getattr(getattr(self.visual, "transformer", None), "resblocks", None)
        if blocks is None:
            raise ValueError(f"CLIP model {clip_model!r} has no ViT vision tower (transformer.resblocks)")
        self.blocks = list(blocks)
        self.batch_first = getattr(self.visual.transformer, "batch_first", True)
        # The preprocessing is part of the cache key: its printed form names sizes, crops and means.
        self.preprocessing_id = hashlib.sha256(repr(self.preprocess).encode()).hexdigest()[:16]

    @property
    def identity(self) -> str:
        activation = "quickgelu" if self.quick_gelu else "gelu"
        return f"{self.model_name}|{self.weights_id}|{activation}|{self.preprocessing_id}"

    def __call__(self, images: Sequence) -> list[ImageFeatures]:
        """Features of a list of RGB ``PIL`` images, computed in one batched run."""
        return self.encode_pixels(torch.stack([self.preprocess(im) for im in images]))

    @torch.no_grad()
    def encode_pixels(self, pixels: torch.Tensor) -> list[ImageFeatures]:
        """Features of a batch of preprocessed images ``(N, 3, H, W)`` (``self.preprocess`` of each)."""
        pixels = pixels.to(self.device)
        outputs: list[torch.Tensor] = []
        hooks = [b.register_forward_hook(lambda _m, _i, out: outputs.append(out)) for b in self.blocks]
        try:
            self.visual(pixels)
        finally:
            for h in hooks:
                h.remove()
        states = [o if self.batch_first else o.transpose(0, 1) for o in outputs]  # (N, 1 + P, Dv) each
        cls = torch.stack([s[:, 0] for s in states], dim=1).float().cpu()  # (N, Lv, Dv)
        patches = states[-1][:, 1:].float().cpu()  # (N, P, Dv)
        return [ImageFeatures(cls=cls[i], patches=patches[i]) for i in range(len(pixels))]


class FeatureCache:
    """Tower features on disk, one file per (model id, weights id, preprocessing, image content hash).

    Files are safetensors of fp16 tensors ``cls`` and ``patches`` (half the size; the tower's outputs
    need no more precision for prompts), written atomically. ``tower_calls`` counts batched tower runs,
    ``hits`` / ``misses`` images.

    On a miss, ``io_threads`` threads decode and preprocess the next batch while the tower runs on this
    one, and write the entries (Pillow and file writes release the GIL): on a GPU the tower is then no
    longer waiting on one CPU core.

    ``decode="tensor"``: misses come through :func:`comipn_prep.image_loader.iter_images` instead (worker
    processes, JPEGs decoded by torchvision on the tower's device) and CLIP's resize and crop run on the
    device (:class:`comipn_prep.grounding.tensor_crops.TensorPreprocess`, Pillow's arithmetic): the same
    pixels, so the same entries, with no Pillow image on the way on a GPU.
    """

    def __init__(self, cache_dir: str | os.PathLike, tower: VisionTower, batch_size: int = 32,
                 progress: bool = True, io_threads: int | None = None, decode: str = "pillow"):
        if decode not in ("pillow", "tensor"):
            raise ValueError(f"decode must be pillow or tensor, got {decode!r}")
        self.decode = decode
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.tower = tower
        self.batch_size = batch_size
        self.progress = progress
        self.io_threads = io_threads or min(8, os.cpu_count() or 1)
        self.tower_calls = 0
        self.hits = 0
        self.misses = 0

    def key(self, image_bytes: bytes) -> str:
        digest = hashlib.sha256()
        digest.update(f"{CACHE_FORMAT}|{self.tower.identity}|".encode())
        digest.update(hashlib.sha256(image_bytes).digest())
        return digest.hexdigest()

    def _file(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}{CACHE_SUFFIX}"

    def _read(self, file: Path) -> ImageFeatures | None:
        """The entry's features, or None when there is none; a damaged entry is recomputed, never fatal."""
        try:
            tensors = load_tensors(file.read_bytes())
            cls, patches = tensors["cls"], tensors["patches"]
            if cls.dim() != 2 or patches.dim() != 2 or cls.shape[1] != patches.shape[1]:
                raise ValueError(f"shapes {tuple(cls.shape)} / {tuple(patches.shape)}")
            return ImageFeatures(cls=cls.float(), patches=patches.float())
        except FileNotFoundError:
            return None
        except Exception as err:  # noqa: BLE001 - a damaged entry is recomputed, never fatal
            logger.warning("feature cache entry %s unreadable (%s): recomputing", file, err)
            return None

    def _write(self, file: Path, feats: ImageFeatures) -> None:
        from comipn_prep.conll import atomic_write_bytes

        tensors = {"cls": feats.cls.half().contiguous(), "patches": feats.patches.half().contiguous()}
        data = save_tensors(tensors, metadata={"format": CACHE_FORMAT})
        # No fsync: an entry torn by a crash fails to read and is recomputed.
        atomic_write_bytes(file, data, durable=False)

    def get(self, path: str | os.PathLike | None) -> ImageFeatures | None:
        return self.get_many([path])[0]

    def get_many(self, paths: Sequence[str | os.PathLike | None]) -> list[ImageFeatures | None]:
        """Features per path, ``None`` for a missing or unreadable image; the tower runs, batched,
        on cache misses only."""
        results: list[ImageFeatures | None] = [None] * len(paths)
        pending: dict[str, list[int]] = {}  # key -> positions (the same image may appear twice)
        pending_path: dict[str, Path] = {}
        for i, path in enumerate(paths):
            if path is None:
                continue
            path = Path(path)
            try:
                data = path.read_bytes()
            except OSError:
                logger.debug("image %s missing: masked", path)
                continue
            key = self.key(data)
            feats = self._read(self._file(key))
            if feats is not None:
                results[i] = feats
                self.hits += 1
            else:
                pending.setdefault(key, []).append(i)
                pending_path[key] = path
        keys = list(pending)
        if keys:
            self._compute([pending_path[k] for k in keys], keys, pending, results)
        return results

    def _compute(self, paths: list[Path], keys: list[str], positions: dict[str, list[int]],
                 results: list[ImageFeatures | None]) -> None:
        """Run the tower on cache misses, batched: decoding and preprocessing on the I/O threads one
        batch ahead, entries written on them behind."""
        from comipn_prep.images import ImageLoadError, load_image

        # A tower that takes preprocessed pixels gets them from the threads; any other (a test's
        # stand-in) gets the decoded images.
        by_pixels = hasattr(self.tower, "encode_pixels")
        if by_pixels and self.decode == "tensor":
            self._compute_on_device(paths, keys, positions, results)
            return

        def prepare(path: Path):
            try:
                image = load_image(path)
            except ImageLoadError as err:
                logger.warning("image %s %s (%s): masked", err.path, err.status, err.reason)
                return None
            return self.tower.preprocess(image) if by_pixels else image

        starts = range(0, len(keys), self.batch_size)
        with ThreadPoolExecutor(self.io_threads, thread_name_prefix="features") as pool:
            def submit(start: int) -> list:
                return [pool.submit(prepare, p) for p in paths[start:start + self.batch_size]]

            ahead = submit(0)
            writes = []
            for n, start in enumerate(tqdm(starts, desc="vision features", unit="batch",
                                           disable=not self.progress or len(starts) < 2)):
                prepared = [f.result() for f in ahead]
                if n + 1 < len(starts):
                    ahead = submit(starts[n + 1])
                chunk = [(k, x) for k, x in zip(keys[start:start + self.batch_size], prepared) if x is not None]
                if not chunk:
                    continue
                self.tower_calls += 1
                inputs = [x for _, x in chunk]
                computed = self.tower.encode_pixels(torch.stack(inputs)) if by_pixels else self.tower(inputs)
                self._store([k for k, _ in chunk], computed, positions, results, pool, writes)
            for w in writes:
                w.result()  # a failed write is raised here, not lost

    def _store(self, keys: list[str], computed: list[ImageFeatures], positions: dict[str, list[int]],
               results: list[ImageFeatures | None], pool: ThreadPoolExecutor, writes: list) -> None:
        for key, feats in zip(keys, computed):
            self.misses += 1
            writes.append(pool.submit(self._write, self._file(key), feats))
            # Return what a later read returns (fp16-rounded), so epochs 1 and 2 see the same input.
            stored = ImageFeatures(cls=feats.cls.half().float(), patches=feats.patches.half().float())
            for i in positions[key]:
                results[i] = stored

    def _compute_on_device(self, paths: list[Path], keys: list[str], positions: dict[str, list[int]],
                           results: list[ImageFeatures | None]) -> None:
        """The ``decode="tensor"`` misses: the loader's batches, CLIP's preprocessing on the device."""
        from comipn_prep.grounding.tensor_crops import TensorPreprocess
        from comipn_prep.image_loader import iter_images

        pre = TensorPreprocess(self.tower.preprocess)  # UnsupportedPreprocess (a ValueError) names the step
        batches = iter_images(paths, self.batch_size, self.tower.device, workers=self.io_threads)
        with ThreadPoolExecutor(self.io_threads, thread_name_prefix="features") as pool:
            writes: list = []
            for batch in tqdm(batches, desc="vision features", unit="batch",
                              total=-(-len(paths) // self.batch_size),
                              disable=not self.progress or len(paths) <= self.batch_size):
                chunk = []
                for got in batch:
                    if got.tensor is None:
                        logger.warning("image %s (%s): masked", paths[got.index], got.reason)
                        continue
                    height, width = got.tensor.shape[-2:]
                    chunk.append((keys[got.index], pre.boxes(got.tensor, [(0, 0, int(width), int(height))])[0]))
                if not chunk:
                    continue
                self.tower_calls += 1
                computed = self.tower.encode_pixels(torch.stack([x for _, x in chunk]))
                self._store([k for k, _ in chunk], computed, positions, results, pool, writes)
            for w in writes:
                w.result()
