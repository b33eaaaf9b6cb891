"""Model loaders for the grounding stage (and the model's frozen CLIP tower).

Every loader takes a name (downloaded where there is internet) or a local file, and fails fast with
:class:`WeightsUnavailable` naming the flag that takes a local file when neither works. Never waits on
the network when the environment says it is offline (``HF_HUB_OFFLINE`` / ``YOLO_OFFLINE``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .logs import quiet_open_clip
from .model_refs import hub_offline

logger = logging.getLogger(__name__)



class WeightsUnavailable(RuntimeError):
    """Weights could not be found or fetched; the message says which flag takes a local file."""


def _is_random_spec(value: str | None) -> bool:
    return value is None or str(value).strip().lower() in ("", "none", "random")


def _looks_like_path(value: str) -> bool:
    return os.sep in value or "/" in value or value.startswith(".") or Path(value).suffix in (
        ".pt", ".pth", ".bin", ".safetensors", ".yaml", ".yml")


@dataclass
class ClipBundle:
    """An open_clip model in eval mode with its image transform and tokenizer."""

    model: Any
    preprocess: Callable
    tokenizer: Callable
    model_name: str
    weights_id: str
    random_weights: bool
    quick_gelu: bool = False  # the towers' MLPs use QuickGELU (what OpenAI's CLIP weights were trained with)


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes (hex): identifies weights by content, not by name."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def clip_quick_gelu(model_name: str, tag: str | None) -> bool:
    """Whether to build ``model_name`` with QuickGELU for open_clip pretrained ``tag``: the tag's own
    record says so (OpenAI's weights: yes); ``*-quickgelu`` model names build it anyway. open_clip 3.x
    builds plain GELU for ``ViT-B-32`` even with OpenAI's weights, which silently shifts every feature."""
    import open_clip

    if model_name.endswith("-quickgelu"):
        return True
    if tag is None:
        return False
    return bool(open_clip.get_pretrained_cfg(model_name, tag).get("quick_gelu", False))


def load_clip(model_name: str = "ViT-B-32", pretrained: str | None = "openai", device: str = "cpu",
              flag: str = "--clip-pretrained") -> ClipBundle:
    """Build ``model_name`` with ``pretrained`` weights: an open_clip tag (needs the hub), a local
    weights file, or None / ``"none"`` for random weights (same architecture and compute)."""
    import open_clip

    if model_name not in open_clip.list_models():
        raise WeightsUnavailable(f"unknown CLIP model {model_name!r} (open_clip knows e.g. ViT-B-32, ViT-B-16)")
    random_weights = _is_random_spec(pretrained)
    quick_gelu = model_name.endswith("-quickgelu")
    if random_weights:
        tag, weights_id = None, f"{model_name}:random"
    else:
        pretrained = str(pretrained)
        local = Path(pretrained).expanduser()
        if local.is_file():
            if _is_torchscript_archive(local):
                raise WeightsUnavailable(
                    f"CLIP weights file {local} is a TorchScript archive (OpenAI's original release), which "
                    f"comipn does not load (it holds code, not only tensors); save its weights once as a "
                    f"state dict (docs/data.md, 'CLIP') and pass that file with {flag}")
            # Content, not name: two different files called clip.pt must never share cached features.
            tag, weights_id = str(local), f"{model_name}:sha256-{file_digest(local)[:32]}"
            openai_sign = None if quick_gelu else openai_weights_sign(local)
            if openai_sign:
                # OpenAI's weights were trained with QuickGELU; GELU would shift every feature silently.
                quick_gelu = True
                weights_id += ":quickgelu"
                logger.info("CLIP weights file %s: OpenAI's weights (%s); building %s with QuickGELU",
                            local, openai_sign, model_name)
            elif not quick_gelu:
                logger.warning("CLIP weights file %s: nothing in its name or folder says OpenAI; building %s "
                               "with GELU as the model name says (for OpenAI-trained weights use the "
                               "'-quickgelu' model, e.g. ViT-B-32-quickgelu, or keep 'openai' in the file "
                               "name)", local, model_name)
        elif _looks_like_path(pretrained):
            raise WeightsUnavailable(
                f"CLIP weights file {pretrained} does not exist; pass a local weights file with {flag} "
                f"(or {flag} none for random weights)")
        else:
            tags = open_clip.list_pretrained_tags_by_model(model_name)
            if pretrained not in tags:
                raise WeightsUnavailable(
                    f"{pretrained!r} is neither a local file nor an open_clip tag of {model_name} "
                    f"({', '.join(tags[:6])}...); pass a local weights file with {flag}")
            tag, weights_id = pretrained, f"{model_name}:{pretrained}"
            quick_gelu = clip_quick_gelu(model_name, tag)
            if quick_gelu and not model_name.endswith("-quickgelu"):
                weights_id += ":quickgelu"
            if hub_offline("HF_HUB_OFFLINE") and not _in_hf_cache(model_name, pretrained):
                raise WeightsUnavailable(
                    f"offline (HF_HUB_OFFLINE) and CLIP weights {model_name}/{pretrained} are not cached; "
                    f"pass a local weights file with {flag} (or {flag} none for random weights)")
    try:
        with quiet_open_clip():
            model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=tag, device=device,
                                                                         force_quick_gelu=quick_gelu)
    except (RuntimeError, OSError, ValueError) as err:
        raise WeightsUnavailable(
            f"could not load CLIP weights {pretrained!r} for {model_name}: {err}; "
            f"pass a local weights file with {flag} (or {flag} none for random weights)") from err
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    with quiet_open_clip():
        tokenizer = open_clip.get_tokenizer(model_name)
    logger.info("CLIP %s loaded (%s, %s)", model_name, "random weights" if random_weights else weights_id,
                "QuickGELU" if quick_gelu else "GELU")
    return ClipBundle(model=model, preprocess=preprocess, tokenizer=tokenizer, model_name=model_name,
                      weights_id=weights_id, random_weights=random_weights, quick_gelu=quick_gelu)


