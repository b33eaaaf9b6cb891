"""The second frozen vision tower: a DINO ViT (DINOv2, or the original DINO, a ``ViTModel``) loaded
through ``transformers``, whose last-layer patch tokens feed dynamic matching while the prompts keep
CLIP's class tokens (``--matching-tower``; the original work's pairing).

Its features go through the same :class:`~comipn_model.network.vision.FeatureCache` as CLIP's, under keys
of their own (the tower's identity: architecture, weights, preprocessing), so a tower or weights never
read another's entries; :class:`MatchingFeatures` joins CLIP's class tokens and this tower's patches.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from pathlib import Path
from typing import Sequence

import torch

from comipn_model.data.features import ImageFeatures

logger = logging.getLogger(__name__)

FLAG = "--matching-tower"
# transformers model types whose last hidden state is [CLS, registers..., patches...].
SUPPORTED = {"dinov2": "Dinov2Model (DINOv2, e.g. facebook/dinov2-base)",
             "dinov2_with_registers": "Dinov2WithRegistersModel (DINOv2 with registers)",
             "vit": "ViTModel (the original DINO, e.g. facebook/dino-vitb16)"}
WEIGHT_SUFFIXES = (".safetensors", ".bin")


def _unavailable(message: str) -> Exception:
    from comipn_prep.weights import WeightsUnavailable

    return WeightsUnavailable(message)


def resolve_matching_tower(ref: str, flag: str = FLAG) -> str:
    """What transformers loads for ``ref``: an existing local folder (absolute) or a Hub id (offline: only
    when cached). Anything else is refused at once, saying what to pass."""
    from comipn_prep.model_refs import HUB, MISSING, classify, hub_offline, hub_unavailable, in_hub_cache, \
        no_such_folder, offline_why

    what = "a folder made with save_pretrained (config.json, preprocessor_config.json, weights)"
    parsed = classify(ref)
    if parsed.kind == MISSING:
        raise _unavailable(f"matching tower {no_such_folder(parsed, flag)}: {flag} takes {what} or a Hub name")
    if parsed.path is not None:
        if not parsed.path.is_dir() or not (parsed.path / "config.json").is_file():
            raise _unavailable(f"matching tower {ref} is not a model folder (no config.json); pass {what} "
                               f"with {flag}")
        return str(parsed.path.absolute())
    if parsed.kind == HUB and hub_offline() and not in_hub_cache(ref):
        raise _unavailable("matching tower " + hub_unavailable(
            parsed, f"it is not in the local cache ({offline_why()})", f"{flag} ({what})"))
    return ref


@functools.lru_cache(maxsize=16)
def _config(source: str):
    from transformers import AutoConfig

    from comipn_prep.logs import quiet_transformers

    try:
        with quiet_transformers():
            config = AutoConfig.from_pretrained(source, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise _unavailable(f"matching tower {source}: its config could not be read ({err}); pass a local folder "
                           f"with {FLAG}") from None
    if config.model_type not in SUPPORTED:
        raise _unavailable(f"matching tower {source} is a {config.model_type!r} model; {FLAG} takes "
                           f"{'; '.join(SUPPORTED.values())}")
    return config


def matching_tower_dim(ref: str, flag: str = FLAG) -> int:
    """The tower's hidden size (the width of its patch tokens), from its config only."""
    return int(_config(resolve_matching_tower(ref, flag)).hidden_size)


def check_matching_tower(ref: str, flag: str = FLAG) -> None:
    """The tower can be had (a local folder, or a Hub name: offline, a cached one) and is a supported
    architecture, without loading its weights."""
    matching_tower_dim(ref, flag)


def recordable(ref: str) -> str:
    """``ref`` as a model records it: an existing local folder as its absolute path, a Hub name as it is."""
    local = Path(ref).expanduser()
    return str(local.absolute()) if local.is_dir() else ref


def check_recorded_matching_tower(ref: str | None, recorded_in: str, flag: str) -> None:
    """Refuse a tower named inside a file (a model's recorded settings) that would be looked up from the
    current folder or ``~``: a relative or ``~`` path, or a Hub name with a same-named folder here
    (transformers reads a local folder first). An absolute path or a plain Hub name loads as recorded."""
    from comipn_prep.model_refs import looks_like_path
    from comipn_prep.weights import UntrustedWeights

    if not ref or Path(ref).is_absolute():
        return
    if not looks_like_path(ref) and not Path(ref).exists():
        return
    why = (f"a folder {ref} in the current folder would be read instead of the Hub model {ref!r}"
           if not looks_like_path(ref) else "a relative path")
    raise UntrustedWeights(f"{recorded_in} names the matching tower {ref!r} ({why}): a path recorded in a file is "
                           f"never looked up from the current folder or ~; pass the tower yourself with {flag} PATH")