def openai_weights_sign(path: Path) -> str | None:
    """What shows that a local CLIP weights file holds OpenAI's weights (trained with QuickGELU), or
    None. A state dict of OpenAI's weights has the same keys as LAION's, so the signs are outside the
    tensors: ``openai`` in the file's name or in the Hugging Face cache folder it sits in (the Hub
    repositories of OpenAI's weights are named so: ``models--timm--vit_base_patch32_clip_224.openai``), or
    an ``open_clip_config.json`` beside it (those repositories ship one) whose model config says
    ``quick_gelu``. Other folder names are not read: a user's folder called ``openai-fan`` says
    nothing of a file."""
    path = Path(path)
    names = [path.name] + [p.name for p in path.parents if p.name.startswith("models--")]
    for name in names:
        if "openai" in name.lower():
            return f"'openai' in {name!r}"
    config = path.parent / "open_clip_config.json"
    if config.is_file():
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if isinstance(data, dict) and isinstance(data.get("model_cfg"), dict) and data["model_cfg"].get("quick_gelu"):
            return f"{config.name} beside it says quick_gelu"
    return None


def _is_torchscript_archive(path: Path) -> bool:
    """A TorchScript zip (OpenAI's original ``ViT-B-32.pt``): it carries a ``code/`` folder."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in f"/{name}" for name in archive.namelist())


def _in_hf_cache(model_name: str, tag: str) -> bool:
    """Whether the hub copy of an open_clip tag is already on disk (then offline loading works)."""
    try:
        import open_clip
        from huggingface_hub import try_to_load_from_cache

        cfg = open_clip.get_pretrained_cfg(model_name, tag)
        hub_id = cfg.get("hf_hub", "").rstrip("/")
        if not hub_id:
            return False
        for filename in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            found = try_to_load_from_cache(hub_id, filename)
            if isinstance(found, str):
                return True
    except Exception:  # noqa: BLE001 - any failure here only means "not known to be cached"
        return False
    return False


def _yolo_weights_dir() -> Path:
    try:
        from ultralytics.utils import SETTINGS

        return Path(SETTINGS.get("weights_dir", "weights"))
    except Exception:  # noqa: BLE001 - no settings: no cached weights
        return Path("weights")


class UntrustedWeights(WeightsUnavailable, ValueError):
    """Weights named inside a file (a model's recorded settings) that would run code if loaded; the
    message names the file, the field and the flags that opt in."""


def check_recorded_clip(model_name: str, pretrained: str | None, recorded_in: str, flag: str) -> None:
    """Refuse CLIP weights named inside a file (a model's recorded settings) that would be looked up
    from the current folder or ``~``: a relative or ``~`` path, or an open_clip tag with a same-named
    file in the current folder (:func:`load_clip` reads a local file first). Loading itself runs no code:
    open_clip reads a local file with ``torch.load(weights_only=True)`` (or safetensors), and a tag from
    its official Hub repository; an absolute path is loaded as recorded."""
    if _is_random_spec(pretrained):
        return
    value = str(pretrained)
    try:
        import open_clip

        tags = set(open_clip.list_pretrained_tags_by_model(model_name))
    except Exception:  # noqa: BLE001 - an unknown model is refused by load_clip with its own message
        tags = set()
    if value in tags and not Path(value).exists():
        return
    if Path(value).is_absolute():
        return
    why = (f"a file {value} in the current folder would be read instead of the open_clip tag {value!r}"
           if value in tags else "a relative path")
    raise UntrustedWeights(
        f"{recorded_in} names the CLIP weights {value!r} ({why}): a path recorded in a file is never looked up "
        f"from the current folder or ~; pass the weights yourself with {flag} PATH (or {flag} none for random "
        f"weights)")


def _packaged_yaml(name: str) -> str | None:
    """The path of a model yaml shipped inside ultralytics (``yolov8n.yaml`` -> its ``yolov8.yaml`` with
    scale n), or None. The path returned lies in ultralytics' own folder, so ultralytics never looks for
    a file of that name in the current folder."""
    if not name or Path(name).name != name or Path(name).suffix not in (".yaml", ".yml"):
        return None
    from ultralytics.utils import ROOT

    models = Path(ROOT) / "cfg" / "models"
    stem = re.sub(r"(\d+)([nslmx])6(.+)?$", r"\1\2-p6\3", Path(name).stem)  # yolov8n6 -> yolov8n-p6, as ultralytics
    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", stem) + Path(name).suffix  # yolov8n -> yolov8
    for candidate in (name, unified):
        found = sorted(models.rglob(candidate))
        if found:
            # ultralytics reads the scale (n, s, ...) from the name it is given: keep the asked-for name,
            # in the folder of the file it will read.
            return str(found[0].parent / name)
    return None


def _official_asset(name: str) -> bool:
    """Whether ``name`` is a bare file name of ultralytics' released ``.pt`` weights (yolov8n.pt, ...)."""
    if not name or Path(name).name != name or Path(name).suffix != ".pt":
        return False
    try:
        from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES
    except ImportError:  # an ultralytics without the list: no name is known to be official
        return False
    return name in GITHUB_ASSETS_NAMES


def _recorded_detector(spec: str, recorded_in: str, flag: str, trust_flag: str) -> tuple[str, str, bool]:
    """``(source, weights_id, random_weights)`` for a detector named inside a file, or UntrustedWeights.

    Loaded without the user's say-so: an architecture yaml shipped inside ultralytics (random weights;
    a yaml from elsewhere is not safe: ultralytics ``eval``s its ``activation`` field) and ultralytics'
    released weights by bare name (``yolov8n.pt``), read only from ultralytics' weights folder or
    downloaded there from ultralytics' own release, never a same-named file in the current folder (where
    ``YOLO("yolov8n.pt")`` would look first). Anything else (a ``.pt`` is a pickle: loading it runs
    whatever it holds; an ONNX file makes ultralytics install onnxruntime) is refused, and the value is
    never resolved against the current folder, the model's folder or ``~``."""
    check_recorded_detector(spec, recorded_in, flag, trust_flag)
    packaged = _packaged_yaml(spec)
    if packaged is not None:
        return packaged, f"{Path(spec).stem}:random", True
    # ultralytics' released weights by bare name
    cached = _yolo_weights_dir() / spec
    if not cached.is_absolute():
        cached = cached.absolute()
    if cached.is_file():
        return str(cached), spec, False
    if hub_offline("YOLO_OFFLINE", "HF_HUB_OFFLINE"):
        raise WeightsUnavailable(
            f"offline (YOLO_OFFLINE) and the detector {spec} named in {recorded_in} is not in ultralytics' "
            f"weights folder {cached.parent}; pass a local .pt file with {flag} (or {flag} yolov8n.yaml for "
            f"random weights)")
    from ultralytics.utils.downloads import attempt_download_asset

    cached.parent.mkdir(parents=True, exist_ok=True)
    # An absolute target: ultralytics downloads its released asset there, not into the current folder.
    return attempt_download_asset(str(cached)), spec, False


def check_recorded_detector(spec: str, recorded_in: str, flag: str = "--detector",
                            trust_flag: str = "--trust-detector") -> None:
    """Raise :class:`UntrustedWeights` when a detector named inside a file is not one of ultralytics' own
    names (see :func:`_recorded_detector`); loads nothing, so it can run before any slow work."""
    spec = str(spec)
    if _packaged_yaml(spec) is not None or _official_asset(spec):
        return
    raise UntrustedWeights(
        f"{recorded_in} names the detector {spec!r}, which is not one of ultralytics' own model names: loading "
        f"it would unpickle (or evaluate) a file that can run code on this machine. Pass the detector yourself "
        f"with {flag} PATH (e.g. {flag} yolov8n.yaml for random weights, {flag} yolov8n.pt for ultralytics' "
        f"release), or, if you trust whoever made this model, {trust_flag} to load {spec!r} as recorded")


def load_yolo(spec: str = "yolov8n.pt", flag: str = "--detector", *, recorded_in: str | None = None,
              trust_flag: str = "--trust-detector") -> tuple[Any, str, bool]:
    """An ultralytics YOLO model from a name (downloaded), a local ``.pt``, or a ``.yaml`` (random
    weights). Returns ``(model, weights_id, random_weights)``.

    ``spec`` as the user gave it (``recorded_in`` None) is loaded as ultralytics would: the user chose
    it. ``recorded_in`` says that ``spec`` was read from a file (e.g. ``"model/config.json, field
    grounding.detector"``): then only ultralytics' own names load (see :func:`_recorded_detector`), and
    anything else raises :class:`UntrustedWeights` naming that file, ``flag`` and ``trust_flag``."""
    from ultralytics import YOLO

    spec = str(spec)
    if recorded_in is not None:
        source, weights_id, random_weights = _recorded_detector(spec, recorded_in, flag, trust_flag)
        return _yolo(YOLO, source, spec, weights_id, random_weights, flag)
    path = Path(spec).expanduser()
    random_weights = path.suffix in (".yaml", ".yml")
    if random_weights:
        # Model yamls (yolov8n.yaml) are shipped inside ultralytics; a local one is used as is.
        source = str(path) if path.is_file() else spec
        weights_id = f"{path.stem}:random"
    elif path.is_file():
        source, weights_id = str(path), path.name
    elif path.suffix != ".pt" or len(path.parts) > 1:
        raise WeightsUnavailable(
            f"detector weights {spec} not found; pass a local .pt file (or a model .yaml for random "
            f"weights) with {flag}")
    elif (cached := _yolo_weights_dir() / spec).is_file():
        source, weights_id = str(cached), spec  # downloaded earlier into ultralytics' weights folder
    else:
        if hub_offline("YOLO_OFFLINE", "HF_HUB_OFFLINE"):
            raise WeightsUnavailable(
                f"offline (YOLO_OFFLINE) and {spec} is not a local file; pass a local .pt file with {flag} "
                f"(or {flag} yolov8n.yaml for random weights)")
        source, weights_id = spec, spec
    return _yolo(YOLO, source, spec, weights_id, random_weights, flag)


def _yolo(yolo_class, source: str, spec: str, weights_id: str, random_weights: bool, flag: str):
    try:
        model = yolo_class(source)
    except (ConnectionError, OSError, FileNotFoundError, RuntimeError, ValueError) as err:
        raise WeightsUnavailable(
            f"could not load detector {spec!r}: {err}; pass a local .pt file with {flag}") from err
    logger.info("detector %s loaded (%s)", spec, "random weights" if random_weights else weights_id)
    return model, weights_id, random_weights