def _weights_id(source: str) -> str:
    """A local folder: the content hash of its weights files (a renamed folder keeps its cache entries, two
    folders of different weights never share them); a Hub name: name and cached snapshot."""
    folder = Path(source)
    if folder.is_dir():
        digest = hashlib.sha256()
        files = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
        if not files:
            raise _unavailable(f"matching tower folder {source} has no weights file (model.safetensors); pass a "
                               f"folder made with save_pretrained with {FLAG}")
        for file in files:
            digest.update(file.name.encode() + b"\0")
            with open(file, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        return f"sha256-{digest.hexdigest()[:32]}"
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(source, "config.json")
    except Exception:  # noqa: BLE001 - an id the cache cannot look up has no snapshot to name
        cached = None
    return f"{source}@{Path(cached).parent.name}" if isinstance(cached, str) else source


class MatchingTower:
    """A frozen DINO / DINOv2 ViT: per image its last layer's ``[CLS]`` (``cls``, shape ``(1, D)``) and patch
    tokens (``patches``, ``(P, D)``; register tokens left out), preprocessed by its own image processor."""

    def __init__(self, ref: str, device: str = "cpu", flag: str = FLAG):
        from transformers import AutoImageProcessor, AutoModel

        from comipn_prep.logs import quiet_transformers

        self.ref = ref
        self.source = resolve_matching_tower(ref, flag)
        config = _config(self.source)
        kwargs = {"add_pooling_layer": False} if config.model_type == "vit" else {}
        try:
            with quiet_transformers():
                self.processor = AutoImageProcessor.from_pretrained(self.source, trust_remote_code=False)
                # Weights from safetensors, or torch.load(weights_only=True): nothing is unpickled.
                self.model = AutoModel.from_pretrained(self.source, trust_remote_code=False, **kwargs)
        except (OSError, ValueError) as err:
            raise _unavailable(f"matching tower {ref} could not be loaded ({err}); pass a folder made with "
                               f"save_pretrained (config.json, preprocessor_config.json, weights) "
                               f"with {flag}") from None
        self.model.eval().to(device)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.device = torch.device(device)
        self.skip = 1 + int(getattr(config, "num_register_tokens", 0) or 0)  # [CLS] and the registers
        self.dim = int(config.hidden_size)
        processing = f"{type(self.processor).__name__}|{self.processor.to_json_string()}"
        self.preprocessing_id = hashlib.sha256(processing.encode()).hexdigest()[:16]
        self.weights_id = _weights_id(self.source)

    @property
    def identity(self) -> str:
        """What the cache key holds: another architecture, weights or preprocessing is another key."""
        return f"matching-tower|{self.model.config.model_type}|{self.weights_id}|{self.preprocessing_id}"

    def preprocess(self, image) -> torch.Tensor:
        """One RGB ``PIL`` image -> its ``(3, H, W)`` pixels, as the tower's image processor makes them."""
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]

    def __call__(self, images: Sequence) -> list[ImageFeatures]:
        return self.encode_pixels(torch.stack([self.preprocess(im) for im in images]))

    @torch.no_grad()
    def encode_pixels(self, pixels: torch.Tensor) -> list[ImageFeatures]:
        states = self.model(pixel_values=pixels.to(self.device)).last_hidden_state.float().cpu()  # (N, S, D)
        return [ImageFeatures(cls=s[:1], patches=s[self.skip:]) for s in states]


def joined(clip: ImageFeatures | None, tower: ImageFeatures | None) -> ImageFeatures | None:
    """CLIP's class tokens with the matching tower's patches (None when either is missing)."""
    if clip is None or tower is None:
        return None
    return ImageFeatures(cls=clip.cls, patches=tower.patches)


class MatchingFeatures:
    """Two feature caches read as one: class tokens from the CLIP cache, patches from the matching tower's.
    The same ``get`` / ``get_many`` as a :class:`~comipn_model.network.vision.FeatureCache`."""

    def __init__(self, clip_cache, tower_cache):
        self.clip = clip_cache
        self.tower = tower_cache

    @property
    def tower_calls(self) -> int:
        return self.clip.tower_calls + self.tower.tower_calls

    def get(self, path: str | os.PathLike | None) -> ImageFeatures | None:
        return self.get_many([path])[0]

    def get_many(self, paths: Sequence[str | os.PathLike | None]) -> list[ImageFeatures | None]:
        return [joined(a, b) for a, b in zip(self.clip.get_many(paths), self.tower.get_many(paths))]


class MatchingTowers:
    """CLIP's tower and the matching tower called as one on decoded images (images made in memory, which
    no cache holds)."""

    def __init__(self, clip_tower, tower: MatchingTower):
        self.clip = clip_tower
        self.tower = tower

    def __call__(self, images: Sequence) -> list[ImageFeatures]:
        return [joined(a, b) for a, b in zip(self.clip(images), self.tower(images))]
